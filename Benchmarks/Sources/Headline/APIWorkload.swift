import Annals
import Foundation

/// Issue 6's figures: aggregate load time, subscription latency, projection catch-up.
enum APIWorkload {
    struct Deposited: DomainEvent { static let eventType = "Deposited"; var amount: Decimal; var reference: String }
    enum Events: EventFamily {
        case deposited(Deposited)
        static let members: [EventMember<Events>] = [.member(Deposited.self, Events.deposited)]
        var event: any DomainEvent { switch self { case .deposited(let event): event } }
    }
    struct Balance: SnapshottingAggregate {
        static let category = "balance"
        static let snapshotSchemaVersion = 1
        static let initial = Balance()
        var total: Decimal = 0
        var count = 0
        func evolve(_ event: Events) -> Balance {
            guard case .deposited(let deposit) = event else { return self }
            return Balance(total: total + deposit.amount, count: count + 1)
        }
        func decide(_ command: Decimal) throws(Never) -> [Events] {
            [.deposited(Deposited(amount: command, reference: "ref-\(count)"))]
        }
    }
    struct Totals: Projection {
        typealias Event = Events
        static let name = "totals"
        static let version = 1
        static let initialState: [String: Int] = [:]
        static func apply(_ event: Events, recorded: RecordedEvent, to state: inout [String: Int]) {
            state[recorded.stream, default: 0] += 1
        }
    }

    static func run(directory: String) async throws {
        let path = directory + "/api"
        try? FileManager.default.removeItem(atPath: path)
        let store = try EventStore.open(at: path, options: StoreOptions(durability: .none))
        let translator = EventTranslator<Events>()
        // 10,000 events in one aggregate, 50 in another; 200,000 across 1,000 streams for catch-up.
        for chunk in 0..<100 {
            let events = try (0..<100).map { try translator.encode(.deposited(Deposited(amount: Decimal(chunk * 100 + $0), reference: "r\($0)"))) }
            _ = try await store.append(events, to: Balance.stream(for: "big"))
        }
        _ = try await store.append(try (0..<50).map { try translator.encode(.deposited(Deposited(amount: Decimal($0), reference: "s"))) },
                                   to: Balance.stream(for: "small"))
        for chunk in 0..<2000 {
            let events = try (0..<100).map { try translator.encode(.deposited(Deposited(amount: Decimal($0), reference: "c\(chunk)"))) }
            _ = try await store.append(events, to: "balance-\(chunk % 1000)")
        }
        let repository = Repository<Balance>(store)
        func timeLoad(_ id: String) throws -> Double {
            var samples: [Double] = []
            for _ in 0..<20 {
                let start = ContinuousClock.now
                _ = try repository.load(id)
                samples.append(Self.seconds(ContinuousClock.now - start))
            }
            return samples.sorted()[samples.count / 2]
        }
        let big = try timeLoad("big"), small = try timeLoad("small")
        // A snapshot 50 events before the end of the big aggregate, as `.every(N)` would leave.
        let snapshotState = try repository.load("big", atRevision: 9949).state
        let encoder = JSONEncoder()
        try await store.saveSnapshot(of: Balance.stream(for: "big"), revision: 9949, schemaVersion: 1,
                                     bytes: Array(try encoder.encode(snapshotState)))
        let snapshotting = Repository<Balance>(store, snapshots: .never)
        var samples: [Double] = []
        for _ in 0..<20 {
            let start = ContinuousClock.now
            let loaded = try snapshotting.load("big")
            samples.append(Self.seconds(ContinuousClock.now - start))
            precondition(loaded.snapshotRevision == 9949 && loaded.state.count == 10_000)
        }
        let fromSnapshot = samples.sorted()[samples.count / 2]
        print("aggregate load, JSON events through the repository: 10,000 events \(String(format: "%.2f", big * 1e3)) ms; "
            + "from a snapshot + 50 events \(String(format: "%.3f", fromSnapshot * 1e3)) ms "
            + "(\(String(format: "%.0f", big / fromSnapshot))x); 50 events alone \(String(format: "%.3f", small * 1e3)) ms")

        // Projection catch-up over everything in the store.
        let runner = ProjectionRunner<Totals>(store: store, checkpoints: .init(everyEvents: 50_000))
        let end = store.endPosition
        let start = ContinuousClock.now
        let task = Task { try await runner.run() }
        try await runner.waitUntilApplied(through: end - 1)
        let catchUp = Self.seconds(ContinuousClock.now - start)
        task.cancel()
        _ = try? await task.value
        print("projection catch-up: \(end) events in \(String(format: "%.2f", catchUp)) s = "
            + "\(String(format: "%.0f", Double(end) / catchUp)) events/s (decode + apply + 5 checkpoints)")
        try await store.close()

        for durability in [Durability.fsyncBeforeAck, .none] {
            try await subscriptionLatency(directory: directory, durability: durability)
        }
    }

    /// Time from calling `append` to the subscriber receiving the event, one event at a time.
    static func subscriptionLatency(directory: String, durability: Durability) async throws {
        let path = directory + "/latency"
        try? FileManager.default.removeItem(atPath: path)
        let store = try EventStore.open(at: path, options: StoreOptions(durability: durability))
        let sent = SentTimes()
        let count = 2000
        let subscriber = Task {
            var latencies: [Double] = []
            for try await message in store.subscribe(from: .start) {
                guard case .event(let event) = message else { continue }
                let now = ContinuousClock.now
                latencies.append(Self.seconds(now - sent.time(of: Int(event.position))))
                if latencies.count == count { break }
            }
            return latencies
        }
        for index in 0..<count {
            sent.record(index)
            _ = try await store.append([EventData(type: "Ping", payload: Array(#"{"i":\#(index)}"#.utf8))], to: "ping")
            if index % 10 == 0 { try await Task.sleep(for: .microseconds(200)) }
        }
        let latencies = try await subscriber.value.sorted()
        print("subscription latency, append call to delivery (\(durability == .none ? "no sync" : "fsync before ack"), \(count) events): "
            + "p50 \(String(format: "%.1f", latencies[count / 2] * 1e6)) µs, p99 \(String(format: "%.1f", latencies[count * 99 / 100] * 1e6)) µs")
        try await store.close()
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// When each event was handed to `append` (written by the appender, read by the subscriber).
    final class SentTimes: @unchecked Sendable {
        private let lock = NSLock()
        private var times: [Int: ContinuousClock.Instant] = [:]
        func record(_ index: Int) { lock.withLock { times[index] = ContinuousClock.now } }
        func time(of index: Int) -> ContinuousClock.Instant { lock.withLock { times[index] ?? ContinuousClock.now } }
    }
}
