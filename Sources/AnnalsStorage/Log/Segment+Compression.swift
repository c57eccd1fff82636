/// Compressed records and the dictionary frames they name (see `format-spec.md`, "Compression").
extension Segment {
    /// True when a valid dictionary frame (checksum verified) starts at `offset`. The check
    /// runs once per dictionary; later calls cost one atomic load.
    func hasDictionary(at offset: Int) -> Bool {
        if offset > 0, verifiedDictionaryOffset.load(ordering: .acquiring) == offset { return true }
        if isCompacted, verifiedDictionaries.withLock({ $0.contains(offset) }) {
            verifiedDictionaryOffset.store(offset, ordering: .releasing)
            return true
        }
        guard offset >= Format.segmentHeaderBytes, offset % Format.frameAlignment == 0,
              case .frame(let frame) = probe(at: offset, verifyChecksum: true),
              frame.kind == .dictionary
        else { return false }
        if isCompacted { verifiedDictionaries.withLock { _ = $0.insert(offset) } }
        verifiedDictionaryOffset.store(offset, ordering: .releasing)
        return true
    }

    /// The bytes of the dictionary frame at `offset`, which ``hasDictionary(at:)`` accepted.
    func dictionaryBytes(at offset: Int) -> UnsafeRawBufferPointer {
        bytes.slice(offset + Format.frameHeaderBytes, Int(bytes.u32(offset + FrameLayout.length)) - Format.frameHeaderBytes)
    }

    /// Checks the records of an events frame whose checksum matched (see
    /// `FrameDecoder.validateRecords`), including the dictionaries they name.
    func validateRecords(of frame: FrameHeader) -> CorruptionReason? {
        FrameDecoder.validateRecords(of: frame, in: bytes, allowsCompression: allowsCompression) { hasDictionary(at: $0) }
    }

    /// Decodes a compressed record's metadata and payload into `target` (exactly their size).
    /// False when the block does not decode to exactly that many bytes: corruption that the
    /// frame checksum did not catch, reported by the caller, never returned as data.
    func decodeBody(of layout: EventRecordLayout, into target: UnsafeMutableRawBufferPointer) -> Bool {
        let dictionaryOffset = Int(bytes.u32(layout.dictionaryOffsetField))
        let block = bytes.slice(layout.blockOffset, layout.blockBytes)
        return LZ4.decompress(block, into: target, dictionary: dictionaryOffset == 0 ? nil : dictionaryBytes(at: dictionaryOffset))
    }
}
