import Annals
import Foundation
import MetricsTestKit
import Testing

/// Waiting for a projection ends: positions the projection does not consume count as passed,
/// a deadline, cancellation, a closed store and a stopped runner each end a wait with their
/// own error; and a live projection commits by its policy, not once per event.
@Suite struct ProjectionWaitTests {
    typealias Ledger = ProjectionTests.Ledger

    func counted(_ value: Int) throws -> EventData {
        try EventTranslator<ProjectionTests.CountedEvents>().encode(.counted(ProjectionTests.Counted(value: value)))
    }

    /// The log ends with events the projection skips (another stream, a snapshot, the runner's
    /// own checkpoint): waiting through the last position returns.
    @Test func waitingThroughTheLastPositionEndsWhenTheLogEndsWithSkippedEvents() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open(.fsyncBeforeAck)
        let runner = ProjectionRunner<Ledger>(store: store, checkpoints: .init(maxDelay: .milliseconds(5)))
        let task = Task { try await runner.run() }
        for value in 0..<10 { _ = try await store.append([try counted(value)], to: "count-\(value % 2)") }
        try await store.waitUntilProjected(Ledger.self, through: store.endPosition - 1, timeout: .seconds(60))
        // The runner's own checkpoint is now the last event.
        #expect(store.lastRevision(of: Ledger.checkpointStream) != nil)
        try await store.waitUntilProjected(Ledger.self, through: store.endPosition - 1, timeout: .seconds(60))
        try await store.waitUntilProjected(Ledger.name, through: store.endPosition - 1, timeout: .seconds(60))
        // Another stream and a snapshot at the end.
        _ = try await store.append([try counted(99)], to: "other-1")
        try await store.saveSnapshot(of: "count-1", revision: 0, schemaVersion: 1, bytes: [1])
        try await store.waitUntilProjected(Ledger.self, through: store.endPosition - 1, timeout: .seconds(60))
        try await runner.waitUntilApplied(through: store.endPosition - 1, timeout: .seconds(60))
        #expect(await runner.state.positions.count == 10)
        task.cancel()
        try await task.value
        try await store.close()
    }

    /// A live projection's lag and a named subscription's lag are gauges.
    @Test func projectionAndSubscriptionLagAreRecorded() async throws {
        let scratch = ScratchStore()
        let metrics = TestMetrics()
        var options = StoreOptions(durability: .none, segmentSizeBytes: 256 * 1024)
        options.metricsFactory = metrics
        let store = try EventStore.open(at: scratch.path, options: options)
        for value in 0..<20 { _ = try await store.append([try counted(value)], to: "count-0") }
        var iterator = store.subscribe(from: .start, name: "audit").makeAsyncIterator()
        _ = try await iterator.next()
        #expect(try metrics.expectGauge("annals_subscription_lag_events", [("subscription", "audit")]).lastValue != nil)
        let runner = ProjectionRunner<Ledger>(store: store)
        let task = Task { try await runner.run() }
        try await runner.waitUntilApplied(through: 19)
        await runner.stop()
        try await task.value
        #expect(try metrics.expectGauge("annals_projection_lag_events", [("projection", Ledger.name)]).lastValue == 0)
        #expect(try metrics.expectCounter("annals_projection_events_total", [("projection", Ledger.name)]).totalValue == 20)
        #expect(try metrics.expectCounter("annals_projection_checkpoints_total", [("projection", Ledger.name)]).totalValue >= 1)
        try await store.close()
    }

    /// A stop() before run() ends that run at once; a second run() of a running runner, and a
    /// rebuild() during a run, are refused.
    @Test func stopBeforeRunAndASecondRunAreHandled() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        for value in 0..<5 { _ = try await store.append([try counted(value)], to: "count-0") }
        let runner = ProjectionRunner<Ledger>(store: store)
        await runner.stop()
        try await runner.run() // returns: stopped before it started
        let task = Task { try await runner.run() }
        try await runner.waitUntilApplied(through: 4)
        await #expect(throws: ProjectionError.self) { try await runner.run() }
        await #expect(throws: ProjectionError.self) { try await runner.rebuild() }
        await runner.stop()
        try await task.value
        #expect(await runner.state.positions.count == 5, "each event applied once")
        try await store.close()
    }

    /// A wait for an application event the projection skips (another stream) ends, typed or
    /// by name: passing it makes a commit due.
    @Test func aWaitForAnEventTheProjectionSkipsEnds() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        for value in 0..<50 { _ = try await store.append([try counted(value)], to: "count-0") }
        let runner = ProjectionRunner<Ledger>(store: store, checkpoints: .init(maxDelay: .milliseconds(5)))
        let task = Task { try await runner.run() }
        try await store.waitUntilProjected(Ledger.self, through: 49, timeout: .seconds(60))
        let other = try await store.append([try counted(1)], to: "other-last")
        try await store.waitUntilProjected(Ledger.name, through: other.lastPosition, timeout: .seconds(60))
        try await store.waitUntilProjected(Ledger.self, through: other.lastPosition, timeout: .seconds(60))
        await runner.stop()
        try await task.value
        try await store.close()
    }

    @Test func aWaitWithNoRunnerTimesOutWithWhereTheProjectionIs() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        for value in 0..<3 { _ = try await store.append([try counted(value)], to: "count-0") }
        await #expect(throws: ProjectionWaitError.timedOut(projection: Ledger.name, position: 2, projectedThrough: 0)) {
            try await store.waitUntilProjected(Ledger.self, through: 2, timeout: .milliseconds(50))
        }
        try await store.close()
    }

    @Test func cancellationAndCloseEndAWaitWithTheirOwnErrors() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        _ = try await store.append([try counted(1)], to: "count-0")
        let cancelled = Task { try await store.waitUntilProjected(Ledger.self, through: 0, timeout: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(20))
        cancelled.cancel()
        await #expect(throws: ProjectionWaitError.cancelled) { try await cancelled.value }
        let closing = Task { try await store.waitUntilProjected(Ledger.self, through: 0, timeout: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(20))
        try await store.close()
        await #expect(throws: ProjectionWaitError.storeClosed) { try await closing.value }
    }

    @Test func aStoppedRunnerEndsTheWaitsOnItAndCommitsWhatItApplied() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        let runner = ProjectionRunner<Ledger>(store: store, checkpoints: .init(everyEvents: 1_000, maxDelay: .seconds(60)))
        for value in 0..<5 { _ = try await store.append([try counted(value)], to: "count-0") }
        let task = Task { try await runner.run() }
        try await runner.waitUntilApplied(through: 4)
        let waiting = Task { try await runner.waitUntilApplied(through: 1_000, timeout: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(20))
        await runner.stop()
        try await task.value
        await #expect(throws: ProjectionWaitError.runnerStopped(projection: Ledger.name, position: 1_000)) { try await waiting.value }
        #expect(await runner.committedPosition == 5, "stop commits what was applied")
        try await store.waitUntilProjected(Ledger.self, through: 4, timeout: .seconds(1))
        try await store.close()
    }

    /// 8 tasks append 5,000 events a few at a time while the projection follows live: it
    /// commits by its policy (about every 50 ms), a small fraction of the events, and the
    /// last of them is in its stored state.
    @Test func aLiveProjectionCommitsAFractionOfTheEventsItCovers() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open(.fsyncBeforeAck)
        let runner = ProjectionRunner<Ledger>(store: store)
        let task = Task { try await runner.run() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    for index in 0..<625 {
                        _ = try await store.append([try counted(index)], to: "count-\(writer)")
                        if index % 4 == 0 { try await Task.sleep(for: .milliseconds(1)) }
                    }
                }
            }
            try await group.waitForAll()
        }
        try await store.waitUntilProjected(Ledger.self, through: store.endPosition - 1, timeout: .seconds(30))
        let checkpoints = (store.lastRevision(of: Ledger.checkpointStream) ?? 0) + 1
        print("live projection: \(checkpoints) checkpoints for 5000 events")
        #expect(checkpoints * 20 <= 5_000, "\(checkpoints) checkpoints for 5,000 events")
        #expect(await runner.state.positions.count == 5_000)
        task.cancel()
        try await task.value
        try await store.close()
    }
}
