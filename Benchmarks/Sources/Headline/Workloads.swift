@_spi(Testing) import AnnalsStorage
import AnnalsTestSupport
import Foundation

/// One measured row of the headline table.
struct Measurement: Codable {
    var workload: String
    var system = "annals"
    var events: Int
    var eventBytes: Int
    var eventsPerSecond: Double
    var megabytesPerSecond: Double
    var p50Microseconds: Double?
    var p99Microseconds: Double?
}

/// The headline workloads: each runs in a fresh store under `directory`.
struct Workloads {
    let directory: String
    let pool: [(stream: String, event: EventData)]
    let averageEventBytes: Int

    init(directory: String, poolSize: Int) {
        self.directory = directory
        var generator = RealisticEvents(seed: 1)
        pool = generator.events(poolSize)
        averageEventBytes = pool.reduce(0) { $0 + $1.event.payload.count + $1.event.metadata.count + $1.event.type.utf8.count } / pool.count
    }

    private func freshStore(_ name: String, _ durability: Durability, compression: Compression = .lz4, encrypted: Bool = false) throws -> EventStore {
        let path = directory + "/" + name
        try? FileManager.default.removeItem(atPath: path)
        var options = StoreOptions(durability: durability, compression: compression)
        if encrypted { options.encryption = Self.encryptEverything }
        return try EventStore.open(at: path, options: options)
    }

    /// Every body encrypted under the store key, with a key-encryption key made for the run.
    static let encryptEverything = EncryptionOptions(keyProvider: RunKey(), encryptEverything: true)

    struct RunKey: KeyEncryptionKeyProvider {
        static let key = KeyEncryptionKey.generate()
        func keyEncryptionKey() throws(OpenError) -> KeyEncryptionKey { Self.key }
    }

