import AnnalsTestSupport
import Foundation
@testable import AnnalsStorage

/// An in-memory file system behind the engine's ``Storage`` seam that knows what is durable.
///
/// - File data: what the engine writes (through a "mapping" or `writeFile`) is live at once;
///   it becomes durable for the bytes an `msync`/`fsync` covers.
/// - Names: creations, renames and deletions change a directory's live entries at once and
///   become durable when the directory is synced.
/// - A crash (``crash(atOperation:seed:)``) is taken when the engine starts its N-th durable
///   operation (a sync, a file write, a rename, a deletion, a directory sync): the image keeps,
///   for every directory, its durable entries plus a random prefix of the changes made since
///   (an ordered metadata journal), and for every file its durable bytes, with each 4 KiB page
///   written since its last sync kept, dropped, or torn at 512-byte sector granularity.
///   Seeded: the same seed gives the same choices.
final class SimulatedStorage: Storage, @unchecked Sendable {
    final class Node: @unchecked Sendable {
        let isDirectory: Bool
        // Files: live bytes (a stable buffer: mappings point into it) and durable bytes.
        var live: UnsafeMutableRawBufferPointer
        var durable: [UInt8]
        var released = 0
        // Directories.
        var entries: [String: Node] = [:]
        var durableEntries: [String: Node] = [:]
        /// Entry changes since the last directory sync, in order; a crash keeps a prefix of
        /// them. One element may change several names at once (an exchange is atomic).
        var pending: [[(name: String, node: Node?)]] = []

        init(directory: Bool) {
            isDirectory = directory
            live = UnsafeMutableRawBufferPointer(start: nil, count: 0)
            durable = []
        }

        init(fileOfSize size: Int, durable: [UInt8]) {
            isDirectory = false
            live = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 4096)
            live = UnsafeMutableRawBufferPointer(rebasing: live[0..<size])
            self.durable = durable
            if size > 0 { durable.withUnsafeBytes { live.copyMemory(from: $0) } }
        }

        deinit {
            if let base = live.baseAddress { base.deallocate() }
        }

        var size: Int { live.count }

