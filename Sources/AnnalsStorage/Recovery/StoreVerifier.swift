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
    /// Events stored encrypted (`format-spec.md` §3.9).
    public var encryptedEvents: UInt64 = 0
    /// Encrypted events whose body was decrypted and authenticated (needs the key-encryption
    /// key); the others' frames were checked by their checksum only.
    public var authenticatedEvents: UInt64 = 0
    /// Encrypted events whose key was destroyed (``EventStore/forget(subject:)``).
    public var erasedEvents: UInt64 = 0
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
    /// With `encryption`, the `keys` file is checked and every encrypted body decrypted and
    /// authenticated; without it, encrypted records are checked by their frame checksum and
    /// structure only (a note says how many).
    public static func verify(at path: String, encryption: EncryptionOptions? = nil, progress: ((Int, Int) -> Void)? = nil) -> VerificationReport {
        verify(at: path, storage: SystemStorage.shared, encryption: encryption, progress: progress)
    }

    /// As above, through `storage` (the crash-simulation tests verify simulated stores).
    static func verify(
        at path: String, storage: any Storage, encryption: EncryptionOptions? = nil, progress: ((Int, Int) -> Void)? = nil
    ) -> VerificationReport {
        // A writer in another process may move segments to the archive meanwhile: when the
        // `archive` file changed during the walk, walk again (a few times).
        let manifestPath = StoreLayout(root: path, storage: storage).archiveManifestPath
        func manifest() -> [UInt8]? { (try? storage.readFile(manifestPath, maximumBytes: ArchiveManifest.maximumDirectoryBytes + 64)) ?? nil }
        var attempt = 0
        while true {
            attempt += 1
            let before = manifest()
            let report = verifyOnce(at: path, storage: storage, encryption: encryption, progress: progress)
            if attempt < 4, manifest() != before { continue }
            return report
        }
    }

    private static func verifyOnce(
        at path: String, storage: any Storage, encryption: EncryptionOptions?, progress: ((Int, Int) -> Void)?
    ) -> VerificationReport {
        var report = VerificationReport()
        let layout = StoreLayout(root: path, storage: storage)
        func problem(_ file: String, _ offset: Int, _ reason: String) {
            if report.problems.count < maximumProblems {
                report.problems.append(CorruptionError(file: file, offset: offset, reason: reason))
            }
        }
        // The `keys` file's structure needs no key: which key numbers exist, which are forgotten
        // (nil: the store has no `keys` file, and so no encrypted record may exist).
        func readKeyKinds() -> Result<KeyStoreFile.Decoded, CorruptionError>? {
            guard let size = storage.fileSize(layout.keysPath) else { return nil }
            let bytes = (try? storage.readFile(layout.keysPath, maximumBytes: size)) ?? nil
            return KeyStoreFile.decode(bytes ?? [], file: layout.keysPath)
        }
        func kinds(_ decoded: KeyStoreFile.Decoded) -> [UInt32: KeyStoreFile.Kind] {
            Dictionary(decoded.file.entries.map { ($0.keyID, $0.kind) }, uniquingKeysWith: { first, _ in first })
        }
        var keyKinds: [UInt32: KeyStoreFile.Kind]?
        if let read = readKeyKinds() {
            switch read {
            case .success(let decoded):
                keyKinds = kinds(decoded)
                if decoded.tornBytes > 0 {
                    report.notes.append("\(layout.keysPath) ends in a torn key entry of \(decoded.tornBytes) bytes; the next writable open cuts it")
                }
            case .failure(let corruption):
                problem(corruption.file, corruption.offset, corruption.reason)
                return report
            }
        }
        var keyRing: KeyRing?
        if keyKinds != nil {
            var options = StoreOptions(readOnly: true)
            options.encryption = encryption
            do { keyRing = try KeyRing.open(layout: layout, options: options, checkpointVersion: 0) } catch {
                switch error {
                case .keyEncryptionKeyRequired:
                    report.notes.append("the store holds encrypted events: without its key-encryption key their bodies are not authenticated")
                case .corrupt(let corruption): problem(corruption.file, corruption.offset, corruption.reason)
                default: problem(layout.keysPath, 0, error.description)
                }
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
        if (checkpoint?.minimumReaderVersion ?? 0) >= Format.encryptedRecordsVersion, keyKinds == nil {
            problem(layout.keysPath, 0, "the checkpoint says the store holds encrypted records, and its keys file is missing")
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
            let segment = Segment(header: header, file: mapped, keyRing: keyRing)
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
                    } else if let issue = checkBodies(of: frame, in: segment, keyKinds: &keyKinds, report: &report, reloadKeys: {
                        // A writer in another process may have created a key since the file was read.
                        if case .success(let decoded)? = readKeyKinds() { kinds(decoded) } else { nil }
                    }) {
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
        of frame: FrameHeader, in segment: Segment, keyKinds: inout [UInt32: KeyStoreFile.Kind]?, report: inout VerificationReport,
        reloadKeys: () -> [UInt32: KeyStoreFile.Kind]?
    ) -> CorruptionReason? {
        var cursor = frame.recordsOffset
        let stream = String(decoding: segment.bytes.slice(frame.offset + FrameLayout.streamName, frame.streamNameBytes), as: UTF8.self)
        for index in 0..<frame.eventCount {
            let layout = FrameDecoder.record(at: cursor, in: segment.bytes)
            report.bodyBytes += UInt64(layout.metadataBytes + layout.payloadBytes)
            report.storedBodyBytes += UInt64(layout.offset + layout.length - layout.bodyOffset)
            if layout.isEncrypted {
                report.encryptedEvents += 1
                let keyID = segment.keyID(of: layout)
                if keyKinds?[keyID] == nil, let reloaded = reloadKeys() { keyKinds = reloaded }
                guard let keyKinds else { return CorruptionReason(offset: cursor, "an encrypted event record, and the store has no keys file") }
                guard let kind = keyKinds[keyID] else {
                    return CorruptionReason(offset: cursor, "encrypted event record names key \(keyID), which the keys file does not hold")
                }
                if kind == .forgotten {
                    report.erasedEvents += 1
                } else if segment.keyRing != nil {
                    let outcome = withUnsafeTemporaryAllocation(byteCount: max(1, layout.metadataBytes + layout.payloadBytes), alignment: 8) {
                        segment.decryptBody(of: layout, position: frame.firstPosition + UInt64(index), revision: frame.firstRevision + UInt64(index),
                                            stream: stream, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<(layout.metadataBytes + layout.payloadBytes)]))
                    }
                    switch outcome {
                    case .decrypted: report.authenticatedEvents += 1
                    case .erased: report.erasedEvents += 1 // forgotten since the file was read
                    case .corrupt(let reason): return CorruptionReason(offset: cursor, reason)
                    }
                }
            }
            if layout.isCompressed {
                report.compressedEvents += 1
                let decoded = segment.withDecodedBody(of: layout, sharedCopy: false) { _ in }
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
