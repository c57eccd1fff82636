/// Appending: validation, frame writing, segment rolls.
extension EventStore {
    /// Appends `events` to `stream` as one atomic frame with consecutive revisions and
    /// positions, and returns where they landed once the store's ``Durability`` holds.
    ///
    /// Idempotent by event id: when every event carries an id and the same ids already sit at
    /// the place this append would go (`expected` revision + 1; for `.any`/`.streamExists`, the
    /// end of the stream), nothing is written and the original result is returned — also
    /// after a restart. A batch that matches only part of what is there throws
    /// ``AppendError/idempotencyMismatch(stream:revision:reason:)``.
    ///
    /// ```swift
    /// let result = try await store.append([placed], to: "order-123", expecting: .noStream)
    /// ```
    ///
    /// - Throws: ``AppendError``. A failed check (`wrongExpectedRevision`,
    ///   `idempotencyMismatch`) or invalid input (`invalidStreamName`, `invalidEventType`,
    ///   `emptyAppend`, `tooLarge`) is detected before anything is written. A failed check is
    ///   thrown only once the appends it conflicts with are visible to readers (durable, under
    ///   ``Durability/fsyncBeforeAck``): reading the stream after a `wrongExpectedRevision`
    ///   shows at least the `actual` revision it reports.
    public func append(
        _ events: [EventData], to stream: String, expecting expected: ExpectedRevision = .any
    ) async throws(AppendError) -> AppendResult {
        let results = try await append([StreamAppend(stream: stream, events: events, expected: expected)])
        return results[0]
    }

    /// Appends several streams' events, each ``StreamAppend`` as its own atomic frame, in order,
    /// with one durability wait for all of them (how `annals import` commits a batch).
    ///
    /// Every element is validated and checked (expected revision, idempotency) before any is
    /// written; if one fails, nothing is written. If a segment cannot be created midway (e.g.
    /// `ENOSPC`), the elements before it stay written and the call throws.
    public func append(_ batch: [StreamAppend]) async throws(AppendError) -> [AppendResult] {
        try await append(batch, systemStreams: false)
    }

    /// Appends to system streams — names starting with `$` — for layers built on the store
    /// (projection state and checkpoints). Same guarantees as ``append(_:)``; every element's
    /// stream must start with `$`, and `$all` is refused.
    ///
    /// System streams are ordinary streams in the log: `$all` readers see their events, and
    /// subscriptions of the `Annals` module skip them unless asked. The engine's own system
    /// streams — `$retention` and the snapshot streams `$snapshot-…` — are written only through
    /// the engine (``setRetention(_:for:)``, ``saveSnapshot(of:revision:schemaVersion:bytes:)``),
    /// which checks what goes into them: this method refuses them. `$projection-…` belongs to
    /// the `Annals` layer and `$relay-…` to `AnnalsKafka`, which declare them newest-only
    /// (``declareNewestOnlySystemStreams(prefix:)``): compaction keeps only their newest event.
    public func appendToSystemStreams(_ batch: [StreamAppend]) async throws(AppendError) -> [AppendResult] {
        for item in batch where item.stream.first != StoreLimits.reservedStreamPrefix || item.stream == "$all" {
            throw .invalidStreamName(item.stream, reason: "system stream names start with \"$\" and are not \"$all\"")
        }
        for item in batch where item.stream == StreamRetention.stream || item.stream.hasPrefix(Liveness.snapshotPrefix) {
            throw .invalidStreamName(item.stream, reason: "written only by the store itself (retention settings, snapshots)")
        }
        return try await append(batch, systemStreams: true)
    }

