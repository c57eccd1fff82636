import Annals
import Foundation

/// `annals-headline rebuild`: a 1M-event projection brought to a new version while appends go
/// on. Version 1 is caught up and serving; version 2 starts, builds beside it from the first
/// event and takes over; a writer appends 100-event batches (about 50,000 events/s) all along. Reports the time from
/// the start of version 2 to its takeover, its build rate, and the writer's rate meanwhile.
enum RebuildWorkload {
    typealias Deposited = APIWorkload.Deposited
    typealias Events = APIWorkload.Events

    struct CountsV1: Projection {
        typealias Event = Events
        static let name = "counts"
        static let version = 1
        static let initialState: [String: Int] = [:]
        static func apply(_ event: Events, recorded: RecordedEvent, to state: inout [String: Int]) {
            state[recorded.stream, default: 0] += 1
        }
    }

    struct CountsV2: Projection {
        typealias Event = Events
        static let name = "counts"
        static let version = 2
        static let initialState: [String: Decimal] = [:]
        static func apply(_ event: Events, recorded: RecordedEvent, to state: inout [String: Decimal]) {
            guard case .deposited(let deposit) = event else { return }
            state[recorded.stream, default: 0] += deposit.amount
        }
    }

    static func run(directory: String, events: Int) async throws {
        let path = directory + "/rebuild"
        try? FileManager.default.removeItem(atPath: path)
        let store = try EventStore.open(at: path, options: StoreOptions(durability: .none))
        let translator = EventTranslator<Events>()
        let batch = try (0..<100).map { try translator.encode(.deposited(Deposited(amount: Decimal($0), reference: "r\($0)"))) }
        for chunk in 0..<(events / 100) { _ = try await store.append(batch, to: "acct-\(chunk % 1000)") }
        let v1 = ProjectionRunner<CountsV1>(store: store)
        let serving = Task { try await v1.run() }
        try await store.waitUntilProjected(CountsV1.self, through: store.endPosition - 1, timeout: .seconds(600))

        let stop = Locked(false)
        let writer = Task { () -> Int in
            var appended = 0
            // 50,000 events/s: a busy app, slower than a projection can fold (a writer faster
            // than the projection would never let the new version catch up).
            while !stop.value {
                _ = try await store.append(batch, to: "acct-\(appended / 100 % 1000)")
                appended += 100
                try await Task.sleep(for: .milliseconds(2))
            }
            return appended
        }
        let started = ContinuousClock.now
        let v2 = ProjectionRunner<CountsV2>(store: store)
        let building = Task { try await v2.run() }
        while try CountsV2.committedState(in: store) == nil {
            guard ContinuousClock.now - started < .seconds(300) else { throw BenchmarkFailure("v2 did not catch up in 300 s") }
            try await Task.sleep(for: .milliseconds(5))
        }
        let took = ContinuousClock.now - started
        stop.value = true
        let appended = try await writer.value
        let seconds = Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18
        let served = try CountsV2.committedState(in: store)?.position ?? 0
        _ = try? await serving.value // v1 stops, superseded
        await v2.stop()
        try await building.value
        try await store.close()
        try? FileManager.default.removeItem(atPath: path)
        print("projection v1 → v2 of \(events) events while appends go on: v2 served after "
            + String(format: "%.2f s (%.2fM events/s built; the writer appended %d events, %.0f/s, meanwhile); ",
                     seconds, Double(served) / seconds / 1e6, appended, Double(appended) / seconds)
            + "v1 served until then")
    }

    /// A flag shared with the writer task.
    final class Locked: @unchecked Sendable {
        private let lock = NSLock()
        private var flag: Bool
        init(_ value: Bool) { flag = value }
        var value: Bool {
            get { lock.withLock { flag } }
            set { lock.withLock { flag = newValue } }
        }
    }
}
