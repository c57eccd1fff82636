/// The index files of a store directory: which exist, and which set of them to trust.
enum IndexCatalog {
    struct File: Sendable, Equatable {
        let path: String
        let segments: ClosedRange<UInt64>
    }

    /// Index files in `segments/`, by the segment range in their names.
    static func list(_ layout: StoreLayout) throws(SystemError) -> [File] {
        let names = try layout.storage.directoryEntries(layout.segmentsDirectory) ?? []
        return names.compactMap { name in
            StoreLayout.indexRange(fileName: name).map { File(path: layout.segmentsDirectory + "/" + name, segments: $0) }
        }
    }

    struct Selection {
        /// Sound files covering sealed segments, without overlap, in segment order.
        var tables: [IndexTable] = []
        /// Files not chosen because a wider sound file covers them (left over by a merge).
        var superseded: [File] = []
        /// Files that failed a check, with why.
        var rejected: [CorruptionError] = []
    }

    /// Chooses, among `files`, sound tables over the first `sealedCount` of `segments` (all
    /// segment files, in order) without overlap, widest first. A table must start and end at
    /// segment file boundaries, end at the position where the next file starts, and carry the
    /// fingerprint of the files it covers (one written before compaction rewrote a file is stale).
    static func select(
        _ files: [File], segments: [Segment], sealedCount: Int, hashID: UInt32, storage: any Storage
    ) -> Selection {
        var selection = Selection()
        guard sealedCount > 0, sealedCount <= segments.count else {
            selection.superseded = files
            return selection
        }
        let sealed = segments[0].index...segments[sealedCount - 1].lastIndex
        var covered: [ClosedRange<UInt64>] = []
        let widestFirst = files.sorted {
            ($0.segments.upperBound - $0.segments.lowerBound, $1.segments.lowerBound)
                > ($1.segments.upperBound - $1.segments.lowerBound, $0.segments.lowerBound)
        }
        for file in widestFirst {
            let firstSlot = segments.lastIndex(atOrBefore: file.segments.lowerBound, by: \.index)
            let lastSlot = segments.lastIndex(atOrBefore: file.segments.upperBound, by: \.index)
            guard sealed.contains(file.segments.lowerBound), sealed.contains(file.segments.upperBound),
                  segments[firstSlot].index == file.segments.lowerBound,
                  segments[lastSlot].lastIndex == file.segments.upperBound
            else {
                selection.superseded.append(file)
                continue
            }
            if covered.contains(where: { $0.overlaps(file.segments) }) {
                selection.superseded.append(file)
                continue
            }
            switch IndexTable.open(path: file.path, segments: file.segments, hashID: hashID, storage: storage) {
            case .success(let table):
                if lastSlot + 1 < segments.count, segments[lastSlot + 1].firstPosition != table.nextPosition {
                    selection.rejected.append(CorruptionError(
                        file: file.path, offset: IndexHeaderLayout.nextPosition,
                        reason: "index ends at position \(table.nextPosition), log at \(segments[lastSlot + 1].firstPosition)"))
                    continue
                }
                let indexed = segments[firstSlot...lastSlot]
                let stale = table.fingerprint == 0
                    ? indexed.contains(where: \.isCompacted)
                    : table.fingerprint != IndexFile.fingerprint(ofHeaderChecksums: indexed.map(\.headerChecksum))
                if stale {
                    selection.rejected.append(CorruptionError(
                        file: file.path, offset: IndexHeaderLayout.segmentsFingerprint,
                        reason: "index was written for other segment files (before a compaction)"))
                    continue
                }
                covered.append(file.segments)
                selection.tables.append(table)
            case .failure(let problem):
                selection.rejected.append(problem)
            }
        }
        selection.tables.sort { $0.segments.lowerBound < $1.segments.lowerBound }
        return selection
    }
}
