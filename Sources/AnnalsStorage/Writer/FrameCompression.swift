/// The writer's compression state for the active segment: the compressor against the
/// segment's dictionary frame (nil until that frame is written), the standalone compressor for
/// large bodies before it, and the sampler of recent bodies that becomes the next dictionary.
/// Part of ``WriterState``, guarded by the writer lock.
struct FrameCompression {
    /// Compresses bodies against the active segment's dictionary frame (nil: none there yet).
    private(set) var compressor: BodyCompressor?
    /// Compresses large bodies alone while the active segment has no dictionary.
    private let standaloneCompressor = BodyCompressor(dictionary: UnsafeRawBufferPointer(start: nil, count: 0), at: 0)
    /// Recent bodies: the next dictionary.
    private var sampler: DictionarySampler

    /// Continues in `active` with the dictionary frame recovery found at `dictionaryOffset`.
    init(segmentSizeBytes: Int, active: Segment, dictionaryOffset: Int?) {
        sampler = DictionarySampler(segmentSizeBytes: segmentSizeBytes)
        if let dictionaryOffset, active.hasDictionary(at: dictionaryOffset) {
            let dictionary = active.dictionaryBytes(at: dictionaryOffset)
            compressor = BodyCompressor(dictionary: dictionary, at: dictionaryOffset)
            sampler.add(dictionary)
        }
    }

    /// Compresses bodies alone: encrypted bodies, which never use the dictionary.
    var standalone: BodyCompressor { standaloneCompressor }

    /// The compressor for the next frame.
    var current: BodyCompressor { compressor ?? standaloneCompressor }

    /// A new active segment: it has no dictionary frame yet (the sampler keeps what it saw).
    mutating func startSegment() { compressor = nil }

    /// Feeds the bodies just written to the sampler, but those of encrypted events (a dictionary
    /// frame is stored in the clear: it never holds what encryption protects).
    mutating func sample(_ events: [EventData], encrypted keyOwners: [KeyOwner?] = []) {
        guard sampler.dictionaryBytes > 0 else { return }
        for (index, event) in events.enumerated() where keyOwners.isEmpty || keyOwners[index] == nil {
            sampler.add(event.metadata)
            sampler.add(event.payload)
        }
    }

    /// Bytes of the dictionary frame the next append in the active segment writes first: when
    /// the segment has none yet and enough recent bodies were seen. 0 otherwise.
    var dueDictionaryFrameBytes: Int {
        guard compressor == nil, sampler.isReady else { return 0 }
        return Format.aligned(Format.frameHeaderBytes + sampler.dictionaryBytes)
    }

    /// Writes the active segment's dictionary frame at `offset` when it is due and fits before
    /// a frame of `frameBytes`; later records of the segment compress against it. Returns the
    /// bytes written (0 when none).
    ///
    /// - Throws: ``SystemError`` when the write fails (nothing changes here then).
    mutating func writeDictionaryIfDue(
        in segment: Segment, at offset: Int, nextPosition: UInt64, reserving frameBytes: Int
    ) throws(SystemError) -> Int {
        let bytes = dueDictionaryFrameBytes
        guard bytes > 0, offset + bytes + frameBytes <= segment.frameCapacity else { return 0 }
        let dictionary = sampler.dictionary
        var written = 0
        try segment.file.write(at: offset, count: bytes) { target in
            written = dictionary.withUnsafeBytes {
                FrameEncoder.writeDictionaryFrame(into: target, at: 0, nextPosition: nextPosition, dictionary: $0)
            }
        }
        compressor = BodyCompressor(dictionary: segment.dictionaryBytes(at: offset), at: offset)
        return written
    }
}
