import AnnalsStorage
import AnnalsTestSupport
import Foundation

/// `annals-headline rolls`: read latency while a writer rolls segments every few milliseconds.
///
/// A store of 1,000 streams of 100 realistic events, 4 MiB segments; then, for a fixed number
/// of reads, one reader reads a whole random stream (100 events, every payload touched) and
/// asks its `lastRevision`, first with no writer, then while a writer appends 100-event batches
/// under `.none` (a roll every few milliseconds). Reports p50 / p99 / p99.9 of both reads in
/// both phases, and how many segments the writer rolled through (at least 100: the reads go
/// on until it has).
struct RollLatencyWorkload {
    let directory: String
    static let streams = 1_000
    static let segmentSizeBytes = 4 << 20
    static let reads = 40_000
    /// The writer rolls at least this many segments while the reads beside it are measured.
    static let minimumRolls = 100

    struct Latencies {
        var streamRead: [Double] = []
        var lastRevision: [Double] = []
    }

    struct Figures {
        let idle: Latencies
        let rolling: Latencies
        let rolls: Int
        let writerEventsPerSecond: Double
    }

    var options: StoreOptions { StoreOptions(durability: .none, segmentSizeBytes: Self.segmentSizeBytes) }

    func run() async throws -> Figures {
        let path = directory + "/rolls"
        try? FileManager.default.removeItem(atPath: path)
        var generator = RealisticEvents(seed: 11)
        let pool = generator.events(20_000).map(\.event)
        let store = try EventStore.open(at: path, options: options)
        try await Self.populate(store, streams: Self.streams, from: pool)
        var random = SeededGenerator(seed: 12)
        _ = try measure(store, reads: 2_000, random: &random) // warm up
        let idle = try measure(store, reads: Self.reads, random: &random)

        let segmentsBefore = try store.statistics().segments
        let stop = Stopper()
        let writer = Task.detached { () -> Int in
            var appended = 0
            var index = 0
            while !stop.stopped {
                let first = index * 100 % (pool.count - 100)
                _ = try await store.append(Array(pool[first..<first + 100]), to: "writer-\(index % 64)")
                appended += 100
                index += 1
            }
            return appended
        }
        let start = ContinuousClock.now
        // At least `minimumRolls` rolls happen during the measured reads, however fast they are.
        let rolling = try measure(store, reads: Self.reads, random: &random) {
            ((try? store.statistics().segments) ?? 0) - segmentsBefore >= Self.minimumRolls
        }
        stop.stop()
        let appended = try await writer.value
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let rolls = try store.statistics().segments - segmentsBefore
        try await store.close()
        try? FileManager.default.removeItem(atPath: path)
        return Figures(idle: idle, rolling: rolling, rolls: rolls, writerEventsPerSecond: Double(appended) / seconds)
    }

    /// `streams` streams (`acct-N`) of 100 events from `pool`, appended in ten rounds of one
    /// 10-event batch per stream, so each stream's events lie in ten frames across the log.
    static func populate(_ store: EventStore, streams: Int, from pool: [EventData]) async throws {
        for round in 0..<10 {
            var batch: [StreamAppend] = []
            for stream in 0..<streams {
                let first = (round * streams + stream) * 10 % (pool.count - 10)
                batch.append(StreamAppend(stream: "acct-\(stream)", events: Array(pool[first..<first + 10])))
            }
            _ = try await store.append(batch)
        }
    }

    /// Reads `reads` streams, and goes on (checking every 1,000 reads) until `enough` says so.
    private func measure(
        _ store: EventStore, reads: Int, random: inout SeededGenerator, until enough: () -> Bool = { true }
    ) throws -> Latencies {
        var latencies = Latencies()
        latencies.streamRead.reserveCapacity(reads)
        latencies.lastRevision.reserveCapacity(reads)
        var touched = 0
        var done = 0
        while done < reads || (done % 1_000 != 0 || !enough()) {
            done += 1
            let stream = "acct-\(Int(random.next() % UInt64(Self.streams)))"
            let readStart = ContinuousClock.now
            var cursor = store.read(stream).makeCursor()
            var count = 0
            while let event = try cursor.next() {
                count += 1
                touched &+= try event.withPayloadBytes { Int($0.first ?? 0) }
            }
            latencies.streamRead.append(Self.seconds(since: readStart))
            guard count == 100 else { throw BenchmarkFailure("\(stream) has \(count) events") }
            let lookupStart = ContinuousClock.now
            guard store.lastRevision(of: stream) == 99 else { throw BenchmarkFailure("\(stream): wrong last revision") }
            latencies.lastRevision.append(Self.seconds(since: lookupStart))
        }
        if touched == -1 { Swift.print("") }
        return latencies
    }

    private static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// A flag the reader sets and the writer polls.
    final class Stopper: @unchecked Sendable {
        private let lock = NSLock()
        private var flag = false
        var stopped: Bool { lock.withLock { flag } }
        func stop() { lock.withLock { flag = true } }
    }

    static func print(_ figures: Figures) {
        func row(_ name: String, _ values: [Double]) -> String {
            let sorted = values.sorted()
            func at(_ fraction: Double) -> String { String(format: "%.1f", sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))] * 1e6) }
            return "\(name.padding(toLength: 36, withPad: " ", startingAt: 0)) p50 \(at(0.5)) µs, p99 \(at(0.99)) µs, p99.9 \(at(0.999)) µs"
        }
        Swift.print("read latency, at least \(reads) reads each, 4 MiB segments, 1,000 streams of 100 events")
        Swift.print("  no writer:")
        Swift.print("    " + row("read a whole 100-event stream", figures.idle.streamRead))
        Swift.print("    " + row("lastRevision", figures.idle.lastRevision))
        Swift.print("  a writer appending under .none (\(figures.rolls) rolls, \(Int(figures.writerEventsPerSecond)) events/s):")
        Swift.print("    " + row("read a whole 100-event stream", figures.rolling.streamRead))
        Swift.print("    " + row("lastRevision", figures.rolling.lastRevision))
    }
}
