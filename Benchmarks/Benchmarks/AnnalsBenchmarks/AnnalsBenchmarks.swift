import AnnalsStorage
import Benchmark
import AnnalsTestSupport
import Foundation

// package-benchmark suites: `cd Benchmarks && swift package benchmark`.
// Each append benchmark runs against a fresh temporary store; sizes are kept small enough for
// a 2-core machine. The headline comparison table is `make bench`.

private func temporaryStore(_ name: String, _ durability: Durability) throws -> (EventStore, String) {
    let path = FileManager.default.temporaryDirectory.path + "/annals-benchmark-\(name)-\(UUID().uuidString)"
    return (try EventStore.open(at: path, options: StoreOptions(durability: durability)), path)
}

private let pool: [EventData] = {
    var generator = RealisticEvents(seed: 7)
    return generator.events(10_000).map(\.event)
}()

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 2,
        maxDuration: .seconds(5),
        maxIterations: 200
    )

    for batch in [1, 100, 1000] {
        for (label, durability) in [("fsync", Durability.fsyncBeforeAck), ("nosync", .none)] {
            Benchmark("append batch\(batch) \(label)", configuration: .init(scalingFactor: .one)) { benchmark in
                let (store, path) = try temporaryStore("append", durability)
                let events = Array(pool.prefix(batch))
                benchmark.startMeasurement()
                for iteration in benchmark.scaledIterations {
                    blackHole(try await store.append(events, to: "order-\(iteration % 1000)"))
                }
                benchmark.stopMeasurement()
                try await store.close()
                try? FileManager.default.removeItem(atPath: path)
            }
        }
    }

    Benchmark("replay $all 100k events", configuration: .init(scalingFactor: .one)) { benchmark in
        let (store, path) = try temporaryStore("replay", .none)
        for start in stride(from: 0, to: 100_000, by: 1000) {
            _ = try await store.append(Array(pool[(start % 10_000)..<(start % 10_000 + 1000)]), to: "order-\(start)")
        }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var cursor = store.readAll().makeCursor()
            var count = 0
            while let event = try cursor.next() { count &+= event.payloadCount }
            blackHole(count)
        }
        benchmark.stopMeasurement()
        try await store.close()
        try? FileManager.default.removeItem(atPath: path)
    }
}
