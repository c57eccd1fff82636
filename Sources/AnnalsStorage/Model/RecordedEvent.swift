#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An event as stored: the caller's data plus where and when the store committed it.
///
/// Id, timestamp, type, metadata and payload are read from the segment mapping when asked for
/// (the event keeps the mapping alive), so iterating a log does not copy or decode what it does
/// not use. The exception is a long forward read (a limit of 100,000 events or more, as
/// `readAll()`'s default, over at least 2 MiB of log, on a machine with two cores or more): it
/// has the other core verify frames and decode their LZ4-compressed bodies ahead of it, and
/// an event of such a frame keeps the whole frame's decoded bodies in memory for as long as it
/// exists: drop events once used rather than collecting a whole replay. A value is immutable
/// and safe to share across tasks.
public struct RecordedEvent: @unchecked Sendable {
    // @unchecked: `record` points into a mapping that never changes once the event is
    // readable, and that `segment` keeps mapped for as long as the event exists.

    /// Gapless, store-wide position (0, 1, 2, …). Never reused.
    public let position: UInt64
    /// The stream the event belongs to.
    public let stream: String
    /// The event's revision in its stream (0, 1, 2, …).
    public let revision: UInt64

    /// The segment holding the record: keeps the mapping alive, and names the file in errors.
    @usableFromInline let segment: Segment
    /// The start of the record (its 40-byte header, `format-spec.md` §3.2) in the mapping.
    @usableFromInline let record: UnsafeRawPointer
    /// The frame's compressed bodies, decoded ahead of a long read on another core, when this
    /// record's is among them (nil: decoded when read).
    @usableFromInline let decodedFrame: DecodedFrame?

    init(position: UInt64, stream: String, revision: UInt64, segment: Segment, layout: EventRecordLayout,
         decodedFrame: DecodedFrame? = nil) {
        self.position = position
        self.stream = stream
        self.revision = revision
        self.segment = segment
        self.record = segment.bytes.baseAddress! + layout.offset
        self.decodedFrame = decodedFrame
    }

