/// The hash that keys streams in the index: 64-bit FNV-1a over the name's UTF-8 bytes (see
/// `format-spec.md`, "Stream hash"). Names are always compared in full after a hash match, so
/// two names with the same hash never see each other's events. Tests inject other functions
/// to force collisions.
struct StreamHasher: Sendable, Hashable {
    let name: String
    /// Written into index files, so a file made with another function is never trusted.
    let id: UInt32
    let body: @Sendable (UnsafeRawBufferPointer) -> UInt64

    static let fnv1a = StreamHasher(name: "fnv1a-64", id: IndexFile.fnv1aHashID) { bytes in
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        return hash
    }

    func hash(_ stream: String) -> UInt64 {
        var stream = stream
        return stream.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }

    static func == (lhs: StreamHasher, rhs: StreamHasher) -> Bool { lhs.name == rhs.name }
    func hash(into hasher: inout Hasher) { hasher.combine(name) }
}

/// Where one frame of a stream is: enough to read its events without scanning.
struct FrameLocation: Sendable, Equatable {
    var firstRevision: UInt64
    var firstPosition: UInt64
    var segmentIndex: UInt64
    var offset: UInt32
    var eventCount: UInt32

    var nextRevision: UInt64 { firstRevision + UInt64(eventCount) }
}

/// One stream: its exact name and its frames in revision order.
struct StreamRecord: Sendable {
    let name: String
    var frames: [FrameLocation]

    var nextRevision: UInt64 { frames.last?.nextRevision ?? 0 }

    /// Index in `frames` of the frame holding `revision` (which must be below `nextRevision`).
    func frameSlot(containing revision: UInt64) -> Int {
        frames.lastIndex(atOrBefore: revision, by: \.firstRevision)
    }
}

/// Every stream's frames, keyed by stream hash with exact name comparison. Lives in memory and
/// is rebuilt when the store opens. Held in ``LogView``: changed only under the view's lock; readers
/// copy a stream's frame list (copy-on-write, so that is one retain).
struct StreamIndex: Sendable {
    private enum Bucket: Sendable {
        case one(StreamRecord)
        case many([StreamRecord])
    }

    let hasher: StreamHasher
    private var buckets: [UInt64: Bucket] = [:]
    private(set) var streamCount = 0
    private(set) var frameCount = 0
    /// The segments whose frames it holds.
    private(set) var segmentIndexes: Set<UInt64> = []
    /// The frames of each query key (event type or tag), oldest first: the query index of
    /// the segments not yet covered by index files.
    private(set) var keyFrames: [QueryKey: [FrameLocation]] = [:]
    /// Segments whose frames before an offset were found by header only at open (the
    /// checkpointed part of the checkpoint's segment: the open segment, or for a read-only open
    /// a sealed one): their keys are not here until those frames are verified
    /// (``addVerifiedKeys(_:ofSegment:before:)``).
    private(set) var keysPending: [UInt64: Int] = [:]

    init(hasher: StreamHasher) { self.hasher = hasher }

    /// The frames filed under `key`, oldest first.
    func frames(for key: QueryKey) -> [FrameLocation] { keyFrames[key] ?? [] }

    /// Files `frame` under each of `keys` (the distinct types and tags of its events).
    mutating func file(_ frame: FrameLocation, under keys: [QueryKey]) {
        for key in keys { keyFrames[key, default: []].append(frame) }
    }

    /// Marks the frames of `segment` before `offset` as lacking their keys.
    mutating func markKeysPending(ofSegment segment: UInt64, before offset: Int) {
        keysPending[segment] = offset
    }

    /// Adds the keys of the frames of `segment` before `offset` (which precede every frame
    /// filed so far in that segment), once verified; they are no longer pending.
    mutating func addVerifiedKeys(_ keyed: [(QueryKey, FrameLocation)], ofSegment segment: UInt64, before offset: Int) {
        guard keysPending[segment] == offset else { return }
        var earlier: [QueryKey: [FrameLocation]] = [:]
        for (key, frame) in keyed where frame.segmentIndex == segment && Int(frame.offset) < offset { earlier[key, default: []].append(frame) }
        for (key, frames) in earlier {
            let later = keyFrames[key] ?? []
            let split = later.firstIndex { $0.segmentIndex > segment || ($0.segmentIndex == segment && Int($0.offset) >= offset) } ?? later.count
            keyFrames[key] = Array(later[..<split]) + frames + Array(later[split...])
        }
        keysPending[segment] = nil
    }

    /// Query index entries for the frames of segment `segmentIndex`, keyed by
    /// ``QueryKey/hash(with:)``.
    func keyEntries(forSegment segmentIndex: UInt64) -> [IndexFile.Entry] {
        var result: [IndexFile.Entry] = []
        for (key, frames) in keyFrames {
            let hash = key.hash(with: hasher)
            for frame in frames where frame.segmentIndex == segmentIndex { result.append(IndexFile.Entry(keyHash: hash, frame: frame)) }
        }
        return result
    }

    func record(for stream: String) -> StreamRecord? {
        record(for: stream, hash: hasher.hash(stream))
    }

    func record(for stream: String, hash: UInt64) -> StreamRecord? {
        switch buckets[hash] {
        case .none: return nil
        case .one(let record): return record.name == stream ? record : nil
        case .many(let records): return records.first { $0.name == stream }
        }
    }