    /// Appends with the lock-held hooks retention needs: `beforeWrite` may refuse (nothing is
    /// written), `afterWrite` updates state atomically with the write.
    func append(
        _ batch: [StreamAppend], systemStreams: Bool,
        beforeWrite: ((inout LogState) throws(AppendError) -> Void)? = nil,
        afterWrite: ((inout LogState) -> Void)? = nil
    ) async throws(AppendError) -> [AppendResult] {
        guard !options.readOnly else { throw .readOnly }
        var prepared: [PreparedAppend] = []
        prepared.reserveCapacity(batch.count)
        for item in batch {
            prepared.append(try PreparedAppend(item, frameLimitBytes: frameLimitBytes, allowReservedName: systemStreams))
        }
        let written: (results: [AppendResult], end: UInt64)
        do {
            written = try write(prepared, beforeWrite: beforeWrite, afterWrite: afterWrite)
        } catch {
            try await reportConflictOnceVisible(error)
        }
        switch options.durability {
        case .fsyncBeforeAck:
            try await waitUntilDurable(written.end)
        case .periodic, .none:
            publishCommits()
        }
        return written.results
    }

    private enum Decision {
        case write(firstRevision: UInt64)
        case repeatOf(AppendResult)
    }

    /// Throws `error`. A conflict (`wrongExpectedRevision`, `idempotencyMismatch`) is checked
    /// against every append already written, some of which readers may not see yet under
    /// `.fsyncBeforeAck` (they see only durable frames): it is thrown once they are durable,
    /// so that a caller that reloads the stream sees what it conflicted with.
    private func reportConflictOnceVisible(_ error: AppendError) async throws(AppendError) -> Never {
        switch error {
        case .wrongExpectedRevision, .idempotencyMismatch:
            if options.durability == .fsyncBeforeAck {
                try await waitUntilDurable(state.withLock { $0.nextPosition })
            }
        default:
            break
        }
        throw error
    }

    private func write(
        _ prepared: [PreparedAppend], beforeWrite: ((inout LogState) throws(AppendError) -> Void)?,
        afterWrite: ((inout LogState) -> Void)?
    ) throws(AppendError) -> (results: [AppendResult], end: UInt64) {
        let publishImmediately = options.durability != .fsyncBeforeAck
        let compressing = options.compression == .lz4
        return try state.withLock { (state) throws(AppendError) in
            if let failure = state.failure { throw .storeFailed(failure) }
            if state.closed { throw .storeClosed }
            try beforeWrite?(&state)
            // Pass 1: every check, before any byte is written.
            var decisions: [Decision] = []
            decisions.reserveCapacity(prepared.count)
            var pending: [String: UInt64] = [:] // next revisions after earlier appends of this batch
            let locator = state.locator
            for append in prepared {
                if !state.retention.isEmpty, state.retention[append.stream]?.isDeleted == true {
                    throw .streamDeleted(stream: append.stream)
                }
                let hash = state.streams.hasher.hash(append.stream)
                let recent = state.recentRecord(for: append.stream, hash: hash)
                let next = pending[append.stream] ?? locator.nextRevision(of: append.stream, hash: hash, recent: recent)
                if pending[append.stream] == nil, append.hasCallerIDs, next > 0,
                   let record = locator.record(for: append.stream, hash: hash, recent: recent),
                   let original = try originalResult(of: append, in: record, segments: state.segments) {
                    decisions.append(.repeatOf(original))
                    continue
                }
                let actual = next == 0 ? nil : next - 1
                guard append.expected.isSatisfied(by: actual) else {
                    throw .wrongExpectedRevision(stream: append.stream, expected: append.expected, actual: actual)
                }
                decisions.append(.write(firstRevision: next))
                pending[append.stream] = next + UInt64(append.events.count)
            }
            // The checkpoint must not say "closed cleanly" once the log has changed (§5).
            if state.checkpointSaysClean {
                do throws(SystemError) { try writeCheckpoint(&state, clean: false) } catch { throw .system(error) }
            }
            // Pass 2: write.
            var results: [AppendResult] = []
            results.reserveCapacity(prepared.count)
            var end: UInt64 = 0
            // Stamped under the lock and never decreasing, so timestamps follow positions.
            let timestamp = max(options.clock.clock.nowNanoseconds(), state.lastTimestamp)
            state.lastTimestamp = timestamp
            for (append, decision) in zip(prepared, decisions) {
                guard case .write(let revision) = decision else {
                    if case .repeatOf(let original) = decision {
                        results.append(original)
                        end = max(end, original.lastPosition + 1)
                    }
                    continue
                }
                // Room for the frame as if stored raw (compression only shrinks it), and for the
                // segment's dictionary frame when this append is the one to write it.
                let dictionaryFrameBytes = compressing ? Self.dictionaryFrameBytes(due: state) : 0
                if state.activeSealed
                    || state.writeOffset + dictionaryFrameBytes + append.frameBytes > state.activeSegment.frameCapacity {
                    do throws(SystemError) { try startNextSegment(&state) } catch {
                        if publishImmediately { state.publishWritten() }
                        throw state.failure != nil ? .storeFailed(error) : .system(error)
                    }
                }
                if compressing { Self.writeDictionaryIfDue(&state, reserving: append.frameBytes) }
                let offset = state.writeOffset
                let size = FrameEncoder.writeEventsFrame(
                    into: state.activeSegment.file.mutableBytes, at: offset,
                    stream: append.stream, firstPosition: state.nextPosition, firstRevision: revision,
                    events: append.events, ids: append.ids, timestamp: timestamp,
                    compressor: compressing ? state.compressor ?? state.standaloneCompressor : nil)
                if compressing, state.sampler.dictionaryBytes > 0 {
                    for event in append.events {
                        state.sampler.add(event.metadata)
                        state.sampler.add(event.payload)
                    }
                }
                let count = UInt64(append.events.count)
                results.append(AppendResult(
                    stream: append.stream, firstPosition: state.nextPosition, lastPosition: state.nextPosition + count - 1,
                    firstRevision: revision, lastRevision: revision + count - 1))
                state.streams.append(
                    FrameLocation(firstRevision: revision, firstPosition: state.nextPosition,
                                  segmentIndex: state.activeSegment.index, offset: UInt32(offset),
                                  eventCount: UInt32(append.events.count)),
                    to: append.stream)
                state.nextPosition += count
                state.writeOffset += size
                state.appendCount += 1
                end = state.nextPosition
            }
            afterWrite?(&state)
            if publishImmediately { state.publishWritten() }
            return (results, end)
        }
    }

