import Dispatch

/// Keeps the number of index files small: whenever four neighbouring index files cover the
/// same number of segments, they are merged into one (1+1+1+1 → 4, 4×4 → 16, …), so a stream
/// lookup consults O(log₄ segments) files however large the store grows. Merges run on their
/// own queue; the writer and readers go on meanwhile, and readers holding an old file keep
/// its mapping until they finish.
extension EventStore {
    /// How many neighbouring index files of equal span are merged at once.
    static let indexMergeFanIn = 4

    /// Schedules merging. The job holds the store only while a merge runs, so a store that is
    /// dropped without ``close()`` releases its lock as soon as the current merge (if any)
    /// ends.
    func scheduleIndexMerge() {
        guard !options.readOnly else { return }
        indexMergeQueue.async { [weak self] in
            while let store = self, let sources = store.nextMergeCandidate() {
                guard store.merge(sources) else { return }
            }
        }
    }

    /// Writes the index files of sealed segments held in `frames` (normally the one just
    /// sealed, whose last segment is `lastSegment`), on the index queue in roll order, then swaps
    /// them in: the tables join the cover and `frames` leaves memory in one step under the lock,
    /// so a stream read sees each frame exactly once. If a write fails, the frames stay in
    /// memory (still found by reads), the failure is counted and the write is tried again
    /// (``MaintenanceStatus``); a crash before it succeeds makes the next open rebuild the file.
    func scheduleIndexFiles(for frames: StreamIndex, nextPosition: UInt64, lastSegment: UInt64) {
        indexMergeQueue.async { [weak self] in
            self?.writeIndexFiles(for: frames, nextPosition: nextPosition, lastSegment: lastSegment)
        }
    }

    /// The work of ``scheduleIndexFiles(for:nextPosition:lastSegment:)``, on the index queue.
    private func writeIndexFiles(for frames: StreamIndex, nextPosition: UInt64, lastSegment: UInt64) {
        let hasher = options.streamHasher
        /// Counts the failure; the retry runs on this queue (never after close releases the lock).
        func failed(_ what: String, _ error: (any Error)?) {
            maintenanceFailed(what, error) { store in
                store.writeIndexFiles(for: frames, nextPosition: nextPosition, lastSegment: lastSegment)
            }
        }
        // Every sealed segment gets a file, an empty one too (merges need a contiguous cover).
        let segments = frames.segmentIndexes.union([lastSegment]).sorted()
        var tables: [IndexTable] = []
        for segment in segments {
            // A segment's end is the next one's first position; the last one's is known.
            let end: UInt64? = segment == lastSegment ? nextPosition : state.withLock { state in
                state.segments.first { $0.index > segment }?.firstPosition
            }
            let fingerprint = state.withLock { state in
                state.segments.segment(numbered: segment).map { IndexFile.fingerprint(ofHeaderChecksums: [$0.headerChecksum]) }
            }
            guard let end, let fingerprint else { return } // compaction replaced the segment meanwhile
            let written: IndexTable?
            do {
                written = try IndexWriter.write(segments: segment...segment, nextPosition: end, fingerprint: fingerprint,
                                                entries: frames.entries(forSegment: segment), hasher: hasher, layout: layout)
            } catch {
                return failed("writing the index file of segment \(segment)", error)
            }
            guard let table = written else { return failed("reading back the index file of segment \(segment)", nil) }
            tables.append(table)
        }
        state.withLock { state in
            for table in tables {
                let position = state.tables.firstIndex { $0.segments.lowerBound > table.segments.lowerBound } ?? state.tables.count
                state.tables.insert(table, at: position)
            }
            if let pending = state.sealedUnindexed.firstIndex(where: { $0.segmentIndexes == frames.segmentIndexes }) {
                state.sealedUnindexed.remove(at: pending)
            }
        }
        while let sources = nextMergeCandidate() {
            guard merge(sources) else { return }
        }
    }

    /// Writes a checkpoint on the index queue, after the index files scheduled before it.
    func scheduleCheckpoint(_ checkpoint: Checkpoint) {
        indexMergeQueue.async { [weak self] in
            guard let self else { return }
            writeCheckpointInBackground(checkpoint)
        }
    }

