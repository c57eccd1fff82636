#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The file operations the engine performs, and nothing else: every byte the engine puts on
/// disk and every step of `format-spec.md` §9's durability protocol goes through one of these.
/// ``SystemStorage`` is the real file system; the crash-simulation tests substitute a simulated
/// one that tracks what is durable and, at a simulated crash, keeps, drops or tears each write
/// since the last sync.
protocol Storage: AnyObject, Sendable {
    /// A new file of `size` bytes, preallocated (reads as zeros), made durable (its data and
    /// size; its name only after ``syncDirectory(_:)``), mapped read-write.
    func createMappedFile(path: String, size: Int) throws(SystemError) -> MappedFile
    /// An existing file, mapped at its current size.
    func openMappedFile(path: String, writable: Bool) throws(SystemError) -> MappedFile
    /// Up to `maximumBytes` of a file; nil when it does not exist.
    func readFile(_ path: String, maximumBytes: Int) throws(SystemError) -> [UInt8]?
    /// Creates or truncates `path`, writes `bytes` and fsyncs the file (not its name).
    func writeFile(_ bytes: [UInt8], to path: String) throws(SystemError)
    /// Writes `bytes` at `offset` of the existing file `path` (growing it when they reach past
    /// its end) and fsyncs the file. A crash during the call may leave any part of them written.
    func write(_ bytes: [UInt8], to path: String, at offset: Int) throws(SystemError)
    func rename(_ from: String, to: String) throws(SystemError)
    /// Swaps the names `a` and `b` (files or directories) in one atomic step; durable after
    /// ``syncDirectory(_:)``.
    func exchange(_ a: String, _ b: String) throws(SystemError)
    /// A second name `new` for the existing file `existing` (a hard link); durable after
    /// ``syncDirectory(_:)``.
    func link(_ existing: String, to new: String) throws(SystemError)
    /// A missing file is not an error.
    func unlinkIfPresent(_ path: String) throws(SystemError)
    /// Makes the directory's entries (creations, renames, deletions) durable.
    func syncDirectory(_ path: String) throws(SystemError)
    /// An existing directory is not an error.
    func makeDirectory(_ path: String) throws(SystemError)
    /// A missing directory is not an error.
    func removeDirectoryIfPresent(_ path: String) throws(SystemError)
    /// Names in a directory; nil when it does not exist or is not a directory.
    func directoryEntries(_ path: String) throws(SystemError) -> [String]?
    /// True when something exists at `path`.
    func exists(_ path: String) throws(SystemError) -> Bool
    /// The size of the file at `path`, nil when there is none.
    func fileSize(_ path: String) -> Int?
    /// The exclusive writer lock on `path` (created if missing), held as long as the returned
    /// object lives; nil when another writer holds it.
    func lock(_ path: String) throws(SystemError) -> (any Sendable)?
    /// The running boot of the machine that holds the files (zero when unknown): durable marks
    /// record it, and a mark written in the same boot vouches for acknowledged frames (§3.8).
    var bootID: UUID { get }
}

extension Storage {
    /// Replaces `path` atomically: temp file + fsync + rename + directory fsync.
    func writeFileAtomically(_ bytes: [UInt8], to path: String, directory: String) throws(SystemError) {
        let temporary = path + ".tmp"
        try writeFile(bytes, to: temporary)
        try rename(temporary, to: path)
        try syncDirectory(directory)
    }
}

/// The real file system: `mmap`, `pwrite`, `fsync`, `rename(2)`, `flock`.
final class SystemStorage: Storage {
    static let shared = SystemStorage()

    func createMappedFile(path: String, size: Int) throws(SystemError) -> MappedFile {
        try SystemFileMapping.create(path: path, size: size)
    }

    func openMappedFile(path: String, writable: Bool) throws(SystemError) -> MappedFile {
        try SystemFileMapping.open(path: path, writable: writable)
    }

    func readFile(_ path: String, maximumBytes: Int) throws(SystemError) -> [UInt8]? {
        guard try Syscalls.status(path) != nil else { return nil }
        let fd = try Syscalls.open(path, flags: O_RDONLY)
        defer { Syscalls.close(fd) }
        return try Syscalls.readAll(fd, count: maximumBytes, path: path)
    }

    func writeFile(_ bytes: [UInt8], to path: String) throws(SystemError) {
        let fd = try Syscalls.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        defer { Syscalls.close(fd) }
        try Syscalls.writeAll(fd, bytes, at: 0, path: path)
        try Syscalls.fsync(fd, path: path)
    }

    func write(_ bytes: [UInt8], to path: String, at offset: Int) throws(SystemError) {
        let fd = try Syscalls.open(path, flags: O_WRONLY)
        defer { Syscalls.close(fd) }
        try Syscalls.writeAll(fd, bytes, at: offset, path: path)
        try Syscalls.fsync(fd, path: path)
    }

    func rename(_ from: String, to: String) throws(SystemError) { try Syscalls.rename(from, to: to) }
    func exchange(_ a: String, _ b: String) throws(SystemError) { try Syscalls.exchange(a, b) }
    func link(_ existing: String, to new: String) throws(SystemError) { try Syscalls.link(existing, to: new) }
    func unlinkIfPresent(_ path: String) throws(SystemError) { try Syscalls.unlinkIfPresent(path) }
    func syncDirectory(_ path: String) throws(SystemError) { try Syscalls.syncDirectory(path) }
    func makeDirectory(_ path: String) throws(SystemError) { try Syscalls.makeDirectory(path) }
    func removeDirectoryIfPresent(_ path: String) throws(SystemError) { try Syscalls.removeDirectoryIfPresent(path) }
    func directoryEntries(_ path: String) throws(SystemError) -> [String]? { try Syscalls.directoryEntries(path) }
    func exists(_ path: String) throws(SystemError) -> Bool { try Syscalls.status(path) != nil }
    func fileSize(_ path: String) -> Int? { (try? Syscalls.status(path)).flatMap { $0 }.map { Int($0.st_size) } }
    func lock(_ path: String) throws(SystemError) -> (any Sendable)? { try FileLock.acquire(path: path) }
    var bootID: UUID { Self.currentBoot }

    /// Linux's `/proc/sys/kernel/random/boot_id`, read once; zero where there is none.
    private static let currentBoot: UUID = {
        let path = "/proc/sys/kernel/random/boot_id"
        guard let bytes = try? SystemStorage.shared.readFile(path, maximumBytes: 64),
              let text = String(validating: bytes, as: UTF8.self),
              let id = UUID(uuidString: String(text.filter { !$0.isWhitespace }))
        else { return DurableMark.unknownBoot }
        return id
    }()
}

/// Which ``Storage`` a store uses, for ``StoreOptions`` (equal when it is the same object).
struct StorageChoice: Sendable, Hashable {
    let storage: any Storage

    static let system = StorageChoice(storage: SystemStorage.shared)

    static func == (lhs: StorageChoice, rhs: StorageChoice) -> Bool { lhs.storage === rhs.storage }
    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(storage)) }
}

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
