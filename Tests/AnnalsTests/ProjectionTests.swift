import Annals
import AnnalsExamples
import AnnalsTestSupport
import Foundation
import Synchronization
import Testing

/// Projections: exactly once for state kept in the store (across crashes at random moments),
/// rebuild on a version change, read-your-writes, and at-least-once external read models.
@Suite struct ProjectionTests {
    struct Counted: DomainEvent { static let eventType = "Counted"; var value: Int }
    enum CountedEvents: EventFamily {
        case counted(Counted)
        static let members: [EventMember<CountedEvents>] = [.member(Counted.self, CountedEvents.counted)]
        var event: any DomainEvent { switch self { case .counted(let event): event } }
    }

    /// Records every position it applies, so a duplicate or a gap is visible.
    struct Ledger: Projection {
        struct State: Codable, Sendable { var positions: [UInt64] = []; var sum = 0 }
        typealias Event = CountedEvents
        static let name = "ledger"
        static let version = 1
        static let filter = SubscriptionFilter.streamPrefix("count-")
        static let initialState = State()
        static func apply(_ event: CountedEvents, recorded: RecordedEvent, to state: inout State) {
            guard case .counted(let counted) = event else { return }
            state.positions.append(recorded.position)
            state.sum += counted.value
        }
    }

    /// The same name, a new version that means something else: must rebuild from scratch.
    struct LedgerV2: Projection {
        struct State: Codable, Sendable { var count = 0 }
        typealias Event = CountedEvents
        static let name = "ledger"
        static let version = 2
        static let filter = SubscriptionFilter.streamPrefix("count-")
        static let initialState = State()
        static func apply(_ event: CountedEvents, recorded: RecordedEvent, to state: inout State) { state.count += 1 }
    }

    /// LedgerV2 that fails at position 1,500: a build that stops midway.
    struct CrashingLedgerV2: Projection {
        typealias State = LedgerV2.State
        typealias Event = CountedEvents
        static let name = LedgerV2.name
        static let version = LedgerV2.version
        static let filter = LedgerV2.filter
        static let initialState = LedgerV2.initialState
        struct Crash: Error {}
        static func apply(_ event: CountedEvents, recorded: RecordedEvent, to state: inout State) throws {
            if recorded.position == 1_500 { throw Crash() }
            LedgerV2.apply(event, recorded: recorded, to: &state)
        }
    }

    func counted(_ value: Int) throws -> EventData {
        try EventTranslator<CountedEvents>().encode(.counted(Counted(value: value)))
    }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func storedStateIsExactlyOnceAcrossCrashes(seed: UInt64) async throws {
        let scratch = ScratchStore()
        var random = SeededGenerator(seed: seed)
        var expectedPositions: [UInt64] = []
        var expectedSum = 0
        // Five lives: each appends, runs the projection for a random while, then "crashes":
        // the runner is cancelled at a random moment (it stops without committing what it
        // applied since its last commit) and every other life drops the store without close.
        for life in 0..<5 {
            let store = try await openWhenReleased(scratch)
            for index in 0..<Int.random(in: 50...300, using: &random) {
                let value = life * 1000 + index
                let stream = index % 5 == 0 ? "other-\(index)" : "count-\(index % 3)"
                let result = try await store.append([try counted(value)], to: stream)
                if stream.hasPrefix("count-") {
                    expectedPositions.append(result.firstPosition)
                    expectedSum += value
                }
            }
            let runner = ProjectionRunner<Ledger>(store: store, checkpoints: .init(everyEvents: Int.random(in: 3...40, using: &random)))
            let task = Task { try await runner.run() }
            try await Task.sleep(for: .microseconds(Int.random(in: 0...3000, using: &random)))
            task.cancel()
            _ = try? await task.value
            if life % 2 == 0 { try await store.close() } // else: as a crashed process leaves it
        }
        let store = try await openWhenReleased(scratch)
        let runner = ProjectionRunner<Ledger>(store: store, checkpoints: .init(everyEvents: 17))
        let task = Task { try await runner.run() }
        try await store.waitUntilProjected(Ledger.name, through: expectedPositions.last!)
        let state = await runner.state
        #expect(state.positions == expectedPositions, "seed \(seed): each event applied exactly once, in order")
        #expect(state.sum == expectedSum)
        task.cancel()
        try await task.value
        // What was committed is what the next runner starts from.
        let next = ProjectionRunner<Ledger>(store: store)
        let again = Task { try await next.run() }
        for _ in 0..<2000 where await next.position <= expectedPositions.last! { try await Task.sleep(for: .milliseconds(1)) }
        #expect(await next.state.positions == expectedPositions)
        again.cancel()
        try await again.value
        try await store.close()
    }

