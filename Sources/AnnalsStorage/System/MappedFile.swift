#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A file mapped into memory with `mmap(MAP_SHARED)`: the one place that owns a mapping.
///
/// The mapping lives as long as this object; everything that hands out bytes of a segment
/// (a recorded event, a reader) keeps a reference, so a mapping is never unmapped under a
/// reader. The writer writes through ``mutableBytes`` under its own lock; readers only read
/// ranges the writer has published, so the class is `@unchecked Sendable`.
final class MappedFile: @unchecked Sendable {
    /// Where the file is. Updated once by the writer when a new segment is renamed into place,
    /// before any other code sees the object.
    var path: String
    let size: Int
    private let fd: Int32
    private let base: UnsafeMutableRawPointer
    private(set) var isWritable: Bool
    /// Set for a file of a simulated storage: the bytes live in its memory, and syncs tell it
    /// what became durable. Nil for a real mapping.
    private let simulated: (any SimulatedFileBacking)?

    private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    private init(path: String, fd: Int32, size: Int, base: UnsafeMutableRawPointer, writable: Bool) {
        self.path = path
        self.fd = fd
        self.size = size
        self.base = base
        self.isWritable = writable
        self.simulated = nil
    }

    /// A "mapping" of a simulated file: `base` (owned by `backing`, `size` bytes) for as long
    /// as this object lives.
    init(simulating path: String, base: UnsafeMutableRawPointer, size: Int, writable: Bool, backing: any SimulatedFileBacking) {
        self.path = path
        self.fd = -1
        self.size = size
        self.base = base
        self.isWritable = writable
        self.simulated = backing
    }

    deinit {
        guard simulated == nil else { return }
        munmap(base, size)
        Syscalls.close(fd)
    }

    /// Creates a new file of `size` bytes, preallocated with `fallocate` (blocks reserved, reads
    /// as zeros, no data written) and mapped read-write. The file is fsynced before returning.
    static func create(path: String, size: Int) throws(SystemError) -> MappedFile {
        let fd = try Syscalls.open(path, flags: O_RDWR | O_CREAT | O_EXCL, mode: 0o644)
        do {
            try Syscalls.preallocate(fd, size: size, path: path)
            try Syscalls.fsync(fd, path: path)
            return try map(path: path, fd: fd, size: size, writable: true)
        } catch {
            Syscalls.close(fd)
            _ = try? Syscalls.unlinkIfPresent(path)
            throw error
        }
    }

    /// Maps an existing file, read-only or read-write, at its current size.
    static func open(path: String, writable: Bool) throws(SystemError) -> MappedFile {
        let fd = try Syscalls.open(path, flags: writable ? O_RDWR : O_RDONLY)
        do {
            let status = try Syscalls.fileStatus(fd, path: path)
            return try map(path: path, fd: fd, size: Int(status.st_size), writable: writable)
        } catch {
            Syscalls.close(fd)
            throw error
        }
    }

    private static func map(path: String, fd: Int32, size: Int, writable: Bool) throws(SystemError) -> MappedFile {
        guard size > 0 else { throw SystemError(call: "mmap", path: path, errorNumber: EINVAL) }
        let protection = writable ? (PROT_READ | PROT_WRITE) : PROT_READ
        let pointer = mmap(nil, size, protection, MAP_SHARED, fd, 0)
        guard let pointer, pointer != MAP_FAILED else {
            throw SystemError(call: "mmap", path: path, errorNumber: errno)
        }
        return MappedFile(path: path, fd: fd, size: size, base: pointer, writable: writable)
    }

    /// The whole mapping, for reading. Bytes past what the writer has published may change.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    /// The whole mapping, for writing. Only the log writer uses this, under its lock.
    var mutableBytes: UnsafeMutableRawBufferPointer {
        precondition(isWritable, "write to a read-only mapping of \(path)")
        return UnsafeMutableRawBufferPointer(start: base, count: size)
    }

    /// Makes `range` durable: `msync(MS_SYNC)` over the pages it touches. On Linux this writes
    /// the dirty pages and the metadata needed to read them back (like `fdatasync` on a range).
    func sync(_ range: Range<Int>) throws(SystemError) {
        guard !range.isEmpty else { return }
        if let simulated {
            try simulated.synced(range.lowerBound / Self.pageSize * Self.pageSize..<min(size, range.upperBound))
            return
        }
        let start = range.lowerBound / Self.pageSize * Self.pageSize
        let end = min(size, range.upperBound)
        while true {
            if msync(base + start, end - start, MS_SYNC) == 0 { return }
            if errno == EINTR { continue }
            throw SystemError(call: "msync", path: path, errorNumber: errno)
        }
    }

    /// `fsync` of the file descriptor (data and metadata).
    func syncFile() throws(SystemError) {
        if let simulated { return try simulated.synced(0..<size) }
        try Syscalls.fsync(fd, path: path)
    }

    /// Drops write permission on the mapping once the file is sealed, so a stray write faults
    /// instead of corrupting sealed data.
    func protectReadOnly() {
        guard isWritable else { return }
        if simulated != nil {
            isWritable = false
            return
        }
        if mprotect(base, size, PROT_READ) == 0 { isWritable = false }
    }

    /// Gives the blocks of `range` back to the file system (it keeps reading as zeros): the
    /// unused end of a segment sealed before it was full.
    func releaseSpace(_ range: Range<Int>) throws(SystemError) {
        guard !range.isEmpty else { return }
        if let simulated { return simulated.released(range) }
        _ = try Syscalls.punchHole(fd, range, path: path)
    }

    /// Bytes the file system has allocated for the file (`st_blocks × 512`).
    func allocatedBytes() throws(SystemError) -> Int {
        if let simulated { return simulated.allocatedBytes }
        return Int(try Syscalls.fileStatus(fd, path: path).st_blocks) * 512
    }
}

/// The storage behind a simulated file's "mapping" (see ``MappedFile/init(simulating:base:size:writable:backing:)``).
protocol SimulatedFileBacking: AnyObject, Sendable {
    /// Bytes `range` of the file reached stable storage (an `msync`/`fsync` that returned).
    func synced(_ range: Range<Int>) throws(SystemError)
    /// Bytes `range` were deallocated (a punched hole): they read as zeros.
    func released(_ range: Range<Int>)
    var allocatedBytes: Int { get }
}