    /// Writes `checkpoint` (on the index queue); a failure is counted and retried there.
    private func writeCheckpointInBackground(_ checkpoint: Checkpoint) {
        do { try checkpoints.write(checkpoint) } catch {
            maintenanceFailed("writing the checkpoint", error) { store in store.writeCheckpointInBackground(checkpoint) }
        }
    }

    /// Counts a failed background job with its error and schedules `retry` after the retry
    /// delay (dropped once the store is closed: the next open redoes what is missing).
    func maintenanceFailed(_ what: String, _ error: (any Error)?, retry: (@Sendable (EventStore) -> Void)? = nil) {
        maintenance.withLock { status in
            status.failures += 1
            status.lastFailure = error.map { "\(what): \($0)" } ?? what
            if retry != nil { status.pendingRetries += 1 }
        }
        guard let retry else { return }
        let (seconds, attoseconds) = options.maintenanceRetryDelay.components
        let delay = DispatchTimeInterval.nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
        indexMergeQueue.asyncAfter(deadline: .now() + delay) { [weak self] in
            guard let self else { return }
            let closed = state.withLock { $0.closed }
            maintenance.withLock { status in
                status.pendingRetries -= 1
                if !closed { status.retries += 1 }
            }
            guard !closed else { return }
            retry(self)
        }
    }

    /// What the background work failed to do since open (see ``MaintenanceStatus``).
    public var maintenanceStatus: MaintenanceStatus { maintenance.withLock { $0 } }

    /// Waits for merges already scheduled (close uses it before releasing the lock).
    func waitForIndexMerges() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            indexMergeQueue.async { continuation.resume() }
        }
    }

    /// The oldest run of `indexMergeFanIn` contiguous index files of equal span.
    private func nextMergeCandidate() -> [IndexTable]? {
        let tables = state.withLock { $0.tables }
        let fanIn = Self.indexMergeFanIn
        guard tables.count >= fanIn else { return nil }
        for start in 0...(tables.count - fanIn) {
            let window = Array(tables[start..<start + fanIn])
            let span = window[0].span
            let contiguous = zip(window, window.dropFirst()).allSatisfy { $0.segments.upperBound + 1 == $1.segments.lowerBound }
            if contiguous && window.allSatisfy({ $0.span == span }) { return window }
        }
        return nil
    }

    /// Merges `sources` into one file and swaps it in. Returns false when the merge could not
    /// be done (the sources stay in use; a later roll tries again).
    private func merge(_ sources: [IndexTable]) -> Bool {
        guard let first = sources.first, let last = sources.last else { return false }
        let range = first.segments.lowerBound...last.segments.upperBound
        // Four sorted inputs: a k-way merge keeps the output sorted without sorting again.
        var heads = Array(repeating: 0, count: sources.count)
        var merged: [IndexFile.Entry] = []
        merged.reserveCapacity(sources.reduce(0) { $0 + $1.entryCount })
        while true {
            var best: (source: Int, entry: IndexFile.Entry)?
            for (source, table) in sources.enumerated() where heads[source] < table.entryCount {
                let entry = table.entry(heads[source])
                if best.map({ entry < $0.entry }) ?? true { best = (source, entry) }
            }
            guard let best else { break }
            merged.append(best.entry)
            heads[best.source] += 1
        }
        let fingerprint = state.withLock { $0.fingerprint(of: range) }
        let table: IndexTable?
        do {
            table = try IndexWriter.write(segments: range, nextPosition: last.nextPosition, fingerprint: fingerprint,
                                          entries: merged, sorted: true, hasher: options.streamHasher, layout: layout)
        } catch {
            maintenanceFailed("merging the index files of segments \(range.lowerBound)-\(range.upperBound)", error)
            return false
        }
        guard let table else {
            maintenanceFailed("reading back the merged index file of segments \(range.lowerBound)-\(range.upperBound)", nil)
            return false
        }
        let swapped = state.withLock { state -> Bool in
            guard let index = state.tables.firstIndex(where: { $0 === first }),
                  index + sources.count <= state.tables.count,
                  zip(state.tables[index..<index + sources.count], sources).allSatisfy({ $0 === $1 })
            else { return false }
            state.tables.replaceSubrange(index..<index + sources.count, with: [table])
            return true
        }
        guard swapped else { return false }
        // The merged file is durable: the sources are superseded (open readers keep their maps).
        for source in sources { try? layout.storage.unlinkIfPresent(source.file.path) }
        return true
    }
}
