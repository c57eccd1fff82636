import AnnalsStorage
import Benchmark
import AnnalsTestSupport
import Foundation

// package-benchmark suites: `cd Benchmarks && swift package benchmark`.
// Each append benchmark runs against a fresh temporary store; sizes are kept small enough for
// a 2-core machine. The headline comparison table is `make bench`.

private func temporaryStore(
    _ name: String, _ durability: Durability, compression: Compression = .lz4
) throws -> (EventStore, String) {
    let path = FileManager.default.temporaryDirectory.path + "/annals-benchmark-\(name)-\(UUID().uuidString)"
    return (try EventStore.open(at: path, options: StoreOptions(durability: durability, compression: compression)), path)
}

/// A temporary store holding 100k realistic events in 1,000-event frames of 100 streams.
private func storeOf100kEvents(_ name: String, compression: Compression) async throws -> (EventStore, String) {
    let (store, path) = try temporaryStore(name, .none, compression: compression)
    for start in stride(from: 0, to: 100_000, by: 1000) {
        _ = try await store.append(Array(pool[(start % 10_000)..<(start % 10_000 + 1000)]), to: "order-\(start)")
    }
    return (store, path)
}

/// Reads everything the cursor gives, touching each payload's first byte.
private func touchPayloads<Cursor: EventCursor>(_ cursor: Cursor) throws -> Int {
    var cursor = cursor
    var touched = 0
    while let event = try cursor.next() { touched &+= try event.withPayloadBytes { Int($0.first ?? 0) } }
    return touched
}

private let pool: [EventData] = {
    var generator = RealisticEvents(seed: 7)
    return generator.events(10_000).map(\.event)
}()

let benchmarks: @Sendable () -> Void = {
    // Checked-in thresholds (Thresholds/, `make benchmarks-check`) hold malloc counts only, as
    // swift-nio's do: they are deterministic; times on a shared 2-core machine are not.
    // Benchmark names have no spaces: package-benchmark 1.38 writes threshold files with
    // spaces replaced by "_" but looks them up with the spaces.
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 2,
        maxDuration: .seconds(5),
        maxIterations: 200,
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 2])]
    )

    for batch in [1, 100, 1000] {
        for (label, durability) in [("fsync", Durability.fsyncBeforeAck), ("nosync", .none)] {
            Benchmark("append-batch\(batch)-\(label)", configuration: .init(scalingFactor: .one)) { benchmark in
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

    Benchmark("append-single-fsync-64writers", configuration: .init(scalingFactor: .one)) { benchmark in
        let (store, path) = try temporaryStore("concurrent", .fsyncBeforeAck)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            // One iteration: 64 tasks each appending one event, sharing flushes.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<64 {
                    group.addTask { _ = try await store.append([pool[writer]], to: "writer-\(writer)") }
                }
                try await group.waitForAll()
            }
        }
        benchmark.stopMeasurement()
        try await store.close()
        try? FileManager.default.removeItem(atPath: path)
    }

    for compression in [Compression.lz4, .none] {
        let label = compression == .lz4 ? "lz4" : "uncompressed"
        Benchmark("replay-all-100k-\(label)", configuration: .init(scalingFactor: .one)) { benchmark in
            let (store, path) = try await storeOf100kEvents("replay", compression: compression)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { blackHole(try touchPayloads(store.readAll().makeCursor())) }
            benchmark.stopMeasurement()
            try await store.close()
            try? FileManager.default.removeItem(atPath: path)
        }

        Benchmark("read-stream-100-\(label)", configuration: .init(scalingFactor: .one)) { benchmark in
            let (store, path) = try temporaryStore("streams", .none, compression: compression)
            for round in 0..<10 {
                for stream in 0..<200 {
                    _ = try await store.append(Array(pool[((round * 200 + stream) * 10 % 9_990)...].prefix(10)), to: "acct-\(stream)")
                }
            }
            benchmark.startMeasurement()
            for iteration in benchmark.scaledIterations { blackHole(try touchPayloads(store.read("acct-\(iteration % 200)").makeCursor())) }
            benchmark.stopMeasurement()
            try await store.close()
            try? FileManager.default.removeItem(atPath: path)
        }
    }

    Benchmark("reopen-100k", configuration: .init(scalingFactor: .one, maxIterations: 50)) { benchmark in
        let (store, path) = try await storeOf100kEvents("reopen", compression: .lz4)
        try await store.close()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let reopened = try EventStore.open(at: path, options: StoreOptions(durability: .none))
            blackHole(reopened.endPosition)
            try await reopened.close()
        }
        benchmark.stopMeasurement()
        try? FileManager.default.removeItem(atPath: path)
    }
}
