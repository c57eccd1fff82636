import Tracing

/// The single writer: checks appends, writes their frames into the active segment under the
/// writer lock, and hands the result to group commit and to the readers' view.
extension EventStore {
    /// Appends with the hooks retention needs: `check` sees the retention settings before any
    /// byte is written and may refuse (nothing is written); `update` changes them atomically
    /// with the write (both under the writer lock).
    func append(
        _ batch: [StreamAppend], systemStreams: Bool, condition: AppendCondition? = nil,
        check: (([String: StreamRetention]) throws(AppendError) -> Void)? = nil,
        update: ((inout [String: StreamRetention]) -> Void)? = nil
    ) async throws(AppendError) -> [AppendResult] {
        let started = ContinuousClock.now
        // A span per append call (OpenTelemetry database conventions: the store is the
        // database, a stream the collection); a no-op unless the app bootstrapped a tracer.
        let span = tracer.startSpan("annals.append", ofKind: .client)
        defer { span.end() }
        if span.isRecording {
            span.attributes["db.system.name"] = "annals"
            span.attributes["db.operation.name"] = "append"
            span.attributes["db.namespace"] = path
            if batch.count == 1 { span.attributes["db.collection.name"] = batch[0].stream }
            span.attributes["annals.events"] = batch.reduce(0) { $0 + $1.events.count }
        }
        do {
            let results = try await appendChecked(batch, systemStreams: systemStreams, condition: condition, check: check, update: update)
            metrics.appendDuration.recordInterval(since: started)
            return results
        } catch {
            metrics.appendFailures.increment()
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    private func appendChecked(
        _ batch: [StreamAppend], systemStreams: Bool, condition: AppendCondition?,
        check: (([String: StreamRetention]) throws(AppendError) -> Void)?, update: ((inout [String: StreamRetention]) -> Void)?
    ) async throws(AppendError) -> [AppendResult] {
        guard !options.readOnly else { throw .readOnly }
        var prepared: [PreparedAppend] = []
        prepared.reserveCapacity(batch.count)
        let encryptsEverything = keyRing?.encryptsEverything
        for item in batch {
            prepared.append(try PreparedAppend(item, frameLimitBytes: frameLimitBytes, allowReservedName: systemStreams,
                                               encryptsEverything: encryptsEverything))
        }
        let written: Written
        do {
            written = try write(prepared, condition: condition, check: check, update: update)
        } catch {
            try await reportConflictOnceVisible(error)
        }
        switch options.durability {
        case .fsyncBeforeAck:
            try await waitUntilDurable(written.end)
        case .periodic, .none:
            publishCommits()
        }
        // Counted once acknowledged (an append whose sync failed counts as a failure only).
        metrics.appends.increment(by: written.frames)
        metrics.appendedEvents.increment(by: written.events)
        metrics.appendedBytes.increment(by: written.bytes)
        return written.results
    }

    /// What a write did: results, the position after it, and what it wrote.
    private struct Written {
        var results: [AppendResult] = []
        var end: UInt64 = 0
        var frames = 0
        var events = 0
        var bytes = 0
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
        case .wrongExpectedRevision, .idempotencyMismatch, .appendConditionFailed:
            if options.durability == .fsyncBeforeAck {
                try await waitUntilDurable(durability.withLock { $0.written.end.nextPosition })
            }
        default:
            break
        }
        throw error
    }

    /// Checks every append of the batch, then writes them, under the writer lock. Returns the
    /// results and the position after the last event written (or repeated).
    private func write(
        _ prepared: [PreparedAppend], condition: AppendCondition?, check: (([String: StreamRetention]) throws(AppendError) -> Void)?,
        update: ((inout [String: StreamRetention]) -> Void)?
    ) throws(AppendError) -> Written {
        let acknowledgesUnsynced = options.durability != .fsyncBeforeAck
        return try writer.withLock { (writer) throws(AppendError) in
            if let failure = durability.withLock({ $0.failure }) { throw .storeFailed(failure) }
            if closed.load(ordering: .relaxed) { throw .storeClosed }
            let retention = retentionSettings.withLock { $0 }
            try check?(retention)
            // Pass 1: every check, before any byte is written.
            let decisions = try decide(prepared, retention: retention, writer: &writer)
            // The condition, against every append written before this one (a batch that is
            // entirely a repeat of an earlier one was checked then). It reads the events it
            // checks, staged ones included.
            if let condition, decisions.contains(where: { if case .write = $0 { true } else { false } }) {
                try writeStagedFrames(&writer)
                if let conflict = try firstEvent(matching: condition, writtenBefore: writer.writtenEnd) {
                    throw .appendConditionFailed(position: conflict)
                }
            }
            // The data keys of the encrypted events, created (and durable) before any record names them.
            let dataKeys = try dataKeys(for: prepared, decisions: decisions)
            // Several frames to write: one atomic group (§3.1), in one segment, so that a crash
            // keeps all of them or none. It rolls first when it does not fit the open segment.
            var groupBytes = zip(prepared, decisions).reduce(0) { total, item in
                if case .write = item.1 { return total + item.0.frameBytes } else { return total }
            }
            let grouped = decisions.filter { if case .write = $0 { true } else { false } }.count > 1
            if grouped {
                guard groupBytes <= frameLimitBytes else {
                    throw .tooLarge(stream: prepared.map(\.stream).joined(separator: ", "), frameBytes: groupBytes, limitBytes: frameLimitBytes)
                }
                if writer.activeSealed || writer.writeOffset + groupBytes > writer.active.frameCapacity {
                    do throws(SystemError) { try startNextSegment(&writer) } catch {
                        let failed = durability.withLock { $0.failure != nil }
                        throw failed ? .storeFailed(error) : .system(error)
                    }
                }
            }
            // The first tagged record or group of the store: a checkpoint naming version 6 is
            // durable before it (§6), so no older reader takes the store for corrupt instead.
            if !checkpointsNameVersion6.load(ordering: .relaxed), grouped || prepared.contains(where: \.hasTags) {
                checkpointsNameVersion6.store(true, ordering: .relaxed)
                do throws(SystemError) { try checkpointer.write(checkpointAtOpenSegmentStart(writer)) } catch {
                    checkpointsNameVersion6.store(false, ordering: .relaxed) // the next such append tries again
                    throw .system(error)
                }
            }
            // Likewise version 7 before the first encrypted record (§3.9).
            if !dataKeys.isEmpty, !checkpointsNameVersion7.load(ordering: .relaxed) {
                checkpointsNameVersion7.store(true, ordering: .relaxed)
                do throws(SystemError) { try checkpointer.write(checkpointAtOpenSegmentStart(writer)) } catch {
                    checkpointsNameVersion7.store(false, ordering: .relaxed) // the next encrypted append tries again
                    throw .system(error)
                }
            }
            // The checkpoint must not say "closed cleanly" once the log has changed (§5).
            if checkpointer.saysClean {
                do throws(SystemError) { try writeCheckpoint(writer, clean: false) } catch { throw .system(error) }
            }
            // Pass 2: write.
            var outcome = Written()
            outcome.results.reserveCapacity(prepared.count)
            var written: [(stream: String, frame: FrameLocation, keys: [QueryKey])] = []
            written.reserveCapacity(prepared.count)
            // Stamped under the writer lock and never decreasing, so timestamps follow positions.
            let timestamp = max(options.clock.clock.nowNanoseconds(), writer.lastTimestamp)
            writer.lastTimestamp = timestamp
            let sealed = try seal(prepared, decisions: decisions, keys: dataKeys, timestamp: timestamp, from: writer.nextPosition,
                                  compressor: writer.compression?.standalone)
            for (slot, (append, decision)) in zip(prepared, decisions).enumerated() {
                let revision: UInt64
                switch decision {
                case .repeatOf(let original):
                    outcome.results.append(original)
                    outcome.end = max(outcome.end, original.lastPosition + 1)
                    continue
                case .write(let firstRevision):
                    revision = firstRevision
                }
                // Room for the frame as if stored raw (compression only shrinks it), and for the
                // segment's dictionary frame when this append is the one to write it.
                let dictionaryFrameBytes = writer.compression?.dueDictionaryFrameBytes ?? 0
                if !grouped, writer.activeSealed || writer.writeOffset + dictionaryFrameBytes + append.frameBytes > writer.active.frameCapacity {
                    // Frames written so far in this batch are published before the roll moves
                    // the open segment's frames aside.
                    try publish(written, of: writer, acknowledged: acknowledgesUnsynced)
                    written.removeAll()
                    do throws(SystemError) { try startNextSegment(&writer) } catch {
                        let failed = durability.withLock { $0.failure != nil }
                        throw failed ? .storeFailed(error) : .system(error)
                    }
                }
                let segment = writer.active
                // A dictionary frame never goes inside a group (a torn group is cut at its first
                // frame, and so must be anything written after it); before one, only if the whole
                // group fits after it.
                let startsGroup = !grouped || outcome.frames == 0
                if writer.compression != nil, startsGroup, writer.compression!.dueDictionaryFrameBytes > 0 {
                    // Its compressor reads the dictionary back from the file.
                    try writeStagedFrames(&writer)
                    do throws(SystemError) {
                        writer.writeOffset += try writer.compression!.writeDictionaryIfDue(
                            in: segment, at: writer.writeOffset, nextPosition: writer.nextPosition,
                            reserving: grouped ? groupBytes : append.frameBytes)
                    } catch {
                        throw failWrites(error, in: segment)
                    }
                }
                groupBytes -= append.frameBytes
                let offset = writer.writeOffset
                let firstPosition = writer.nextPosition
                let compressor = writer.compression?.current
                let continues = grouped && groupBytes > 0
                let size = try writeFrame(&writer, in: segment, at: offset, capacity: append.frameBytes) {
                    FrameEncoder.writeEventsFrame(
                        into: $0, at: 0,
                        stream: append.stream, firstPosition: firstPosition, firstRevision: revision,
                        events: append.events, ids: append.ids, timestamp: timestamp, compressor: compressor,
                        sealed: sealed[slot], continues: continues)
                }
                writer.compression?.sample(append.events, encrypted: append.keyOwners)
                let count = UInt64(append.events.count)
                outcome.results.append(AppendResult(
                    stream: append.stream, firstPosition: writer.nextPosition, lastPosition: writer.nextPosition + count - 1,
                    firstRevision: revision, lastRevision: revision + count - 1))
                written.append((append.stream, FrameLocation(
                    firstRevision: revision, firstPosition: writer.nextPosition, segmentIndex: segment.index,
                    offset: UInt32(offset), eventCount: UInt32(append.events.count)), append.keys))
                writer.nextPosition += count
                writer.writeOffset += size
                appendCounter.add(1, ordering: .relaxed)
                outcome.end = writer.nextPosition
                outcome.frames += 1
                outcome.events += append.events.count
                outcome.bytes += size
            }
            if let update { retentionSettings.withLock { update(&$0) } }
            try publish(written, of: writer, acknowledged: acknowledgesUnsynced)
            return outcome
        }
    }

    /// The encrypted records of the appends to write, sealed before any byte of them is
    /// written (nil for an append with none): a failure throws and leaves the log as it was.
    /// `from` is the position the first event written gets.
    private func seal(
        _ prepared: [PreparedAppend], decisions: [Decision], keys: [KeyOwner: DataKey], timestamp: Int64, from start: UInt64,
        compressor: BodyCompressor?
    ) throws(AppendError) -> [SealedRecords?] {
        var sealed = [SealedRecords?](repeating: nil, count: prepared.count)
        guard !keys.isEmpty else { return sealed }
        var position = start
        for (slot, (append, decision)) in zip(prepared, decisions).enumerated() {
            guard case .write(let revision) = decision else { continue }
            if !append.keyOwners.isEmpty {
                var eventKeys: [DataKey?] = []
                for owner in append.keyOwners {
                    // Never stored in the clear for want of a key: dataKeys(for:) returned every one.
                    guard let owner else { eventKeys.append(nil); continue }
                    guard let key = keys[owner] else { throw .encryptionFailed("no data key for an event of \(append.stream)") }
                    eventKeys.append(key)
                }
                sealed[slot] = try SealedRecords.seal(append, keys: eventKeys, timestamp: timestamp, firstPosition: position,
                                                      firstRevision: revision, compressor: compressor)
            }
            position += UInt64(append.events.count)
        }
        return sealed
    }

    /// The data keys the encrypted events of the appends to write need, created when missing
    /// (``KeyRing/dataKeys(for:)``: durable before this returns). Empty when none is encrypted.
    private func dataKeys(for prepared: [PreparedAppend], decisions: [Decision]) throws(AppendError) -> [KeyOwner: DataKey] {
        guard let keyRing else { return [:] }
        var owners = Set<KeyOwner>()
        for (append, decision) in zip(prepared, decisions) {
            guard case .write = decision else { continue }
            for case let owner? in append.keyOwners { owners.insert(owner) }
        }
        guard !owners.isEmpty else { return [:] }
        return try keyRing.dataKeys(for: owners)
    }

    /// Hands what the writer just wrote to group commit (and, when appends are acknowledged
    /// without a sync, to the durable mark) and its frames to the readers' view (visible at
    /// once under `.periodic`/`.none`; under `.fsyncBeforeAck` when group commit says durable).
    ///
    /// - Throws: ``AppendError/storeFailed(_:)`` when the durable mark vouching for frames
    ///   acknowledged without a sync cannot be written (the store fails: see ``DurabilityState``).
    private func publish(
        _ frames: [(stream: String, frame: FrameLocation, keys: [QueryKey])], of writer: WriterState, acknowledged: Bool
    ) throws(AppendError) {
        let end = writer.writtenEnd
        let segment = writer.active
        // The view first: whatever group commit reveals later has its frames indexed already.
        view.withLock { view in
            for (stream, frame, keys) in frames {
                view.openFrames.append(frame, to: stream)
                view.openFrames.file(frame, under: keys)
            }
        }
        if let failure = durability.withLock({ $0.wrote(end, in: segment, acknowledged: acknowledged) }) {
            logger.error("a durable mark's write failed: the store takes no more writes until it is reopened",
                         metadata: ["annals.segment": "\(segment.index)", "annals.error": "\(failure)"])
            throw .storeFailed(failure)
        }
        // Visible once the mark vouches for it: an append that throws is never seen.
        if acknowledged { view.withLock { $0.reveal(end) } }
    }

    /// Encodes a frame of at most `capacity` bytes with `encode` (at offset 0 of the buffer it
    /// is given; it returns the frame's aligned size) for `offset` of `segment`: staged under
    /// `fsyncBeforeAck` (``StagedFrames``), written at once otherwise. Returns the frame's size.
    ///
    /// - Throws: ``AppendError/storeFailed(_:)`` when a write fails. The store fails like after
    ///   a failed sync: frames of the batch encoded before this one are neither published nor
    ///   acknowledged, and recovery at the next open keeps what is intact.
    func writeFrame(
        _ writer: inout WriterState, in segment: Segment, at offset: Int, capacity: Int,
        _ encode: (UnsafeMutableRawBufferPointer) -> Int
    ) throws(AppendError) -> Int {
        do {
            let size = try writer.staged.stage(in: segment, at: offset, capacity: capacity, encode)
            if options.durability != .fsyncBeforeAck { try writer.staged.write() }
            return size
        } catch {
            throw failWrites(error, in: segment)
        }
    }

    /// Writes the frames staged so far (before anything reads them back).
    ///
    /// - Throws: ``AppendError/storeFailed(_:)`` when the write fails (the store fails).
    func writeStagedFrames(_ writer: inout WriterState) throws(AppendError) {
        guard !writer.staged.isEmpty else { return }
        do { try writer.staged.write() } catch { throw failWrites(error, in: writer.active) }
    }

    /// Fails the store after a write into `segment` failed; returns the error for the appender.
    private func failWrites(_ error: SystemError, in segment: Segment) -> AppendError {
        durability.withLock { $0.failure = $0.failure ?? error }
        logger.error("a write failed: the store takes no more writes until it is reopened",
                     metadata: ["annals.segment": "\(segment.index)", "annals.error": "\(error)"])
        return .storeFailed(error)
    }

    /// Pass 1 of a write: expected revisions, idempotent repeats and deleted streams, checked
    /// against everything written (durable or not). Index files are searched after the view's
    /// lock is released.
    private func decide(
        _ prepared: [PreparedAppend], retention: [String: StreamRetention], writer: inout WriterState
    ) throws(AppendError) -> [Decision] {
        let hasher = options.streamHasher
        let hashes = prepared.map { hasher.hash($0.stream) }
        let (recent, locator) = view.withLock { view in
            (zip(prepared, hashes).map { view.recentRecord(for: $0.stream, hash: $1) }, view.locator)
        }
        var decisions: [Decision] = []
        decisions.reserveCapacity(prepared.count)
        var pending: [String: UInt64] = [:] // next revisions after earlier appends of this batch
        for (slot, append) in prepared.enumerated() {
            if !retention.isEmpty, retention[append.stream]?.isDeleted == true {
                throw .streamDeleted(stream: append.stream)
            }
            let hash = hashes[slot]
            let next = pending[append.stream] ?? locator.nextRevision(of: append.stream, hash: hash, recent: recent[slot])
            if pending[append.stream] == nil, append.hasCallerIDs, next > 0,
               let record = locator.record(for: append.stream, hash: hash, recent: recent[slot]) {
                // The events it may repeat are read back: staged ones go to the file first.
                if let last = record.frames.last, writer.staged.holds(last) { try writeStagedFrames(&writer) }
                if let original = try originalResult(of: append, in: record, segments: locator.segments) {
                    decisions.append(.repeatOf(original))
                    continue
                }
            }
            let actual = next == 0 ? nil : next - 1
            guard append.expected.isSatisfied(by: actual) else {
                throw .wrongExpectedRevision(stream: append.stream, expected: append.expected, actual: actual)
            }
            decisions.append(.write(firstRevision: next))
            pending[append.stream] = next + UInt64(append.events.count)
        }
        return decisions
    }

    /// The earlier append this one repeats, if its event ids are already where it would go.
    /// Runs under the writer lock: the stream's frames may be written but not yet durable.
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
}
