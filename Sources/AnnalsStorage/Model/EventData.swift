#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An event to append: what the caller supplies. The store adds the global position, the
/// stream revision and the timestamp when it commits.
///
/// ```swift
/// let placed = EventData(type: "OrderPlaced", payload: Array(#"{"total":42}"#.utf8))
/// try await store.append([placed], to: "order-123")
/// ```
public struct EventData: Sendable, Hashable {
    /// The event's identity. When nil the store generates a random (version 4) UUID.
    public var id: UUID?
    /// The event type name, e.g. `"OrderPlaced"`: 1 to ``StoreLimits/maximumEventTypeBytes``
    /// bytes of UTF-8.
    public var type: String
    /// Opaque metadata bytes (often JSON: correlation ids, user, causation).
    public var metadata: [UInt8]
    /// Opaque payload bytes (often JSON).
    public var payload: [UInt8]
    /// Tags (such as `member:42`): what queries and conditional appends select events by,
    /// across streams (``EventQuery``). At most ``StoreLimits/maximumTagsPerEvent``, each 1 to
    /// ``StoreLimits/maximumTagBytes`` bytes of UTF-8. Stored in the record, covered by its
    /// checksum, never compressed and never encrypted: keep personal data out of them.
    public var tags: [String]
    /// The data subject whose personal data the event carries (such as `customer-42`), or nil.
    /// Its metadata and payload are then encrypted under that subject's own key, which
    /// ``EventStore/forget(subject:)`` destroys; needs ``StoreOptions/encryption``. At most
    /// ``StoreLimits/maximumSubjectBytes`` of UTF-8. The subject's name is not stored in the
    /// record (only a key number); its stream name, type and tags are stored in the clear.
    public var subject: String?

    /// An event to append; without `id`, one is generated at append.
    public init(id: UUID? = nil, type: String, payload: [UInt8], metadata: [UInt8] = [], tags: [String] = [], subject: String? = nil) {
        self.id = id
        self.type = type
        self.payload = payload
        self.metadata = metadata
        self.tags = tags
        self.subject = subject
    }
}

/// The events of one stream to append as one atomic unit (one frame on disk), for
/// ``EventStore/append(_:)-([StreamAppend])`` which writes several of them with one durability wait.
public struct StreamAppend: Sendable, Hashable {
    /// The stream the events belong to.
    public var stream: String
    /// The events, in order. Must not be empty.
    public var events: [EventData]
    /// The optimistic concurrency check for this stream.
    public var expected: ExpectedRevision

    /// The events to append to `stream` as one frame, if the stream is at `expected`.
    public init(stream: String, events: [EventData], expected: ExpectedRevision = .any) {
        self.stream = stream
        self.events = events
        self.expected = expected
    }
}

/// Limits on names and sizes. Larger inputs are rejected with an ``AppendError`` before
/// anything is written.
public enum StoreLimits {
    /// Maximum length of a stream name in UTF-8 bytes.
    public static let maximumStreamNameBytes = 1024
    /// Maximum length of an event type name in UTF-8 bytes.
    public static let maximumEventTypeBytes = 1024
    /// Most tags one event may carry.
    public static let maximumTagsPerEvent = 32
    /// Maximum length of one tag in UTF-8 bytes.
    public static let maximumTagBytes = 256
    /// Maximum length of a data subject (``EventData/subject``) in UTF-8 bytes.
    public static let maximumSubjectBytes = 1024
    /// Smallest segment size a store accepts (small, so tests can roll segments often).
    public static let minimumSegmentSizeBytes = 4096
    /// Largest segment size a store accepts.
    public static let maximumSegmentSizeBytes = 1 << 30
    /// Stream names starting with this character are reserved for the store itself.
    public static let reservedStreamPrefix: Character = "$"
}
