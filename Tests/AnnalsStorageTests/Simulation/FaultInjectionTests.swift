import Foundation
import Testing
@_spi(Testing) @testable import AnnalsStorage

/// Storage that fails: a sync that returns `EIO`, a full disk (`ENOSPC`) at every step of a
/// segment roll. Whatever fails, no acknowledged append is lost — neither when the process
/// restarts (the page cache survives) nor after a power loss (only what was synced survives) —
/// a failed sync stops the store from acknowledging anything more, and after a full disk the
/// store takes appends again once there is space.
@Suite struct FaultInjectionTests {
    static let path = "/sim/store"

    static func options(_ storage: SimulatedStorage) -> StoreOptions {
        var options = StoreOptions(segmentSizeBytes: 8192, compression: .none)
        options.storage = StorageChoice(storage: storage)
        return options
    }

    struct Acknowledged {
        let position: UInt64
        let payload: [UInt8]
    }

    static func payload(_ index: Int) -> [UInt8] { (0..<300).map { UInt8(truncatingIfNeeded: $0 &+ index &* 31) } }

    /// Every acknowledged append is in the store at its position, intact; the store verifies.
    static func expectEveryAcknowledgedAppend(_ acknowledged: [Acknowledged], in storage: SimulatedStorage, _ context: String) async throws {
        let store = try EventStore.open(at: path, options: options(storage))
        var byPosition: [UInt64: [UInt8]] = [:]
        var cursor = store.readAll().makeCursor()
        while let event = try cursor.next() { byPosition[event.position] = try event.payload }
        for event in acknowledged {
            #expect(byPosition[event.position] == event.payload, "\(context): acknowledged position \(event.position)")
        }
        #expect(StoreVerifier.verify(at: path, storage: storage).isSound, "\(context)")
        try await store.close()
    }

