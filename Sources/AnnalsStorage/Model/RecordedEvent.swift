#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An event as stored: the caller's data plus where and when the store committed it.
///
/// Type, metadata and payload are read from the segment mapping when asked for (the event keeps
/// the mapping alive), so iterating a log does not copy payloads it does not use. A value is
/// immutable and safe to share across tasks.
public struct RecordedEvent: Sendable {
    /// Gapless, store-wide position (0, 1, 2, …). Never reused.
    public let position: UInt64
    /// The stream the event belongs to.
    public let stream: String
    /// The event's revision in its stream (0, 1, 2, …).
    public let revision: UInt64
    /// The event id (supplied by the caller or generated at append).
    public let id: UUID
    /// When the event was committed.
    public let timestamp: Timestamp

    let segment: Segment
    let layout: EventRecordLayout

    init(position: UInt64, stream: String, revision: UInt64, segment: Segment, layout: EventRecordLayout) {
        self.position = position
        self.stream = stream
        self.revision = revision
        self.segment = segment
        self.layout = layout
        let bytes = segment.bytes
        self.timestamp = Timestamp(nanosecondsSinceEpoch: bytes.i64(layout.offset + 16))
        var uuid: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &uuid) { $0.copyMemory(from: bytes.slice(layout.offset + 24, 16)) }
        self.id = UUID(uuid: uuid)
    }

    /// The event type name.
    public var type: String {
        String(decoding: segment.bytes.slice(layout.typeOffset, layout.typeBytes), as: UTF8.self)
    }

    /// A copy of the metadata bytes.
    public var metadata: [UInt8] { Array(segment.bytes.slice(layout.metadataOffset, layout.metadataBytes)) }

    /// A copy of the payload bytes.
    public var payload: [UInt8] { Array(segment.bytes.slice(layout.payloadOffset, layout.payloadBytes)) }

    /// Number of payload bytes.
    public var payloadCount: Int { layout.payloadBytes }

    /// Calls `body` with the payload bytes in place (no copy). The buffer is valid only
    /// during the call.
    public func withPayloadBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(segment.bytes.slice(layout.payloadOffset, layout.payloadBytes))
    }

    /// Calls `body` with the metadata bytes in place (no copy). The buffer is valid only
    /// during the call.
    public func withMetadataBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(segment.bytes.slice(layout.metadataOffset, layout.metadataBytes))
    }
}
