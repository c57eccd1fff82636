import AnnalsTestSupport
import Foundation
import Testing
@_spi(Testing) @testable import AnnalsStorage

/// Fault plans beyond a single failing step: a roll that fails after the old segment is sealed,
/// a full disk at every step of a compaction, and random plans drawn from a printed seed over a
/// workload that appends, rolls, snapshots, sets retention and compacts. Whatever fails, every
/// acknowledged append of a live stream survives a restart and a power loss, and the store
/// verifies.
@Suite struct FaultPlanTests {
    typealias Acknowledged = FaultInjectionTests.Acknowledged
    static let path = FaultInjectionTests.path
    static func options(_ storage: SimulatedStorage) -> StoreOptions { FaultInjectionTests.options(storage) }
    static func payload(_ index: Int) -> [UInt8] { FaultInjectionTests.payload(index) }

    /// Appends event `index` to a live stream (recorded when acknowledged) or, every other
    /// time when `withDeadStream`, to the stream `dead` that retention removes later.
    static func append(_ index: Int, to store: EventStore, withDeadStream: Bool, acknowledged: inout [Acknowledged]) async throws {
        let live = !withDeadStream || index % 2 == 1
        let result = try await store.append([EventData(type: "T", payload: payload(index))], to: live ? "s-\(index % 3)" : "dead")
        if live { acknowledged.append(Acknowledged(position: result.firstPosition, payload: payload(index))) }
    }

