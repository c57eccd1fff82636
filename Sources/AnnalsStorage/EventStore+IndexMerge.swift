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
    /// memory (still found by reads) and the next open rebuilds the missing file.
    func scheduleIndexFiles(for frames: StreamIndex, nextPosition: UInt64, lastSegment: UInt64) {
        let hasher = options.streamHasher, layout = self.layout
        indexMergeQueue.async { [weak self] in
            guard self != nil else { return }
            // Every sealed segment gets a file, an empty one too (merges need a contiguous cover).
            let segments = frames.segmentIndexes.union([lastSegment]).sorted()
            var tables: [IndexTable] = []
            for segment in segments {
                // A segment's end is the next one's first position; the last one's is known.
                let end = segment == lastSegment ? nextPosition : self?.state.withLock { state in
                    state.segments.first { $0.index > segment }?.firstPosition
                }
                let fingerprint = self?.state.withLock { state in
                    state.segments.segment(numbered: segment).map { IndexFile.fingerprint(ofHeaderChecksums: [$0.headerChecksum]) }
                }
                guard let end, let fingerprint, let table = try? IndexWriter.write(
                    segments: segment...segment, nextPosition: end, fingerprint: fingerprint,
                    entries: frames.entries(forSegment: segment), hasher: hasher, layout: layout)
                else { return }
                tables.append(table)
            }
            guard let store = self else { return }
            store.state.withLock { state in
                for table in tables {
                    let position = state.tables.firstIndex { $0.segments.lowerBound > table.segments.lowerBound } ?? state.tables.count
                    state.tables.insert(table, at: position)
                }
                if let pending = state.sealedUnindexed.firstIndex(where: { $0.segmentIndexes == frames.segmentIndexes }) {
                    state.sealedUnindexed.remove(at: pending)
                }
            }
            while let sources = store.nextMergeCandidate() {
                guard store.merge(sources) else { return }
            }
        }
    }

    /// Writes a checkpoint on the index queue, after the index files scheduled before it.
    func scheduleCheckpoint(_ checkpoint: Checkpoint) {
        indexMergeQueue.async { [weak self] in
            try? self?.checkpoints.write(checkpoint)
        }
    }

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
            return false
        }
        guard let table else { return false }
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
