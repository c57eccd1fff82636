import Foundation
import Synchronization
import Testing
@_spi(Testing) @testable import AnnalsStorage

/// Under `fsyncBeforeAck` an append's frame waits in memory for the flush that syncs it (one
/// write for every frame staged meanwhile). These tests hold a flush in its sync, so frames
/// stay staged, and check that nothing which reads written frames misses them: readers see
/// only what was synced, a retry with the same event ids is recognised as a repeat, an append
/// condition sees the staged event, and everything arrives once the sync goes on.
@Suite struct StagedFramesTests {
    static let path = "/sim/staged"

    static func options(_ storage: SimulatedStorage) -> StoreOptions {
        var options = StoreOptions(durability: .fsyncBeforeAck, segmentSizeBytes: 1 << 20, compression: .lz4)
        options.storage = StorageChoice(storage: storage)
        return options
    }

    struct TimedOut: Error, CustomStringConvertible {
        let what: String
        var description: String { "timed out waiting until \(what)" }
    }

    /// Polls `condition` every millisecond, for 20 s at most.
    static func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw TimedOut(what: what) }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    static func hasStagedFrames(_ store: EventStore) -> Bool { !store.writer.withLock { $0.staged.isEmpty } }

    /// Runs `append` in a task, and returns once it has been decided while the flush is held:
    /// it threw, or it waits for durability beside the `waiting` appenders already waiting.
    static func decide(
        _ store: EventStore, besides waiting: Int, _ append: @escaping @Sendable () async throws -> AppendResult
    ) async throws -> Task<AppendResult, any Error> {
        let finished = Mutex(false)
        let task = Task {
            defer { finished.withLock { $0 = true } }
            return try await append()
        }
        try await waitUntil("the append is decided") {
            finished.withLock { $0 } || store.durability.withLock { $0.waiters.count } > waiting
        }
        return task
    }

    /// A flush is held in its sync of a first append; a second append's frame is staged.
    static func holdAFlushAndStage(
        _ events: [EventData], to stream: String, in store: EventStore, _ storage: SimulatedStorage
    ) async throws -> (first: Task<AppendResult, any Error>, staged: Task<AppendResult, any Error>) {
        storage.holdSyncs()
        let appendsBefore = store.commitCounters.appends
        let first = Task { try await store.append([EventData(type: "First", payload: [1])], to: "first") }
        try await waitUntil("the first append's flush is in its sync") { storage.syncsHeld == 1 }
        let staged = Task { try await store.append(events, to: stream) }
        try await waitUntil("the second append is written") { store.commitCounters.appends == appendsBefore + 2 }
        #expect(hasStagedFrames(store), "its frame waits in memory for the next flush")
        return (first, staged)
    }

    @Test func aRetryOfAStagedAppendIsRecognisedAsItsRepeat() async throws {
        let storage = SimulatedStorage()
        let store = try EventStore.open(at: Self.path, options: Self.options(storage))
        defer { storage.releaseSyncs() }
        _ = try await store.append([EventData(type: "Seed", payload: [0])], to: "a")
        let events = (0..<3).map { EventData(id: UUID(), type: "Placed", payload: Array("order \($0)".utf8)) }
        let (first, original) = try await Self.holdAFlushAndStage(events, to: "a", in: store, storage)
        var readable = 0
        var cursor = store.readAll().makeCursor()
        while try cursor.next() != nil { readable += 1 }
        #expect(readable == 1, "readers see only what was synced")

        // The retry reads the staged events back to compare their ids, while the flush is held.
        let retry = try await Self.decide(store, besides: 2) { try await store.append(events, to: "a") }
        storage.releaseSyncs()
        _ = try await first.value
        let originalResult = try await original.value
        #expect(try await retry.value == originalResult, "the retry returns the original append's result")
        var stored: [UUID] = []
        var streamCursor = store.read("a").makeCursor()
        while let event = try streamCursor.next() { stored.append(event.id) }
        #expect(stored.count == 4 && Array(stored.suffix(3)) == events.map(\.id), "the events are stored once")
        try await store.close()
    }

    @Test func anAppendConditionSeesAStagedEvent() async throws {
        let storage = SimulatedStorage()
        let store = try EventStore.open(at: Self.path, options: Self.options(storage))
        defer { storage.releaseSyncs() }
        let (first, claimed) = try await Self.holdAFlushAndStage(
            [EventData(type: "Claimed", payload: [1], tags: ["seat:12"])], to: "seat-12", in: store, storage)
        // Checked against everything written, durable or not.
        let conflicting = try await Self.decide(store, besides: 2) {
            try await store.append([EventData(type: "Claimed", payload: [2], tags: ["seat:12"])], to: "seat-12-b",
                                   condition: AppendCondition(failIfEventsMatch: EventQuery(tags: ["seat:12"])))
        }
        storage.releaseSyncs()
        _ = try await first.value
        let claim = try await claimed.value
        await #expect(throws: AppendError.appendConditionFailed(position: claim.firstPosition)) { _ = try await conflicting.value }
        try await store.close()
    }

    @Test func stagedFramesAreDurableOnceTheirFlushIsAndSurviveACrash() async throws {
        let storage = SimulatedStorage()
        let store = try EventStore.open(at: Self.path, options: Self.options(storage))
        defer { storage.releaseSyncs() }
        let (first, staged) = try await Self.holdAFlushAndStage(
            [EventData(type: "Staged", payload: Array(repeating: 7, count: 500))], to: "s", in: store, storage)
        // More appends stage behind it while the flush is held.
        let more = (0..<8).map { index in
            Task { try await store.append([EventData(type: "More", payload: [UInt8(index)])], to: "m-\(index % 3)") }
        }
        try await Self.waitUntil("every append is written") { store.commitCounters.appends == 10 }
        storage.releaseSyncs()
        var acknowledged = [try await first.value, try await staged.value]
        for task in more { acknowledged.append(try await task.value) }
        let afterPowerLoss = storage.imageNow(seed: 3)
        let reopened = try EventStore.open(at: Self.path, options: Self.options(afterPowerLoss))
        var positions: Set<UInt64> = []
        var cursor = reopened.readAll().makeCursor()
        while let event = try cursor.next() { positions.insert(event.position) }
        #expect(positions == Set(acknowledged.map(\.firstPosition)), "every acknowledged append survives a power loss")
        try await reopened.close()
        try await store.close()
    }

    /// An order of about 700 bytes of JSON.
    static func orderBody(_ index: Int) -> [UInt8] {
        Array("{\"order\": \(index), \"lines\": [\(String(repeating: "{\"sku\": \"A-1\", \"qty\": 2}, ", count: 24))]}".utf8)
    }

    @Test func aDictionaryFrameWrittenWhileFramesAreStagedKeepsThemInOrder() async throws {
        let storage = SimulatedStorage()
        let store = try EventStore.open(at: Self.path, options: Self.options(storage))
        defer { storage.releaseSyncs() }
        storage.holdSyncs()
        let first = Task { try await store.append([EventData(type: "First", payload: [1])], to: "first") }
        try await Self.waitUntil("the first append's flush is in its sync") { storage.syncsHeld == 1 }
        // Bodies of about 700 bytes: the writer's dictionary (16 KiB of recent bodies) becomes
        // due after a few dozen of them, while the earlier ones wait staged.
        let appends = (0..<60).map { index in
            Task { try await store.append([EventData(type: "Placed", payload: Self.orderBody(index))], to: "order-\(index % 7)") }
        }
        try await Self.waitUntil("every append is written") { store.commitCounters.appends == 61 }
        #expect(store.writer.withLock { $0.compression?.dueDictionaryFrameBytes == 0 }, "the dictionary frame was written")
        storage.releaseSyncs()
        _ = try await first.value
        var acknowledged: [UInt64: [UInt8]] = [:]
        for (index, task) in appends.enumerated() { acknowledged[try await task.value.firstPosition] = Self.orderBody(index) }
        let afterPowerLoss = storage.imageNow(seed: 5)
        let reopened = try EventStore.open(at: Self.path, options: Self.options(afterPowerLoss))
        var read: [UInt64: [UInt8]] = [:]
        var cursor = reopened.readAll().makeCursor()
        while let event = try cursor.next() { read[event.position] = try event.payload }
        for (position, payload) in acknowledged {
            #expect(read[position] == payload, "acknowledged position \(position) is intact after a power loss")
        }
        #expect(StoreVerifier.verify(at: Self.path, storage: afterPowerLoss).isSound)
        try await reopened.close()
        try await store.close()
    }
}