    /// Bytes of the dictionary frame the next append in the active segment writes first: when
    /// the segment has none yet and enough recent bodies were seen. 0 otherwise.
    private static func dictionaryFrameBytes(due state: LogState) -> Int {
        guard state.compressor == nil, state.sampler.isReady else { return 0 }
        return Format.aligned(Format.frameHeaderBytes + state.sampler.dictionaryBytes)
    }

    /// Writes the active segment's dictionary frame when it is due and fits before a frame of
    /// `frameBytes`; later records of the segment compress against it.
    private static func writeDictionaryIfDue(_ state: inout LogState, reserving frameBytes: Int) {
        let bytes = dictionaryFrameBytes(due: state)
        guard bytes > 0, state.writeOffset + bytes + frameBytes <= state.activeSegment.frameCapacity else { return }
        let offset = state.writeOffset
        let target = state.activeSegment.file.mutableBytes
        let dictionary = state.sampler.dictionary
        state.writeOffset += dictionary.withUnsafeBytes {
            FrameEncoder.writeDictionaryFrame(into: target, at: offset, nextPosition: state.nextPosition, dictionary: $0)
        }
        state.compressor = BodyCompressor(dictionary: state.activeSegment.dictionaryBytes(at: offset), at: offset)
    }

    /// The earlier append this one repeats, if its event ids are already where it would go.
    /// Runs under the lock: the stream's frames may be written but not yet durable.
    private func originalResult(
        of append: PreparedAppend, in record: StreamRecord, segments: [Segment]
    ) throws(AppendError) -> AppendResult? {
        guard append.hasCallerIDs else { return nil }
        let count = UInt64(append.events.count)
        let next = record.nextRevision
        let place: UInt64
        let exactPlace: Bool
        switch append.expected {
        case .exact(let revision):
            place = revision &+ 1
            exactPlace = true
        case .noStream:
            place = 0
            exactPlace = true
        case .any, .streamExists:
            guard next >= count else { return nil }
            place = next - count
            exactPlace = false
        }
        guard place < next else { return nil }
        let existing = try StreamReader(record: record, segments: segments)
            .events(revisions: place..<min(place + count, next))
        let matches = zip(existing, append.ids).map { $0.id == $1 }
        if matches.count == append.ids.count, matches.allSatisfy({ $0 }) {
            return AppendResult(stream: append.stream, firstPosition: existing[0].position,
                                lastPosition: existing[existing.count - 1].position,
                                firstRevision: place, lastRevision: place + count - 1)
        }
        if exactPlace, matches.contains(true) {
            let reason = matches.count < append.ids.count
                ? "the stream ends after \(matches.count) of the \(append.ids.count) events"
                : "\(matches.filter { $0 }.count) of \(append.ids.count) event ids match"
            throw .idempotencyMismatch(stream: append.stream, revision: place, reason: reason)
        }
        return nil
    }

