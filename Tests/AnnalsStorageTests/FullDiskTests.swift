import Foundation
import Testing
@testable import AnnalsStorage
#if canImport(Glibc)
import Glibc
#endif

/// A file system that fills up: appends fail with a clear error, nothing acknowledged is lost,
/// and the store works again once space is freed. Runs on a small tmpfs mounted by the test
/// (root only; skipped where mounting is not permitted).
@Suite(.enabled(if: SmallFileSystem.canMount, "needs root to mount a tmpfs"))
struct FullDiskTests {
    /// Where a file system has no `fallocate`, a new segment's blocks are allocated by writing
    /// zeros: the file is never sparse, so a full disk is an error when the segment is created,
    /// never a `SIGBUS` on a later mapped write.
    @Test func zeroFilledAllocationIsAllocatedOrFailsWithENOSPC() throws {
        let fileSystem = try SmallFileSystem(megabytes: 1)
        defer { fileSystem.unmount() }
        let fits = fileSystem.path + "/fits"
        let fd = try Syscalls.open(fits, flags: O_RDWR | O_CREAT | O_EXCL)
        defer { Syscalls.close(fd) }
        try Syscalls.allocateByWritingZeros(fd, size: 256 * 1024 + 4096, path: fits)
        let status = try Syscalls.fileStatus(fd, path: fits)
        #expect(Int(status.st_size) == 256 * 1024 + 4096)
        #expect(Int(status.st_blocks) * 512 >= 256 * 1024 + 4096, "every block allocated, no hole")

        let tooBig = fileSystem.path + "/too-big"
        let big = try Syscalls.open(tooBig, flags: O_RDWR | O_CREAT | O_EXCL)
        defer { Syscalls.close(big) }
        #expect {
            try Syscalls.allocateByWritingZeros(big, size: 4 << 20, path: tooBig)
        } throws: { error in
            (error as? SystemError)?.errorNumber == ENOSPC
        }
    }

    @Test(arguments: [Compression.lz4, .none])
    func appendsOnAFullFileSystemFailCleanlyAndResumeWhenSpaceIsFreed(compression: Compression) async throws {
        let fileSystem = try SmallFileSystem(megabytes: 1)
        defer { fileSystem.unmount() }
        // A filler file to free later.
        let filler = fileSystem.path + "/filler"
        try Data(repeating: 0xAB, count: 384 * 1024).write(to: URL(fileURLWithPath: filler))
        let path = fileSystem.path + "/store"
        let options = StoreOptions(segmentSizeBytes: 64 * 1024, compression: compression)
        let store = try EventStore.open(at: path, options: options)
        var acknowledged: [UInt64: [UInt8]] = [:]
        var failure: AppendError?
        for index in 0..<10_000 {
            let event = checkableEvent(stream: "s-\(index % 5)", index: index, size: 300)
            do {
                let result = try await store.append([event], to: "s-\(index % 5)")
                acknowledged[result.firstPosition] = event.payload
            } catch {
                failure = error
                break
            }
        }
        let error = try #require(failure, "the file system never filled up")
        guard case .system(let systemError) = error else {
            Issue.record("expected a system error naming the call, got \(error)")
            return
        }
        #expect(systemError.errorNumber == ENOSPC, "\(systemError)")
        print("full disk (\(compression)): first failure \(systemError) after \(acknowledged.count) appends")
        #expect("\(error)".contains(fileSystem.path), "the error names the file: \(error)")
        // Everything acknowledged is there and intact; the failed append left nothing behind.
        func checkAcknowledged(_ store: EventStore) throws {
            let events = try readEverything(store)
            #expect(events.count == acknowledged.count)
            for event in events { #expect(try event.payload == acknowledged[event.position], "position \(event.position)") }
        }
        try checkAcknowledged(store)
        // Retrying while full fails the same way or succeeds (the failed roll released what it
        // had reserved); either way nothing acknowledged is lost and nothing half-written shows.
        for retry in 0..<5 {
            let event = checkableEvent(stream: "s-0", index: 90_000 + retry, size: 300)
            do {
                let result = try await store.append([event], to: "s-0")
                acknowledged[result.firstPosition] = event.payload
            } catch {
                guard case .system(let again) = error else {
                    Issue.record("retry \(retry): \(error)")
                    break
                }
                #expect(again.errorNumber == ENOSPC, "\(again)")
            }
        }
        try FileManager.default.removeItem(atPath: filler)
        for index in 0..<100 {
            let event = checkableEvent(stream: "after-\(index % 3)", index: index, size: 300)
            let result = try await store.append([event], to: "after-\(index % 3)")
            acknowledged[result.firstPosition] = event.payload
        }
        try checkAcknowledged(store)
        try await store.close()
        let report = StoreVerifier.verify(at: path)
        #expect(report.isSound, "\(report.problems)")
        let reopened = try EventStore.open(at: path, options: options)
        try checkAcknowledged(reopened)
        try await reopened.close()
    }
}

/// A tmpfs of a few megabytes mounted under the temporary directory for one test.
struct SmallFileSystem {
    let path: String

    static let canMount: Bool = {
        guard getuid() == 0 else { return false }
        guard let probe = try? SmallFileSystem(megabytes: 1) else { return false }
        probe.unmount()
        return true
    }()

    init(megabytes: Int) throws {
        path = FileManager.default.temporaryDirectory.path + "/annals-tmpfs-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard mount("tmpfs", path, "tmpfs", 0, "size=\(megabytes)m") == 0 else {
            let error = errno
            try? FileManager.default.removeItem(atPath: path)
            throw SystemError(call: "mount", path: path, errorNumber: error)
        }
    }

    func unmount() {
        _ = umount2(path, 0)
        try? FileManager.default.removeItem(atPath: path)
    }
}
