/// Finds the frames that can hold events matching a query, through the query entries of the
/// index files and the in-memory query index of the segments they do not cover: never a walk of
/// `$all` when the query names a type or a tag. Works on values copied from ``LogView`` (no
/// lock held).
struct QueryPlanner {
    let tables: [IndexTable]
    /// The in-memory indexes: sealed segments not yet indexed on disk, then the open segment.
    let memory: [StreamIndex]
    let hasher: StreamHasher

    /// Frames filed under `key`, in position order within each source.
    private func frames(for key: QueryKey) -> [FrameLocation] {
        let hash = key.hash(with: hasher)
        var frames: [FrameLocation] = []
        for table in tables {
            for index in table.keyEntries(for: hash) { frames.append(table.keyEntry(index).frame) }
        }
        for index in memory { frames += index.frames(for: key) }
        return frames
    }

    /// How many frames are filed under `key` (a hash collision counts too: an estimate).
    private func count(for key: QueryKey) -> Int {
        let hash = key.hash(with: hasher)
        return tables.reduce(0) { $0 + $1.keyEntries(for: hash).count } + memory.reduce(0) { $0 + $1.frames(for: key).count }
    }

    /// The frames to read for `query`, each once, in position order; nil when the query
    /// matches every event (then `$all` is the answer). An item with tags is served by its
    /// rarest tag (every matching event carries it), an item with types only by the union of
    /// its types.
    func candidates(for query: EventQuery) -> [FrameLocation]? {
        guard !query.matchesEverything else { return nil }
        var frames: [FrameLocation] = []
        for item in query.items {
            if !item.tags.isEmpty {
                let rarest = item.tags.map { QueryKey.tag($0) }.map { ($0, count(for: $0)) }.min { $0.1 < $1.1 }!.0
                frames += self.frames(for: rarest)
            } else {
                var seen = Set<[UInt8]>()
                for type in item.types where seen.insert(Array(type.utf8)).inserted { frames += self.frames(for: .type(type)) }
            }
        }
        frames.sort { ($0.firstPosition, $0.segmentIndex, $0.offset) < ($1.firstPosition, $1.segmentIndex, $1.offset) }
        var unique: [FrameLocation] = []
        unique.reserveCapacity(frames.count)
        for frame in frames where unique.last.map({ $0.segmentIndex != frame.segmentIndex || $0.offset != frame.offset }) ?? true {
            unique.append(frame)
        }
        return unique
    }
}

/// A query compiled to UTF-8 bytes, matched against records in place: no string is built for
/// an event that does not match.
struct QueryMatcher: Sendable {
    private struct Item: Sendable {
        let types: [[UInt8]]
        let tags: [[UInt8]]
    }

    private let items: [Item]
    private let everything: Bool

    init(_ query: EventQuery) {
        everything = query.matchesEverything
        items = query.items.map { Item(types: $0.types.map { Array($0.utf8) }, tags: $0.tags.map { Array($0.utf8) }) }
    }

    /// True when the record at `layout` (of a validated frame) matches.
    func matches(_ layout: EventRecordLayout, in bytes: UnsafeRawBufferPointer) -> Bool {
        if everything { return true }
        let type = bytes.slice(layout.typeOffset, layout.typeBytes)
        for item in items {
            guard item.types.isEmpty || item.types.contains(where: { type.elementsEqual($0) }) else { continue }
            if item.tags.allSatisfy({ hasTag($0, layout, bytes) }) { return true }
        }
        return false
    }

    private func hasTag(_ tag: [UInt8], _ layout: EventRecordLayout, _ bytes: UnsafeRawBufferPointer) -> Bool {
        // The walk stops (returns false) at the tag that matches.
        !FrameDecoder.forEachTag(of: layout, in: bytes) { !($0.count == tag.count && $0.elementsEqual(tag)) }
    }
}
