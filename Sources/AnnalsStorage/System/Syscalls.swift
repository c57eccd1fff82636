import CAnnalsSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Thin wrappers over the C calls the engine uses. Each retries `EINTR` and throws a
/// ``SystemError`` naming the call and the path. Nothing else in the engine calls libc for I/O.
enum Syscalls {
    @inline(__always)
    private static func retrying<T: BinaryInteger>(
        _ call: String, _ path: String, _ body: () -> T
    ) throws(SystemError) -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            let error = errno
            if error == EINTR { continue }
            throw SystemError(call: call, path: path, errorNumber: error)
        }
    }

    /// The corresponding C function is `open`.
    static func open(_ path: String, flags: Int32, mode: mode_t = 0o644) throws(SystemError) -> Int32 {
        try retrying("open", path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    /// The corresponding C function is `close`. `EINTR` is not retried (Linux closes anyway).
    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// The corresponding C function is `fallocate` (mode 0: allocate and extend the size).
    /// Where the file system has no `fallocate`, the blocks are allocated by writing zeros
    /// (``allocateByWritingZeros(_:size:path:)``): never a sparse file, whose first write
    /// through a mapping on a full disk would be a `SIGBUS` instead of an error here.
    static func preallocate(_ fd: Int32, size: Int, path: String) throws(SystemError) {
        while true {
            if annals_fallocate(fd, 0, Int64(size)) == 0 { return }
            let error = errno
            if error == EINTR { continue }
            if error == EOPNOTSUPP || error == ENOSYS { return try allocateByWritingZeros(fd, size: size, path: path) }
            throw SystemError(call: "fallocate", path: path, errorNumber: error)
        }
    }

    /// Writes `size` zero bytes from offset 0 with `pwrite` (1 MiB at a time), so that every
    /// block is allocated: `ENOSPC` comes back as an error, not later as a fault.
    static func allocateByWritingZeros(_ fd: Int32, size: Int, path: String) throws(SystemError) {
        let chunk = [UInt8](repeating: 0, count: min(size, 1 << 20))
        var offset = 0
        while offset < size {
            let count = min(chunk.count, size - offset)
            try writeAll(fd, count == chunk.count ? chunk : Array(chunk.prefix(count)), at: offset, path: path)
            offset += count
        }
    }

    /// `fallocate(PUNCH_HOLE | KEEP_SIZE)`: frees the blocks of `range`, which then reads as
    /// zeros. Returns false where the file system cannot (the space simply stays allocated).
    static func punchHole(_ fd: Int32, _ range: Range<Int>, path: String) throws(SystemError) -> Bool {
        while true {
            if annals_punch_hole(fd, Int64(range.lowerBound), Int64(range.count)) == 0 { return true }
            let error = errno
            if error == EINTR { continue }
            if error == EOPNOTSUPP || error == ENOSYS { return false }
            throw SystemError(call: "fallocate", path: path, errorNumber: error)
        }
    }

    /// The corresponding C function is `fsync`.
    static func fsync(_ fd: Int32, path: String) throws(SystemError) {
        _ = try retrying("fsync", path) { Glibc.fsync(fd) }
    }

    /// Opens a directory and `fsync`s it, so that a rename or a new file in it is durable.
    static func syncDirectory(_ path: String) throws(SystemError) {
        let fd = try open(path, flags: O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        try fsync(fd, path: path)
    }

    /// The corresponding C function is `rename`.
    static func rename(_ from: String, to: String) throws(SystemError) {
        _ = try retrying("rename", from) { Glibc.rename(from, to) }
    }

    /// `renameat2(…, RENAME_EXCHANGE)`: `a` and `b` swap names in one atomic step.
    static func exchange(_ a: String, _ b: String) throws(SystemError) {
        _ = try retrying("renameat2", a) { annals_rename_exchange(a, b) }
    }

    /// The corresponding C function is `link`: a second name for an existing file.
    static func link(_ existing: String, to new: String) throws(SystemError) {
        _ = try retrying("link", new) { Glibc.link(existing, new) }
    }

    /// The corresponding C function is `unlink`. A missing file is not an error.
    static func unlinkIfPresent(_ path: String) throws(SystemError) {
        if Glibc.unlink(path) == 0 || errno == ENOENT { return }
        throw SystemError(call: "unlink", path: path, errorNumber: errno)
    }

    /// The corresponding C function is `mkdir`. An existing directory is not an error.
    static func makeDirectory(_ path: String) throws(SystemError) {
        if Glibc.mkdir(path, 0o755) == 0 || errno == EEXIST { return }
        throw SystemError(call: "mkdir", path: path, errorNumber: errno)
    }

    /// The corresponding C function is `rmdir`. A missing directory is not an error.
    static func removeDirectoryIfPresent(_ path: String) throws(SystemError) {
        if Glibc.rmdir(path) == 0 || errno == ENOENT { return }
        throw SystemError(call: "rmdir", path: path, errorNumber: errno)
    }

    /// The corresponding C function is `fstat`.
    static func fileStatus(_ fd: Int32, path: String) throws(SystemError) -> stat {
        var status = stat()
        _ = try retrying("fstat", path) { fstat(fd, &status) }
        return status
    }

    /// The corresponding C function is `stat`; nil when nothing exists at `path`.
    static func status(_ path: String) throws(SystemError) -> stat? {
        var status = stat()
        if annals_stat(path, &status) == 0 { return status }
        if errno == ENOENT { return nil }
        throw SystemError(call: "stat", path: path, errorNumber: errno)
    }

    /// The corresponding C function is `pread`; reads until `count` bytes or end of file.
    static func readAll(_ fd: Int32, count: Int, path: String) throws(SystemError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(call: "pread", path: path, errorNumber: errno)
            }
            if n == 0 { break }
            done += n
        }
        return Array(bytes[0..<done])
    }

    /// The corresponding C function is `pwrite`; writes all of `bytes` at `offset`.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws(SystemError) {
        let written = bytes.withUnsafeBytes { bytes in
            Result { () throws(SystemError) in try writeAll(fd, bytes, at: offset, path: path) }
        }
        try written.get()
    }

    /// The corresponding C function is `pwrite`; writes all of `bytes` at `offset`.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(call: "pwrite", path: path, errorNumber: errno)
            }
            done += n
        }
    }

    /// Creates `path` (failing with `EEXIST` when it exists: never overwrites), writes
    /// `contents`, and fsyncs it and its directory.
    static func createExclusively(_ path: String, contents: [UInt8], mode: mode_t) throws(SystemError) {
        let fd = try open(path, flags: O_WRONLY | O_CREAT | O_EXCL, mode: mode)
        defer { close(fd) }
        try writeAll(fd, contents, at: 0, path: path)
        try fsync(fd, path: path)
        let slash = path.lastIndex(of: "/")
        try syncDirectory(slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? ".")
    }

    /// Names in a directory (without `.` and `..`); nil when the directory does not exist.
    static func directoryEntries(_ path: String) throws(SystemError) -> [String]? {
        guard let directory = opendir(path) else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw SystemError(call: "opendir", path: path, errorNumber: errno)
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// The corresponding C function is `flock(LOCK_EX | LOCK_NB)`. Returns false when another
    /// open file description holds the lock (in this or another process).
    static func tryLockExclusive(_ fd: Int32, path: String) throws(SystemError) -> Bool {
        while true {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return true }
            let error = errno
            if error == EINTR { continue }
            if error == EWOULDBLOCK { return false }
            throw SystemError(call: "flock", path: path, errorNumber: error)
        }
    }

    /// Wall-clock time in nanoseconds since the Unix epoch (`clock_gettime(CLOCK_REALTIME)`).
    static func wallClockNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    /// Monotonic time in nanoseconds (`clock_gettime(CLOCK_MONOTONIC)`).
    static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// The canonical absolute path of an existing file or directory (symbolic links, `.` and
    /// `..` resolved), or nil when it does not exist.
    static func canonicalPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Fills `buffer` from the kernel's CSPRNG (`getrandom`).
    static func fillRandom(_ buffer: UnsafeMutableRawBufferPointer) {
        var done = 0
        while done < buffer.count {
            let n = annals_getrandom(buffer.baseAddress! + done, buffer.count - done)
            if n > 0 { done += n } else if errno != EINTR { break }
        }
        // getrandom cannot fail on Linux ≥ 3.17 once the pool is initialised; if it ever did,
        // fall back to arc4random-quality bytes from the Swift runtime.
        if done < buffer.count {
            var generator = SystemRandomNumberGenerator()
            for index in done..<buffer.count { buffer[index] = UInt8.random(in: 0...255, using: &generator) }
        }
    }
}
