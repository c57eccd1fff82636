@_spi(Testing) import AnnalsStorage
import AnnalsTestSupport
import Foundation

/// Issue 3's figures: stream reads, reopen and append throughput as the store grows.
/// Half the events are in 100-event streams ("acct-…"), half in 5-event streams ("cart-…").
struct StreamWorkload {
    let directory: String
    let events: Int
    let segmentSizeBytes: Int
    var compression: Compression = .lz4

    struct Figures {
        var events = 0
        var segments = 0
        var streams = 0
        var loadEventsPerSecond = 0.0
        var readP50Microseconds = 0.0
        var readP99Microseconds = 0.0
        var lookupP50Microseconds = 0.0
        var reopenCleanMilliseconds = 0.0
        var reopenAfterCrashMilliseconds = 0.0
        var crashTailBytes = 0
        var appendEventsPerSecond = 0.0
        var appendUnsyncedEventsPerSecond = 0.0
        var residentMegabytes = 0.0
        var residentAfterReadsMegabytes = 0.0
        var fileBackedMegabytes = 0.0
        var indexFileMegabytes = 0.0
    }

    /// The layouts the stream benchmarks use: 1M events in 4 MiB segments or 10M in 32 MiB,
    /// half that for LZ4 (which halves the bytes), so that every store spans over 100 segments.
    static func standard(directory: String, tenMillion: Bool, compression: Compression) -> StreamWorkload {
        StreamWorkload(directory: directory, events: tenMillion ? 10_000_000 : 1_000_000,
                       segmentSizeBytes: (tenMillion ? 32 << 20 : 4 << 20) >> (compression == .lz4 ? 1 : 0),
                       compression: compression)
    }

    var path: String { directory + "/streams-\(events)" }
    var longStreams: Int { events / 2 / 100 }
    var shortStreams: Int { events / 2 / 5 }

    var options: StoreOptions { StoreOptions(durability: .none, segmentSizeBytes: segmentSizeBytes, compression: compression) }

    func run() async throws -> Figures {
        var figures = Figures()
        figures.loadEventsPerSecond = try await load()
        let options = self.options
        // The load ran without sync: write back its dirty pages now, so the measurements below
        // are not throttled by the kernel's writeback of gigabytes they did not write.
        sync()

        var generator = RealisticEvents(seed: 4)
        let pool = generator.events(20_000).map(\.event)
        var poolIndex = 0
        func take(_ count: Int) -> [EventData] {
            defer { poolIndex = (poolIndex + count) % (pool.count - 200) }
            return Array(pool[poolIndex..<poolIndex + count])
        }
        // Reopen after a clean close (best of 3).
        var best = Double.infinity
        var store: EventStore?
        for _ in 0..<3 {
            let start = ContinuousClock.now
            store = try EventStore.open(at: path, options: options)
            best = min(best, seconds(since: start))
            try await store?.close()
            store = nil
        }
        figures.reopenCleanMilliseconds = best * 1000
        let residentBeforeOpen = residentMegabytes()
        let opened = try EventStore.open(at: path, options: options)
        figures.residentMegabytes = residentMegabytes() - residentBeforeOpen
        figures.fileBackedMegabytes = fileBackedMegabytes()
        let statistics = try opened.statistics()
        figures.events = Int(statistics.events)
        figures.segments = statistics.segments
        figures.streams = statistics.streams
        figures.indexFileMegabytes = Double(statistics.indexFileBytes) / 1e6

        // Stream reads: whole 100-event streams, random order, every payload touched.
        var random = SeededGenerator(seed: 99)
        let latencies = try readLatencies(opened, samples: 12_000, warmup: 2000, random: &random)
        var lookups: [Double] = []
        for _ in 0..<5000 {
            let stream = "acct-\(Int(random.next() % UInt64(longStreams)))"
            let start = ContinuousClock.now
            guard opened.lastRevision(of: stream) == 99 else { throw BenchmarkFailure("\(stream) is not at revision 99") }
            lookups.append(seconds(since: start))
        }
        figures.lookupP50Microseconds = Stopwatch.percentile(lookups, 0.5) * 1e6
        figures.readP50Microseconds = Stopwatch.percentile(latencies, 0.5) * 1e6
        figures.readP99Microseconds = Stopwatch.percentile(latencies, 0.99) * 1e6
        figures.residentAfterReadsMegabytes = residentMegabytes() - residentBeforeOpen
        try await opened.close()

        // Append throughput into the grown store, 100-event batches: without sync (what the
        // engine costs as the store grows) and with fsync (what the disk allows right now).
        figures.appendUnsyncedEventsPerSecond = try await unsyncedAppendRate(random: &random)
        let appender = try EventStore.open(at: path, options: StoreOptions(segmentSizeBytes: segmentSizeBytes))
        let appendStart = ContinuousClock.now
        for index in 0..<1000 {
            _ = try await appender.append(take(100), to: "acct-\(index % longStreams)")
        }
        figures.appendEventsPerSecond = 100_000 / seconds(since: appendStart)

        // Crash with an unindexed tail of one full segment: fill the open segment, then drop
        // the store without closing it (what `kill -9` leaves: stale checkpoint, data in the
        // page cache), and time the reopen.
        // Roll to a fresh segment, then fill it to within 8 KiB of its end.
        let firstSegments = try appender.statistics().segments
        while try appender.statistics().segments == firstSegments {
            _ = try await appender.append(take(100), to: "acct-\(Int(random.next() % UInt64(longStreams)))")
        }
        var batch: [StreamAppend] = []
        while appender.openSegmentFill.usedBytes + 64 * 1024 < segmentSizeBytes {
            batch.append(StreamAppend(stream: "cart-\(Int(random.next() % UInt64(shortStreams)))", events: take(5)))
            if batch.count == 50 { _ = try await appender.append(batch); batch.removeAll() }
        }
        figures.crashTailBytes = appender.openSegmentFill.usedBytes
        try await appender.flush()
        _ = consume appender
        let crashStart = ContinuousClock.now
        let recovered = try EventStore.open(at: path, options: options)
        figures.reopenAfterCrashMilliseconds = seconds(since: crashStart) * 1000
        guard recovered.recoveryReport.scannedBytes > segmentSizeBytes / 2 else {
            throw BenchmarkFailure("crash reopen scanned only \(recovered.recoveryReport.scannedBytes) bytes")
        }
        try await recovered.close()
        return figures
    }

