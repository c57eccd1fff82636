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

    static let eventType = "$retention"
    static let stream = "$retention"

    func encoded(for stream: String) -> [UInt8] {
        let name = Array(stream.utf8)
        var bytes = [UInt8](repeating: 0, count: RetentionRecordLayout.size + name.count)
        bytes.withUnsafeMutableBytes { buffer in
            buffer.storeU8(1, at: RetentionRecordLayout.version)
            buffer.storeU8(isDeleted ? 1 : 0, at: RetentionRecordLayout.flags)
            buffer.storeU16(UInt16(name.count), at: RetentionRecordLayout.nameLength)
            buffer.storeU64(truncateBefore ?? 0, at: RetentionRecordLayout.truncateBefore)
            buffer.storeU64(maxCount ?? 0, at: RetentionRecordLayout.maxCount)
            buffer.storeI64(maxAgeNanoseconds ?? 0, at: RetentionRecordLayout.maxAgeNanoseconds)
            _ = name.withUnsafeBytes { buffer.copy($0, to: RetentionRecordLayout.name) }
        }
        return bytes
    }

    /// The stream and settings of a `$retention` record; nil when it is not one this version
    /// understands (it is then ignored, as the spec says).
    static func decode(_ bytes: UnsafeRawBufferPointer) -> (stream: String, retention: StreamRetention)? {
        guard bytes.count >= RetentionRecordLayout.size, bytes.u8(RetentionRecordLayout.version) == 1 else { return nil }
        let nameBytes = Int(bytes.u16(RetentionRecordLayout.nameLength))
        guard bytes.count == RetentionRecordLayout.name + nameBytes,
              let name = String(validating: bytes.slice(RetentionRecordLayout.name, nameBytes), as: UTF8.self)
        else { return nil }
        let truncate = bytes.u64(RetentionRecordLayout.truncateBefore), count = bytes.u64(RetentionRecordLayout.maxCount)
        let age = bytes.i64(RetentionRecordLayout.maxAgeNanoseconds)
        return (name, StreamRetention(
            truncateBefore: truncate == 0 ? nil : truncate, maxCount: count == 0 ? nil : count,
            maxAge: age <= 0 ? nil : .nanoseconds(age), isDeleted: bytes.u8(RetentionRecordLayout.flags) & 1 != 0))
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
