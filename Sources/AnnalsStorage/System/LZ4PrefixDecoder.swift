#if canImport(Glibc)
import Glibc
#endif

/// One thread's buffer for decoding blocks against a dictionary it keeps right before the
/// output: liblz4 then takes a match that reaches into the dictionary as an ordinary
/// back-reference (its inline copy loop) instead of calling `memmove` for it, as it must when
/// the dictionary lies elsewhere (the segment's mapping). Profiles of `$all` replay put that
/// `memmove` at about 15% of all samples.
///
/// Copying a dictionary in costs up to 64 KiB, so a thread loads one only after a few hundred
/// blocks against it (counted until a block names a third dictionary, neither it nor the
/// loaded one): replays and long reads load theirs; reads of single streams, which hop between
/// segments, keep decoding against the mapping. The decoded block stays in the buffer, where
/// the caller reads it before the thread decodes again.
///
/// Thread safety: one per thread (``current``), never shared. Reentrant use (a body that
/// decodes another block while it reads this one) is refused (`decode` returns nil) and the
/// caller decodes elsewhere.
struct LZ4PrefixDecoder {
    /// Identifies a dictionary: the segment instance's serial number (never reused) and the
    /// dictionary frame's offset. The bytes behind a key never change while it can be asked for.
    struct DictionaryKey: Equatable {
        var segment: UInt64
        var offset: Int
    }

    /// Blocks in a row against one dictionary before it is copied in: copying 64 KiB costs
    /// about as much as the `memmove` calls of a few hundred blocks decoded against the mapping.
    static let blocksBeforeLoading = 256
    private static let dictionaryArea = Format.maximumDictionaryBytes
    /// Largest block decoded here: the buffer keeps its size for the thread's life, so bigger
    /// bodies decode in a temporary buffer (where the `memmove`s matter less anyway).
    static let largestOutput = 256 << 10

    /// The thread's state, reached through a plain pointer: the decoder is used once per
    /// compressed event read, and a reference-counted object would cost two atomic operations
    /// each time.
    private struct State {
        /// `dictionaryArea` bytes (the dictionary ends at its end), then the output.
        var buffer: UnsafeMutableRawPointer
        var outputCapacity: Int
        var loaded: DictionaryKey?
        var loadedBytes = 0
        var candidate: DictionaryKey?
        var candidateBlocks = 0
        var inUse = false
    }

    private let state: UnsafeMutablePointer<State>

    private static let threadKey: pthread_key_t = {
        var key = pthread_key_t()
        let created = pthread_key_create(&key) { pointer in
            guard let state = pointer?.assumingMemoryBound(to: State.self) else { return }
            state.pointee.buffer.deallocate()
            state.deinitialize(count: 1)
            state.deallocate()
        }
        precondition(created == 0, "pthread_key_create failed (\(created)): the process is out of thread-specific keys")
        return key
    }()

    /// The calling thread's decoder (made on first use, freed when the thread ends).
    static var current: LZ4PrefixDecoder {
        if let pointer = pthread_getspecific(threadKey) {
            return LZ4PrefixDecoder(state: pointer.assumingMemoryBound(to: State.self))
        }
        let state = UnsafeMutablePointer<State>.allocate(capacity: 1)
        let capacity = 16 << 10
        state.initialize(to: State(buffer: .allocate(byteCount: dictionaryArea + capacity, alignment: 64), outputCapacity: capacity))
        pthread_setspecific(threadKey, state)
        return LZ4PrefixDecoder(state: state)
    }

    /// Decodes `block`, which must produce exactly `decodedCount` bytes, against `dictionary`
    /// when this thread has it loaded (or has now decoded enough blocks against it to load it),
    /// and calls `body` with the decoded bytes, valid during the call. Returns nil, without
    /// calling `body`, when the dictionary is not loaded or the decoder is already in use (the
    /// caller then decodes against the mapping); `.some(false)` when the block does not decode
    /// to exactly that size (corruption).
    func decode(
        _ block: UnsafeRawBufferPointer, decodedCount: Int, dictionary: UnsafeRawBufferPointer, key: DictionaryKey,
        _ body: (UnsafeRawBufferPointer) -> Void
    ) -> Bool? {
        guard !state.pointee.inUse, dictionary.count > 0, dictionary.count <= Self.dictionaryArea,
              block.count > 0, block.count <= Int(Int32.max), decodedCount <= Self.largestOutput
        else { return nil }
        if state.pointee.loaded != key {
            if state.pointee.candidate == key {
                state.pointee.candidateBlocks += 1
            } else {
                state.pointee.candidate = key
                state.pointee.candidateBlocks = 1
            }
            guard state.pointee.candidateBlocks >= Self.blocksBeforeLoading else { return nil }
            (state.pointee.buffer + Self.dictionaryArea - dictionary.count).copyMemory(from: dictionary.baseAddress!, byteCount: dictionary.count)
            state.pointee.loaded = key
            state.pointee.loadedBytes = dictionary.count
        }
        if decodedCount > state.pointee.outputCapacity { grow(to: decodedCount) }
        state.pointee.inUse = true
        defer { state.pointee.inUse = false }
        let output = UnsafeMutableRawBufferPointer(start: state.pointee.buffer + Self.dictionaryArea, count: decodedCount)
        let loadedBytes = state.pointee.loadedBytes
        let dictionary = UnsafeRawBufferPointer(start: output.baseAddress! - loadedBytes, count: loadedBytes)
        guard LZ4.decompress(block, into: output, dictionary: dictionary) else { return false }
        body(UnsafeRawBufferPointer(output))
        return true
    }

    /// Makes room for `count` output bytes, keeping the loaded dictionary.
    private func grow(to count: Int) {
        var capacity = state.pointee.outputCapacity
        while capacity < count { capacity *= 2 }
        let larger = UnsafeMutableRawPointer.allocate(byteCount: Self.dictionaryArea + capacity, alignment: 64)
        larger.copyMemory(from: state.pointee.buffer, byteCount: Self.dictionaryArea)
        state.pointee.buffer.deallocate()
        state.pointee.buffer = larger
        state.pointee.outputCapacity = capacity
    }
}