    /// Events/s of 100-event appends to random long streams of the store, without sync: the
    /// median of three rounds of 200,000 events, as one round is short enough for a neighbour
    /// on this shared machine to halve or double it.
    func unsyncedAppendRate(random: inout SeededGenerator) async throws -> Double {
        var generator = RealisticEvents(seed: 5)
        let pool = generator.events(20_000).map(\.event)
        let store = try EventStore.open(at: path, options: options)
        var rates: [Double] = []
        for round in 0..<3 {
            let start = ContinuousClock.now
            for index in 0..<2000 {
                let first = (round * 2000 + index) * 100 % (pool.count - 100)
                _ = try await store.append(Array(pool[first..<first + 100]),
                                           to: "acct-\(Int(random.next() % UInt64(longStreams)))")
            }
            rates.append(200_000 / seconds(since: start))
        }
        try await store.close()
        return rates.sorted()[1]
    }

    /// Reads whole random 100-event streams, every payload touched; the seconds each took
    /// (after `warmup` reads). `streams`: read only that many streams (the first ones).
    func readLatencies(
        _ opened: EventStore, samples: Int, warmup: Int, random: inout SeededGenerator, streams: Int? = nil
    ) throws -> [Double] {
        var latencies: [Double] = []
        for sample in 0..<samples {
            let stream = "acct-\(Int(random.next() % UInt64(streams ?? longStreams)))"
            let start = ContinuousClock.now
            var cursor = opened.read(stream).makeCursor()
            var count = 0
            var touched = 0
            while let event = try cursor.next() {
                count += 1
                touched &+= try event.withPayloadBytes { Int($0.first ?? 0) }
            }
            let elapsed = seconds(since: start)
            guard count == 100 else { throw BenchmarkFailure("\(stream) has \(count) events") }
            if sample >= warmup { latencies.append(elapsed) }
            if touched == -1 { print("") }
        }
        return latencies
    }

    /// Writes the store (a fresh one at `path`); returns the load rate in events/s.
    func load() async throws -> Double {
        try? FileManager.default.removeItem(atPath: path)
        var generator = RealisticEvents(seed: 3)
        let pool = generator.events(20_000).map(\.event)

        // Load: 10 rounds; each round gives every long stream 10 events and a tenth of the
        // short streams their 5, so every stream is spread over the whole log.
        let store = try EventStore.open(at: path, options: options)
        var poolIndex = 0
        func take(_ count: Int) -> [EventData] {
            defer { poolIndex = (poolIndex + count) % (pool.count - 200) }
            return Array(pool[poolIndex..<poolIndex + count])
        }
        let loadStart = ContinuousClock.now
        for round in 0..<10 {
            var batch: [StreamAppend] = []
            for stream in 0..<longStreams {
                batch.append(StreamAppend(stream: "acct-\(stream)", events: take(10)))
                if batch.count == 100 { _ = try await store.append(batch); batch.removeAll() }
            }
            for stream in stride(from: round, to: shortStreams, by: 10) {
                batch.append(StreamAppend(stream: "cart-\(stream)", events: take(5)))
                if batch.count == 100 { _ = try await store.append(batch); batch.removeAll() }
            }
            if !batch.isEmpty { _ = try await store.append(batch) }
        }
        try await store.close()
        return Double(events) / seconds(since: loadStart)
    }

    private func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// Resident pages that are file-backed (segment and index mappings), from /proc/self/statm.
    private func fileBackedMegabytes() -> Double {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = statm.split(separator: " ")
        guard fields.count > 2, let pages = Double(fields[2]) else { return 0 }
        return pages * 4096 / 1e6
    }

    private func residentMegabytes() -> Double {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Double(fields[1]) else { return 0 }
        return pages * 4096 / 1e6
    }
}

struct BenchmarkFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