        /// New contents for a file nothing maps (the key store): a new live buffer.
        func replaceContents(live contents: [UInt8], durable: [UInt8]) {
            if let base = live.baseAddress { base.deallocate() }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(contents.count, 1), alignment: 4096)
            live = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<contents.count])
            contents.withUnsafeBytes { live.copyMemory(from: $0) }
            self.durable = durable
        }
    }

    private let lock = NSLock()
    private let root = Node(directory: true)
    private var lockedPaths = Set<String>()
    /// Durable operations started so far.
    private(set) var operations = 0
    private var plannedCrashes: [Int: UInt64] = [:]
    /// Injected failures still to come (see ``fail(_:after:errno:)``).
    private var plannedFailures: [(operation: Operation?, remaining: Int, errorNumber: Int32)] = []

    /// The operations a fault plan can fail.
    enum Operation: String, Sendable {
        case create, sync, writeFile, rename, unlink, syncDirectory
        /// A write into a mapped file (a frame, a header, a durable mark). Failed only by a plan
        /// naming it: a write is not a durable operation, so plans of any kind skip it.
        case write
    }
    /// The images taken at the planned crashes so far: at which operation, with which seed.
    private(set) var crashImages: [(operation: Int, seed: UInt64, image: SimulatedStorage)] = []

    /// Every simulated machine (the live one, and each crash image) is a boot of its own.
    let bootID = UUID()

    init() {
        root.durableEntries = [:]
        _ = try? makeDirectory("/sim")
        try? syncDirectory("/")
        operations = 0
    }

    /// Fails the `count`-th next operation of kind `operation` (of any kind when nil; 1: the very
    /// next) with `errorNumber`, without performing it: the errno a real file system returns for
    /// a full disk (`ENOSPC`) or a failing device (`EIO`).
    func fail(_ operation: Operation?, after count: Int = 1, errno errorNumber: Int32) {
        lock.withLock { plannedFailures.append((operation, count, errorNumber)) }
    }

    /// Holds every sync of a mapped file until ``releaseSyncs()`` (a slow disk): a test sees what
    /// happens while a flush is in progress. Syncs wait on the thread that calls them (group
    /// commit's flush queue, never the Swift concurrency pool).
    func holdSyncs() {
        syncGate.condition.withLock { syncGate.held = true }
    }

    /// Lets every held sync, and every later one, go on.
    func releaseSyncs() {
        syncGate.condition.withLock {
            syncGate.held = false
            syncGate.condition.broadcast()
        }
    }

    /// Syncs waiting in ``holdSyncs()``.
    var syncsHeld: Int { syncGate.condition.withLock { syncGate.waiting } }

    /// Whether syncs are held, and how many wait; guarded by `condition`.
    private final class SyncGate: @unchecked Sendable {
        let condition = NSCondition()
        var held = false
        var waiting = 0
    }
    private let syncGate = SyncGate()

    fileprivate func waitAtSyncGate() {
        syncGate.condition.withLock {
            while syncGate.held {
                syncGate.waiting += 1
                syncGate.condition.wait()
                syncGate.waiting -= 1
            }
        }
    }

    /// True once every planned failure has happened.
    var plannedFailuresHappened: Bool { lock.withLock { plannedFailures.isEmpty } }

    /// Drops the planned failures that have not happened (the disk has room again).
    func cancelPlannedFailures() {
        lock.withLock { plannedFailures.removeAll() }
    }

    /// The failure planned for this operation, if it is the one (call under the lock, before
    /// performing it).
    private func injectedFailure(_ operation: Operation, _ call: String, _ path: String) -> SystemError? {
        var failure: SystemError?
        for index in plannedFailures.indices.reversed()
        where plannedFailures[index].operation == operation || (plannedFailures[index].operation == nil && operation != .write) {
            plannedFailures[index].remaining -= 1
            if plannedFailures[index].remaining == 0 {
                failure = SystemError(call: call, path: path, errorNumber: plannedFailures[index].errorNumber)
                plannedFailures.remove(at: index)
            }
        }
        return failure
    }

    /// What a machine that lost power now would find on its disk (as ``crash(atOperation:seed:)``
    /// takes it, at once).
    func imageNow(seed: UInt64) -> SimulatedStorage {
        lock.withLock {
            var generator = SeededGenerator(seed: seed)
            return image(using: &generator)
        }
    }

    /// Takes a crash image when the `operation`-th durable operation starts (the run goes on:
    /// one run can yield many images).
    func crash(atOperation operation: Int, seed: UInt64) {
        lock.withLock { plannedCrashes[operation] = seed }
    }

    var images: [(operation: Int, seed: UInt64, image: SimulatedStorage)] { lock.withLock { crashImages } }

    var operationCount: Int { lock.withLock { operations } }

    // MARK: Paths

    private func split(_ path: String) -> (parent: [String], name: String) {
        var parts = path.split(separator: "/").map(String.init)
        let name = parts.popLast() ?? ""
        return (parts, name)
    }

    private func directory(_ parts: [String]) -> Node? {
        var node = root
        for part in parts {
            guard let next = node.entries[part], next.isDirectory else { return nil }
            node = next
        }
        return node
    }

    private func node(_ path: String) -> Node? {
        let (parent, name) = split(path)
        if name.isEmpty { return root }
        return directory(parent)?.entries[name]
    }

    private func missing(_ call: String, _ path: String) -> SystemError { SystemError(call: call, path: path, errorNumber: ENOENT) }

    /// Counts a durable operation and takes the planned crash image before it runs.
    private func durableOperation() {
        operations += 1
        if let seed = plannedCrashes[operations] {
            var generator = SeededGenerator(seed: seed)
            crashImages.append((operations, seed, image(using: &generator)))
        }
    }

    private func set(_ name: String, to node: Node?, in directory: Node) {
        directory.entries[name] = node
        directory.pending.append([(name, node)])
    }

    // MARK: Storage

    func createMappedFile(path: String, size: Int) throws(SystemError) -> MappedFile {
        let result: Result<Node, SystemError> = lock.withLock {
            let (parent, name) = split(path)
            guard let directory = directory(parent) else { return .failure(missing("open", path)) }
            guard directory.entries[name] == nil else { return .failure(SystemError(call: "open", path: path, errorNumber: EEXIST)) }
            if let failure = injectedFailure(.create, "fallocate", path) { return .failure(failure) }
            durableOperation()
            let node = Node(fileOfSize: size, durable: [UInt8](repeating: 0, count: size))
            set(name, to: node, in: directory)
            return .success(node)
        }
        return try mapping(of: result.get(), path: path, writable: true)
    }

    func openMappedFile(path: String, writable: Bool) throws(SystemError) -> MappedFile {
        guard let node = lock.withLock({ node(path) }), !node.isDirectory else { throw missing("open", path) }
        guard node.size > 0 else { throw SystemError(call: "mmap", path: path, errorNumber: EINVAL) }
        return mapping(of: node, path: path, writable: writable)
    }

    private func mapping(of node: Node, path: String, writable: Bool) -> MappedFile {
        MappedFile(path: path, base: node.live.baseAddress!, size: node.size, writable: writable,
                   mapping: Backing(node: node, storage: self))
    }

    /// A simulated file's "mapping": its live bytes, owned by the node; a sync copies the
    /// range to the node's durable bytes (or fails as the fault plan says).
    final class Backing: FileMapping, @unchecked Sendable {
        let node: Node
        unowned let storage: SimulatedStorage
        init(node: Node, storage: SimulatedStorage) {
            self.node = node
            self.storage = storage
        }

        func syncFile(path: String) throws(SystemError) { try sync(0..<node.size, path: path) }
        /// The bytes become live, not durable (a page-cache write): the next sync copies them.
        func write(_ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws(SystemError) {
            let failure: SystemError? = storage.lock.withLock {
                if let failure = storage.injectedFailure(.write, "pwrite", path) { return failure }
                node.live.baseAddress!.advanced(by: offset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
                return nil
            }
            if let failure { throw failure }
        }
        func releaseSpace(_ range: Range<Int>, path: String) throws(SystemError) {
            storage.lock.withLock { node.released += range.count }
        }
        func allocatedBytes(path: String) throws(SystemError) -> Int { storage.lock.withLock { max(0, node.size - node.released) } }

        func sync(_ range: Range<Int>, path: String) throws(SystemError) {
            storage.waitAtSyncGate()
            let failure: SystemError? = storage.lock.withLock { () -> SystemError? in
                if let failure = storage.injectedFailure(.sync, "msync", "simulated file") { return failure }
                storage.durableOperation()
                let upper = min(range.upperBound, node.size)
                guard range.lowerBound < upper else { return nil }
                node.durable.withUnsafeMutableBytes { durable in
                    durable.baseAddress!.advanced(by: range.lowerBound)
                        .copyMemory(from: node.live.baseAddress!.advanced(by: range.lowerBound), byteCount: upper - range.lowerBound)
                }
                return nil
            }
            if let failure { throw failure }
        }
    }

    func readFile(_ path: String, maximumBytes: Int) throws(SystemError) -> [UInt8]? {
        lock.withLock {
            guard let node = node(path), !node.isDirectory else { return nil }
            return Array(node.live.prefix(maximumBytes))
        }
    }

    func writeFile(_ bytes: [UInt8], to path: String) throws(SystemError) {
        let failure: SystemError? = lock.withLock {
            let (parent, name) = split(path)
            guard let directory = directory(parent) else { return missing("open", path) }
            if let failure = injectedFailure(.writeFile, "write", path) { return failure }
            durableOperation()
            set(name, to: Node(fileOfSize: bytes.count, durable: bytes), in: directory)
            return nil
        }
        if let failure { throw failure }
    }

    /// The bytes become live and durable together (one durable operation: a crash is taken
    /// before it or after it, never inside).
    func write(_ bytes: [UInt8], to path: String, at offset: Int) throws(SystemError) {
        let failure: SystemError? = lock.withLock {
            guard let node = node(path), !node.isDirectory else { return missing("open", path) }
            if let failure = injectedFailure(.writeFile, "pwrite", path) { return failure }
            durableOperation()
            var contents = Array(node.live)
            if contents.count < offset + bytes.count { contents += [UInt8](repeating: 0, count: offset + bytes.count - contents.count) }
            contents.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
            var durable = node.durable
            if durable.count < contents.count { durable += [UInt8](repeating: 0, count: contents.count - durable.count) }
            durable.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
            node.replaceContents(live: contents, durable: durable)
            return nil
        }
        if let failure { throw failure }
    }

    func rename(_ from: String, to: String) throws(SystemError) {
        let failure: SystemError? = lock.withLock {
            let (fromParent, fromName) = split(from), (toParent, toName) = split(to)
            guard let source = directory(fromParent), let node = source.entries[fromName], let target = directory(toParent) else {
                return missing("rename", from)
            }
            if let failure = injectedFailure(.rename, "rename", from) { return failure }
            durableOperation()
            set(fromName, to: nil, in: source)
            set(toName, to: node, in: target)
            return nil
        }
        if let failure { throw failure }
    }

    func exchange(_ a: String, _ b: String) throws(SystemError) {
        let failure: SystemError? = lock.withLock {
            let (aParent, aName) = split(a), (bParent, bName) = split(b)
            guard aParent == bParent, let directory = directory(aParent), let aNode = directory.entries[aName],
                  let bNode = directory.entries[bName]
            else { return missing("renameat2", a) }
            if let failure = injectedFailure(.rename, "renameat2", a) { return failure }
            durableOperation()
            directory.entries[aName] = bNode
            directory.entries[bName] = aNode
            directory.pending.append([(aName, bNode), (bName, aNode)])
            return nil
        }
        if let failure { throw failure }
    }

    func link(_ existing: String, to new: String) throws(SystemError) {
        let failure: SystemError? = lock.withLock {
            let (sourceParent, sourceName) = split(existing), (targetParent, targetName) = split(new)
            guard let source = directory(sourceParent), let node = source.entries[sourceName], !node.isDirectory,
                  let target = directory(targetParent)
            else { return missing("link", existing) }
            guard target.entries[targetName] == nil else { return SystemError(call: "link", path: new, errorNumber: EEXIST) }
            if let failure = injectedFailure(.rename, "link", new) { return failure }
            durableOperation()
            set(targetName, to: node, in: target)
            return nil
        }
        if let failure { throw failure }
    }

    func unlinkIfPresent(_ path: String) throws(SystemError) {
        let failure: SystemError? = lock.withLock {
            let (parent, name) = split(path)
            guard let directory = directory(parent), directory.entries[name] != nil else { return nil }
            if let failure = injectedFailure(.unlink, "unlink", path) { return failure }
            durableOperation()
            set(name, to: nil, in: directory)
            return nil
        }
        if let failure { throw failure }
    }

    func syncDirectory(_ path: String) throws(SystemError) {
        let failure: SystemError? = lock.withLock {
            guard let node = node(path), node.isDirectory else { return missing("open", path) }
            if let failure = injectedFailure(.syncDirectory, "fsync", path) { return failure }
            durableOperation()
            node.durableEntries = node.entries
            node.pending.removeAll()
            return nil
        }
        if let failure { throw failure }
    }

    func makeDirectory(_ path: String) throws(SystemError) {
        let failure: SystemError? = lock.withLock {
            let (parent, name) = split(path)
            guard let directory = directory(parent) else { return missing("mkdir", path) }
            if directory.entries[name] != nil { return nil }
            durableOperation()
            set(name, to: Node(directory: true), in: directory)
            return nil
        }
        if let failure { throw failure }
    }

    func removeDirectoryIfPresent(_ path: String) throws(SystemError) {
        lock.withLock {
            let (parent, name) = split(path)
            guard let directory = directory(parent), let node = directory.entries[name], node.isDirectory else { return }
            durableOperation()
            set(name, to: nil, in: directory)
        }
    }

    func directoryEntries(_ path: String) throws(SystemError) -> [String]? {
        lock.withLock {
            guard let node = node(path), node.isDirectory else { return nil }
            return Array(node.entries.keys)
        }
    }

    func exists(_ path: String) throws(SystemError) -> Bool { lock.withLock { node(path) != nil } }

    func fileSize(_ path: String) -> Int? { lock.withLock { node(path).flatMap { $0.isDirectory ? nil : $0.size } } }

    final class WriterLock: @unchecked Sendable {
        let path: String
        unowned let storage: SimulatedStorage
        init(path: String, storage: SimulatedStorage) {
            self.path = path
            self.storage = storage
        }
        deinit { _ = storage.lock.withLock { storage.lockedPaths.remove(path) } }
    }

    func lock(_ path: String) throws(SystemError) -> (any Sendable)? {
        if try !exists(path) { try writeFile([], to: path) }
        let acquired = lock.withLock { lockedPaths.insert(path).inserted }
        return acquired ? WriterLock(path: path, storage: self) : nil
    }

    // MARK: Crash images

    /// What a machine that lost power now would find on its disk (call under the lock).
    private func image(using generator: inout SeededGenerator) -> SimulatedStorage {
        let image = SimulatedStorage()
        var copies: [ObjectIdentifier: Node] = [:]
        func copyDirectory(_ directory: Node) -> Node {
            let copy = Node(directory: true)
            var entries = directory.durableEntries
            let survivors = directory.pending.isEmpty ? 0 : Int(generator.next() % UInt64(directory.pending.count + 1))
            for change in directory.pending.prefix(survivors) { for (name, node) in change { entries[name] = node } }
            for (name, node) in entries {
                if let existing = copies[ObjectIdentifier(node)] {
                    copy.entries[name] = existing
                    continue
                }
                let copied = node.isDirectory ? copyDirectory(node) : copyFile(node)
                copies[ObjectIdentifier(node)] = copied
                copy.entries[name] = copied
            }
            copy.durableEntries = copy.entries
            return copy
        }
        func copyFile(_ file: Node) -> Node {
            var bytes = file.durable
            let page = 4096, sector = 512
            for start in stride(from: 0, to: file.size, by: page) {
                let end = min(file.size, start + page)
                let changed = file.live[start..<end].elementsEqual(bytes[start..<end]) == false
                guard changed else { continue }
                switch generator.next() % 3 {
                case 0: bytes.replaceSubrange(start..<end, with: file.live[start..<end]) // reached the disk
                case 1: break // never reached it
                default: // torn: some sectors did
                    for sectorStart in stride(from: start, to: end, by: sector) where generator.next() % 2 == 0 {
                        let sectorEnd = min(end, sectorStart + sector)
                        bytes.replaceSubrange(sectorStart..<sectorEnd, with: file.live[sectorStart..<sectorEnd])
                    }
                }
            }
            return Node(fileOfSize: file.size, durable: bytes)
        }
        let simRoot = copyDirectory(root)
        image.lock.withLock {
            image.root.entries = simRoot.entries
            image.root.durableEntries = simRoot.entries
            image.operations = 0
        }
        return image
    }
}