    /// `total` events appended in batches of `batch` events, each batch one stream's frame.
    func appendBatches(
        total: Int, batch: Int, durability: Durability, name: String, compression: Compression = .lz4, encrypted: Bool = false
    ) async throws -> Measurement {
        let store = try freshStore(name, durability, compression: compression, encrypted: encrypted)
        let batches = total / batch
        let prepared: [[EventData]] = (0..<min(batches, 200)).map { index in
            (0..<batch).map { pool[(index * batch + $0) % pool.count].event }
        }
        var latencies: [Double] = []
        latencies.reserveCapacity(batches)
        let seconds = try await Stopwatch.time {
            for index in 0..<batches {
                let started = ContinuousClock.now
                _ = try await store.append(prepared[index % prepared.count], to: "order-\(index % 10_000)")
                let elapsed = ContinuousClock.now - started
                latencies.append(Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds))
            }
            try await store.flush()
        }
        try await store.close()
        let events = batches * batch
        return Measurement(
            workload: "append-batch\(batch)-\(label(durability))\(compression == .none ? "-uncompressed" : "")\(encrypted ? "-encrypted" : "")",
            events: events, eventBytes: averageEventBytes,
            eventsPerSecond: Double(events) / seconds, megabytesPerSecond: Double(events * averageEventBytes) / seconds / 1e6,
            p50Microseconds: Stopwatch.percentile(latencies, 0.5) * 1e6, p99Microseconds: Stopwatch.percentile(latencies, 0.99) * 1e6)
    }

    /// `writers` tasks each appending `perWriter` single events, fsync before ack.
    func concurrentSingles(writers: Int, perWriter: Int) async throws -> Measurement {
        let store = try freshStore("singles-\(writers)", .fsyncBeforeAck)
        let pool = self.pool
        let start = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for writer in 0..<writers {
                group.addTask {
                    var latencies: [Double] = []
                    for index in 0..<perWriter {
                        let item = pool[(writer * perWriter + index) % pool.count]
                        let started = ContinuousClock.now
                        _ = try await store.append([item.event], to: "writer-\(writer)")
                        let elapsed = ContinuousClock.now - started
                        latencies.append(Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds))
                    }
                    return latencies
                }
            }
            var all: [Double] = []
            for try await part in group { all += part }
            return all
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let flushes = store.commitCounters.flushes
        try await store.close()
        let events = writers * perWriter
        print("  \(writers) writer(s): \(events) appends served by \(flushes) flushes")
        return Measurement(
            workload: "append-single-fsync-\(writers)writer\(writers == 1 ? "" : "s")", events: events, eventBytes: averageEventBytes,
            eventsPerSecond: Double(events) / seconds, megabytesPerSecond: Double(events * averageEventBytes) / seconds / 1e6,
            p50Microseconds: Stopwatch.percentile(latencies, 0.5) * 1e6, p99Microseconds: Stopwatch.percentile(latencies, 0.99) * 1e6)
    }

    /// Replays `$all` of the store left by an earlier append workload (page cache warm: the
    /// best of three runs after one warm-up), touching every payload.
    func replay(name: String, workload: String = "replay-all", encrypted: Bool = false) async throws -> Measurement {
        var options = StoreOptions(readOnly: true)
        if encrypted { options.encryption = Self.encryptEverything }
        let store = try EventStore.open(at: directory + "/" + name, options: options)
        var best = Double.infinity
        var events = 0
        var bytes = 0
        for run in 0..<4 {
            var count = 0
            var payloadBytes = 0
            var checksum: UInt8 = 0
            let seconds = try Stopwatch.time {
                var cursor = store.readAll().makeCursor()
                while let event = try cursor.next() {
                    count += 1
                    payloadBytes += event.payloadCount
                    checksum ^= try event.withPayloadBytes { $0.last ?? 0 }
                }
            }
            if checksum == 1 && count < 0 { print("") }
            if run > 0 { best = min(best, seconds) }
            events = count
            bytes = payloadBytes
        }
        return Measurement(
            workload: workload, events: events, eventBytes: bytes / max(events, 1),
            eventsPerSecond: Double(events) / best, megabytesPerSecond: Double(bytes) / best / 1e6)
    }

    /// Whole 100-event stream reads on the store every system gets (`StreamReads`).
    func streamReads() async throws -> Measurement {
        let store = try freshStore("streams", .none)
        for (stream, events) in StreamReads.batches(pool: pool) { _ = try await store.append(events, to: stream) }
        try await store.flush()
        var failure: (any Error)?
        let latencies = StreamReads.time { stream in
            do {
                var cursor = store.read(stream).makeCursor()
                var count = 0, touched = 0
                while let event = try cursor.next() {
                    count += 1
                    touched &+= try event.withPayloadBytes { Int($0.first ?? 0) }
                }
                precondition(count == StreamReads.eventsPerStream && touched >= 0)
            } catch { failure = error }
        }
        if let failure { throw failure }
        try await store.close()
        return StreamReads.measurement(system: "annals", latencies: latencies, eventBytes: averageEventBytes)
    }

    /// Compression of the store left by an earlier workload: metadata+payload bytes as given
    /// and as stored (every compressed block decoded and checked by `verify`), and the bytes
    /// the log occupies.
    func compression(name: String) -> (bodyRatio: Double, logBytes: Int, compressedEvents: UInt64, events: UInt64) {
        let report = StoreVerifier.verify(at: directory + "/" + name)
        precondition(report.isSound, "\(report.problems)")
        return (Double(report.bodyBytes) / Double(max(report.storedBodyBytes, 1)), report.bytes, report.compressedEvents, report.events)
    }

    /// Opens the store left by an earlier workload (closed cleanly), best of five.
    func reopen(name: String) throws -> Measurement {
        var best = Double.infinity
        var events: UInt64 = 0
        for _ in 0..<5 {
            var store: EventStore?
            let seconds = try Stopwatch.time { store = try EventStore.open(at: directory + "/" + name) }
            events = store?.endPosition ?? 0
            best = min(best, seconds)
            let opened = store
            store = nil
            _ = opened
        }
        return Measurement(workload: "reopen-clean", events: Int(events), eventBytes: averageEventBytes,
                           eventsPerSecond: Double(events) / best, megabytesPerSecond: 0,
                           p50Microseconds: best * 1e6, p99Microseconds: nil)
    }

    private func label(_ durability: Durability) -> String {
        switch durability {
        case .fsyncBeforeAck: return "fsync"
        case .periodic: return "periodic"
        case .none: return "nosync"
        }
    }
}

extension Stopwatch {
    static func time(_ body: () throws -> Void) throws -> Double {
        let start = ContinuousClock.now
        try body()
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}
