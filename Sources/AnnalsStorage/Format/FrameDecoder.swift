/// The fixed fields of a frame, read from a segment and checked.
struct FrameHeader: Sendable {
    /// Offset of the frame in its segment.
    let offset: Int
    /// Frame length without trailing padding.
    let length: Int
    let kind: Format.FrameKind
    let streamNameBytes: Int
    let eventCount: Int
    /// For an events frame, the first event's position; for a seal, the next segment's first.
    let firstPosition: UInt64
    let firstRevision: UInt64
    /// An events frame of a multi-stream append whose next events frame belongs to the same
    /// append (§3.1): the group is whole only with its last frame.
    var continues: Bool = false

    /// Offset of the next frame.
    var end: Int { offset + Format.aligned(length) }
    /// Offset of the first event record.
    var recordsOffset: Int { offset + Format.aligned(FrameLayout.streamName + streamNameBytes) }
    /// Position after the last event of this frame.
    var nextPosition: UInt64 { firstPosition + UInt64(eventCount) }
}

/// The layout of one event record inside a checked frame.
struct EventRecordLayout: Sendable {
    let offset: Int
    /// Record length without padding, as stored.
    let length: Int
    let typeBytes: Int
    /// Bytes of the tag block after the type name (0: no tags).
    let tagBytes: Int
    /// Decoded sizes: the same whether the record is stored raw or compressed.
    let metadataBytes: Int
    let payloadBytes: Int
    /// True when metadata and payload are stored as one LZ4 block in the clear (§3.2).
    let isCompressed: Bool
    /// True when the body is encrypted (§3.9): key number, nonce, ciphertext, tag.
    let isEncrypted: Bool
    /// An encrypted record whose plaintext is an LZ4 block (without a dictionary).
    let isEncryptedCompressed: Bool

    var typeOffset: Int { offset + RecordLayout.type }
    /// The tag block (when `tagBytes` > 0).
    var tagsOffset: Int { typeOffset + typeBytes }
    /// Raw record: metadata then payload. Compressed: the dictionary offset, then the block.
    var bodyOffset: Int { tagsOffset + tagBytes }
    /// Raw record only: where the metadata and payload bytes are.
    var metadataOffset: Int { bodyOffset }
    var payloadOffset: Int { bodyOffset + metadataBytes }
    /// Compressed record only: the u32 offset of the dictionary frame its block needs (0: none).
    var dictionaryOffsetField: Int { bodyOffset + CompressedBodyLayout.dictionaryOffset }
    /// Compressed record only: the LZ4 block.
    var blockOffset: Int { bodyOffset + CompressedBodyLayout.block }
    var blockBytes: Int { offset + length - blockOffset }
    /// Encrypted record only: the u32 key number.
    var keyIDField: Int { bodyOffset + EncryptedBodyLayout.keyID }
    /// Encrypted record only: bytes of ciphertext (the plaintext's size).
    var ciphertextBytes: Int { length - (bodyOffset - offset) - EncryptedBodyLayout.overheadBytes }
    /// The record's commit timestamp, read from `bytes` (the segment it lies in).
    func timestamp(in bytes: UnsafeRawBufferPointer) -> Int64 { bytes.i64(offset + RecordLayout.timestamp) }
    var end: Int { offset + Format.aligned(length) }
}

/// Reads frames back: finds the end of data, checks checksums and structure. Every length read
/// from disk is checked against the bounds it must lie in before it is used.
enum FrameDecoder {
    enum Probe {
        /// A well-formed frame whose checksum matches.
        case frame(FrameHeader)
        /// Zero bytes where the next frame would start: the end of written data.
        case endOfData
        /// Bytes that are not a valid frame and whose checksum does not vouch for them (a torn
        /// write or corruption; which one depends on where they are, §3.4).
        case invalid(String)
        /// A frame whose checksum matches but whose fields are wrong: corruption wherever it
        /// is, since a torn write cannot produce a matching checksum.
        case malformed(String)
    }

