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
        var total = Format.aligned(FrameLayout.streamName + streamNameBytes)
        for event in events {
            total += Format.aligned(recordBytes(event))
        }
        return total
    }

    @inline(__always)
    static func recordBytes(_ event: EventData) -> Int {
        Format.eventHeaderBytes + event.type.utf8.count + TagBlockLayout.bytes(event.tags) + event.metadata.count + event.payload.count
    }

    /// Writes an events frame at `offset` and returns its aligned size, which is at most
    /// `alignedFrameBytes` (compressed records are smaller). The caller has checked that
    /// `alignedFrameBytes` fit. The checksum is computed last, over the mapped bytes.
    static func writeEventsFrame(
        into buffer: UnsafeMutableRawBufferPointer,
        at offset: Int,
        stream: String,
        firstPosition: UInt64,
        firstRevision: UInt64,
        events: [EventData],
        ids: [UUID],
        timestamp: Int64,
        compressor: BodyCompressor? = nil,
        continues: Bool = false
    ) -> Int {
        let precompressed = compressor?.precompress(events)
        var stream = stream
        let nameBytes = stream.withUTF8 { name in
            buffer.copy(UnsafeRawBufferPointer(name), to: offset + FrameLayout.streamName) - offset - FrameLayout.streamName
        }
        var cursor = offset + FrameLayout.streamName + nameBytes
        let recordsStart = offset + Format.aligned(FrameLayout.streamName + nameBytes)
        buffer.zero(cursor, recordsStart - cursor)
        cursor = recordsStart
        var frameLength = 0
        for (index, event) in events.enumerated() {
            let length = writeRecord(into: buffer, at: cursor, event: event, id: ids[index], timestamp: timestamp,
                                     compressor: compressor, precompressed: precompressed, index: index)
            frameLength = cursor + length - offset // the frame length excludes the last record's padding
            cursor += Format.aligned(length)
        }
        buffer.storeU32(UInt32(frameLength), at: offset + FrameLayout.length)
        buffer.storeU8(Format.FrameKind.events.rawValue, at: offset + FrameLayout.kind)
        buffer.storeU8(continues ? Format.frameContinuedFlag : 0, at: offset + FrameLayout.flags)
        buffer.storeU16(UInt16(nameBytes), at: offset + FrameLayout.streamNameLength)
        buffer.storeU32(UInt32(events.count), at: offset + FrameLayout.eventCount)
        buffer.storeU64(firstPosition, at: offset + FrameLayout.firstPosition)
        buffer.storeU64(firstRevision, at: offset + FrameLayout.firstRevision)
        storeChecksum(ofFrameAt: offset, length: frameLength, in: buffer)
        return cursor - offset
    }

    /// Writes one record (compressed when `compressor` makes it smaller) and its padding;
    /// returns its length without padding.
    private static func writeRecord(
        into buffer: UnsafeMutableRawBufferPointer, at offset: Int, event: EventData, id: UUID, timestamp: Int64,
        compressor: BodyCompressor?, precompressed: PrecompressedBodies?, index: Int
    ) -> Int {
        var type = event.type
        let typeBytes = type.utf8.count
        let bodyBytes = event.metadata.count + event.payload.count
        buffer.storeU16(UInt16(typeBytes), at: offset + RecordLayout.typeLength)
        buffer.storeU32(UInt32(event.metadata.count), at: offset + RecordLayout.metadataLength)
        buffer.storeU32(UInt32(event.payload.count), at: offset + RecordLayout.payloadLength)
        buffer.storeI64(timestamp, at: offset + RecordLayout.timestamp)
        withUnsafeBytes(of: id.uuid) { _ = buffer.copy($0, to: offset + RecordLayout.eventId) }
        let tagsOffset = type.withUTF8 { buffer.copy(UnsafeRawBufferPointer($0), to: offset + RecordLayout.type) }
        let bodyOffset = writeTags(event.tags, into: buffer, at: tagsOffset)
        let tagBytes = bodyOffset - tagsOffset
        var length = Format.eventHeaderBytes + typeBytes + tagBytes + bodyBytes
        var flags: UInt16 = tagBytes > 0 ? Format.recordTaggedFlag : 0
        // The block must leave the record strictly smaller than the raw one, header included.
        let blockCapacity = bodyBytes - Format.compressedBodyHeaderBytes - 1
        let blockBytes: Int?
        if let precompressed {
            blockBytes = precompressed.withBlock(of: index) { block in
                block.map { buffer.copy($0, to: bodyOffset + CompressedBodyLayout.block) - bodyOffset - CompressedBodyLayout.block }
            }
        } else if let compressor, bodyBytes >= compressor.minimumBodyBytes {
            blockBytes = compressor.compress(
                metadata: event.metadata, payload: event.payload,
                into: buffer.mutableSlice(bodyOffset + CompressedBodyLayout.block, blockCapacity))
        } else {
            blockBytes = nil
        }
        if let compressor, let blockBytes {
            buffer.storeU32(UInt32(compressor.dictionaryOffset), at: bodyOffset + CompressedBodyLayout.dictionaryOffset)
            length = Format.eventHeaderBytes + typeBytes + tagBytes + Format.compressedBodyHeaderBytes + blockBytes
            flags |= Format.recordCompressedFlag
        } else {
            let cursor = event.metadata.withUnsafeBytes { buffer.copy($0, to: bodyOffset) }
            _ = event.payload.withUnsafeBytes { buffer.copy($0, to: cursor) }
        }
        buffer.storeU32(UInt32(length), at: offset + RecordLayout.recordLength)
        buffer.storeU16(flags, at: offset + RecordLayout.flags)
        buffer.zero(offset + length, Format.aligned(length) - length)
        return length
    }

    /// Writes the tag block (§3.2) of `tags` at `offset`, nothing when there are none; returns
    /// where the record's body starts.
    private static func writeTags(_ tags: [String], into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        guard !tags.isEmpty else { return offset }
        buffer.storeU16(UInt16(tags.count), at: offset + TagBlockLayout.tagCount)
        var cursor = offset + TagBlockLayout.firstTag
        for tag in tags {
            var tag = tag
            let written = tag.withUTF8 { buffer.copy(UnsafeRawBufferPointer($0), to: cursor + TagBlockLayout.tagLengthBytes) }
            buffer.storeU16(UInt16(written - cursor - TagBlockLayout.tagLengthBytes), at: cursor)
            cursor = written
        }
        return cursor
    }

    /// Writes a dictionary frame holding `dictionary` and returns its aligned size.
    static func writeDictionaryFrame(
        into buffer: UnsafeMutableRawBufferPointer, at offset: Int, nextPosition: UInt64, dictionary: UnsafeRawBufferPointer
    ) -> Int {
        let length = Format.frameHeaderBytes + dictionary.count
        buffer.zero(offset, Format.frameHeaderBytes)
        _ = buffer.copy(dictionary, to: offset + Format.frameHeaderBytes)
        buffer.zero(offset + length, Format.aligned(length) - length)
        buffer.storeU32(UInt32(length), at: offset + FrameLayout.length)
        buffer.storeU8(Format.FrameKind.dictionary.rawValue, at: offset + FrameLayout.kind)
        buffer.storeU64(nextPosition, at: offset + FrameLayout.firstPosition)
        storeChecksum(ofFrameAt: offset, length: length, in: buffer)
        return Format.aligned(length)
    }

    /// Writes a seal frame (the last frame of a segment) and returns its size.
    static func writeSealFrame(into buffer: UnsafeMutableRawBufferPointer, at offset: Int, nextPosition: UInt64) -> Int {
        buffer.zero(offset, Format.sealFrameBytes)
        buffer.storeU32(UInt32(Format.sealFrameBytes), at: offset + FrameLayout.length)
        buffer.storeU8(Format.FrameKind.seal.rawValue, at: offset + FrameLayout.kind)
        buffer.storeU64(nextPosition, at: offset + FrameLayout.firstPosition)
        storeChecksum(ofFrameAt: offset, length: Format.sealFrameBytes, in: buffer)
        return Format.sealFrameBytes
    }

    /// Computes the checksum of the frame of `length` bytes at `offset`, whose other fields are
    /// written, and stores it: the last write of a frame.
    static func storeChecksum(ofFrameAt offset: Int, length: Int, in buffer: UnsafeMutableRawBufferPointer) {
        let checksum = FrameDecoder.checksum(ofFrameAt: offset, length: length, in: UnsafeRawBufferPointer(buffer))
        buffer.storeU32(checksum, at: offset + FrameLayout.checksum)
    }
}
