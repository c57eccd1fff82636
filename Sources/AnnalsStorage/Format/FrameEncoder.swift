#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Writes frames (see `format-spec.md`, "Frames" and "Event records") straight into the
/// segment mapping: one copy of each payload, no intermediate buffer.
enum FrameEncoder {
    /// Bytes a frame of these events occupies, including padding to the next frame.
    static func alignedFrameBytes(streamNameBytes: Int, events: [EventData]) -> Int {
        var total = Format.aligned(Format.frameHeaderBytes + streamNameBytes)
        for event in events {
            total += Format.aligned(recordBytes(event))
        }
        return total
    }

    @inline(__always)
    static func recordBytes(_ event: EventData) -> Int {
        Format.eventHeaderBytes + event.type.utf8.count + event.metadata.count + event.payload.count
    }

    /// Writes an events frame at `offset` and returns its aligned size. The caller has checked
    /// that `alignedFrameBytes` fit. The checksum is computed last, over the mapped bytes.
    static func writeEventsFrame(
        into buffer: UnsafeMutableRawBufferPointer,
        at offset: Int,
        stream: String,
        firstPosition: UInt64,
        firstRevision: UInt64,
        events: [EventData],
        ids: [UUID],
        timestamp: Int64
    ) -> Int {
        var stream = stream
        let nameBytes = stream.withUTF8 { name in
            buffer.copy(UnsafeRawBufferPointer(name), to: offset + Format.frameHeaderBytes) - offset - Format.frameHeaderBytes
        }
        var cursor = offset + Format.frameHeaderBytes + nameBytes
        let recordsStart = offset + Format.aligned(Format.frameHeaderBytes + nameBytes)
        buffer.zero(cursor, recordsStart - cursor)
        cursor = recordsStart
        for (index, event) in events.enumerated() {
            cursor = writeRecord(into: buffer, at: cursor, event: event, id: ids[index], timestamp: timestamp)
        }
        // `cursor` is the aligned end of the last record; the frame length excludes its padding.
        let lastRecordBytes = recordBytes(events[events.count - 1])
        let frameLength = cursor - Format.aligned(lastRecordBytes) + lastRecordBytes - offset
        buffer.storeU32(UInt32(frameLength), at: offset + 4)
        buffer.storeU8(Format.FrameKind.events.rawValue, at: offset + 8)
        buffer.storeU8(0, at: offset + 9)
        buffer.storeU16(UInt16(nameBytes), at: offset + 10)
        buffer.storeU32(UInt32(events.count), at: offset + 12)
        buffer.storeU64(firstPosition, at: offset + 16)
        buffer.storeU64(firstRevision, at: offset + 24)
        let checksum = CRC32C.checksum(UnsafeRawBufferPointer(buffer).slice(offset + 4, frameLength - 4))
        buffer.storeU32(checksum, at: offset)
        return cursor - offset
    }

    private static func writeRecord(
        into buffer: UnsafeMutableRawBufferPointer, at offset: Int, event: EventData, id: UUID, timestamp: Int64
    ) -> Int {
        var type = event.type
        let typeBytes = type.utf8.count
        let length = Format.eventHeaderBytes + typeBytes + event.metadata.count + event.payload.count
        buffer.storeU32(UInt32(length), at: offset)
        buffer.storeU16(UInt16(typeBytes), at: offset + 4)
        buffer.storeU16(0, at: offset + 6)
        buffer.storeU32(UInt32(event.metadata.count), at: offset + 8)
        buffer.storeU32(UInt32(event.payload.count), at: offset + 12)
        buffer.storeI64(timestamp, at: offset + 16)
        withUnsafeBytes(of: id.uuid) { _ = buffer.copy($0, to: offset + 24) }
        var cursor = type.withUTF8 { buffer.copy(UnsafeRawBufferPointer($0), to: offset + Format.eventHeaderBytes) }
        cursor = event.metadata.withUnsafeBytes { buffer.copy($0, to: cursor) }
        cursor = event.payload.withUnsafeBytes { buffer.copy($0, to: cursor) }
        let end = offset + Format.aligned(length)
        buffer.zero(cursor, end - cursor)
        return end
    }

    /// Writes a seal frame (the last frame of a segment) and returns its size.
    static func writeSealFrame(into buffer: UnsafeMutableRawBufferPointer, at offset: Int, nextPosition: UInt64) -> Int {
        buffer.zero(offset, Format.sealFrameBytes)
        buffer.storeU32(UInt32(Format.sealFrameBytes), at: offset + 4)
        buffer.storeU8(Format.FrameKind.seal.rawValue, at: offset + 8)
        buffer.storeU64(nextPosition, at: offset + 16)
        let checksum = CRC32C.checksum(UnsafeRawBufferPointer(buffer).slice(offset + 4, Format.sealFrameBytes - 4))
        buffer.storeU32(checksum, at: offset)
        return Format.sealFrameBytes
    }
}
