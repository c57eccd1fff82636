/// Opens the segments of a store and finds the end of valid data.
///
/// Data before the checkpoint was durable when the checkpoint was written: sealed segments are
/// represented by their index files (checked, and rebuilt from a verified scan when missing or
/// bad), and the open segment's frames before the checkpoint are walked by header only; their
/// checksums are left to reads and `verify`. Data after the checkpoint is verified frame by
/// frame. In the last segment, bytes that are not a valid frame at or after the end that the
/// checkpoint and the durable mark vouch for (``ProtectedEnd``) are a torn tail: cut and zeroed
/// (writable open) or ignored (read-only). Before that end, and anywhere else, a bad frame is
/// corruption: the open fails, except that a read-only open reads the last segment up to it and
/// reports it (`format-spec.md` §3.4, §3.8).
struct LogRecovery {
    let layout: StoreLayout
    /// Where archived segments are (nil: the store has none).
    let archive: ArchiveLocation?
    let writable: Bool
    let hasher: StreamHasher
    /// Cut damaged acknowledged data in the last segment instead of refusing the store.
    var discardDamagedTail = false
    /// The store's data keys, handed to every segment (its encrypted records read with them).
    var keyRing: KeyRing?

    struct Result {
        var segments: [Segment]
        /// End of valid frames in the last segment.
        var end: LogEnd
        /// True when the last segment ends with a seal frame.
        var lastSegmentSealed: Bool
        /// Index files of sealed segments.
        var tables: [IndexTable]
        /// Frames of segments without an index file (the open segment).
        var streams: StreamIndex
        /// Latest event timestamp seen, so new appends never go back in time.
        var lastTimestamp: Int64
        /// Offset of the last dictionary frame in the last segment, which new compressed
        /// records keep using (nil: none yet).
        var lastSegmentDictionary: Int?
        /// The last segment's newest durable mark (nil: none), which new marks continue.
        var lastMark: DurableMark?
        var report: RecoveryReport
    }

