import Dispatch

/// Keeps the number of index files small: whenever four neighbouring index files cover the
/// same number of segments, they are merged into one (1+1+1+1 → 4, 4×4 → 16, …), so a stream
/// lookup consults O(log₄ segments) files however large the store grows. Merges run on the
/// maintenance queue; the writer and readers go on meanwhile, and readers holding an old file keep
/// its mapping until they finish.
extension EventStore {
    /// How many neighbouring index files of equal span are merged at once.
    static let indexMergeFanIn = 4

    /// Writes the index files of sealed segments held in `frames` (normally the one just
    /// sealed, whose last segment is `lastSegment`), on the maintenance queue in roll order,
    /// then swaps them in: the tables join the cover and `frames` leaves memory in one step
    /// under the view's lock, so a stream read sees each frame exactly once. If a write fails,
    /// the frames stay in memory (still found by reads) and the job is retried
    /// (``MaintenanceStatus``); a crash before it succeeds makes the next open rebuild the file.
    func writeIndexFiles(for frames: StreamIndex, nextPosition: UInt64, lastSegment: UInt64) -> MaintenanceFailure? {
        let hasher = options.streamHasher
        // Every sealed segment gets a file, an empty one too (merges need a contiguous cover).
        let numbers = frames.segmentIndexes.union([lastSegment]).sorted()
        let segments = view.withLock { $0.segments }
        var tables: [IndexTable] = []
        for number in numbers {
            // A segment's end is the next one's first position; the last one's is known.
            let end: UInt64? = number == lastSegment ? nextPosition : segments.first { $0.index > number }?.firstPosition
            let fingerprint = segments.segment(numbered: number).map { IndexFile.fingerprint(ofHeaderChecksums: [$0.headerChecksum]) }
            guard let end, let fingerprint else { return nil } // compaction replaced the segment meanwhile
            // Query entries from memory, or (for frames found by header only at open) from a
            // verified walk of the segment.
            var keyEntries = frames.keyEntries(forSegment: number)
            if frames.keysPending[number] != nil, let segment = segments.segment(numbered: number) {
                do {
                    keyEntries = try segment.keyedFrames().map { IndexFile.Entry(keyHash: $0.0.hash(with: hasher), frame: $0.1) }
                } catch {
                    return MaintenanceFailure(what: "reading the event types and tags of segment \(number)", error: error)
                }
            }
            let written: IndexTable?
            do {
                written = try IndexWriter.write(segments: number...number, nextPosition: end, fingerprint: fingerprint,
                                                entries: frames.entries(forSegment: number), keyEntries: keyEntries,
                                                hasher: hasher, layout: layout)
            } catch {
                return MaintenanceFailure(what: "writing the index file of segment \(number)", error: error)
            }
            guard let table = written else {
                return MaintenanceFailure(what: "reading back the index file of segment \(number)", error: nil)
            }
            tables.append(table)
            metrics.indexFilesWritten.increment()
        }
        view.withLock { view in
            for table in tables {
                let position = view.tables.firstIndex { $0.segments.lowerBound > table.segments.lowerBound } ?? view.tables.count
                view.tables.insert(table, at: position)
            }
            if let pending = view.sealedUnindexed.firstIndex(where: { $0.segmentIndexes == frames.segmentIndexes }) {
                view.sealedUnindexed.remove(at: pending)
            }
        }
        return nil
    }

    /// Merges index files while four neighbouring ones cover the same span. A failed merge is
    /// reported and not retried on its own: the sources stay in use and the next roll tries again.
    func mergeIndexFiles() -> MaintenanceFailure? {
        while let sources = nextMergeCandidate() {
            switch merge(sources) {
            case .merged: continue
            case .superseded: return nil
            case .failed(let failure): return failure
            }
        }
        return nil
    }

    /// The oldest run of `indexMergeFanIn` contiguous index files of equal span.
    private func nextMergeCandidate() -> [IndexTable]? {
        let tables = view.withLock { $0.tables }
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

    private enum MergeOutcome {
        case merged
        /// The sources changed meanwhile (compaction rewrote one): nothing to do now.
        case superseded
        case failed(MaintenanceFailure)
    }

    /// The entries of one section of `sources` (each sorted by `less`) in one sorted list.
    private static func mergeSorted(
        _ sources: [IndexTable], count: (IndexTable) -> Int, entry: (IndexTable, Int) -> IndexFile.Entry,
        by less: (IndexFile.Entry, IndexFile.Entry) -> Bool
    ) -> [IndexFile.Entry] {
        var heads = Array(repeating: 0, count: sources.count)
        var merged: [IndexFile.Entry] = []
        merged.reserveCapacity(sources.reduce(0) { $0 + count($1) })
        while true {
            var best: (source: Int, entry: IndexFile.Entry)?
            for (source, table) in sources.enumerated() where heads[source] < count(table) {
                let candidate = entry(table, heads[source])
                if best.map({ less(candidate, $0.entry) }) ?? true { best = (source, candidate) }
            }
            guard let best else { return merged }
            merged.append(best.entry)
            heads[best.source] += 1
        }
    }

    /// Merges `sources` into one file and swaps it in. When it fails, the sources stay in use.
    private func merge(_ sources: [IndexTable]) -> MergeOutcome {
        guard let first = sources.first, let last = sources.last else { return .superseded }
        let range = first.segments.lowerBound...last.segments.upperBound
        // Four sorted inputs: a k-way merge keeps the output sorted without sorting again.
        let merged = Self.mergeSorted(sources, count: \.entryCount, entry: { $0.entry($1) }, by: <)
        let mergedKeys = Self.mergeSorted(sources, count: \.keyEntryCount, entry: { $0.keyEntry($1) }, by: IndexFile.Entry.keyOrder)
        let fingerprint = view.withLock { $0.fingerprint(of: range) }
        let table: IndexTable?
        do {
            table = try IndexWriter.write(segments: range, nextPosition: last.nextPosition, fingerprint: fingerprint,
                                          entries: merged, keyEntries: mergedKeys, sorted: true, hasher: options.streamHasher,
                                          layout: layout)
        } catch {
            return .failed(MaintenanceFailure(what: "merging the index files of segments \(range.lowerBound)-\(range.upperBound)",
                                              error: error, retry: false))
        }
        guard let table else {
            return .failed(MaintenanceFailure(
                what: "reading back the merged index file of segments \(range.lowerBound)-\(range.upperBound)", error: nil, retry: false))
        }
        let swapped = view.withLock { view -> Bool in
            guard let index = view.tables.firstIndex(where: { $0 === first }),
                  index + sources.count <= view.tables.count,
                  zip(view.tables[index..<index + sources.count], sources).allSatisfy({ $0 === $1 })
            else { return false }
            view.tables.replaceSubrange(index..<index + sources.count, with: [table])
            return true
        }
        guard swapped else { return .superseded }
        // The merged file is durable: the sources are superseded (open readers keep their maps).
        for source in sources { try? layout.storage.unlinkIfPresent(source.file.path) }
        metrics.indexMerges.increment()
        logger.debug("index files merged", metadata: ["annals.segments": "\(range.lowerBound)-\(range.upperBound)"])
        return .merged
    }
}