    /// Looks at the frame starting at `offset`. With `verifyChecksum` the CRC is checked too,
    /// and a frame whose checksum matches but whose fields are wrong is ``Probe/malformed(_:)``.
    /// Frames must end by `limit` (the end of the segment's frame area; default: the bytes' end).
    static func probe(_ bytes: UnsafeRawBufferPointer, at offset: Int, verifyChecksum: Bool = true, limit: Int? = nil) -> Probe {
        let end = min(limit ?? bytes.count, bytes.count)
        guard offset >= 0, offset <= end - Format.frameHeaderBytes else {
            // Fewer than 32 bytes of frame area left: zero, or bytes no frame can be.
            let left = offset >= 0 && offset < end ? bytes.slice(offset, end - offset) : UnsafeRawBufferPointer(start: nil, count: 0)
            return left.isAllZero() ? .endOfData : .invalid("frame header past end of segment")
        }
        let length = Int(bytes.u32(offset + FrameLayout.length))
        if length == 0 {
            return bytes.u32(offset + FrameLayout.checksum) == 0 && bytes.slice(offset, Format.frameHeaderBytes).isAllZero()
                ? .endOfData : .invalid("zero frame length with non-zero header")
        }
        guard length >= Format.frameHeaderBytes, length <= end - offset else {
            return .invalid("frame length \(length) out of range")
        }
        if verifyChecksum {
            guard checksum(ofFrameAt: offset, length: length, in: bytes) == bytes.u32(offset + FrameLayout.checksum) else {
                return .invalid("frame checksum mismatch")
            }
        }
        let bad: (String) -> Probe = verifyChecksum ? { .malformed($0) } : { .invalid($0) }
        let kindValue = bytes.u8(offset + FrameLayout.kind)
        guard let kind = Format.FrameKind(rawValue: kindValue) else { return bad("unknown frame kind \(kindValue)") }
        let flags = bytes.u8(offset + FrameLayout.flags)
        guard flags == 0 || (kind == .events && flags == Format.frameContinuedFlag) else {
            return bad("frame flags \(flags); must be 0" + (kind == .events ? " or 1" : ""))
        }
        let header = FrameHeader(
            offset: offset, length: length, kind: kind,
            streamNameBytes: Int(bytes.u16(offset + FrameLayout.streamNameLength)),
            eventCount: Int(bytes.u32(offset + FrameLayout.eventCount)),
            firstPosition: bytes.u64(offset + FrameLayout.firstPosition),
            firstRevision: bytes.u64(offset + FrameLayout.firstRevision),
            continues: flags == Format.frameContinuedFlag
        )
        switch kind {
        case .seal:
            guard length == Format.sealFrameBytes, header.eventCount == 0, header.streamNameBytes == 0, header.firstRevision == 0 else {
                return bad("malformed seal frame")
            }
        case .events:
            guard header.eventCount >= 1, header.streamNameBytes >= 1, header.streamNameBytes <= StoreLimits.maximumStreamNameBytes,
                  FrameLayout.streamName + header.streamNameBytes <= length
            else { return bad("malformed events frame header") }
        case .dictionary:
            guard header.eventCount == 0, header.streamNameBytes == 0, header.firstRevision == 0,
                  length > Format.frameHeaderBytes, length - Format.frameHeaderBytes <= Format.maximumDictionaryBytes
            else { return bad("malformed dictionary frame") }
        }
        return .frame(header)
    }

    /// The CRC-32C a frame's checksum field must hold: of the frame's `length` bytes from the
    /// `length` field on (§3.1).
    @inline(__always)
    static func checksum(ofFrameAt offset: Int, length: Int, in bytes: UnsafeRawBufferPointer) -> UInt32 {
        CRC32C.checksum(bytes.slice(offset + FrameLayout.length, length - FrameLayout.length))
    }