    /// Opens the store once the previous instance (dropped without close) has let go of the
    /// writer lock: its last references go away asynchronously (flush queue).
    func openWhenReleased(_ scratch: ScratchStore) async throws -> EventStore {
        for _ in 0..<200 {
            do { return try scratch.open(.fsyncBeforeAck) } catch OpenError.storeLocked {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        return try scratch.open(.fsyncBeforeAck)
    }

    @Test func aNewProjectionVersionRebuildsFromTheFirstEvent() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        for value in 0..<20 { _ = try await store.append([try counted(value)], to: "count-1") }
        let v1 = ProjectionRunner<Ledger>(store: store)
        let first = Task { try await v1.run() }
        try await store.waitUntilProjected(Ledger.name, through: 19)
        first.cancel()
        try await first.value
        #expect(await v1.state.sum == 190)

        let v2 = ProjectionRunner<LedgerV2>(store: store)
        let second = Task { try await v2.run() }
        try await store.waitUntilProjected(LedgerV2.self, through: 19)
        #expect(await v2.state.count == 20, "rebuilt from scratch, not continued from v1's checkpoint")
        second.cancel()
        try await second.value
        try await v2.rebuild()
        #expect(await v2.position == 0)
        try await store.close()
    }

    /// A new version builds beside the served one while the old runner goes on serving and
    /// appends go on: readers of the committed state see the old version, never a half-built
    /// new one; a crash during the build resumes it from its build checkpoint; once caught up
    /// the new version takes over and the old runner stops, superseded.
    @Test func aNewVersionBuildsBesideTheServedOneAndTakesOver() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        for value in 0..<3_000 { _ = try await store.append([try counted(value)], to: "count-\(value % 3)") }
        let v1 = ProjectionRunner<Ledger>(store: store, checkpoints: .init(maxDelay: .milliseconds(5)))
        let serving = Task { try await v1.run() }
        try await store.waitUntilProjected(Ledger.self, through: 2_999)

        // The new version stops mid-build, as a crash would (its apply fails at position 1,500
        // after build commits at 500 and 1,000), then starts again.
        let first = ProjectionRunner<CrashingLedgerV2>(store: store, checkpoints: .init(everyEvents: 500))
        await #expect(throws: ProjectionError.self) { try await first.run() }
        #expect(await first.isBuilding, "it was building, not served")
        #expect(store.lastRevision(of: LedgerV2.buildStream) == 2, "build checkpoints at 500, 1,000 and 1,500")
        let v1Served = try #require(try Ledger.committedState(in: store))
        #expect(v1Served.state.positions.count == 3_000, "the served state is v1's, whole")
        #expect(try LedgerV2.committedState(in: store) == nil, "no half-built v2 is served")

        let second = ProjectionRunner<LedgerV2>(store: store)
        let resumed = Task { try await second.run() }
        let writer = Task { for value in 0..<300 { _ = try await store.append([try counted(value)], to: "count-0") } }
        try await writer.value
        try await store.waitUntilProjected(LedgerV2.self, through: store.endPosition - 1, timeout: .seconds(60))
        #expect(await !second.isBuilding)
        #expect(try LedgerV2.committedState(in: store)?.state.count == 3_300, "v2 served, every event once")
        #expect(await second.state.count == 3_300)
        // v1 stops, superseded, as soon as it reads the takeover (no other event needed).
        await #expect(throws: ProjectionError.superseded(name: Ledger.name, version: 2)) { try await serving.value }
        await second.stop()
        try await resumed.value
        try await store.close()
    }

    @Test func ordersViewReadsItsWritesThroughTheProjection() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open(.fsyncBeforeAck)
        let runner = ProjectionRunner<OrdersView>(store: store)
        let task = Task { try await runner.run() }
        let orders = Repository<Order>(store)
        let items = [OrderItem(sku: "a", quantity: 3, unitPrice: Decimal(string: "2.10")!)]
        for id in 0..<10 {
            try await orders.execute(.place(customer: "c\(id)", items: items, at: Date()), on: "\(id)")
        }
        let shipped = try await orders.execute(.ship(carrier: "UPS", trackingNumber: "1Z"), on: "3")
        try await store.waitUntilProjected(OrdersView.name, through: shipped.append!.lastPosition)
        let view = await runner.state
        #expect(view.count == 10)
        #expect(view["3"]?.status == .shipped && view["3"]?.carrier == "UPS")
        #expect(view["4"]?.total == Decimal(string: "6.30"))
        // Time travel on the aggregate: order 3 just before it shipped.
        let history = try orders.history("3")
        #expect(history.count == 2)
        #expect(try orders.load("3", atRevision: 0).state.status == .placed)
        task.cancel()
        try await task.value
        try await store.close()
    }

    /// An external read model: handles may repeat after a crash, never skip.
    actor ExternalLedger: ExternalProjection {
        typealias Event = CountedEvents
        static let name = "external-ledger"
        static let filter = SubscriptionFilter.streamPrefix("count-")
        var handled: [UInt64] = []
        var saved: UInt64?
        func loadCheckpoint() async throws -> UInt64? { saved }
        func handle(_ event: CountedEvents, recorded: RecordedEvent) async throws { handled.append(recorded.position) }
        func saveCheckpoint(_ position: UInt64) async throws { saved = position }
    }

    @Test func externalProjectionsAreAtLeastOnceFromTheirOwnCheckpoint() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        for value in 0..<100 { _ = try await store.append([try counted(value)], to: "count-\(value % 4)") }
        let ledger = ExternalLedger()
        let runner = ExternalProjectionRunner(store: store, projection: ledger, checkpointEvery: 30)
        let task = Task { try await runner.run() }
        try await runner.waitUntilHandled(through: 99)
        for value in 100..<150 { _ = try await store.append([try counted(value)], to: "count-0") }
        try await runner.waitUntilHandled(through: 149)
        task.cancel()
        try await task.value
        #expect(await ledger.handled == (0..<150).map { UInt64($0) })
        #expect(await ledger.saved == 150)
        #expect(await runner.lag == 0)
        // Waits end with their own errors: a deadline, and a run that stops before getting there.
        await #expect(throws: ProjectionWaitError.self) { try await runner.waitUntilHandled(through: 10_000, timeout: .milliseconds(20)) }
        let again = Task { try await runner.run() }
        let waiting = Task { try await runner.waitUntilHandled(through: 10_000, timeout: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(50))
        await runner.stop()
        try await again.value
        await #expect(throws: ProjectionWaitError.runnerStopped(projection: ExternalLedger.name, position: 10_000)) {
            try await waiting.value
        }
        try await store.close()
    }
}