    /// Seals the active segment, makes it durable, creates the next one and checkpoints.
    /// Runs under the state lock. The old segment is synced before anything is written to the
    /// new one, so only the last segment can ever have a torn tail.
    func startNextSegment(_ state: inout LogState) throws(SystemError) {
        let old = state.activeSegment
        if !state.activeSealed {
            _ = FrameEncoder.writeSealFrame(into: old.file.mutableBytes, at: state.writeOffset, nextPosition: state.nextPosition)
            state.activeSealed = true
        }
        do {
            try old.file.sync(min(state.syncedOffset, state.writeOffset)..<(state.writeOffset + Format.sealFrameBytes))
            // Until the next segment exists (creating it may fail), this one is still the last:
            // its durable mark vouches for every frame before the seal, and goes to disk now.
            let sealed = state.writtenEnd
            state.marks.synced(sealed, acknowledged: sealed, in: old)
            if old.hasDurableMarks { try old.file.sync(old.frameAreaEnd..<old.file.size) }
        } catch {
            state.failure = error
            throw error
        }
        old.file.protectReadOnly()
        // Sealed before it was full (compaction, an old format version): its preallocated
        // end goes back to the file system. It reads as zeros either way.
        let unusedStart = (state.writeOffset + Format.sealFrameBytes + Self.releaseGranule - 1) / Self.releaseGranule * Self.releaseGranule
        if old.file.size - unusedStart >= Self.minimumReleasedBytes {
            try? old.file.releaseSpace(unusedStart..<old.file.size)
        }
        state.durablePosition = state.nextPosition
        state.visibleEnd = state.writtenEnd
        // The sealed segment's stream index goes to disk off the writer lock: its frames move
        // aside in one step (the open segment starts empty) and stay findable until the file is
        // in place; a crash before that rebuilds it at open.
        if state.tables.last.map({ $0.segments.upperBound < old.index }) ?? true,
           state.indexScheduledThrough.map({ $0 < old.index }) ?? true {
            state.indexScheduledThrough = old.index
            state.sealedUnindexed.append(state.streams)
            state.streams = StreamIndex(hasher: state.streams.hasher)
            scheduleIndexFiles(for: state.sealedUnindexed[state.sealedUnindexed.count - 1], nextPosition: state.nextPosition,
                               lastSegment: old.index)
        }

        let index = old.index + 1
        let finalPath = layout.segmentPath(index)
        let temporaryPath = finalPath + ".tmp"
        let header = SegmentHeader(segmentIndex: index, segmentSizeBytes: UInt64(options.segmentSizeBytes),
                                   firstPosition: state.nextPosition, createdAtNanoseconds: options.clock.clock.nowNanoseconds(),
                                   hasDurableMarks: true)
        let file = try layout.storage.createMappedFile(path: temporaryPath, size: options.segmentSizeBytes)
        header.encode(into: file.mutableBytes)
        try file.sync(0..<Format.segmentHeaderBytes)
        try layout.storage.rename(temporaryPath, to: finalPath)
        try layout.storage.syncDirectory(layout.segmentsDirectory)
        file.path = finalPath
        state.segments.append(Segment(header: header, file: file))
        state.activeSealed = false
        state.compressor = nil
        state.writeOffset = Format.segmentHeaderBytes
        state.syncedOffset = Format.segmentHeaderBytes
        state.marks.startSegment(at: state.writtenEnd)
        // Off the lock too: until it is written, recovery starts from the previous checkpoint
        // and scans a little more.
        scheduleCheckpoint(makeCheckpoint(&state, clean: false))
    }