    /// Walks the records of a checksummed events frame and checks that their lengths are
    /// consistent and exactly fill the frame, and that every compressed record names a
    /// dictionary `isDictionary` accepts (offset 0: none). After this, ``record(at:in:)`` may
    /// read them without further checks. Allocates nothing.
    /// A version-1 segment (`allowsCompression` false) may hold no compressed record.
    static func validateRecords(
        of frame: FrameHeader, in bytes: UnsafeRawBufferPointer, allowsCompression: Bool = true, isDictionary: (Int) -> Bool
    ) -> CorruptionReason? {
        let frameEnd = frame.offset + frame.length
        var cursor = frame.recordsOffset
        for index in 0..<frame.eventCount {
            guard cursor <= frameEnd, frameEnd - cursor >= Format.eventHeaderBytes else {
                return CorruptionReason(offset: cursor, "event record \(index) past end of frame")
            }
            let flags = bytes.u16(cursor + RecordLayout.flags)
            guard flags & ~(Format.recordCompressedFlag | Format.recordTaggedFlag | Format.recordEncryptedFlag) == 0 else {
                return CorruptionReason(offset: cursor, "event record \(index) has unknown flags \(flags)")
            }
            if flags & Format.recordTaggedFlag != 0 {
                if let problem = validateTags(ofRecordAt: cursor, index: index, in: bytes, recordEnd: frameEnd, allowsTags: allowsCompression) {
                    return problem
                }
            }
            let layout = record(at: cursor, in: bytes)
            guard allowsCompression || (!layout.isCompressed && !layout.isEncrypted) else {
                return CorruptionReason(offset: cursor, "compressed event record \(index) in a version-1 segment")
            }
            guard layout.length >= Format.eventHeaderBytes, layout.length <= frameEnd - cursor else {
                return CorruptionReason(offset: cursor, "event record \(index) has inconsistent lengths")
            }
            if layout.isEncrypted {
                let decoded = layout.metadataBytes + layout.payloadBytes
                let headerBytes = Format.eventHeaderBytes + layout.typeBytes + layout.tagBytes + EncryptedBodyLayout.overheadBytes
                guard layout.length >= headerBytes else {
                    return CorruptionReason(offset: cursor, "encrypted event record \(index) has inconsistent lengths")
                }
                let ciphertext = layout.length - headerBytes
                let consistent = layout.isEncryptedCompressed
                    ? ciphertext >= 1 && decoded > 0 && decoded <= LZ4.maximumInputBytes && decoded <= ciphertext * LZ4.maximumExpansion
                    : ciphertext == decoded
                guard consistent else { return CorruptionReason(offset: cursor, "encrypted event record \(index) has inconsistent lengths") }
            } else if layout.isCompressed {
                let decoded = layout.metadataBytes + layout.payloadBytes
                let headerBytes = Format.eventHeaderBytes + layout.typeBytes + layout.tagBytes + Format.compressedBodyHeaderBytes
                guard layout.length > headerBytes, decoded > 0, decoded <= LZ4.maximumInputBytes,
                      decoded <= (layout.length - headerBytes) * LZ4.maximumExpansion
                else { return CorruptionReason(offset: cursor, "compressed event record \(index) has inconsistent lengths") }
                let dictionaryOffset = Int(bytes.u32(layout.dictionaryOffsetField))
                guard dictionaryOffset == 0 || (dictionaryOffset < frame.offset && isDictionary(dictionaryOffset)) else {
                    return CorruptionReason(offset: cursor, "compressed event record \(index): no valid dictionary frame at offset \(dictionaryOffset)")
                }
            } else if Format.eventHeaderBytes + layout.typeBytes + layout.tagBytes + layout.metadataBytes + layout.payloadBytes != layout.length {
                return CorruptionReason(offset: cursor, "event record \(index) has inconsistent lengths")
            }
            if index == frame.eventCount - 1, cursor + layout.length != frameEnd {
                return CorruptionReason(offset: cursor, "last event record does not end the frame")
            }
            cursor = layout.end
        }
        return nil
    }

    /// Checks the tag block of a tagged record before anything reads it: a count of 1 to
    /// ``StoreLimits/maximumTagsPerEvent``, lengths of 1 to ``StoreLimits/maximumTagBytes``, all
    /// inside the record, which must end after the block. `recordEnd` bounds the record (its
    /// frame's end) until its own length is checked.
    static func validateTags(
        ofRecordAt offset: Int, index: Int, in bytes: UnsafeRawBufferPointer, recordEnd: Int, allowsTags: Bool
    ) -> CorruptionReason? {
        guard allowsTags else { return CorruptionReason(offset: offset, "tagged event record \(index) in a version-1 segment") }
        let length = Int(bytes.u32(offset + RecordLayout.recordLength))
        let end = min(recordEnd, offset + length)
        let start = offset + RecordLayout.type + Int(bytes.u16(offset + RecordLayout.typeLength))
        guard start + TagBlockLayout.size <= end else { return CorruptionReason(offset: offset, "event record \(index): tag block past its end") }
        let count = Int(bytes.u16(start + TagBlockLayout.tagCount))
        guard count >= 1, count <= StoreLimits.maximumTagsPerEvent else {
            return CorruptionReason(offset: offset, "event record \(index) has \(count) tags")
        }
        var cursor = start + TagBlockLayout.firstTag
        for _ in 0..<count {
            guard cursor + TagBlockLayout.tagLengthBytes <= end else { return CorruptionReason(offset: offset, "event record \(index): tag past its end") }
            let tagBytes = Int(bytes.u16(cursor))
            guard tagBytes >= 1, tagBytes <= StoreLimits.maximumTagBytes, cursor + TagBlockLayout.tagLengthBytes + tagBytes <= end else {
                return CorruptionReason(offset: offset, "event record \(index) has a tag of \(tagBytes) bytes")
            }
            cursor += TagBlockLayout.tagLengthBytes + tagBytes
        }
        return nil
    }

