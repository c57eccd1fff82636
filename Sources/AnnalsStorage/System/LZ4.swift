import CLZ4

/// LZ4 block compression through the system `liblz4`, with an optional dictionary (the
/// format Python's `lz4.block` reads with `dict=`). Decoding is bounds-checked
/// (`LZ4_decompress_safe*`): corrupt input fails, it never reads or writes out of bounds.
enum LZ4 {
    /// The most a block can expand by when decoded (LZ4's maximum ratio is 255:1).
    static let maximumExpansion = 255

    /// Largest input the block API accepts.
    static let maximumInputBytes = Int(LZ4_MAX_INPUT_SIZE)

    /// Compresses `source` with the block API. Returns nil when the result would not be smaller
    /// than `source` (the caller then stores the bytes raw).
    static func compress(_ source: UnsafeRawBufferPointer, dictionary: UnsafeRawBufferPointer? = nil) -> [UInt8]? {
        guard source.count > 0, source.count <= maximumInputBytes else { return nil }
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
        guard decodedCount >= 0, decodedCount <= maximumInputBytes else { return nil }
        var output = [UInt8](repeating: 0, count: decodedCount)
        let decoded = output.withUnsafeMutableBytes { decompress(source, into: $0, dictionary: dictionary) }
        return decoded ? output : nil
    }

    /// Decompresses a block into `target`, which it must fill exactly. Returns false when the
    /// input is not a valid block of that size (corruption); `target` is then undefined.
    static func decompress(
        _ source: UnsafeRawBufferPointer, into target: UnsafeMutableRawBufferPointer,
        dictionary: UnsafeRawBufferPointer? = nil
    ) -> Bool {
        guard source.count > 0, source.count <= Int(Int32.max), target.count <= maximumInputBytes else { return false }
        let sourcePointer = source.baseAddress!.assumingMemoryBound(to: CChar.self)
        let targetPointer = target.baseAddress?.assumingMemoryBound(to: CChar.self)
        let produced: Int32
        if let dictionary, dictionary.count > 0 {
            produced = LZ4_decompress_safe_usingDict(
                sourcePointer, targetPointer, Int32(source.count), Int32(target.count),
                dictionary.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(dictionary.count))
        } else {
            produced = LZ4_decompress_safe(sourcePointer, targetPointer, Int32(source.count), Int32(target.count))
        }
        return produced == Int32(target.count)
    }

    /// The linked library's version, e.g. `"1.9.4"`.
    static var libraryVersion: String { String(cString: LZ4_versionString()) }

    /// Compresses many small inputs, each into an independent block, against one dictionary
    /// loaded once (or none). Each block decodes alone with `LZ4_decompress_safe_usingDict` and
    /// the same dictionary bytes, so events stay randomly accessible.
    ///
    /// The loaded dictionary is only read while compressing, so several threads may compress
    /// at once, each with its own ``WorkingStream``; the built-in one is for one thread at a
    /// time (the writer, under the writer lock).
    final class BlockCompressor: @unchecked Sendable {
        /// The dictionary bytes (owned, never moved: liblz4 refers to them while compressing).
        let dictionary: UnsafeMutableRawBufferPointer
        private let loaded: UnsafeMutablePointer<LZ4_stream_t>
        private let working = WorkingStream()

        /// Loads `dictionary` (which may be empty: each block then stands alone). `shareTables`
        /// false forces the copy per block (tests compare both ways).
        init(dictionary bytes: UnsafeRawBufferPointer, shareTables: Bool = BlockCompressor.canAttach) {
            self.shareTables = shareTables
            dictionary = .allocate(byteCount: max(bytes.count, 1), alignment: 16)
            if bytes.count > 0 { dictionary.copyMemory(from: bytes) }
            loaded = .allocate(capacity: 1)
            LZ4_initStream(loaded, MemoryLayout<LZ4_stream_t>.size)
            if bytes.count > 0 {
                LZ4_loadDict(loaded, dictionary.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(bytes.count))
            }
            dictionaryCount = bytes.count
        }

        /// liblz4's acceleration for these blocks: 2 looks for matches at fewer positions than
        /// 1. Measured on the benchmarks' realistic events against a 16 KiB dictionary
        /// (`Tools/compression-probe`): compression 15–25% faster, stores 1% larger (2.32× against
        /// 2.34×), decoding no slower.
        static let acceleration: Int32 = 2

        /// Bytes of dictionary loaded (0 for none).
        let dictionaryCount: Int
        private let shareTables: Bool

        /// True when the linked liblz4 lets the working stream share the loaded dictionary's
        /// tables (see `annals_lz4_attach` in the CLZ4 shim) rather than copy them per block.
        static let canAttach = annals_lz4_can_attach() != 0

        deinit {
            dictionary.deallocate()
            loaded.deallocate()
        }

        /// Compresses `source` into `target` and returns the block's size, or nil when the block
        /// would not fit in `target` (the caller then stores the bytes raw). Each call starts
        /// from the loaded dictionary alone: blocks never depend on each other.
        func compress(
            _ source: UnsafeRawBufferPointer, into target: UnsafeMutableRawBufferPointer, using stream: WorkingStream? = nil
        ) -> Int? {
            guard source.count > 0, source.count <= LZ4.maximumInputBytes, target.count > 0 else { return nil }
            let working = (stream ?? self.working).pointer
            if shareTables {
                annals_lz4_attach(working, loaded)
            } else {
                // A copy of the stream that loaded the dictionary: the documented way to reuse
                // a dictionary without hashing it again.
                UnsafeMutableRawPointer(working).copyMemory(from: loaded, byteCount: MemoryLayout<LZ4_stream_t>.size)
            }
            let written = LZ4_compress_fast_continue(
                working, source.baseAddress!.assumingMemoryBound(to: CChar.self),
                target.baseAddress!.assumingMemoryBound(to: CChar.self),
                Int32(source.count), Int32(min(target.count, Int(Int32.max))), Self.acceleration)
            return written > 0 ? Int(written) : nil
        }
    }

    /// One thread's LZ4 compression state (16 KiB).
    final class WorkingStream: @unchecked Sendable {
        let pointer: UnsafeMutablePointer<LZ4_stream_t>

        init() {
            pointer = .allocate(capacity: 1)
            LZ4_initStream(pointer, MemoryLayout<LZ4_stream_t>.size)
        }

        deinit { pointer.deallocate() }
    }
}
