#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A file mapped into memory: the one place that owns a mapping's bytes.
///
/// The mapping lives as long as this object; everything that hands out bytes of a segment
/// (a recorded event, a reader) keeps a reference, so a mapping is never unmapped under a
/// reader. The writer writes frames through ``mutableBytes`` under the writer lock, group
/// commit the durable marks under its own (never in a segment being sealed); readers only read
/// ranges the writer has published, so the class is `@unchecked Sendable`. What lies behind the
/// bytes — a real `mmap(MAP_SHARED)` of a file (``SystemFileMapping``) or a simulated file in
/// the crash tests — is a ``FileMapping``.
final class MappedFile: @unchecked Sendable {
    /// Where the file is. Updated once by the writer when a new segment is renamed into place,
    /// before any other code sees the object.
    var path: String
    let size: Int
    private let base: UnsafeMutableRawPointer
    private(set) var isWritable: Bool
    /// Syncs, protects and measures the mapping; owns it (unmaps it when released).
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

    /// The whole mapping, for writing: frames by the writer, durable marks by group commit.
    var mutableBytes: UnsafeMutableRawBufferPointer {
        precondition(isWritable, "write to a read-only mapping of \(path)")
        return UnsafeMutableRawBufferPointer(start: base, count: size)
    }

    /// Makes `range` durable: the pages it touches reach stable storage, with the metadata
    /// needed to read them back.
    func sync(_ range: Range<Int>) throws(SystemError) {
        guard !range.isEmpty else { return }
        let pageSize = SystemFileMapping.pageSize
        try mapping.sync(range.lowerBound / pageSize * pageSize..<min(size, range.upperBound), path: path)
    }

    /// The whole file and its metadata reach stable storage.
    func syncFile() throws(SystemError) {
        try mapping.syncFile(path: path)
    }

    /// Drops write permission on the mapping once the file is sealed, so a stray write faults
    /// instead of corrupting sealed data.
    func protectReadOnly() {
        guard isWritable else { return }
        if mapping.protectReadOnly() { isWritable = false }
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
    /// Makes the mapping read-only; false when it stays writable.
    func protectReadOnly() -> Bool
    /// Deallocates `range` (it reads as zeros).
    func releaseSpace(_ range: Range<Int>, path: String) throws(SystemError)
    /// Bytes allocated for the file.
    func allocatedBytes(path: String) throws(SystemError) -> Int
}