    /// Bytes of the tag block of the record at `offset` (0 when untagged), whose block passed
    /// ``validateTags(ofRecordAt:index:in:recordEnd:allowsTags:)``.
    @inline(__always)
    static func tagBlockBytes(ofRecordAt offset: Int, in bytes: UnsafeRawBufferPointer) -> Int {
        guard bytes.u16(offset + RecordLayout.flags) & Format.recordTaggedFlag != 0 else { return 0 }
        let start = offset + RecordLayout.type + Int(bytes.u16(offset + RecordLayout.typeLength))
        var cursor = start + TagBlockLayout.firstTag
        for _ in 0..<Int(bytes.u16(start + TagBlockLayout.tagCount)) {
            cursor += TagBlockLayout.tagLengthBytes + Int(bytes.u16(cursor))
        }
        return cursor - start
    }

    /// The layout of the record at `offset` of a frame that passed ``validateRecords(of:in:isDictionary:)``.
    @inline(__always)
    static func record(at offset: Int, in bytes: UnsafeRawBufferPointer) -> EventRecordLayout {
        let flags = bytes.u16(offset + RecordLayout.flags)
        return EventRecordLayout(
            offset: offset,
            length: Int(bytes.u32(offset + RecordLayout.recordLength)),
            typeBytes: Int(bytes.u16(offset + RecordLayout.typeLength)),
            tagBytes: tagBlockBytes(ofRecordAt: offset, in: bytes),
            metadataBytes: Int(bytes.u32(offset + RecordLayout.metadataLength)),
            payloadBytes: Int(bytes.u32(offset + RecordLayout.payloadLength)),
            isCompressed: flags & (Format.recordCompressedFlag | Format.recordEncryptedFlag) == Format.recordCompressedFlag,
            isEncrypted: flags & Format.recordEncryptedFlag != 0,
            isEncryptedCompressed: flags & (Format.recordCompressedFlag | Format.recordEncryptedFlag)
                == Format.recordCompressedFlag | Format.recordEncryptedFlag
        )
    }

    /// Calls `body` with the UTF-8 bytes of each tag of a record of a validated frame, in the
    /// order written, until it returns false. Returns false when `body` stopped it.
    @discardableResult
    static func forEachTag(
        of layout: EventRecordLayout, in bytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> Bool
    ) -> Bool {
        guard layout.tagBytes > 0 else { return true }
        var cursor = layout.tagsOffset + TagBlockLayout.firstTag
        for _ in 0..<Int(bytes.u16(layout.tagsOffset + TagBlockLayout.tagCount)) {
            let length = Int(bytes.u16(cursor))
            guard body(bytes.slice(cursor + TagBlockLayout.tagLengthBytes, length)) else { return false }
            cursor += TagBlockLayout.tagLengthBytes + length
        }
        return true
    }

    /// The tags of a record of a validated frame, in the order written.
    static func tags(of layout: EventRecordLayout, in bytes: UnsafeRawBufferPointer) -> [String] {
        var tags: [String] = []
        forEachTag(of: layout, in: bytes) { tag in
            tags.append(String(decoding: tag, as: UTF8.self))
            return true
        }
        return tags
    }
}

/// A structural problem at an offset, before it is tied to a file path.
struct CorruptionReason: Error {
    let offset: Int
    let reason: String
    init(offset: Int, _ reason: String) {
        self.offset = offset
        self.reason = reason
    }
}