    /// Space is given back in whole file-system blocks...
    static let releaseGranule = 4096
    /// ...and only when it is worth a system call.
    static let minimumReleasedBytes = 64 * 1024

    /// Records the end of the log in the checkpoint file. The caller guarantees that everything
    /// written so far is durable (after a roll, after recovery's sync, at close).
    func writeCheckpoint(_ state: inout LogState, clean: Bool) throws(SystemError) {
        try checkpoints.write(makeCheckpoint(&state, clean: clean))
        state.checkpointSaysClean = clean
    }

    /// The next checkpoint (its sequence taken from `state`), naming `end` (default: the end of
    /// what was written). The one place a checkpoint is built.
    func makeCheckpoint(_ state: inout LogState, clean: Bool, at end: LogEnd? = nil) -> Checkpoint {
        state.checkpointSequence += 1
        let end = end ?? state.writtenEnd
        var checkpoint = Checkpoint(cleanShutdown: clean, segmentIndex: end.segmentIndex,
                                    segmentOffset: UInt64(end.offset), nextPosition: end.nextPosition,
                                    sequence: state.checkpointSequence, lastTimestamp: state.lastTimestamp)
        if state.segments.contains(where: \.isCompacted) { checkpoint.minimumReaderVersion = Format.compactedSegmentVersion }
        return checkpoint
    }
}

/// An append checked and measured, ready to be written under the lock.
struct PreparedAppend {
    let stream: String
    let events: [EventData]
    let expected: ExpectedRevision
    let ids: [UUID]
    /// True when the caller supplied every event id (only then can an append be a repeat).
    let hasCallerIDs: Bool
    let frameBytes: Int

    init(_ append: StreamAppend, frameLimitBytes: Int, generateIDs: Bool = true, allowReservedName: Bool = false) throws(AppendError) {
        let name = append.stream
        let nameBytes = name.utf8.count
        guard nameBytes > 0 else { throw .invalidStreamName(name, reason: "empty") }
        guard nameBytes <= StoreLimits.maximumStreamNameBytes else {
            throw .invalidStreamName(name, reason: "\(nameBytes) bytes; the maximum is \(StoreLimits.maximumStreamNameBytes)")
        }
        guard allowReservedName || name.first != StoreLimits.reservedStreamPrefix else {
            throw .invalidStreamName(name, reason: "names starting with \"$\" are reserved")
        }
        guard !append.events.isEmpty else { throw .emptyAppend(stream: name) }
        for event in append.events {
            let typeBytes = event.type.utf8.count
            guard typeBytes > 0 else { throw .invalidEventType(event.type, reason: "empty") }
            guard typeBytes <= StoreLimits.maximumEventTypeBytes else {
                throw .invalidEventType(event.type, reason: "\(typeBytes) bytes; the maximum is \(StoreLimits.maximumEventTypeBytes)")
            }
        }
        let frameBytes = FrameEncoder.alignedFrameBytes(streamNameBytes: nameBytes, events: append.events)
        guard frameBytes <= frameLimitBytes else {
            throw .tooLarge(stream: name, frameBytes: frameBytes, limitBytes: frameLimitBytes)
        }
        self.stream = name
        self.events = append.events
        self.expected = append.expected
        self.hasCallerIDs = append.events.allSatisfy { $0.id != nil }
        self.ids = generateIDs ? EventIDGenerator.fill(append.events) : []
        self.frameBytes = frameBytes
    }
}

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
