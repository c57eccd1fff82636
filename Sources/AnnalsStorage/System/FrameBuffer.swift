/// A growable heap buffer of encoded bytes: the frames the writer has encoded and not yet
/// written to their segment file (``StagedFrames``).
///
/// Not thread-safe: its owner guards it (the writer lock). It grows to what is staged at once,
/// and gives back anything above ``retainedBytes`` when emptied, so one huge append does not
/// pin its size for the life of the store.
final class FrameBuffer {
    /// What the buffer keeps when emptied: as much as the writer stages before it writes
    /// (``StagedFrames/limitBytes``), so a busy writer does not grow it again after each flush.
    static let retainedBytes = 4 << 20

    private var storage: UnsafeMutableRawBufferPointer
    /// Bytes encoded so far.
    private(set) var count = 0

    init() {
        storage = .allocate(byteCount: 64 << 10, alignment: 16)
    }

    deinit {
        storage.deallocate()
    }

    /// The bytes encoded so far.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[0..<count]) }

    /// Calls `encode` with the `capacity` bytes after those encoded so far (their contents are
    /// undefined: an encoder writes every byte it returns, padding included) and keeps the
    /// number of bytes it returns, at most `capacity`.
    func append(capacity: Int, _ encode: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        if storage.count - count < capacity {
            let grown = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count + capacity, storage.count * 2), alignment: 16)
            grown.baseAddress!.copyMemory(from: storage.baseAddress!, byteCount: count)
            storage.deallocate()
            storage = grown
        }
        let size = encode(UnsafeMutableRawBufferPointer(rebasing: storage[count..<(count + capacity)]))
        precondition(size >= 0 && size <= capacity, "\(size) bytes encoded where \(capacity) were reserved")
        count += size
        return size
    }

    /// Forgets the bytes encoded so far.
    func removeAll() {
        count = 0
        if storage.count > Self.retainedBytes {
            storage.deallocate()
            storage = .allocate(byteCount: Self.retainedBytes, alignment: 16)
        }
    }
}