    /// The next segment file cannot be created (a full disk) after the old segment was sealed
    /// and synced (the first roll creates its file itself; later ones find it prepared): the
    /// append fails with the system error, not a failed store; the sealed segment stays last
    /// and readable; the next append, with room again, rolls and goes on at the next position.
    @Test func rollThatFailsAfterSealingKeepsTheStoreUsable() async throws {
        let storage = SimulatedStorage()
        let store = try EventStore.open(at: Self.path, options: Self.options(storage))
        var acknowledged: [Acknowledged] = []
        var index = 0
        while store.openSegmentFill.usedBytes < 8192 - 1200 {
            try await Self.append(index, to: store, withDeadStream: false, acknowledged: &acknowledged)
            index += 1
        }
        #expect(store.writer.withLock { $0.preparedSegment == nil }, "nothing prepared before the first roll")
        storage.fail(.create, errno: ENOSPC)
        var failure: (any Error)?
        while failure == nil, index < 200 {
            do { try await Self.append(index, to: store, withDeadStream: false, acknowledged: &acknowledged) } catch {
                failure = error
            }
            index += 1
            await store.maintenance.drain()
        }
        guard case AppendError.system(let error) = try #require(failure) else {
            Issue.record("expected a system error, got \(String(describing: failure))")
            return
        }
        #expect(error.errorNumber == ENOSPC)
        #expect(storage.plannedFailuresHappened)
        #expect(!store.isClosed, "a failed creation does not fail the store")
        #expect(store.writer.withLock { $0.activeSealed }, "the sealed segment is still the last")
        let next = try await store.append([EventData(type: "After", payload: [1])], to: "s-0")
        await store.maintenance.drain()
        #expect(store.writer.withLock { $0.preparedSegment != nil }, "the roll prepared the file for the next one")
        #expect(next.firstPosition == (acknowledged.last?.position ?? 0) + 1, "no position lost or skipped")
        acknowledged.append(Acknowledged(position: next.firstPosition, payload: [1]))
        let afterPowerLoss = storage.imageNow(seed: 7)
        try await store.close()
        try await FaultInjectionTests.expectEveryAcknowledgedAppend(acknowledged, in: storage, "restart")
        try await FaultInjectionTests.expectEveryAcknowledgedAppend(acknowledged, in: afterPowerLoss, "power loss")
    }

    /// After a roll the next segment file is allocated ahead; the next roll takes it (renamed
    /// into place, not created), close deletes an unused one, and a writer's open deletes one
    /// left by a process that stopped without closing.
    @Test func preparedSegmentFileIsTakenByTheNextRollAndNeverOutlivesTheStore() async throws {
        let storage = SimulatedStorage()
        let prepared = Self.path + "/segments/" + PreparedSegmentFile.fileName
        var store: EventStore? = try EventStore.open(at: Self.path, options: Self.options(storage))
        var acknowledged: [Acknowledged] = []
        var index = 0
        func appendUntil(segments: Int) async throws {
            while store!.view.withLock({ $0.segments.count }) < segments {
                try await Self.append(index, to: store!, withDeadStream: false, acknowledged: &acknowledged)
                index += 1
            }
            await store!.maintenance.drain()
        }
        try await appendUntil(segments: 2)
        #expect(try storage.exists(prepared), "the first roll prepared the next file")
        let file = try #require(store!.writer.withLock { $0.preparedSegment?.file })
        try await appendUntil(segments: 3)
        #expect(store!.view.withLock { $0.segments[2].file } === file, "the second roll took the prepared file")
        #expect(try storage.exists(prepared), "and prepared the one after")
        try await store!.close()
        #expect(try !storage.exists(prepared), "close deletes the unused file")
        store = try EventStore.open(at: Self.path, options: Self.options(storage))
        try await appendUntil(segments: 4)
        #expect(try storage.exists(prepared))
        store = nil // stopped without close
        let reopened = try await openWhenReleased(Self.path, options: Self.options(storage))
        #expect(try !storage.exists(prepared), "the next writer deletes the left-over file")
        try await reopened.close()
        try await FaultInjectionTests.expectEveryAcknowledgedAppend(acknowledged, in: storage, "after the rolls")
    }

    /// ENOSPC at every file operation of a compaction (the seal of the open segment, each
    /// compacted file, its rename, the deletions, the index file, the checkpoints): the
    /// compaction fails or completes, every live event survives a restart and a power loss, the
    /// store verifies, and a compaction with room again completes.
    @Test func fullDiskAtEveryStepOfACompactionLosesNothing() async throws {
        var step = 1
        var compactionFailed = false
        while step < 80 {
            let storage = SimulatedStorage()
            let store = try EventStore.open(at: Self.path, options: Self.options(storage))
            var acknowledged: [Acknowledged] = []
            for index in 0..<90 { try await Self.append(index, to: store, withDeadStream: true, acknowledged: &acknowledged) }
            try await store.truncateStream("dead", before: 1_000)
            await store.maintenance.drain()
            storage.fail(nil, after: step, errno: ENOSPC)
            do { try await store.compact() } catch { compactionFailed = true }
            await store.maintenance.drain()
            let happened = storage.plannedFailuresHappened
            storage.cancelPlannedFailures()
            let afterPowerLoss = storage.imageNow(seed: UInt64(step))
            try? await store.close()
            try await FaultInjectionTests.expectEveryAcknowledgedAppend(acknowledged, in: storage, "ENOSPC at compaction step \(step), restart")
            try await FaultInjectionTests.expectEveryAcknowledgedAppend(acknowledged, in: afterPowerLoss, "ENOSPC at compaction step \(step), power loss")
            let reopened = try EventStore.open(at: Self.path, options: Self.options(storage))
            _ = try await reopened.compact()
            try await reopened.close()
            try await FaultInjectionTests.expectEveryAcknowledgedAppend(acknowledged, in: storage, "compaction after step \(step)")
            if !happened { break } // the compaction had fewer steps than this
            step += 1
        }
        print("fault injection: a compaction failed at \(step - 1) steps")
        #expect(step > 10, "the compaction was failed at only \(step - 1) steps")
        #expect(compactionFailed, "no injected failure reached the compaction (the test checked nothing)")
    }

    /// Random fault plans, each from a seed printed with any failure: one to three failures
    /// (`EIO` or `ENOSPC`, on any kind of operation, after a random number of them) during a
    /// workload of appends across rolls, a snapshot, retention and a compaction. Operations
    /// may fail; nothing acknowledged is lost, after a restart or a power loss.
    @Test(arguments: 1...24) func randomFaultPlansLoseNothing(seed: UInt64) async throws {
        var random = SeededGenerator(seed: seed)
        let storage = SimulatedStorage()
        let store = try EventStore.open(at: Self.path, options: Self.options(storage))
        let operations: [SimulatedStorage.Operation?] = [nil, .create, .sync, .writeFile, .rename, .unlink, .syncDirectory]
        var plan: [String] = []
        for _ in 0..<(1 + Int(random.next() % 3)) {
            let operation = operations[Int(random.next() % UInt64(operations.count))]
            // Within the workload's count of that kind (about 150 syncs, a dozen of the others).
            let after = 1 + Int(random.next() % (operation == nil || operation == .sync ? 150 : 12))
            let errorNumber = random.next() % 2 == 0 ? EIO : ENOSPC
            storage.fail(operation, after: after, errno: errorNumber)
            plan.append("\(operation?.rawValue ?? "any") #\(after) errno \(errorNumber)")
        }
        let context = "seed \(seed), plan \(plan.joined(separator: "; "))"
        var acknowledged: [Acknowledged] = []
        for index in 0..<120 {
            try? await Self.append(index, to: store, withDeadStream: true, acknowledged: &acknowledged)
            if index == 40 { _ = try? await store.saveSnapshot(of: "s-1", revision: 0, schemaVersion: 1, bytes: [1, 2, 3]) }
            if index == 80 { try? await store.truncateStream("dead", before: 1_000) }
        }
        _ = try? await store.compact()
        await store.maintenance.drain()
        if !storage.plannedFailuresHappened { print("fault plan \(context): not every failure was reached") }
        storage.cancelPlannedFailures()
        let afterPowerLoss = storage.imageNow(seed: seed)
        try? await store.close()
        try await FaultInjectionTests.expectEveryAcknowledgedAppend(acknowledged, in: storage, "\(context), restart")
        try await FaultInjectionTests.expectEveryAcknowledgedAppend(acknowledged, in: afterPowerLoss, "\(context), power loss")
    }
}
