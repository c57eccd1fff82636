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

    /// The shared copy of the dictionary frame at `offset` (`dictionary`: its bytes), made on
    /// first use; nil when the process's budget for copies is spent (asked again on a later
    /// read) or the copy is of another dictionary (a compacted segment has several).
    /// Unretained: the segment holds it for its life.
    private func dictionaryCopy(of dictionary: UnsafeRawBufferPointer, at offset: Int) -> Unmanaged<LZ4DictionaryCopy>? {
        if let copy = dictionaryCopy.load(ordering: .acquiring) {
            return copy._withUnsafeGuaranteedRef { $0.dictionaryOffset } == offset ? copy : nil
        }
        guard let made = LZ4DictionaryCopy.make(dictionary: dictionary, at: offset) else { return nil }
        let copy = Unmanaged.passRetained(made)
        let (exchanged, found) = dictionaryCopy.compareExchange(expected: nil, desired: copy, ordering: .acquiringAndReleasing)
        guard exchanged else {
            copy.release() // another thread made one first
            return found.flatMap { $0._withUnsafeGuaranteedRef { $0.dictionaryOffset } == offset ? $0 : nil }
        }
        return copy
    }

    /// Decodes a compressed record's metadata and payload and calls `body` with them (valid
    /// during the call): in this thread's ``LZ4PrefixDecoder`` (`decoder`) when it holds the
    /// record's dictionary, else (when `sharedCopy`) in the output area of the segment's
    /// ``LZ4DictionaryCopy`` when it is free, else in a temporary buffer against the mapping.
    /// False, without calling `body`, when the block does not decode to exactly their size
    /// (corruption, reported by the caller). Scans of whole frames (read-ahead, verification)
    /// pass `sharedCopy: false`: they would make a copy for every segment they pass, for a few
    /// hundred blocks before their thread's decoder takes the dictionary over.
    func withDecodedBody(
        of layout: EventRecordLayout, decoder: LZ4PrefixDecoder = .current, sharedCopy: Bool = true,
        _ body: (UnsafeRawBufferPointer) -> Void
    ) -> Bool {
        let dictionaryOffset = Int(bytes.u32(layout.dictionaryOffsetField))
        let decodedCount = layout.metadataBytes + layout.payloadBytes
        let block = bytes.slice(layout.blockOffset, layout.blockBytes)
        let dictionary = dictionaryOffset == 0 ? nil : dictionaryBytes(at: dictionaryOffset)
        if let dictionary {
            let key = LZ4PrefixDecoder.DictionaryKey(segment: serial, offset: dictionaryOffset)
            if let decoded = decoder.decode(block, decodedCount: decodedCount, dictionary: dictionary, key: key, body) {
                return decoded
            }
            if sharedCopy, let copy = dictionaryCopy(of: dictionary, at: dictionaryOffset),
               let decoded = copy._withUnsafeGuaranteedRef({ $0.decode(block, decodedCount: decodedCount, body) }) {
                return decoded
            }
        }
        // Nothing of `self` is captured: the buffers point into the mapping the caller keeps.
        return withUnsafeTemporaryAllocation(byteCount: max(decodedCount, 1), alignment: 8) { buffer in
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<decodedCount])
            guard LZ4.decompress(block, into: target, dictionary: dictionary) else { return false }
            body(UnsafeRawBufferPointer(target))
            return true
        }
    }
}
