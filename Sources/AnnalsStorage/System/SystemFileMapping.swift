#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A real file mapped with `mmap(MAP_SHARED)`, and its descriptor: unmapped and closed when the
/// last ``MappedFile`` holding it goes.
final class SystemFileMapping: FileMapping, @unchecked Sendable {
    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    private let fd: Int32
    private let base: UnsafeMutableRawPointer
    private let size: Int

    private init(fd: Int32, base: UnsafeMutableRawPointer, size: Int) {
        self.fd = fd
        self.base = base
        self.size = size
    }

    deinit {
        munmap(base, size)
        Syscalls.close(fd)
    }

    /// Creates a new file of `size` bytes, preallocated (blocks reserved, reads as zeros) and
    /// mapped (read-only: writes go through ``write(_:at:path:)``). The file is fsynced before
    /// returning.
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

    /// Maps an existing file at its current size, with its descriptor opened for writing when
    /// `writable` (the mapping itself is always read-only).
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
        let pointer = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0)
        guard let pointer, pointer != MAP_FAILED else {
            throw SystemError(call: "mmap", path: path, errorNumber: errno)
        }
        return MappedFile(path: path, base: pointer, size: size, writable: writable,
                          mapping: SystemFileMapping(fd: fd, base: pointer, size: size))
    }

    /// On Linux, `msync(MS_SYNC)` writes the dirty pages and the metadata needed to read them
    /// back (like `fdatasync` on a range).
    func sync(_ range: Range<Int>, path: String) throws(SystemError) {
        while true {
            if msync(base + range.lowerBound, range.count, MS_SYNC) == 0 { return }
            if errno == EINTR { continue }
            throw SystemError(call: "msync", path: path, errorNumber: errno)
        }
    }

    func syncFile(path: String) throws(SystemError) {
        try Syscalls.fsync(fd, path: path)
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws(SystemError) {
        try Syscalls.writeAll(fd, bytes, at: offset, path: path)
    }

    func releaseSpace(_ range: Range<Int>, path: String) throws(SystemError) {
        _ = try Syscalls.punchHole(fd, range, path: path)
    }

    /// `st_blocks × 512`.
    func allocatedBytes(path: String) throws(SystemError) -> Int {
        Int(try Syscalls.fileStatus(fd, path: path).st_blocks) * 512
    }
}