    /// The event id (supplied by the caller or generated at append).
    public var id: UUID {
        var uuid: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &uuid) { $0.copyMemory(from: UnsafeRawBufferPointer(start: record + RecordLayout.eventId, count: 16)) }
        return UUID(uuid: uuid)
    }

    /// When the event was committed.
    public var timestamp: Timestamp {
        Timestamp(nanosecondsSinceEpoch: Int64(littleEndian: record.loadUnaligned(fromByteOffset: RecordLayout.timestamp, as: Int64.self)))
    }

    /// The record's layout, read from its header (checked when its frame was opened).
    var layout: EventRecordLayout {
        FrameDecoder.record(at: record - segment.bytes.baseAddress!, in: segment.bytes)
    }

    // Record header fields (`format-spec.md` §3.2), for the inlinable accessors below.
    @inlinable var storedTypeBytes: Int {
        Int(UInt16(littleEndian: record.loadUnaligned(fromByteOffset: RecordLayout.typeLength, as: UInt16.self)))
    }
    @inlinable var storedMetadataBytes: Int {
        Int(UInt32(littleEndian: record.loadUnaligned(fromByteOffset: RecordLayout.metadataLength, as: UInt32.self)))
    }
    @inlinable var storedPayloadBytes: Int {
        Int(UInt32(littleEndian: record.loadUnaligned(fromByteOffset: RecordLayout.payloadLength, as: UInt32.self)))
    }
    @inlinable var storedFlags: UInt16 { UInt16(littleEndian: record.loadUnaligned(fromByteOffset: RecordLayout.flags, as: UInt16.self)) }
    /// A raw record's metadata, followed by its payload: past the 40-byte header, the type name
    /// and the tag block, if any.
    @inlinable var rawBodyStart: UnsafeRawPointer {
        let afterType = record + RecordLayout.type + storedTypeBytes
        guard storedFlags & 2 != 0 else { return afterType }
        return afterType + storedTagBlockBytes(at: afterType)
    }

    /// Bytes of the tag block at `start` (§3.2; checked when the frame was opened).
    @usableFromInline
    func storedTagBlockBytes(at start: UnsafeRawPointer) -> Int {
        let count = Int(UInt16(littleEndian: start.loadUnaligned(as: UInt16.self)))
        var cursor = TagBlockLayout.firstTag
        for _ in 0..<count {
            cursor += TagBlockLayout.tagLengthBytes + Int(UInt16(littleEndian: (start + cursor).loadUnaligned(as: UInt16.self)))
        }
        return cursor
    }

    /// The event's tags, in the order they were appended (empty when it has none).
    public var tags: [String] { FrameDecoder.tags(of: layout, in: segment.bytes) }

    /// The event type name.
    public var type: String {
        String(decoding: UnsafeRawBufferPointer(start: record + RecordLayout.type, count: storedTypeBytes), as: UTF8.self)
    }

    /// True when the store holds this event's metadata and payload LZ4-compressed. Reading
    /// them then decodes the block (about 0.1–0.2 µs for a few hundred bytes).
    @inlinable
    public var isStoredCompressed: Bool { storedFlags & 1 != 0 }

    /// True when the store holds this event's metadata and payload encrypted (AES-256-GCM under
    /// its data subject's key, or the store's: ``EventData/subject``, ``EncryptionOptions``).
    /// Reading them then decrypts them (and checks their authentication tag).
    @inlinable
    public var isEncrypted: Bool { storedFlags & 4 != 0 }

    /// True when the event's body was erased: it was encrypted under a data subject's key that
    /// ``EventStore/forget(subject:)`` destroyed. Its position, stream, revision, id, type, tags
    /// and timestamp read as ever; its metadata and payload are gone for good, and reading them
    /// throws ``ReadError/bodyErased(position:)``.
    public var isErased: Bool { isEncrypted && segment.isErased(layout) }

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
    public var payloadCount: Int { storedPayloadBytes }

    /// Number of metadata bytes.
    public var metadataCount: Int { storedMetadataBytes }

    /// Calls `body` with the payload bytes: in place in the mapping for a raw record (no copy),
    /// or in a temporary buffer for a compressed one. The buffer is valid only during the call.
    /// It may be a buffer other threads use in turn: while `body` runs they decode elsewhere,
    /// so keep `body` short.
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
        // Specialized in the caller's module. A raw record is handed over in place; a
        // compressed one goes through the non-generic decoder below, so no generic metadata
        // is instantiated per event.
        if storedFlags & 5 == 0 {
            let metadata = UnsafeRawBufferPointer(start: rawBodyStart, count: storedMetadataBytes)
            let payload = UnsafeRawBufferPointer(start: metadata.baseAddress! + metadata.count, count: storedPayloadBytes)
            return body(metadata, payload)
        }
        if let decodedFrame, let decoded = decodedFrame.body(ofRecordAt: record) {
            let metadata = UnsafeRawBufferPointer(start: decoded, count: storedMetadataBytes)
            return body(metadata, UnsafeRawBufferPointer(start: decoded + metadata.count, count: storedPayloadBytes))
        }
        var result: R?
        try visitBody { metadata, payload in result = body(metadata, payload) }
        return result.unsafelyUnwrapped
    }

    /// Calls `body` once with the metadata and payload bytes (for a compressed record, decoded
    /// into this thread's buffer, the segment's shared one or a temporary one).
    @usableFromInline
    func visitBody(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) throws(ReadError) {
        let bytes = segment.bytes
        let layout = self.layout
        if layout.isEncrypted {
            try visitEncryptedBody(layout, body)
            return
        }
        guard layout.isCompressed else {
            body(bytes.slice(layout.metadataOffset, layout.metadataBytes), bytes.slice(layout.payloadOffset, layout.payloadBytes))
            return
        }
        let metadataBytes = layout.metadataBytes
        let decoded = segment.withDecodedBody(of: layout) { decoded in
            body(decoded.slice(0, metadataBytes), decoded.slice(metadataBytes, decoded.count - metadataBytes))
        }
        guard decoded else {
            throw .corrupt(segment.corruption(at: layout.offset, "compressed event record does not decode to its stated size"))
        }
    }

    /// Decrypts an encrypted record's body into a temporary buffer and calls `body` with it.
    private func visitEncryptedBody(_ layout: EventRecordLayout, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) throws(ReadError) {
        let metadataBytes = layout.metadataBytes
        let decodedBytes = metadataBytes + layout.payloadBytes
        let segment = self.segment
        let (position, revision, stream) = (self.position, self.revision, self.stream)
        let outcome = withUnsafeTemporaryAllocation(byteCount: max(decodedBytes, 1), alignment: 8) { buffer -> Segment.DecryptedBody in
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<decodedBytes])
            let outcome = segment.decryptBody(of: layout, position: position, revision: revision, stream: stream, into: target)
            if case .decrypted = outcome {
                let decoded = UnsafeRawBufferPointer(target)
                body(decoded.slice(0, metadataBytes), decoded.slice(metadataBytes, decodedBytes - metadataBytes))
            }
            return outcome
        }
        switch outcome {
        case .decrypted: return
        case .erased: throw .bodyErased(position: position)
        case .corrupt(let reason): throw .corrupt(segment.corruption(at: layout.offset, reason))
        }
    }
}
