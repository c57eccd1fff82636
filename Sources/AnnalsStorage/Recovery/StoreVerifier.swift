/// What `verify` found.
public struct VerificationReport: Sendable {
    /// Segment files checked.
    public var segments = 0
    /// Frames whose checksum and structure were checked.
    public var frames = 0
    /// Events in those frames.
    public var events: UInt64 = 0
    /// Distinct streams seen.
    public var streams = 0
    /// Bytes of frames checked.
    public var bytes = 0
    /// Index files checked against their segments.
    public var indexFiles = 0
    /// Dictionary frames checked.
    public var dictionaries = 0
    /// Events stored LZ4-compressed; every one was decoded and checked for its exact size.
    public var compressedEvents: UInt64 = 0
    /// Metadata and payload bytes of all events, as the application sees them.
    public var bodyBytes: UInt64 = 0
    /// The same bodies as stored (compressed blocks with their dictionary reference, raw ones
    /// as they are): `bodyBytes / storedBodyBytes` is the compression ratio.
    public var storedBodyBytes: UInt64 = 0
    /// Problems, in file order (at most ``StoreVerifier/maximumProblems``).
    public var problems: [CorruptionError] = []
    /// Non-zero bytes after the last valid frame of the last segment: a torn tail that the next
    /// writable open will cut (normal while a writer is running or after a crash).
    public var tornTailBytes = 0
    /// Notes that are not problems (e.g. the torn tail).
    public var notes: [String] = []

    /// True when no problem was found.
    public var isSound: Bool { problems.isEmpty }
}

/// Checks every frame of a store against its checksum, its structure, gapless positions,
/// gapless stream revisions and segment seals, and decodes every compressed record, without
/// changing any file. Safe to run while a
/// writer has the store open. Problems are collected, not thrown.
public enum StoreVerifier {
    /// Problems listed in a report at most (verification stops collecting after that many).
    public static let maximumProblems = 100

    /// Verifies the store at `path`. `progress` is called after each segment with
    /// (segments done, segments total).
    public static func verify(at path: String, progress: ((Int, Int) -> Void)? = nil) -> VerificationReport {
        verify(at: path, storage: SystemStorage.shared, progress: progress)
    }

    /// As above, through `storage` (the crash-simulation tests verify simulated stores).
    static func verify(at path: String, storage: any Storage, progress: ((Int, Int) -> Void)? = nil) -> VerificationReport {
        // A writer in another process may move segments to the archive meanwhile: when the
        // `archive` file changed during the walk, walk again (a few times).
        let manifestPath = StoreLayout(root: path, storage: storage).archiveManifestPath
        func manifest() -> [UInt8]? { (try? storage.readFile(manifestPath, maximumBytes: ArchiveManifest.maximumDirectoryBytes + 64)) ?? nil }
        var attempt = 0
        while true {
            attempt += 1
            let before = manifest()
            let report = verifyOnce(at: path, storage: storage, progress: progress)
            if attempt < 4, manifest() != before { continue }
            return report
        }
    }