    func recover(checkpoint: Checkpoint?, report initialReport: RecoveryReport) throws(OpenError) -> Result {
        var report = initialReport
        let listing: SegmentListing
        do { listing = try layout.listSegments(archive: archive) } catch { throw .system(error) }
        if writable {
            for file in listing.temporaryFiles {
                do { try layout.storage.unlinkIfPresent(file) } catch { throw .system(error) }
                report.removedTemporaryFiles.append(file)
            }
            for leftover in listing.leftoverCopies {
                do {
                    guard try Self.sameBytes(leftover.path, leftover.archivedCopy, storage: layout.storage) else {
                        report.warnings.append("\(leftover.path) differs from its archived copy \(leftover.archivedCopy): kept, not read")
                        continue
                    }
                    try layout.storage.unlinkIfPresent(leftover.path)
                } catch { throw .system(error) }
                report.removedTemporaryFiles.append(leftover.path)
            }
        }
        guard let firstFile = listing.files.first else {
            throw .notAStore(path: layout.root, reason: "no segment files in \(layout.segmentsDirectory)")
        }
        // Every store's log starts at segment 0: a later first number means files are missing
        // (an archive whose `archive` file was lost, files deleted by hand).
        guard firstFile.index == 0 else {
            throw .corrupt(CorruptionError(file: layout.segmentPath(0, archive: archive), offset: 0, reason: "segment file missing"))
        }
        // A compacted file stands for a range of segment numbers; a file whose number lies in
        // the range of the file before it is an input of a compaction that was interrupted
        // after its output was in place: superseded.
        var segments: [Segment] = []
        for listed in listing.files {
            let index = listed.index, path = listed.path
            if let previous = segments.last, index <= previous.lastIndex {
                if writable {
                    do { try layout.storage.unlinkIfPresent(path) } catch { throw .system(error) }
                    report.removedSupersededFiles.append(path)
                }
                continue
            }
            if let previous = segments.last, index != previous.lastIndex + 1 {
                throw .corrupt(CorruptionError(file: layout.segmentPath(previous.lastIndex + 1, archive: archive), offset: 0,
                                               reason: "segment file missing"))
            }
            let file: MappedFile
            do { file = try layout.storage.openMappedFile(path: path, writable: false) } catch { throw .system(error) }
            let header: SegmentHeader
            do { header = try SegmentHeader.decode(file.bytes, file: path) } catch { throw error.openError }
            guard header.segmentIndex == index else {
                throw .corrupt(CorruptionError(
                    file: path, offset: SegmentHeaderLayout.segmentIndex, reason: "header names segment \(header.segmentIndex)"))
            }
            segments.append(Segment(header: header, file: file, keyRing: keyRing))
        }
        if let archive, let last = segments.last, last.index < archive.firstLocalSegment {
            throw .corrupt(CorruptionError(file: layout.segmentPath(archive.firstLocalSegment), offset: 0,
                                           reason: "segment file missing (the archive holds every segment before it)"))
        }
        // The last file standing (files after it may have been superseded) is the one the
        // writer continues: never a compacted one, and the only one mapped writable.
        if let last = segments.last {
            if last.isCompacted {
                throw .corrupt(CorruptionError(
                    file: last.path, offset: SegmentHeaderLayout.flags, reason: "the last segment of a store cannot be a compacted one"))
            }
            if writable {
                let file: MappedFile
                do { file = try layout.storage.openMappedFile(path: last.path, writable: true) } catch { throw .system(error) }
                segments[segments.count - 1] = Segment(header: last.header, file: file, keyRing: keyRing)
            }
        }

        // Where verification starts: the checkpoint if it points at a segment we have.
        var start = LogEnd(segmentIndex: segments[0].index, offset: Format.segmentHeaderBytes, nextPosition: segments[0].firstPosition)
        if let checkpoint, segments.contains(where: checkpoint.isUsable(for:)) {
            start = LogEnd(segmentIndex: checkpoint.segmentIndex, offset: Int(checkpoint.segmentOffset),
                           nextPosition: checkpoint.nextPosition)
            report.usedCheckpoint = true
            report.cleanShutdown = checkpoint.cleanShutdown
        } else if checkpoint != nil {
            report.warnings.append("checkpoint points outside the log; verified the whole log instead")
        }

        // Index files: a sound, non-overlapping cover of the sealed segments, widest files first.
        let files: [IndexCatalog.File]
        do { files = try IndexCatalog.list(layout) } catch { throw .system(error) }
        let selection = IndexCatalog.select(files, segments: segments, sealedCount: segments.count - 1, hashID: hasher.id,
                                            storage: layout.storage)
        for problem in selection.rejected { report.warnings.append("\(problem); rebuilt from the log") }
        if writable {
            // Superseded and failed files go: what they covered is rebuilt below, possibly
            // under other names (after a compaction stopped half-way).
            let unused = selection.superseded.map(\.path) + selection.rejected.map(\.file)
            for path in unused where !selection.tables.contains(where: { $0.file.path == path }) {
                do { try layout.storage.unlinkIfPresent(path) } catch { throw .system(error) }
            }
        }
        var tables = selection.tables
        func table(covering index: UInt64) -> IndexTable? { tables.first { $0.segments.contains(index) } }
        var coveredAfterScan: [UInt64] = []
        var memory = StreamIndex(hasher: hasher)
        var lastTimestamp = checkpoint?.lastTimestamp ?? 0
        var expected = segments[0].firstPosition
        var end = start
        var sealed = false
        var dictionary: Int?
        var compactedSoFar = false
        var lastMark: DurableMark?
        for (arrayIndex, segment) in segments.enumerated() {
            dictionary = nil
            let isLast = arrayIndex == segments.count - 1
            // Compaction removes events: after a compacted segment, a stream may continue past
            // revisions that are gone (never go back).
            compactedSoFar = compactedSoFar || segment.isCompacted
            guard segment.firstPosition == expected else {
                throw .corrupt(segment.corruption(
                    at: SegmentHeaderLayout.firstPosition, "segment starts at position \(segment.firstPosition), expected \(expected)"))
            }
            let nextFirstPosition = isLast ? nil : segments[arrayIndex + 1].firstPosition
            // Entirely before the checkpoint: sealed and durable. Its index file is all we need.
            if segment.index < start.segmentIndex, let nextFirstPosition, let covering = table(covering: segment.index) {
                expected = segment.lastIndex == covering.segments.upperBound ? covering.nextPosition : nextFirstPosition
                continue
            }
            // Otherwise read the frames: walk headers up to the checkpoint, verify after it.
            var offset = Format.segmentHeaderBytes
            var rescanned = false
            if segment.index == start.segmentIndex && start.offset > offset {
                let expectedAtStart = expected
                do {
                    expected = try walkHeaders(of: segment, upTo: start.offset, expecting: expected, into: &memory,
                                               dictionary: &dictionary)
                    offset = start.offset
                } catch {
                    // A read-only open reads the last segment up to damage before the checkpoint:
                    // it verifies the segment from its start instead, and finds the damage there.
                    guard isLast, !writable || discardDamagedTail, case .corrupt = error else { throw error }
                    memory.removeFrames(ofSegment: segment.index)
                    dictionary = nil
                    expected = expectedAtStart
                    rescanned = true
                }
            }
            if segment.index == start.segmentIndex, !rescanned, expected != start.nextPosition {
                throw .corrupt(segment.corruption(at: offset, "checkpoint says position \(start.nextPosition), log says \(expected)"))
            }
            let verifyFrom = segment.index >= start.segmentIndex ? offset : segment.file.size
            if verifyFrom > offset {
                // Before the checkpoint, rebuilding a missing index: walk it, then verify it.
                expected = try walkHeaders(of: segment, expecting: expected, into: &memory, dictionary: &dictionary)
                sealed = true
                end = LogEnd(segmentIndex: segment.index, offset: 0, nextPosition: expected)
            } else {
                let scanStart = offset
                sealed = false
                // In the last segment, what the checkpoint and the durable mark vouch for must be
                // there: damage before it is corruption, never a torn tail (§3.4, §3.8).
                let protected = isLast
                    ? ProtectedEnd.of(segment, checkpoint: report.usedCheckpoint ? checkpoint : nil, currentBoot: layout.storage.bootID)
                    : nil
                if let protected { lastMark = protected.mark }
                /// Corruption ends the open, except in the last segment of a read-only open,
                /// which reads the log up to it and reports it, and of a writable open asked to
                /// discard it, which cuts the log there (the log ends at `offset`).
                // The first frame (and the position before it) of a multi-stream append whose last
                // frame has not been seen yet (§3.1): the log never ends inside one.
                var group: (offset: Int, position: UInt64)?
                func damaged(_ error: CorruptionError) throws(OpenError) {
                    guard isLast, !writable || discardDamagedTail else { throw .corrupt(error) }
                    report.damage = error
                    endBeforeGroup()
                    if writable {
                        try cutTail(of: segment, at: offset, reason: "discarded on request: \(error.reason)", report: &report)
                    }
                }
                /// Moves the end back to the start of an incomplete group and drops its frames.
                func endBeforeGroup() {
                    guard let start = group else { return }
                    memory.removeFrames(ofSegment: segment.index, atOrAfter: start.offset)
                    // A dictionary frame from there on is cut too (the writer never puts one inside
                    // a group; an older or damaged file might): new records must not name it.
                    if let offset = dictionary, offset >= start.offset {
                        dictionary = nil
                        segment.verifiedDictionaryOffset.store(0, ordering: .releasing)
                    }
                    offset = start.offset
                    expected = start.position
                    group = nil
                }
                /// The log ends here: an incomplete group before it is a torn write when it lies
                /// after the protected end (cut with the tail), corruption otherwise.
                func endOfLog() throws(OpenError) {
                    guard let start = group else { return }
                    if let protected, start.offset < protected.offset {
                        try damaged(protected.damage(in: segment, at: start.offset, "a multi-stream append whose last frame is missing"))
                        return
                    }
                    endBeforeGroup()
                }
                var walk = segment.walk(from: (offset, expected), verification: .checksumsAndRecords)
                scan: while true {
                    // `offset` and `expected` name the frame boundary the walk stands at.
                    offset = walk.offset
                    expected = walk.expectedPosition
                    if rescanned, offset == start.offset, expected != start.nextPosition {
                        // Not damage to read around: the checkpoint and the log disagree (§5).
                        throw .corrupt(segment.corruption(at: offset, "checkpoint says position \(start.nextPosition), log says \(expected)"))
                    }
                    if let protected, offset == protected.offset, let position = protected.position, position != expected {
                        try damaged(segment.corruption(at: offset, "the log has position \(expected) here; \(protected.source) says \(position)"))
                        break scan
                    }
                    let step = walk.next()
                    switch step {
                    case .events(let frame), .dictionary(let frame), .seal(let frame):
                        if let protected, frame.offset < protected.offset, frame.end > protected.offset {
                            try damaged(protected.damage(in: segment, at: offset, "frame runs past a frame boundary"))
                            break scan
                        }
                        if case .seal = step {
                            if let protected, frame.offset < protected.offset {
                                try damaged(protected.damage(in: segment, at: offset, "seal frame"))
                                break scan
                            }
                            if let start = group {
                                try damaged(segment.corruption(at: start.offset, "a multi-stream append whose last frame is missing before the seal"))
                                break scan
                            }
                            sealed = true
                            expected = frame.firstPosition
                            offset = frame.end
                            break scan
                        }
                        if case .dictionary = step {
                            dictionary = frame.offset
                            continue scan
                        }
                        // Revision continuity is checked where no index file vouches for the
                        // segment (the open segment, or one being re-indexed), against what
                        // precedes it: index files ending before it and the frames scanned so far.
                        let indexed = table(covering: segment.index) != nil
                        let before = indexed ? [] : tables.filter { $0.segments.upperBound < segment.index }
                        if frame.continues, group == nil { group = (frame.offset, frame.firstPosition) }
                        do {
                            try apply(frame, in: segment, checkContinuity: !indexed, allowSkippedRevisions: compactedSoFar,
                                      locator: StreamLocator(tables: before, segments: segments), into: &memory)
                        } catch {
                            guard case .corrupt(let corruption) = error else { throw error }
                            try damaged(corruption)
                            break scan
                        }
                        if !frame.continues { group = nil }
                        lastTimestamp = max(lastTimestamp, Self.timestamp(of: frame, in: segment))
                    case .endOfData, .limit:
                        guard isLast else {
                            throw .corrupt(segment.corruption(at: offset, "sealed segment ends without a seal frame"))
                        }
                        if group != nil {
                            let stop = offset
                            try endOfLog()
                            if offset != stop, report.damage == nil {
                                try cutTail(of: segment, at: offset, reason: "a multi-stream append whose last frame was never written",
                                            report: &report)
                            }
                            break scan
                        }
                        if let protected, offset < protected.offset {
                            try damaged(protected.damage(in: segment, at: offset, "acknowledged data missing: zero bytes where a frame must be"))
                        } else if writable, !report.cleanShutdown {
                            // After a crash, pages of unacknowledged frames past a lost one may have
                            // reached the disk: they go before anything is written after the end,
                            // so no old frame can reappear behind a new one.
                            try cutTail(of: segment, at: offset, reason: "stale bytes after the end of data", report: &report)
                        }
                        break scan
                    case .notAFrame(_, let reason):
                        guard isLast else { throw .corrupt(segment.corruption(at: offset, reason)) }
                        if let protected, offset < protected.offset {
                            try damaged(protected.damage(in: segment, at: offset, reason))
                            break scan
                        }
                        try endOfLog()
                        if report.damage != nil { break scan }
                        try cutTail(of: segment, at: offset, reason: reason, report: &report)
                        break scan
                    case .corrupt(let at, let reason):
                        // A checksummed frame with wrong fields or records, or a position that does
                        // not continue: corruption wherever it is (the log ends at `offset`).
                        try damaged(segment.corruption(at: at, reason))
                        break scan
                    }
                }
                report.scannedBytes += offset - scanStart
                end = LogEnd(segmentIndex: segment.index, offset: sealed ? offset - Format.sealFrameBytes : offset, nextPosition: expected)
                if !isLast && !sealed {
                    throw .corrupt(segment.corruption(at: offset, "sealed segment ends without a seal frame"))
                }
            }
            if let nextFirstPosition, expected != nextFirstPosition {
                throw .corrupt(segments[arrayIndex + 1].corruption(
                    at: SegmentHeaderLayout.firstPosition, "segment starts at position \(nextFirstPosition), expected \(expected)"))
            }
            // A sealed segment gets (or keeps) its index file; its frames leave memory.
            if sealed {
                if table(covering: segment.index) != nil {
                    coveredAfterScan.append(segment.index)
                } else if writable {
                    let entries = memory.entries(forSegment: segment.index)
                    var keyEntries = memory.keyEntries(forSegment: segment.index)
                    if memory.keysPending[segment.index] != nil {
                        let keyed: [(QueryKey, FrameLocation)]
                        do throws(ReadError) { keyed = try segment.keyedFrames() } catch {
                            throw .corrupt(error.corruption)
                        }
                        keyEntries = keyed.map { IndexFile.Entry(keyHash: $0.0.hash(with: hasher), frame: $0.1) }
                    }
                    let written: IndexTable?
                    do {
                        written = try IndexWriter.write(segments: segment.index...segment.lastIndex, nextPosition: expected,
                                                        fingerprint: IndexFile.fingerprint(ofHeaderChecksums: [segment.headerChecksum]),
                                                        entries: entries, keyEntries: keyEntries, hasher: hasher, layout: layout)
                    } catch { throw .system(error) }
                    guard let written else {
                        throw .corrupt(CorruptionError(file: layout.indexPath(segment.index...segment.lastIndex), offset: 0,
                                                       reason: "index file unreadable after writing"))
                    }
                    report.rebuiltIndexes.append(layout.indexPath(segment.index...segment.lastIndex))
                    tables.append(written)
                    tables.sort { $0.segments.lowerBound < $1.segments.lowerBound }
                    if segment.index < start.segmentIndex {
                        memory.removeFrames(ofSegment: segment.index)
                    } else {
                        coveredAfterScan.append(segment.index)
                    }
                }
                // Read-only: the frames stay in memory.
            }
        }
        // Scanned segments that index files cover leave memory only now: the scan needed them
        // for its continuity checks.
        for index in coveredAfterScan { memory.removeFrames(ofSegment: index) }
        // A checkpoint taken after the scanned data must be durable before it can be trusted.
        if writable, let last = segments.last, report.scannedBytes > 0 {
            do { try last.file.sync(Format.segmentHeaderBytes..<last.file.size) } catch { throw .system(error) }
        }
        return Result(segments: segments, end: end, lastSegmentSealed: sealed, tables: tables, streams: memory,
                      lastTimestamp: lastTimestamp, lastSegmentDictionary: sealed ? nil : dictionary,
                      lastMark: lastMark, report: report)
    }

