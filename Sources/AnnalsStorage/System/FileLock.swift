#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The store's single-writer lock: an exclusive `flock` on the store's `lock` file, held for
/// the lifetime of this object. `flock` locks belong to an open file description, so a second
/// writer is refused whether it is in another process or in this one.
final class FileLock: Sendable {
    let path: String
    private let fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit { Syscalls.close(fd) }

    /// Takes the lock, or returns nil if another writer holds it.
    static func acquire(path: String) throws(SystemError) -> FileLock? {
        let fd = try Syscalls.open(path, flags: O_RDWR | O_CREAT, mode: 0o644)
        do {
            guard try Syscalls.tryLockExclusive(fd, path: path) else {
                Syscalls.close(fd)
                return nil
            }
        } catch {
            Syscalls.close(fd)
            throw error
        }
        return FileLock(path: path, fd: fd)
    }
}