    private static func verifyOnce(at path: String, storage: any Storage, progress: ((Int, Int) -> Void)?) -> VerificationReport {
        var report = VerificationReport()
        let layout = StoreLayout(root: path, storage: storage)
        func problem(_ file: String, _ offset: Int, _ reason: String) {
            if report.problems.count < maximumProblems {
                report.problems.append(CorruptionError(file: file, offset: offset, reason: reason))
            }
        }
        var archive: ArchiveLocation?
        do { archive = try ArchiveLocation.load(layout) } catch {
            switch error {
            case .corrupt(let corruption): problem(corruption.file, corruption.offset, corruption.reason)
            default: problem(layout.archiveManifestPath, 0, error.description)
            }
            return report
        }
        let listing: SegmentListing
        do { listing = try layout.listSegments(archive: archive) } catch {
            problem(layout.segmentsDirectory, 0, error.description)
            return report
        }
        func expectedPath(_ index: UInt64) -> String { layout.segmentPath(index, archive: archive) }
        for leftover in listing.leftoverCopies {
            report.notes.append("\(leftover.path) is archived (\(leftover.archivedCopy)): a copy an interrupted archive run left; "
                + "the next writable open deletes it")
        }
        let indexes = listing.indexes
        if indexes.isEmpty { problem(layout.segmentsDirectory, 0, "no segment files") }
        if let first = indexes.first, first != 0 { problem(expectedPath(0), 0, "segment file missing") }
        if let archive, let last = indexes.last, last < archive.firstLocalSegment {
            problem(layout.segmentPath(archive.firstLocalSegment), 0, "segment file missing (the archive holds every segment before it)")
        }
        // Data before the checkpoint was durable when it was written: a bad frame there is
        // corruption, never a torn tail.
        var checkpoint: Checkpoint?
        if let checkpointBytes = (try? storage.readFile(layout.checkpointPath, maximumBytes: 4096)) ?? nil {
            switch Checkpoint.decode(checkpointBytes) {
            case .success(let decoded): checkpoint = decoded
            case .failure(let failure): problem(layout.checkpointPath, 0, "checkpoint unreadable: \(failure)")
            }
        }
        var expectedPosition: UInt64?
        var revisions: [String: UInt64] = [:]
        var sealedEntries: [UInt64: [IndexFile.Entry]] = [:]
        var sealedKeyEntries: [UInt64: [IndexFile.Entry]] = [:]
        var sealedEnds: [UInt64: UInt64] = [:]
        var mappedSegments: [Segment] = []
        var lastNumber: UInt64?
        var compactedSeen = false
        for (slot, listed) in listing.files.enumerated() {
            let index = listed.index
            let isLast = slot == indexes.count - 1
            let file = listed.path
            defer { progress?(slot + 1, indexes.count) }
            if let lastNumber, index <= lastNumber {
                report.notes.append("\(file) is left over by an interrupted compaction (a compacted file stands for it); "
                    + "the next writable open deletes it")
                continue
            }
            report.segments += 1
            if let lastNumber, index != lastNumber + 1 { problem(expectedPath(lastNumber + 1), 0, "segment file missing") }
            lastNumber = index
            let mapped: MappedFile
            do { mapped = try storage.openMappedFile(path: file, writable: false) } catch {
                problem(file, 0, error.description)
                expectedPosition = nil
                continue
            }
            let header: SegmentHeader
            do { header = try SegmentHeader.decode(mapped.bytes, file: file) } catch {
                problem(file, 0, "\(error)")
                expectedPosition = nil
                continue
            }
            if header.segmentIndex != index { problem(file, SegmentHeaderLayout.segmentIndex, "header names segment \(header.segmentIndex)") }
            lastNumber = header.lastSegmentIndex
            if header.isCompacted {
                compactedSeen = true
                if isLast { problem(file, SegmentHeaderLayout.flags, "the last segment of a store cannot be a compacted one") }
            }
            if let expected = expectedPosition, header.firstPosition != expected {
                problem(file, SegmentHeaderLayout.firstPosition, "segment starts at position \(header.firstPosition), expected \(expected)")
            }
            var expected = header.firstPosition
            let segment = Segment(header: header, file: mapped)
            mappedSegments.append(segment)
            var sealed = false
            var entries: [IndexFile.Entry] = []
            var keyEntries: [IndexFile.Entry] = []
            // In the last segment, bytes before what the checkpoint and the durable mark vouch for
            // must be valid frames: damage there is corruption, never a torn tail (§3.4, §3.8).
            let protected = isLast ? ProtectedEnd.of(segment, checkpoint: checkpoint, currentBoot: storage.bootID) : nil
            // Positions are checked here, not by the walk: a wrong one is reported and the walk
            // goes on with the frame's own, so one problem is not followed by false ones.
            var walk = segment.walk(verification: .checksums, checksPositions: false)
            // The first frame of a multi-stream append whose last frame is not seen yet (§3.1).
            var openGroup: Int?
            frames: while true {
                if let protected, walk.offset == protected.offset, let position = protected.position, position != walk.expectedPosition {
                    problem(file, walk.offset, "the log has position \(walk.expectedPosition) here; \(protected.source) says \(position)")
                }
                let expectedHere = walk.expectedPosition
                let step = walk.next()
                switch step {
                case .events(let frame), .dictionary(let frame), .seal(let frame):
                    if let protected, frame.offset < protected.offset, frame.end > protected.offset {
                        problem(file, frame.offset, protected.damage(in: segment, at: frame.offset, "frame runs past a frame boundary").reason)
                    }
                    if !(frame.firstPosition == expectedHere || (segment.isCompacted && frame.firstPosition > expectedHere)) {
                        problem(file, frame.offset, "\(frame.kind) frame at position \(frame.firstPosition), expected \(expectedHere)")
                    }
                    report.frames += 1
                    report.bytes += frame.length
                    if case .seal = step {
                        if let protected, frame.offset < protected.offset {
                            problem(file, frame.offset, protected.damage(in: segment, at: frame.offset, "seal frame").reason)
                        }
                        if let start = openGroup {
                            problem(file, start, "a multi-stream append whose last frame is missing before the seal")
                        }
                        expected = frame.firstPosition
                        sealed = true
                        break frames
                    }
                    if !mapped.bytes.slice(frame.offset + frame.length, frame.end - frame.offset - frame.length).isAllZero() {
                        problem(file, frame.offset + frame.length, "non-zero padding after frame")
                    }
                    if case .dictionary = step {
                        report.dictionaries += 1
                        continue frames
                    }
                    if frame.continues, openGroup == nil { openGroup = frame.offset } else if !frame.continues { openGroup = nil }
                    let recordIssue = segment.validateRecords(of: frame)
                    if let issue = recordIssue {
                        problem(file, issue.offset, issue.reason)
                    } else if let issue = checkBodies(of: frame, in: segment, report: &report) {
                        problem(file, issue.offset, issue.reason)
                    }
                    let stream = segment.streamName(of: frame)
                    let revision = revisions[stream, default: 0]
                    // Compaction removes events: revisions may skip forward, never back.
                    if frame.firstRevision != revision && !(compactedSeen && frame.firstRevision > revision) {
                        problem(file, frame.offset, "stream \(stream) continues at revision \(frame.firstRevision), expected \(revision)")
                    }
                    revisions[stream] = frame.firstRevision + UInt64(frame.eventCount)
                    entries.append(IndexFile.Entry(streamHash: StreamHasher.fnv1a.hash(stream), firstRevision: frame.firstRevision,
                                                   firstPosition: frame.firstPosition, segmentIndex: UInt32(index),
                                                   offset: UInt32(frame.offset), eventCount: UInt32(frame.eventCount)))
                    for key in recordIssue == nil ? QueryKey.keys(of: frame, in: segment) : [] {
                        keyEntries.append(IndexFile.Entry(keyHash: key.hash(with: .fnv1a), frame: entries[entries.count - 1].frame))
                    }
                    report.events += UInt64(frame.eventCount)
                case .endOfData(let offset), .limit(let offset):
                    if let protected, offset < protected.offset {
                        problem(file, offset, protected.damage(in: segment, at: offset, "acknowledged data missing: zero bytes where a frame must be").reason)
                    }
                    break frames
                case .corrupt(let offset, let reason):
                    problem(file, offset, reason)
                    break frames
                case .notAFrame(let offset, let reason):
                    if let protected, offset >= protected.offset {
                        let tail = mapped.bytes.slice(offset, segment.frameAreaEnd - offset)
                        var lastNonZero = tail.count
                        while lastNonZero >= 8, tail.u64(lastNonZero - 8) == 0 { lastNonZero -= 8 }
                        report.tornTailBytes = lastNonZero
                        report.notes.append("torn tail of \(lastNonZero) bytes at \(file) offset \(offset) (\(reason)); "
                            + "the next writable open cuts it")
                    } else {
                        problem(file, offset, protected?.damage(in: segment, at: offset, reason).reason ?? reason)
                    }
                    break frames
                }
            }
            if !sealed { expected = walk.expectedPosition }
            if !isLast && !sealed { problem(file, walk.offset, "sealed segment ends without a seal frame") }
            if isLast, !sealed, let start = openGroup {
                if let protected, start < protected.offset {
                    problem(file, start, protected.damage(in: segment, at: start, "a multi-stream append whose last frame is missing").reason)
                } else {
                    report.notes.append("\(file) ends in a multi-stream append torn at offset \(start): readers ignore it, the next writable open cuts it")
                }
            }
            if sealed {
                sealedEntries[index] = entries
                sealedKeyEntries[index] = keyEntries
                sealedEnds[header.lastSegmentIndex] = expected
            }
            expectedPosition = expected
        }
        report.streams = revisions.count
        // Index files: the cover a writer would choose must match the log exactly.
        if let files = try? IndexCatalog.list(layout) {
            let selection = IndexCatalog.select(files, segments: mappedSegments, sealedCount: mappedSegments.count - 1,
                                                hashID: StreamHasher.fnv1a.id, storage: storage)
            for rejected in selection.rejected {
                if rejected.reason.hasPrefix(IndexFile.olderLayout) {
                    report.notes.append("\(rejected.file) is an \(rejected.reason); the next writable open rebuilds it")
                    continue
                }
                problem(rejected.file, rejected.offset, "index file: \(rejected.reason) (the next writable open rebuilds it)")
            }
            for table in selection.tables {
                let expected = table.segments.flatMap { sealedEntries[$0] ?? [] }.sorted(by: <)
                let stored = (0..<table.entryCount).map(table.entry)
                let expectedKeys = table.segments.flatMap { sealedKeyEntries[$0] ?? [] }.sorted(by: IndexFile.Entry.keyOrder)
                let storedKeys = (0..<table.keyEntryCount).map(table.keyEntry)
                if stored == expected && storedKeys == expectedKeys && table.nextPosition == sealedEnds[table.segments.upperBound] {
                    report.indexFiles += 1
                } else {
                    problem(table.file.path, 0, "index file does not match its segments (the next writable open rebuilds it)")
                }
            }
            for segment in sealedEntries.keys.sorted() where !selection.tables.contains(where: { $0.segments.contains(segment) }) {
                report.notes.append("no index file covers segment \(segment); the next writable open rebuilds it")
            }
        }
        return report
    }

    /// Counts body bytes and decodes every compressed record of a validated frame; the first
    /// that fails is a problem.
    private static func checkBodies(
        of frame: FrameHeader, in segment: Segment, report: inout VerificationReport
    ) -> CorruptionReason? {
        var cursor = frame.recordsOffset
        for _ in 0..<frame.eventCount {
            let layout = FrameDecoder.record(at: cursor, in: segment.bytes)
            report.bodyBytes += UInt64(layout.metadataBytes + layout.payloadBytes)
            report.storedBodyBytes += UInt64(layout.offset + layout.length - layout.bodyOffset)
            if layout.isCompressed {
                report.compressedEvents += 1
                let decoded = withUnsafeTemporaryAllocation(byteCount: layout.metadataBytes + layout.payloadBytes, alignment: 8) {
                    segment.decodeBody(of: layout, into: $0)
                }
                if !decoded { return CorruptionReason(offset: cursor, "compressed event record does not decode to its stated size") }
            }
            cursor = layout.end
        }
        return nil
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
