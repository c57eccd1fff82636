import CLZ4

/// LZ4 block compression through the system `liblz4`, with an optional dictionary (the
/// format Python's `lz4.block` reads with `dict=`). Decoding is bounds-checked
/// (`LZ4_decompress_safe*`): corrupt input fails, it never reads or writes out of bounds.
enum LZ4 {
    /// Compresses `source` with the block API. Returns nil when the result would not be smaller
    /// than `source` (the caller then stores the bytes raw).
    static func compress(_ source: UnsafeRawBufferPointer, dictionary: UnsafeRawBufferPointer? = nil) -> [UInt8]? {
        guard source.count > 0, source.count <= Int(LZ4_MAX_INPUT_SIZE) else { return nil }
        let bound = Int(LZ4_compressBound(Int32(source.count)))
        var output = [UInt8](repeating: 0, count: bound)
        let written: Int32 = output.withUnsafeMutableBytes { target in
            let sourcePointer = source.baseAddress!.assumingMemoryBound(to: CChar.self)
            let targetPointer = target.baseAddress!.assumingMemoryBound(to: CChar.self)
            guard let dictionary, dictionary.count > 0 else {
                return LZ4_compress_default(sourcePointer, targetPointer, Int32(source.count), Int32(bound))
            }
            guard let stream = LZ4_createStream() else { return 0 }
            defer { LZ4_freeStream(stream) }
            LZ4_loadDict(stream, dictionary.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(dictionary.count))
            return LZ4_compress_fast_continue(stream, sourcePointer, targetPointer, Int32(source.count), Int32(bound), 1)
        }
        guard written > 0, Int(written) < source.count else { return nil }
        return Array(output.prefix(Int(written)))
    }

    /// Decompresses a block into exactly `decodedCount` bytes. Returns nil when the input is
    /// not a valid block of that size (corruption).
    static func decompress(
        _ source: UnsafeRawBufferPointer, decodedCount: Int, dictionary: UnsafeRawBufferPointer? = nil
    ) -> [UInt8]? {
        guard decodedCount >= 0, decodedCount <= Int(LZ4_MAX_INPUT_SIZE), source.count > 0,
              source.count <= Int(Int32.max) else { return nil }
        var output = [UInt8](repeating: 0, count: decodedCount)
        let produced: Int32 = output.withUnsafeMutableBytes { target in
            let sourcePointer = source.baseAddress!.assumingMemoryBound(to: CChar.self)
            let targetPointer = target.baseAddress?.assumingMemoryBound(to: CChar.self)
            if let dictionary, dictionary.count > 0 {
                return LZ4_decompress_safe_usingDict(
                    sourcePointer, targetPointer, Int32(source.count), Int32(decodedCount),
                    dictionary.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(dictionary.count))
            }
            return LZ4_decompress_safe(sourcePointer, targetPointer, Int32(source.count), Int32(decodedCount))
        }
        guard produced == Int32(decodedCount) else { return nil }
        return output
    }

    /// The linked library's version, e.g. `"1.9.4"`.
    static var libraryVersion: String { String(cString: LZ4_versionString()) }
}
