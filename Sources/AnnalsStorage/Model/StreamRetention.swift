/// What a stream keeps: the retention settings of one stream (see `format-spec.md`, "Stream
/// retention"). Reads respect them at once; compaction gives the space back later.
public struct StreamRetention: Sendable, Hashable {
    /// Events with a lower revision are removed (soft delete and truncation).
    public var truncateBefore: UInt64?
    /// Only the newest `maxCount` events are kept.
    public var maxCount: UInt64?
    /// Events older than this (by commit timestamp) are removed.
    public var maxAge: Duration?
    /// A tombstone: the stream reads as empty and appends to it throw
    /// ``AppendError/streamDeleted(stream:)``, forever.
    public var isDeleted: Bool

    /// Settings; nil means "no limit".
    public init(truncateBefore: UInt64? = nil, maxCount: UInt64? = nil, maxAge: Duration? = nil, isDeleted: Bool = false) {
        self.truncateBefore = truncateBefore
        self.maxCount = maxCount
        self.maxAge = maxAge
        self.isDeleted = isDeleted
    }

    /// Nothing removed.
    public static let keepEverything = StreamRetention()

    var maxAgeNanoseconds: Int64? {
        maxAge.map { Int64($0.components.seconds) * 1_000_000_000 + Int64($0.components.attoseconds / 1_000_000_000) }
    }

    // MARK: The `$retention` record (format-spec.md §7A)

    static let recordHeaderBytes = 32
    static let eventType = "$retention"
    static let stream = "$retention"

    func encoded(for stream: String) -> [UInt8] {
        let name = Array(stream.utf8)
        var bytes = [UInt8](repeating: 0, count: Self.recordHeaderBytes + name.count)
        bytes.withUnsafeMutableBytes { buffer in
            buffer.storeU8(1, at: 0)
            buffer.storeU8(isDeleted ? 1 : 0, at: 1)
            buffer.storeU16(UInt16(name.count), at: 2)
            buffer.storeU64(truncateBefore ?? 0, at: 8)
            buffer.storeU64(maxCount ?? 0, at: 16)
            buffer.storeI64(maxAgeNanoseconds ?? 0, at: 24)
            _ = name.withUnsafeBytes { buffer.copy($0, to: Self.recordHeaderBytes) }
        }
        return bytes
    }

    /// The stream and settings of a `$retention` record; nil when it is not one this version
    /// understands (it is then ignored, as the spec says).
    static func decode(_ bytes: UnsafeRawBufferPointer) -> (stream: String, retention: StreamRetention)? {
        guard bytes.count >= recordHeaderBytes, bytes.u8(0) == 1 else { return nil }
        let nameBytes = Int(bytes.u16(2))
        guard bytes.count == recordHeaderBytes + nameBytes,
              let name = String(validating: bytes.slice(recordHeaderBytes, nameBytes), as: UTF8.self)
        else { return nil }
        let truncate = bytes.u64(8), count = bytes.u64(16), age = bytes.i64(24)
        return (name, StreamRetention(
            truncateBefore: truncate == 0 ? nil : truncate, maxCount: count == 0 ? nil : count,
            maxAge: age <= 0 ? nil : .nanoseconds(age), isDeleted: bytes.u8(1) & 1 != 0))
    }
}

/// Retention as readers apply it, fixed when a read starts: per stream, the first revision
/// kept, the oldest timestamp kept, and tombstones.
struct RetentionView: Sendable {
    struct Rule: Sendable {
        var firstRevision: UInt64
        var oldestTimestamp: Int64?
        var deleted: Bool

        func keeps(revision: UInt64, timestamp: Int64) -> Bool {
            !deleted && revision >= firstRevision && oldestTimestamp.map { timestamp >= $0 } ?? true
        }
    }

    var rules: [String: Rule] = [:]
    var isEmpty: Bool { rules.isEmpty }

    static let none = RetentionView()
}
