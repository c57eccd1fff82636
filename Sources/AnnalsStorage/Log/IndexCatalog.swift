/// The index files of a store directory: which exist, and which set of them to trust.
enum IndexCatalog {
    struct File: Sendable, Equatable {
        let path: String
        let segments: ClosedRange<UInt64>
    }

    /// Index files in `segments/`, by the segment range in their names.
    static func list(_ layout: StoreLayout) throws(SystemError) -> [File] {
        let names = try Syscalls.directoryEntries(layout.segmentsDirectory) ?? []
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

    /// Chooses, among `files`, sound tables inside `sealed` without overlap, widest first.
    /// `nextPosition(after:)` gives the first position of the segment after a range's last one
    /// (nil when unknown), which the table must agree with.
    static func select(
        _ files: [File], sealed: ClosedRange<UInt64>?, hashID: UInt32, nextPosition: (UInt64) -> UInt64?
    ) -> Selection {
        var selection = Selection()
        guard let sealed else {
            selection.superseded = files
            return selection
        }
        var covered: [ClosedRange<UInt64>] = []
        let widestFirst = files.sorted {
            ($0.segments.upperBound - $0.segments.lowerBound, $1.segments.lowerBound)
                > ($1.segments.upperBound - $1.segments.lowerBound, $0.segments.lowerBound)
        }
        for file in widestFirst {
            guard sealed.contains(file.segments.lowerBound), sealed.contains(file.segments.upperBound) else {
                selection.superseded.append(file)
                continue
            }
            if covered.contains(where: { $0.overlaps(file.segments) }) {
                selection.superseded.append(file)
                continue
            }
            switch IndexTable.open(path: file.path, segments: file.segments, hashID: hashID) {
            case .success(let table):
                if let expected = nextPosition(file.segments.upperBound), expected != table.nextPosition {
                    selection.rejected.append(CorruptionError(file: file.path, offset: 48,
                                                              reason: "index ends at position \(table.nextPosition), log at \(expected)"))
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
