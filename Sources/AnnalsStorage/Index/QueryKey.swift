#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What the query index is keyed by (`format-spec.md` §7.7): an event type or a tag, as its
/// UTF-8 bytes (compared byte for byte, as the index files and the records are: two spellings
/// of the same text in Unicode are two keys). An events frame is filed under the distinct keys
/// of its events.
struct QueryKey: Sendable, Hashable {
    enum Kind: UInt8, Sendable {
        case type = 1
        case tag = 2
    }

    let kind: Kind
    let name: [UInt8]

    static func type(_ name: String) -> QueryKey { QueryKey(kind: .type, name: Array(name.utf8)) }
    static func tag(_ name: String) -> QueryKey { QueryKey(kind: .tag, name: Array(name.utf8)) }

    /// The key's 64-bit hash in index files: the stream hash function over the kind byte
    /// followed by the name's UTF-8 bytes.
    func hash(with hasher: StreamHasher) -> UInt64 {
        var bytes: [UInt8] = [kind.rawValue]
        bytes.append(contentsOf: name)
        return bytes.withUnsafeBytes { hasher.body($0) }
    }

    /// The distinct keys of `events`, in first-seen order. A batch has few distinct types:
    /// they are found by comparing bytes with the ones seen so far, with no allocation per
    /// event (this runs on every append).
    static func keys(of events: [EventData]) -> [QueryKey] {
        var types: [String] = []
        var keys: [QueryKey] = []
        var seenTags = Set<QueryKey>()
        events.withUnsafeBufferPointer { events in
            for index in events.indices {
                let type = events[index].type
                if !types.contains(where: { sameBytes($0, type) }) {
                    types.append(type)
                    keys.append(.type(type))
                }
                guard !events[index].tags.isEmpty else { continue }
                for tag in events[index].tags {
                    let key = QueryKey.tag(tag)
                    if seenTags.insert(key).inserted { keys.append(key) }
                }
            }
        }
        return keys
    }

    /// True when `a` and `b` are the same UTF-8 bytes (not merely canonically equal).
    @inline(__always)
    static func sameBytes(_ a: String, _ b: String) -> Bool {
        let fast = a.utf8.withContiguousStorageIfAvailable { left in
            b.utf8.withContiguousStorageIfAvailable { right in
                left.count == right.count && (left.count == 0 || memcmp(left.baseAddress!, right.baseAddress!, left.count) == 0)
            }
        }
        if let fast, let result = fast { return result }
        return a.utf8.elementsEqual(b.utf8)
    }

    /// The distinct keys of the events of `frame`, a frame whose records were validated.
    static func keys(of frame: FrameHeader, in segment: Segment) -> [QueryKey] {
        keys(ofFrame: frame, in: segment.bytes)
    }

    static func keys(ofFrame frame: FrameHeader, in bytes: UnsafeRawBufferPointer) -> [QueryKey] {
        var types: [[UInt8]] = []
        var seenTags = Set<QueryKey>()
        var keys: [QueryKey] = []
        var cursor = frame.recordsOffset
        for _ in 0..<frame.eventCount {
            let layout = FrameDecoder.record(at: cursor, in: bytes)
            // Types repeat within a frame: compared in place with the few seen, no allocation.
            let typeBytes = bytes.slice(layout.typeOffset, layout.typeBytes)
            if !types.contains(where: { $0.elementsEqual(typeBytes) }) {
                types.append(Array(typeBytes))
                keys.append(QueryKey(kind: .type, name: types[types.count - 1]))
            }
            FrameDecoder.forEachTag(of: layout, in: bytes) { tag in
                let key = QueryKey(kind: .tag, name: Array(tag))
                if seenTags.insert(key).inserted { keys.append(key) }
                return true
            }
            cursor = layout.end
        }
        return keys
    }
}

extension Segment {
    /// Every events frame of this segment up to `limit` (default: its seal) with its keys,
    /// each frame verified (checksum and records) first: what an index file's query section
    /// is built from. Throws at the first frame that fails a check.
    func keyedFrames(upTo limit: Int? = nil, from start: (offset: Int, position: UInt64)? = nil) throws(ReadError) -> [(QueryKey, FrameLocation)] {
        var walk = walk(from: start ?? (Format.segmentHeaderBytes, firstPosition), verification: .checksumsAndRecords, limit: limit)
        var result: [(QueryKey, FrameLocation)] = []
        while true {
            switch walk.next() {
            case .events(let frame):
                let location = FrameLocation(frame, in: self)
                for key in QueryKey.keys(of: frame, in: self) { result.append((key, location)) }
            case .dictionary:
                continue
            case .seal:
                return result
            case .endOfData(let offset):
                guard limit != nil else { throw .corrupt(corruption(at: offset, "sealed segment ends without a seal frame")) }
                return result
            case .limit(let offset):
                guard offset == limit else { throw .corrupt(corruption(at: walk.previous?.offset ?? offset, "frame runs past offset \(limit ?? 0)")) }
                return result
            case .notAFrame(let offset, let reason), .corrupt(let offset, let reason):
                throw .corrupt(corruption(at: offset, reason))
            }
        }
    }
}
