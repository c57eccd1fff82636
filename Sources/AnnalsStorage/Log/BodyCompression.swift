/// Whether a store compresses the events it appends.
public enum Compression: Sendable, Hashable {
    /// Events are stored as given.
    case none
    /// Each event's metadata and payload are stored as one LZ4 block against a dictionary of
    /// recent events kept in the segment (about 2.4× on realistic JSON events; each event still
    /// decodes alone). Bodies that do not shrink are stored raw. The default.
    case lz4
}

/// The writer's compressor for the active segment: LZ4 blocks against the segment's
/// dictionary frame, or standalone blocks for large bodies before that frame exists. Used
/// under the store's lock only.
final class BodyCompressor: @unchecked Sendable {
    /// Offset of the dictionary frame in the active segment; 0 for standalone blocks.
    let dictionaryOffset: Int
    /// Bodies smaller than this are not worth a compression attempt.
    let minimumBodyBytes: Int
    private let lz4: LZ4.BlockCompressor
    private var scratch: [UInt8] = []

    init(dictionary: UnsafeRawBufferPointer, at offset: Int) {
        dictionaryOffset = offset
        minimumBodyBytes = offset == 0 ? 1024 : 32
        lz4 = LZ4.BlockCompressor(dictionary: dictionary)
    }

    /// Compresses metadata followed by payload into `target`; nil when the block would not fit
    /// in `target` (the caller stores the body raw).
    func compress(metadata: [UInt8], payload: [UInt8], into target: UnsafeMutableRawBufferPointer) -> Int? {
        guard !metadata.isEmpty else {
            return payload.withUnsafeBytes { lz4.compress($0, into: target) }
        }
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: metadata)
        scratch.append(contentsOf: payload)
        return scratch.withUnsafeBytes { lz4.compress($0, into: target) }
    }
}

/// The most recent event bodies the writer appended, from which the next segment's
/// dictionary is taken.
struct DictionarySampler {
    /// Bytes a dictionary takes (0: the segments are too small for dictionaries).
    let dictionaryBytes: Int
    private var recent: [UInt8] = []

    init(segmentSizeBytes: Int) {
        let size = min(Format.maximumDictionaryBytes, (segmentSizeBytes / 16) & ~(Format.frameAlignment - 1))
        dictionaryBytes = size >= Format.minimumDictionaryBytes ? size : 0
    }

    /// True once a full dictionary's worth of bodies was seen.
    var isReady: Bool { dictionaryBytes > 0 && recent.count >= dictionaryBytes }

    mutating func add(_ bytes: [UInt8]) {
        guard dictionaryBytes > 0 else { return }
        recent.append(contentsOf: bytes.suffix(dictionaryBytes))
        if recent.count > 2 * dictionaryBytes { recent.removeFirst(recent.count - dictionaryBytes) }
    }

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        guard dictionaryBytes > 0 else { return }
        recent.append(contentsOf: bytes.suffix(dictionaryBytes))
        if recent.count > 2 * dictionaryBytes { recent.removeFirst(recent.count - dictionaryBytes) }
    }

    /// The dictionary: the last ``dictionaryBytes`` bytes seen, most recent last (LZ4 reaches
    /// the end of a dictionary with the shortest offsets).
    var dictionary: ArraySlice<UInt8> { recent.suffix(dictionaryBytes) }
}