    private static func timestamp(of frame: FrameHeader, in segment: Segment) -> Int64 {
        segment.bytes.i64(frame.recordsOffset + RecordLayout.timestamp)
    }

    /// Follows frame headers (no checksums) through data covered by the checkpoint, adding
    /// frames to the in-memory index; the walk must land exactly on `limit`. Without `limit`,
    /// the whole (sealed) segment: its frames are then verified too, since they are about to be
    /// indexed.
    private func walkHeaders(
        of segment: Segment, upTo limit: Int? = nil, expecting position: UInt64, into memory: inout StreamIndex,
        dictionary: inout Int?
    ) throws(OpenError) -> UInt64 {
        var walk = segment.walk(from: (Format.segmentHeaderBytes, position),
                                verification: limit == nil ? .checksumsAndRecords : .headers, limit: limit)
        // Frames found by header only have no keys until they are verified (on first use).
        if let limit { memory.markKeysPending(ofSegment: segment.index, before: limit) }
        /// A damaged length sends the walk into the middle of a frame; blame the frame whose
        /// checksum fails rather than the garbage it pointed to.
        func culprit(_ offset: Int, _ reason: String) -> OpenError {
            if let previous = walk.previous, (try? segment.verify(previous)) == nil {
                return .corrupt(segment.corruption(at: previous.offset, "frame checksum mismatch"))
            }
            return .corrupt(segment.corruption(at: offset, reason))
        }
        while true {
            switch walk.next() {
            case .events(let frame):
                let location = FrameLocation(frame, in: segment)
                memory.append(location, to: streamName(of: frame, in: segment))
                if limit == nil { memory.file(location, under: QueryKey.keys(of: frame, in: segment)) }
            case .dictionary(let frame):
                dictionary = frame.offset
            case .seal(let frame):
                return frame.firstPosition
            case .limit(let offset):
                // The checkpoint is a frame boundary: a frame running past it has a damaged length.
                guard offset == limit else {
                    throw culprit(walk.previous?.offset ?? offset, "frame runs past the checkpoint at offset \(limit ?? 0)")
                }
                return walk.expectedPosition
            case .endOfData(let offset):
                throw culprit(offset, limit == nil ? "sealed segment ends without a seal frame" : "checkpointed data missing")
            case .notAFrame(let offset, let reason), .corrupt(let offset, let reason):
                throw culprit(offset, reason)
            }
        }
    }

