#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A file mapped into memory: the one place that owns a mapping's bytes.
///
/// The mapping lives as long as this object; everything that hands out bytes of a segment
/// (a recorded event, a reader) keeps a reference, so a mapping is never unmapped under a
/// reader. The mapping is read-only: the writer writes frames with ``write(_:at:)`` (`pwrite`)
/// under the writer lock, group commit the durable marks under its own (never in a segment
/// being sealed), and the bytes show through the mapping as soon as the call returns (one page
/// cache). Readers only read ranges the writer has published, so the class is
/// `@unchecked Sendable`. What lies behind the bytes — a real `mmap(MAP_SHARED)` of a file
/// (``SystemFileMapping``) or a simulated file in the crash tests — is a ``FileMapping``.
///
/// Writing with `pwrite` rather than through the mapping keeps the mapping's pages clean: a
/// sync then has no page table entries to write-protect (on a two-core machine that was a
/// cross-core TLB flush per sync), the next write takes no page fault, and a full disk or an
/// I/O error comes back as an error instead of a `SIGBUS`.
final class MappedFile: @unchecked Sendable {
    /// Where the file is. Updated once by the writer when a new segment is renamed into place,
    /// before any other code sees the object.
    var path: String
    let size: Int
    private let base: UnsafeMutableRawPointer
    private(set) var isWritable: Bool
    /// Writes, syncs and measures the file; owns the mapping (unmaps it when released).
    private let mapping: any FileMapping

    /// The `size` bytes at `base`, which `mapping` owns for as long as it lives.
    init(path: String, base: UnsafeMutableRawPointer, size: Int, writable: Bool, mapping: any FileMapping) {
        self.path = path
        self.base = base
        self.size = size
        self.isWritable = writable
        self.mapping = mapping
    }

    /// The whole mapping, for reading. Bytes past what the writer has published may change.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    /// Writes `bytes` at `offset` of the file: readable through ``bytes`` once the call returns,
    /// durable after a ``sync(_:)`` covering them. Only for a file opened writable and not
    /// sealed (a programming error otherwise).
    ///
    /// - Throws: ``SystemError`` when the write fails (`EIO`, `ENOSPC`); any part of `bytes`
    ///   may then have been written.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(SystemError) {
        precondition(isWritable, "write to a read-only file \(path)")
        precondition(offset >= 0 && offset + bytes.count <= size, "write past the end of \(path)")
        guard !bytes.isEmpty else { return }
        try mapping.write(bytes, at: offset, path: path)
    }

    /// Encodes `count` bytes with `encode` (given a zeroed buffer of exactly that size) and
    /// writes them at `offset`: for headers, seal frames and marks (a few KiB at most).
    func write(at offset: Int, count: Int, _ encode: (UnsafeMutableRawBufferPointer) -> Void) throws(SystemError) {
        try withUnsafeTemporaryAllocation(byteCount: count, alignment: 16) { (buffer) throws(SystemError) in
            buffer.initializeMemory(as: UInt8.self, repeating: 0)
            encode(buffer)
            try write(UnsafeRawBufferPointer(buffer), at: offset)
        }
    }

    /// Writes zeros over `range`.
    func writeZeros(_ range: Range<Int>) throws(SystemError) {
        let chunk = min(range.count, 1 << 20)
        guard chunk > 0 else { return }
        let zeros = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { zeros.deallocate() }
        zeros.initializeMemory(as: UInt8.self, repeating: 0)
        var offset = range.lowerBound
        while offset < range.upperBound {
            let count = min(chunk, range.upperBound - offset)
            try write(UnsafeRawBufferPointer(rebasing: zeros[0..<count]), at: offset)
            offset += count
        }
    }

    /// Makes `range` durable: the pages it touches reach stable storage, with the metadata
    /// needed to read them back.
    ///
    /// Syncs of one file run one at a time (``syncs``): Linux reports a write-back error to
    /// only one of the syncs that could see it, so two overlapping syncs at once (group
    /// commit's, and a roll's or close's) could let one return success for pages whose
    /// write-back failed.
    func sync(_ range: Range<Int>) throws(SystemError) {
        guard !range.isEmpty else { return }
        let pageSize = SystemFileMapping.pageSize
        let aligned = range.lowerBound / pageSize * pageSize..<min(size, range.upperBound)
        try syncs.withLock { (count) throws(SystemError) in
            try mapping.sync(aligned, path: path)
            count += 1
        }
    }

    /// The whole file and its metadata reach stable storage (one sync at a time, as ``sync(_:)``).
    func syncFile() throws(SystemError) {
        try syncs.withLock { (count) throws(SystemError) in
            try mapping.syncFile(path: path)
            count += 1
        }
    }

    /// Held across each sync of this file; counts the syncs that succeeded. (An `Int` rather
    /// than `Void`: with a zero-sized value, Thread Sanitizer reported the lock's own accesses
    /// as races.)
    private let syncs = Locked(0)

    /// Refuses every later ``write(_:at:)`` once the file is sealed (a stray write traps instead
    /// of changing sealed data; the mapping itself is read-only).
    func refuseWrites() {
        isWritable = false
    }

    /// Gives the blocks of `range` back to the file system (it keeps reading as zeros): the
    /// unused end of a segment sealed before it was full.
    func releaseSpace(_ range: Range<Int>) throws(SystemError) {
        guard !range.isEmpty else { return }
        try mapping.releaseSpace(range, path: path)
    }

    /// Bytes the file system has allocated for the file.
    func allocatedBytes() throws(SystemError) -> Int {
        try mapping.allocatedBytes(path: path)
    }
}

/// What lies behind a ``MappedFile``'s bytes: it owns the mapping (releases it when it goes)
/// and performs the operations on it. `path` names the file in errors.
protocol FileMapping: AnyObject, Sendable {
    /// Bytes `range` (page-aligned start) reach stable storage (`msync(MS_SYNC)`).
    func sync(_ range: Range<Int>, path: String) throws(SystemError)
    /// The whole file and its metadata reach stable storage (`fsync`).
    func syncFile(path: String) throws(SystemError)
    /// Writes `bytes` at `offset` of the file (`pwrite`), visible through the mapping when it
    /// returns.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws(SystemError)
    /// Deallocates `range` (it reads as zeros).
    func releaseSpace(_ range: Range<Int>, path: String) throws(SystemError)
    /// Bytes allocated for the file.
    func allocatedBytes(path: String) throws(SystemError) -> Int
}
