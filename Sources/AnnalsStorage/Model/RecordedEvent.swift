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
    public var id: UUID {
        var uuid: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &uuid) { $0.copyMemory(from: segment.bytes.slice(layout.offset + 24, 16)) }
        return UUID(uuid: uuid)
    }

    /// When the event was committed.
    public var timestamp: Timestamp { Timestamp(nanosecondsSinceEpoch: segment.bytes.i64(layout.offset + 16)) }

    // Id and timestamp are read from the record when asked for: a read that does not use
    // them does not pay for them.
    let segment: Segment
    let layout: EventRecordLayout

    init(position: UInt64, stream: String, revision: UInt64, segment: Segment, layout: EventRecordLayout) {
        self.position = position
        self.stream = stream
        self.revision = revision
        self.segment = segment
        self.layout = layout
    }

    /// The event type name.
    public var type: String {
        String(decoding: segment.bytes.slice(layout.typeOffset, layout.typeBytes), as: UTF8.self)
    }

    /// True when the store holds this event's metadata and payload LZ4-compressed. Reading
    /// them then decodes the block (about 0.1–0.2 µs for a few hundred bytes).
    public var isStoredCompressed: Bool { layout.isCompressed }

    /// A copy of the metadata bytes.
    ///
    /// - Throws: ``ReadError/corrupt(_:)`` when a compressed record does not decode (damage
    ///   the frame checksum missed); wrong bytes are never returned.
    @inlinable
    public var metadata: [UInt8] {
        get throws(ReadError) { try withMetadataBytes { Array($0) } }
    }

    /// A copy of the payload bytes.
    ///
    /// - Throws: ``ReadError/corrupt(_:)`` as for ``metadata``.
    @inlinable
    public var payload: [UInt8] {
        get throws(ReadError) { try withPayloadBytes { Array($0) } }
    }

    /// Number of payload bytes.
    public var payloadCount: Int { layout.payloadBytes }

    /// Number of metadata bytes.
    public var metadataCount: Int { layout.metadataBytes }

    /// Calls `body` with the payload bytes: in place in the mapping for a raw record (no copy),
    /// or in a temporary buffer for a compressed one. The buffer is valid only during the call.
    ///
    /// - Throws: ``ReadError/corrupt(_:)`` as for ``metadata``.
    @inlinable
    public func withPayloadBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) throws(ReadError) -> R {
        try withBodyBytes { _, payload in body(payload) }
    }

    /// Calls `body` with the metadata bytes, as ``withPayloadBytes(_:)`` does for the payload.
    ///
    /// - Throws: ``ReadError/corrupt(_:)`` as for ``metadata``.
    @inlinable
    public func withMetadataBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) throws(ReadError) -> R {
        try withBodyBytes { metadata, _ in body(metadata) }
    }

    /// Calls `body` with the metadata and the payload, decoding a compressed record once.
    ///
    /// - Throws: ``ReadError/corrupt(_:)`` as for ``metadata``.
    @inlinable
    public func withBodyBytes<R>(
        _ body: (_ metadata: UnsafeRawBufferPointer, _ payload: UnsafeRawBufferPointer) -> R
    ) throws(ReadError) -> R {
        // Specialized in the caller's module; the non-generic part below does the work, so no
        // generic metadata is instantiated per event.
        var result: R?
        try visitBody { metadata, payload in result = body(metadata, payload) }
        return result.unsafelyUnwrapped
    }

    /// Calls `body` once with the metadata and payload bytes (decoded into a stack buffer for a
    /// compressed record).
    @usableFromInline
    func visitBody(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) throws(ReadError) {
        let bytes = segment.bytes
        let layout = self.layout
        guard layout.isCompressed else {
            body(bytes.slice(layout.metadataOffset, layout.metadataBytes), bytes.slice(layout.payloadOffset, layout.payloadBytes))
            return
        }
        let metadataBytes = layout.metadataBytes
        let decodedBytes = metadataBytes + layout.payloadBytes
        let segment = self.segment
        let decoded = withUnsafeTemporaryAllocation(byteCount: decodedBytes, alignment: 8) { buffer -> Bool in
            guard segment.decodeBody(of: layout, into: buffer) else { return false }
            let decoded = UnsafeRawBufferPointer(buffer)
            body(decoded.slice(0, metadataBytes), decoded.slice(metadataBytes, decodedBytes - metadataBytes))
            return true
        }
        guard decoded else {
            throw .corrupt(segment.corruption(at: layout.offset, "compressed event record does not decode to its stated size"))
        }
    }
}
