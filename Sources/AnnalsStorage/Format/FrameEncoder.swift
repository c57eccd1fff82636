#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Writes frames (see `format-spec.md`, "Frames" and "Event records") into a buffer: the
/// writer's staging buffer (``StagedFrames``), whose bytes then go to the segment file in one
/// `pwrite`. Every byte of a frame is written, padding included.
enum FrameEncoder {
    /// Bytes a frame of these events occupies, including padding to the next frame, when the
    /// events `isEncrypted` accepts are encrypted.
    static func alignedFrameBytes(streamNameBytes: Int, events: [EventData], isEncrypted: (Int) -> Bool = { _ in false }) -> Int {
        var total = Format.aligned(FrameLayout.streamName + streamNameBytes)
        for (index, event) in events.enumerated() {
            total += Format.aligned(recordBytes(event) + (isEncrypted(index) ? EncryptedBodyLayout.overheadBytes : 0))
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
        sealed: SealedRecords? = nil,
        continues: Bool = false
    ) -> Int {
        // Encrypted records come sealed (their bodies compressed alone, never against the
        // dictionary), so a frame of encrypted events only is not precompressed.
        let precompressed = sealed?.sealsEveryEvent == true ? nil : compressor?.precompress(events)
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
            let length = sealed?.copy(index, into: buffer, at: cursor)
                ?? writeRecord(into: buffer, at: cursor, event: event, id: ids[index], timestamp: timestamp,
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

    /// Writes one encrypted record (§3.9) and its padding: the header, type and tags as any
    /// record's, then the key number, a fresh nonce, the body (an LZ4 block when `compressor`
    /// makes it smaller) encrypted under `key`, and the tag. Returns its length without padding,
    /// or nil when the cipher refuses (the bytes written are then garbage).
    static func writeEncryptedRecord(
        into buffer: UnsafeMutableRawBufferPointer, at offset: Int, event: EventData, id: UUID, timestamp: Int64, key: DataKey,
        nonce: UnsafeRawBufferPointer, position: UInt64, revision: UInt64, streamName: UnsafeRawBufferPointer,
        compressor: BodyCompressor?, stream: LZ4.WorkingStream?, scratch: inout [UInt8]
    ) -> Int? {
        let bodyOffset = writeHeaderAndNames(into: buffer, at: offset, event: event, id: id, timestamp: timestamp)
        let namesBytes = bodyOffset - offset - Format.eventHeaderBytes
        var flags: UInt16 = Format.recordEncryptedFlag | (event.tags.isEmpty ? 0 : Format.recordTaggedFlag)
        buffer.storeU32(key.id, at: bodyOffset + EncryptedBodyLayout.keyID)
        let bodyBytes = event.metadata.count + event.payload.count
        let sealedBytes = withUnsafeTemporaryAllocation(byteCount: max(bodyBytes, 1), alignment: 8) { plain -> Int? in
            var compressed: Int?
            if let compressor, let stream, bodyBytes >= minimumEncryptedCompressionBytes {
                compressed = compressor.compress(metadata: event.metadata, payload: event.payload,
                                                 into: UnsafeMutableRawBufferPointer(rebasing: plain[0..<(bodyBytes - 1)]),
                                                 stream: stream, scratch: &scratch)
            }
            if compressed != nil {
                flags |= Format.recordCompressedFlag
            } else {
                let cursor = event.metadata.withUnsafeBytes { plain.copy($0, to: 0) }
                _ = event.payload.withUnsafeBytes { plain.copy($0, to: cursor) }
            }
            // The flags are part of the associated data: stored before it is taken.
            buffer.storeU16(flags, at: offset + RecordLayout.flags)
            let plaintext = UnsafeRawBufferPointer(rebasing: plain[0..<(compressed ?? bodyBytes)])
            return EventCipher.withAssociatedData(
                position: position, revision: revision, stream: streamName,
                recordFields: EventCipher.recordFields(of: offset, bodyOffset: bodyOffset, in: UnsafeRawBufferPointer(buffer))
            ) { associatedData in
                EventCipher.seal(plaintext, key: key.key, nonce: nonce, associatedData: associatedData, into: buffer, bodyOffset: bodyOffset)
            }
        }
        guard let plaintextBytes = sealedBytes else { return nil }
        let length = Format.eventHeaderBytes + namesBytes + EncryptedBodyLayout.overheadBytes + plaintextBytes
        buffer.storeU32(UInt32(length), at: offset + RecordLayout.recordLength)
        buffer.zero(offset + length, Format.aligned(length) - length)
        return length
    }

    /// Encrypted bodies smaller than this are stored uncompressed: they compress alone, without
    /// the segment's dictionary, which gains little on small bodies (1.05× on the benchmark's
    /// realistic ~360-byte JSON events), as for raw records before a segment's dictionary.
    static let minimumEncryptedCompressionBytes = 1024

    /// Writes a record's header fields but its length and flags, its type name and its tag
    /// block; returns where its body starts.
    private static func writeHeaderAndNames(
        into buffer: UnsafeMutableRawBufferPointer, at offset: Int, event: EventData, id: UUID, timestamp: Int64
    ) -> Int {
        var type = event.type
        buffer.storeU16(UInt16(type.utf8.count), at: offset + RecordLayout.typeLength)
        buffer.storeU32(UInt32(event.metadata.count), at: offset + RecordLayout.metadataLength)
        buffer.storeU32(UInt32(event.payload.count), at: offset + RecordLayout.payloadLength)
        buffer.storeI64(timestamp, at: offset + RecordLayout.timestamp)
        withUnsafeBytes(of: id.uuid) { _ = buffer.copy($0, to: offset + RecordLayout.eventId) }
        let tagsOffset = type.withUTF8 { buffer.copy(UnsafeRawBufferPointer($0), to: offset + RecordLayout.type) }
        return writeTags(event.tags, into: buffer, at: tagsOffset)
    }

    /// Writes one record (compressed when `compressor` makes it smaller) and its padding;
    /// returns its length without padding.
    private static func writeRecord(
        into buffer: UnsafeMutableRawBufferPointer, at offset: Int, event: EventData, id: UUID, timestamp: Int64,
        compressor: BodyCompressor?, precompressed: PrecompressedBodies?, index: Int
    ) -> Int {
        let typeBytes = event.type.utf8.count
        let bodyBytes = event.metadata.count + event.payload.count
        let bodyOffset = writeHeaderAndNames(into: buffer, at: offset, event: event, id: id, timestamp: timestamp)
        let tagBytes = bodyOffset - offset - RecordLayout.type - typeBytes
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