    /// Checks that `frame` (verified by the walk) continues its stream's revisions and adds it
    /// to the in-memory index.
    private func apply(
        _ frame: FrameHeader, in segment: Segment, checkContinuity: Bool, allowSkippedRevisions: Bool, locator: StreamLocator,
        into memory: inout StreamIndex
    ) throws(OpenError) {
        let name = streamName(of: frame, in: segment)
        let hash = hasher.hash(name)
        let current = checkContinuity
            ? locator.nextRevision(of: name, hash: hash, recent: memory.record(for: name, hash: hash)) : frame.firstRevision
        guard frame.firstRevision == current || (allowSkippedRevisions && frame.firstRevision > current) else {
            throw .corrupt(segment.corruption(at: frame.offset, "stream \(name) continues at revision \(frame.firstRevision), expected \(current)"))
        }
        let location = FrameLocation(frame, in: segment)
        memory.append(location, to: name)
        memory.file(location, under: QueryKey.keys(of: frame, in: segment))
    }

    private func streamName(of frame: FrameHeader, in segment: Segment) -> String {
        String(decoding: segment.bytes.slice(frame.offset + FrameLayout.streamName, frame.streamNameBytes), as: UTF8.self)
    }

    /// Cuts the torn tail at `offset`: zeroes every non-zero byte after it in the frame area
    /// (so an old frame can never reappear behind a new one; the durable marks stay) and syncs
    /// the zeroes.
    private func cutTail(of segment: Segment, at offset: Int, reason: String, report: inout RecoveryReport) throws(OpenError) {
        let bytes = segment.bytes
        let areaEnd = segment.frameAreaEnd
        var lastNonZero = areaEnd
        var index = areaEnd - 8
        while index >= offset {
            if bytes.u64(index) != 0 { break }
            lastNonZero = index
            index -= 8
        }
        let cutBytes = lastNonZero - offset
        guard cutBytes > 0 else { return }
        report.truncatedBytes = cutBytes
        report.truncation = segment.corruption(at: offset, reason)
        guard writable, cutBytes > 0 else { return }
        do {
            try segment.file.writeZeros(offset..<lastNonZero)
            try segment.file.sync(offset..<lastNonZero)
        } catch { throw .system(error) }
    }
}

extension FrameLocation {
    init(_ frame: FrameHeader, in segment: Segment) {
        self.init(firstRevision: frame.firstRevision, firstPosition: frame.firstPosition, segmentIndex: segment.index,
                  offset: UInt32(frame.offset), eventCount: UInt32(frame.eventCount))
    }
}

extension SegmentHeader.DecodeError {
    /// The error an open reports.
    var openError: OpenError {
        switch self {
        case .corrupt(let error): return .corrupt(error)
        case .unsupportedVersion(let file, let found):
            return .unsupportedFormatVersion(path: file, found: found, supported: Int(Format.version))
        }
    }
}

extension LogRecovery {
    /// True when the files at `a` and `b` hold the same bytes.
    static func sameBytes(_ a: String, _ b: String, storage: any Storage) throws(SystemError) -> Bool {
        guard let size = storage.fileSize(a), size == storage.fileSize(b) else { return false }
        let first = try storage.openMappedFile(path: a, writable: false)
        let second = try storage.openMappedFile(path: b, writable: false)
        return first.bytes.elementsEqual(second.bytes)
    }
}