    func nextRevision(of stream: String) -> UInt64 { record(for: stream)?.nextRevision ?? 0 }

    /// Adds a frame at the end of `stream`.
    mutating func append(_ frame: FrameLocation, to stream: String) {
        frameCount += 1
        if frameCount == 1 || !segmentIndexes.contains(frame.segmentIndex) { segmentIndexes.insert(frame.segmentIndex) }
        let hash = hasher.hash(stream)
        switch buckets[hash] {
        case .none:
            buckets[hash] = .one(StreamRecord(name: stream, frames: [frame]))
            streamCount += 1
        case .one(var record):
            if record.name == stream {
                buckets[hash] = nil // release the array's only reference so append does not copy
                record.frames.append(frame)
                buckets[hash] = .one(record)
            } else {
                buckets[hash] = .many([record, StreamRecord(name: stream, frames: [frame])])
                streamCount += 1
            }
        case .many(var records):
            buckets[hash] = nil
            if let slot = records.firstIndex(where: { $0.name == stream }) {
                records[slot].frames.append(frame)
            } else {
                records.append(StreamRecord(name: stream, frames: [frame]))
                streamCount += 1
            }
            buckets[hash] = .many(records)
        }
    }

    /// The stream hashes present (one per bucket, however many names collide in it).
    var hashes: [UInt64] { Array(buckets.keys) }

    /// Index file entries for the frames of segment `segmentIndex`.
    func entries(forSegment segmentIndex: UInt64) -> [IndexFile.Entry] {
        var result: [IndexFile.Entry] = []
        func add(_ record: StreamRecord, _ hash: UInt64) {
            for frame in record.frames where frame.segmentIndex == segmentIndex {
                result.append(IndexFile.Entry(streamHash: hash, firstRevision: frame.firstRevision, firstPosition: frame.firstPosition,
                                              segmentIndex: UInt32(frame.segmentIndex), offset: frame.offset,
                                              eventCount: frame.eventCount))
            }
        }
        for (hash, bucket) in buckets {
            switch bucket {
            case .one(let record): add(record, hash)
            case .many(let records): for record in records { add(record, hash) }
            }
        }
        return result
    }

    /// Drops the frames of segment `segmentIndex` (now covered by its index file), or only
    /// those at or after `offset` (a torn group cut at open).
    mutating func removeFrames(ofSegment segmentIndex: UInt64, atOrAfter offset: Int? = nil) {
        guard let offset else { return removeAllFrames(ofSegment: segmentIndex) }
        func kept(_ frame: FrameLocation) -> Bool { frame.segmentIndex != segmentIndex || Int(frame.offset) < offset }
        var trimmed: [UInt64: Bucket] = [:]
        for (hash, bucket) in buckets {
            let records: [StreamRecord]
            switch bucket {
            case .one(let record): records = [record]
            case .many(let many): records = many
            }
            let left = records.compactMap { record -> StreamRecord? in
                let frames = record.frames.filter(kept)
                return frames.isEmpty ? nil : StreamRecord(name: record.name, frames: frames)
            }
            if !left.isEmpty { trimmed[hash] = left.count == 1 ? .one(left[0]) : .many(left) }
        }
        buckets = trimmed
        streamCount = buckets.values.reduce(0) { count, bucket in
            if case .many(let records) = bucket { return count + records.count } else { return count + 1 }
        }
        frameCount = buckets.values.reduce(0) { count, bucket in
            switch bucket {
            case .one(let record): return count + record.frames.count
            case .many(let records): return count + records.reduce(0) { $0 + $1.frames.count }
            }
        }
        for (key, frames) in keyFrames {
            let left = frames.filter(kept)
            keyFrames[key] = left.isEmpty ? nil : left
        }
    }

    /// Drops the frames of segment `segmentIndex` (now covered by its index file).
    private mutating func removeAllFrames(ofSegment segmentIndex: UInt64) {
        var kept: [UInt64: Bucket] = [:]
        streamCount = 0
        frameCount = 0
        func trimmed(_ record: StreamRecord) -> StreamRecord? {
            let frames = record.frames.filter { $0.segmentIndex != segmentIndex }
            return frames.isEmpty ? nil : StreamRecord(name: record.name, frames: frames)
        }
        for (hash, bucket) in buckets {
            let records: [StreamRecord]
            switch bucket {
            case .one(let record): records = [record].compactMap(trimmed)
            case .many(let many): records = many.compactMap(trimmed)
            }
            guard !records.isEmpty else { continue }
            streamCount += records.count
            frameCount += records.reduce(0) { $0 + $1.frames.count }
            kept[hash] = records.count == 1 ? .one(records[0]) : .many(records)
        }
        buckets = kept
        segmentIndexes.remove(segmentIndex)
        var keptKeys: [QueryKey: [FrameLocation]] = [:]
        for (key, frames) in keyFrames {
            let rest = frames.filter { $0.segmentIndex != segmentIndex }
            if !rest.isEmpty { keptKeys[key] = rest }
        }
        keyFrames = keptKeys
        keysPending[segmentIndex] = nil
    }

    /// Approximate bytes of memory the index uses (frame locations plus per-stream overhead).
    var approximateBytes: Int {
        frameCount * MemoryLayout<FrameLocation>.stride + streamCount * 96
            + keyFrames.reduce(0) { $0 + $1.value.count * MemoryLayout<FrameLocation>.stride + 96 }
    }
}
