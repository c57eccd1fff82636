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
        let table: IndexTable?
        do {
            table = try IndexWriter.write(segments: range, nextPosition: last.nextPosition, entries: merged, sorted: true,
                                          hasher: options.streamHasher, layout: layout)
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
            state.indexMerges += 1
            return true
        }
        guard swapped else { return false }
        // The merged file is durable: the sources are superseded (open readers keep their maps).
        for source in sources { try? Syscalls.unlinkIfPresent(source.file.path) }
        return true
    }
}