    /// A sync that fails with EIO: the append it would have acknowledged throws `storeFailed`,
    /// so does every later one, and reopening — after a restart or a power loss — finds every
    /// append acknowledged before it.
    @Test func failedSyncAcknowledgesNothingMoreAndLosesNothing() async throws {
        let storage = SimulatedStorage()
        let store = try EventStore.open(at: Self.path, options: Self.options(storage))
        var acknowledged: [Acknowledged] = []
        for index in 0..<12 {
            let result = try await store.append([EventData(type: "T", payload: Self.payload(index))], to: "s-\(index % 3)")
            acknowledged.append(Acknowledged(position: result.firstPosition, payload: Self.payload(index)))
        }
        storage.fail(.sync, errno: EIO)
        await #expect {
            _ = try await store.append([EventData(type: "T", payload: Self.payload(99))], to: "s-0")
        } throws: { error in
            if case AppendError.storeFailed(let failure) = error { return failure.errorNumber == EIO }
            return false
        }
        await #expect(throws: AppendError.self) { _ = try await store.append([EventData(type: "T", payload: [1])], to: "s-1") }
        #expect(storage.plannedFailuresHappened)
        let afterPowerLoss = storage.imageNow(seed: 7)
        try? await store.close()
        try await Self.expectEveryAcknowledgedAppend(acknowledged, in: storage, "restart after EIO")
        try await Self.expectEveryAcknowledgedAppend(acknowledged, in: afterPowerLoss, "power loss after EIO")
    }

    /// EIO on each of the first writes into a segment file (frames, dictionary-free batches,
    /// durable marks, seal frames, new headers across rolls): the append that meets it throws
    /// `storeFailed`, so does every later one, readers of the failed store see exactly what was
    /// acknowledged, and reopening after a restart — and, under
    /// `fsyncBeforeAck`, after a power loss — finds every acknowledged append.
    @Test(arguments: [Durability.fsyncBeforeAck, .none])
    func failedWriteAtEveryStepAcknowledgesNothingMoreAndLosesNothing(durability: Durability) async throws {
        for step in 1...45 {
            let storage = SimulatedStorage()
            var options = Self.options(storage)
            options.durability = durability
            let store = try EventStore.open(at: Self.path, options: options)
            storage.fail(.write, after: step, errno: EIO)
            var acknowledged: [Acknowledged] = []
            var failure: AppendError?
            for index in 0..<60 where failure == nil {
                do {
                    if index % 5 == 4 {
                        // A group of frames in two streams.
                        let results = try await store.append([
                            StreamAppend(stream: "s-0", events: [EventData(type: "T", payload: Self.payload(index))]),
                            StreamAppend(stream: "s-1", events: [EventData(type: "T", payload: Self.payload(index + 1000))]),
                        ])
                        acknowledged.append(Acknowledged(position: results[0].firstPosition, payload: Self.payload(index)))
                        acknowledged.append(Acknowledged(position: results[1].firstPosition, payload: Self.payload(index + 1000)))
                    } else {
                        let result = try await store.append([EventData(type: "T", payload: Self.payload(index))], to: "s-\(index % 3)")
                        acknowledged.append(Acknowledged(position: result.firstPosition, payload: Self.payload(index)))
                    }
                } catch {
                    failure = error
                }
            }
            let context = "\(durability), failed write \(step)"
            #expect(storage.plannedFailuresHappened, "\(context): 60 appends write more than \(step) times")
            switch failure {
            case .storeFailed(let systemError)?:
                #expect(systemError.errorNumber == EIO, "\(context)")
                await #expect(throws: AppendError.self, "\(context): the failed store refuses appends") {
                    _ = try await store.append([EventData(type: "T", payload: [1])], to: "s-1")
                }
            case .system(let systemError)? where systemError.path.hasSuffix(".tmp"):
                // The header of the next segment's file: a failed creation, which leaves the
                // sealed segment last and the store usable (the next append creates it again).
                #expect(systemError.errorNumber == EIO, "\(context)")
                let result = try await store.append([EventData(type: "T", payload: Self.payload(500))], to: "s-2")
                acknowledged.append(Acknowledged(position: result.firstPosition, payload: Self.payload(500)))
            default:
                Issue.record("\(context): the append that met the failed write threw \(String(describing: failure))")
                continue
            }
            var seen: [UInt64] = []
            var cursor = store.readAll().makeCursor()
            while let event = try cursor.next() { seen.append(event.position) }
            #expect(seen == acknowledged.map(\.position).sorted(), "\(context): readers see exactly the acknowledged appends")
            let afterPowerLoss = storage.imageNow(seed: UInt64(step))
            try? await store.close()
            try await Self.expectEveryAcknowledgedAppend(acknowledged, in: storage, "\(context), restart")
            if durability == .fsyncBeforeAck {
                try await Self.expectEveryAcknowledgedAppend(acknowledged, in: afterPowerLoss, "\(context), power loss")
            }
        }
    }

    /// ENOSPC at every durable step of a roll (the old segment's syncs, the new file, its header
    /// sync, the rename, the directory sync, and the index file and checkpoint written after):
    /// the append that hits it fails or succeeds, nothing acknowledged is lost after a restart
    /// or a power loss, and the store takes appends again once the disk has room.
    @Test func fullDiskAtEveryStepOfARollLosesNothing() async throws {
        var step = 1
        var failedSomewhere = false
        while step < 40 {
            let storage = SimulatedStorage()
            let store = try EventStore.open(at: Self.path, options: Self.options(storage))
            var acknowledged: [Acknowledged] = []
            var index = 0
            func append() async throws {
                let result = try await store.append([EventData(type: "T", payload: Self.payload(index))], to: "s-\(index % 3)")
                acknowledged.append(Acknowledged(position: result.firstPosition, payload: Self.payload(index)))
                index += 1
            }
            // Fill most of the first segment, then fail the step-th durable operation from here on:
            // the next appends roll the log.
            while store.openSegmentFill.usedBytes < 8192 - 1200 { try await append() }
            storage.fail(nil, after: step, errno: ENOSPC)
            var failures = 0
            for _ in 0..<6 {
                do { try await append() } catch { failures += 1 }
            }
            await store.maintenance.drain()
            let happened = storage.plannedFailuresHappened
            let afterPowerLoss = storage.imageNow(seed: UInt64(step))
            try? await store.close()
            try await Self.expectEveryAcknowledgedAppend(acknowledged, in: storage, "ENOSPC at step \(step), restart")
            try await Self.expectEveryAcknowledgedAppend(acknowledged, in: afterPowerLoss, "ENOSPC at step \(step), power loss")
            // With room again, appends go on at the next position.
            let reopened = try EventStore.open(at: Self.path, options: Self.options(storage))
            let next = try await reopened.append([EventData(type: "After", payload: [1])], to: "s-0")
            #expect(next.firstPosition >= (acknowledged.last?.position ?? 0) + 1, "ENOSPC at step \(step)")
            try await reopened.close()
            failedSomewhere = failedSomewhere || failures > 0
            if !happened { break } // the roll and its background work had fewer steps than this
            step += 1
        }
        print("fault injection: a roll failed at \(step - 1) steps")
        #expect(step > 5, "the roll was failed at only \(step - 1) steps")
        #expect(failedSomewhere, "no injected failure reached an append (the test checked nothing)")
    }

    /// A background job that fails — the index file of a sealed segment, the checkpoint after a
    /// roll — is counted with its error and tried again until it succeeds, never dropped in
    /// silence: the store ends with its index file, and a reopen has nothing to rebuild.
    @Test func failedBackgroundWritesAreReportedAndRetried() async throws {
        let storage = SimulatedStorage()
        var options = Self.options(storage)
        options.maintenanceRetryDelay = .milliseconds(5)
        let store = try EventStore.open(at: Self.path, options: options)
        _ = try await store.append([EventData(type: "First", payload: [0])], to: "s-0") // its checkpoint write
        // The next two file writes fail: the first roll's index file, then whichever comes next
        // (the checkpoint after the roll, or the index file's retry).
        storage.fail(.writeFile, errno: EIO)
        storage.fail(.writeFile, after: 2, errno: EIO)
        var index = 0
        while store.view.withLock({ $0.segments.count }) < 2 {
            _ = try await store.append([EventData(type: "T", payload: Self.payload(index))], to: "s-\(index % 3)")
            index += 1
        }
        // The index file's write fails first, then the checkpoint queued behind it; both retries
        // run 5 ms later, in that order.
        for _ in 0..<400 where store.view.withLock({ $0.tables.isEmpty }) || store.maintenanceStatus.pendingRetries > 0 {
            try await Task.sleep(for: .milliseconds(5))
            await store.maintenance.drain()
        }
        let status = store.maintenanceStatus
        let checkpoint = try #require(try storage.readFile(Self.path + "/checkpoint", maximumBytes: 64))
        #expect(try Checkpoint.decode(checkpoint).get().segmentIndex == 1, "the retried checkpoint names the new segment")
        #expect(status.failures == 2, "\(status)")
        #expect(status.lastFailure?.contains("Input/output error") == true, "\(status)")
        #expect(status.retries >= 2 && status.pendingRetries == 0, "\(status)")
        #expect(store.view.withLock { $0.tables.map(\.segments) } == [0...0], "the retry wrote segment 0's index file")
        try await store.close()
        let reopened = try EventStore.open(at: Self.path, options: Self.options(storage))
        #expect(reopened.recoveryReport.rebuiltIndexes.isEmpty, "\(reopened.recoveryReport)")
        #expect(reopened.recoveryReport.cleanShutdown, "the checkpoint was written in the end")
        try await reopened.close()
    }
}
