import AnnalsStorage
import AnnalsTestSupport
import Foundation

// `make bench`: the headline append/replay table on a temporary store, with the machine's
// limits measured in the same run. `--full` runs the 10M-event sizes.

let full = CommandLine.arguments.contains("--full")
if CommandLine.arguments.count == 4, CommandLine.arguments[1] == "corpus", let count = Int(CommandLine.arguments[3]) {
    // `annals-headline corpus FILE N`: the generated events as length-prefixed records
    // (u32 type, u32 metadata, u32 payload lengths, then the bytes), for tools outside Swift.
    try Corpus.write(to: CommandLine.arguments[2], count: count)
    exit(0)
}
let streamsMode = CommandLine.arguments.contains("streams")
let scale = full ? 10 : 1
if CommandLine.arguments.count >= 3, CommandLine.arguments[1] == "replay" {
    // `annals-headline replay STORE [--uncompressed]`: `$all` replay of a store (1M events
    // made first when it does not exist), every payload touched. For profiling.
    let parent = (CommandLine.arguments[2] as NSString).deletingLastPathComponent
    let name = (CommandLine.arguments[2] as NSString).lastPathComponent
    let exists = FileManager.default.fileExists(atPath: CommandLine.arguments[2])
    let workloads = Workloads(directory: parent, poolSize: exists ? 1 : 100_000)
    if !exists {
        _ = try await workloads.appendBatches(total: 1_000_000, batch: 1000, durability: .none, name: name,
                                              compression: CommandLine.arguments.contains("--uncompressed") ? .none : .lz4)
    }
    let measurement = try await workloads.replay(name: name)
    print("\(measurement.events) events, \(Int(measurement.eventsPerSecond)) events/s")
    exit(0)
}
let base = ProcessInfo.processInfo.environment["ANNALS_BENCH_DIR"] ?? FileManager.default.temporaryDirectory.path
let directory = base + "/annals-bench-\(ProcessInfo.processInfo.processIdentifier)"
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: directory) }

if CommandLine.arguments.contains("rebuild") {
    // `annals-headline rebuild`: a 1M-event projection to a new version while appends go on.
    try await RebuildWorkload.run(directory: directory, events: full ? 10_000_000 : 1_000_000)
    try? FileManager.default.removeItem(atPath: directory)
    exit(0)
}

if CommandLine.arguments.contains("api") {
    // `annals-headline api`: aggregate loads, projection catch-up, subscription latency.
    try await APIWorkload.run(directory: directory)
    try? FileManager.default.removeItem(atPath: directory)
    exit(0)
}

/// The `streams` layout named by `DIR [--uncompressed] [--ten-million]`.
func standardWorkloadFromArguments() -> StreamWorkload {
    StreamWorkload.standard(directory: CommandLine.arguments[2], tenMillion: CommandLine.arguments.contains("--ten-million"),
                            compression: CommandLine.arguments.contains("--uncompressed") ? .none : .lz4)
}

if CommandLine.arguments.count >= 3, CommandLine.arguments[1] == "streamreads" {
    // `annals-headline streamreads DIR [--uncompressed] [--ten-million] [--cached]`: the stream
    // layout of `streams` (1M events, or 10M; made in DIR the first time), then 240,000
    // whole-stream reads. `--cached` reads 8 streams over and over: the CPU's share alone.
    let workload = standardWorkloadFromArguments()
    if !FileManager.default.fileExists(atPath: workload.path) { _ = try await workload.load() }
    let openStart = ContinuousClock.now
    let store = try EventStore.open(at: workload.path, options: workload.options)
    print("opened in \(ContinuousClock.now - openStart)")
    var random = SeededGenerator(seed: 99)
    let streams = CommandLine.arguments.contains("--cached") ? 8 : nil
    var rounds: [[Double]] = []
    for _ in 0..<20 {
        rounds.append(try workload.readLatencies(store, samples: 12_000, warmup: 0, random: &random, streams: streams))
    }
    func summary(_ latencies: [Double]) -> String {
        let sorted = latencies.sorted()
        return "p50 \(String(format: "%.1f", sorted[sorted.count / 2] * 1e6)) µs, "
            + "p99 \(String(format: "%.1f", sorted[sorted.count * 99 / 100] * 1e6)) µs over \(sorted.count) reads"
    }
    // The first round of reads after open, apart from the steady state of the later rounds.
    print("read a 100-event stream: first reads after open \(summary(rounds[0])); "
        + "steady state \(summary(Array(rounds[10...].joined())))")
    try await store.close()
    exit(0)
}

if CommandLine.arguments.count >= 3, CommandLine.arguments[1] == "appendgrowth" {
    // `annals-headline appendgrowth DIR [--uncompressed] [--ten-million]`: appends into the
    // grown store left by `streamreads`, on its own (the `streams` run measures them right
    // after writing the store, while the disk may still be busy with it).
    let workload = standardWorkloadFromArguments()
    var random = SeededGenerator(seed: 7)
    print("append into the grown store, 100/batch, no sync: \(Int(try await workload.unsyncedAppendRate(random: &random))) events/s")
    exit(0)
}

if CommandLine.arguments.contains("rolls") {
    // `annals-headline rolls`: read latency while a writer rolls 4 MiB segments under `.none`.
    print("Annals roll-latency benchmark in \(directory)")
    RollLatencyWorkload.print(try await RollLatencyWorkload(directory: directory).run())
    try? FileManager.default.removeItem(atPath: directory)
    exit(0)
}

if CommandLine.arguments.contains("archive") {
    // `annals-headline archive`: stream-read latency from archived segments, warm and cold.
    print("Annals archive-read benchmark in \(directory)")
    ArchiveReadWorkload.print(try await ArchiveReadWorkload(directory: directory).run())
    try? FileManager.default.removeItem(atPath: directory)
    exit(0)
}

/// Queries by tag and type and conditional appends, Annals beside SQLite, at each size.
func runQueries(sizes: [Int]) async throws {
    let pool = Workloads(directory: directory, poolSize: 100_000).pool
    for events in sizes {
        let workload = QueryWorkload(directory: directory, events: events, pool: pool)
        print("running queries at \(events) events: Annals…")
        let annals = try await workload.runAnnals()
        print("running queries at \(events) events: SQLite…")
        let sqlite = try workload.runSQLite()
        QueryWorkload.print(annals: annals, sqlite: sqlite)
    }
}

if CommandLine.arguments.contains("queries") {
    // `annals-headline queries [--full]`: reads by tag and type, conditional appends, vs SQLite.
    try await runQueries(sizes: full ? [1_000_000, 10_000_000] : [1_000_000])
    try? FileManager.default.removeItem(atPath: directory)
    exit(0)
}

if CommandLine.arguments.contains("kafka") {
    // `annals-headline kafka`: relay throughput and append-to-consume latency (mock cluster).
    print("Annals Kafka relay benchmark in \(directory)")
    KafkaWorkload.print(try await KafkaWorkload(directory: directory, events: full ? 2_000_000 : 200_000).run())
    try? FileManager.default.removeItem(atPath: directory)
    exit(0)
}

if CommandLine.arguments.contains("compaction") {
    // `annals-headline compaction [--full]`: disk bytes, compaction MB/s, appends beside it.
    let events = full ? 10_000_000 : 1_000_000
    print("Annals compaction benchmark in \(directory): loading \(events) events…")
    CompactionWorkload.print(try await CompactionWorkload(directory: directory, events: events).run())
    try? FileManager.default.removeItem(atPath: directory)
    exit(0)
}

if CommandLine.arguments.contains("writers") {
    // `annals-headline writers [--rounds N] [--writers N]`: 64 fsync'd single-event appenders
    // (or N), beside the fdatasync rate; three rounds unless told (more make a longer window
    // for a profiler).
    func option(_ name: String) -> Int? {
        CommandLine.arguments.firstIndex(of: name).flatMap { CommandLine.arguments.dropFirst($0 + 1).first.flatMap { Int($0) } }
    }
    let rounds = option("--rounds") ?? 3
    let writers = max(1, option("--writers") ?? 64)
    let workloads = Workloads(directory: directory, poolSize: 100_000)
    let limits = MachineLimits.measure(in: directory, batchBytes: 1000 * (workloads.averageEventBytes + 48))
    for _ in 0..<rounds {
        let row = try await workloads.concurrentSingles(writers: writers, perWriter: 64_000 / writers)
        print(String(format: "\(writers) writers: %.0f events/s = %.1f× fdatasync (%.0f/s); p50 %.0f µs, p99 %.0f µs = %.1f× fdatasync p50 (%.0f µs)",
                     row.eventsPerSecond, row.eventsPerSecond / limits.fdatasyncPerSecond, limits.fdatasyncPerSecond,
                     row.p50Microseconds ?? 0, row.p99Microseconds ?? 0, (row.p99Microseconds ?? 0) / limits.fdatasyncP50Microseconds,
                     limits.fdatasyncP50Microseconds))
    }
    try? FileManager.default.removeItem(atPath: directory)
    exit(0)
}

if CommandLine.arguments.contains("appends") {
    // `annals-headline appends [--lz4-only | --uncompressed-only]`: the 1,000-event batch rows,
    // LZ4 beside uncompressed (or one of them, for profiling).
    print("Annals append benchmark in \(directory)")
    let workloads = Workloads(directory: directory, poolSize: 100_000)
    let kinds: [Compression] = CommandLine.arguments.contains("--lz4-only") ? [.lz4]
        : CommandLine.arguments.contains("--uncompressed-only") ? [.none] : [.lz4, .none]
    for _ in 0..<2 {
        for durability in [Durability.fsyncBeforeAck, .none] {
            for compression in kinds {
                let row = try await workloads.appendBatches(total: 1_000_000, batch: 1000, durability: durability, name: "appends",
                                                            compression: compression)
                try? FileManager.default.removeItem(atPath: directory + "/appends")
                print(String(format: "%@: %.0f events/s, p50 %.0f µs, p99 %.0f µs", row.workload, row.eventsPerSecond,
                             row.p50Microseconds ?? 0, row.p99Microseconds ?? 0))
            }
        }
    }
    try? FileManager.default.removeItem(atPath: directory)
    exit(0)
}

if CommandLine.arguments.contains("encryption") {
    // `annals-headline encryption [--encrypted-only]`: the encrypted rows of the headline beside
    // their plain ones (only the encrypted ones, for profiling).
    print("Annals encryption benchmark in \(directory)")
    let workloads = Workloads(directory: directory, poolSize: 100_000)
    let encryptedOnly = CommandLine.arguments.contains("--encrypted-only")
    var rows: [Measurement] = []
    for _ in 0..<2 {
        if !encryptedOnly {
            rows.append(try await workloads.appendBatches(total: 1_000_000, batch: 1000, durability: .fsyncBeforeAck, name: "plain"))
        }
        rows.append(try await workloads.appendBatches(total: 1_000_000, batch: 1000, durability: .fsyncBeforeAck, name: "encrypted",
                                                      encrypted: true))
    }
    if !encryptedOnly { rows.append(try await workloads.replay(name: "plain")) }
    rows.append(try await workloads.replay(name: "encrypted", workload: "replay-all-encrypted", encrypted: true))
    for row in rows {
        print("\(row.workload): \(Int(row.eventsPerSecond)) events/s"
            + (row.p50Microseconds.map { String(format: ", p50 %.0f µs, p99 %.0f µs", $0, row.p99Microseconds ?? 0) } ?? ""))
    }
    try? FileManager.default.removeItem(atPath: directory)
    exit(0)
}

if streamsMode {
    // `annals-headline streams [--full]`: stream reads, reopen and growth (1M; 10M with --full).
    print("Annals stream benchmark in \(directory)")
    var rows: [(String, StreamWorkload.Figures)] = []
    for (tenMillion, compression) in [(false, Compression.lz4), (false, .none)] + (full ? [(true, .lz4), (true, .none)] : []) {
        let workload = StreamWorkload.standard(directory: directory, tenMillion: tenMillion, compression: compression)
        print("loading \(workload.events) events…")
        let figures = try await workload.run()
        rows.append(("\(workload.events / 1_000_000)M events, \(workload.segmentSizeBytes >> 20) MiB segments, "
            + (compression == .lz4 ? "LZ4" : "uncompressed"), figures))
        try? FileManager.default.removeItem(atPath: workload.path)
    }
    for (title, f) in rows {
        print("")
        print(title + ": \(f.segments) segments, \(f.streams) streams, index files \(String(format: "%.1f", f.indexFileMegabytes)) MB")
        print("  load (no sync, 100 appends per call)        \(String(format: "%.0f", f.loadEventsPerSecond)) events/s")
        print("  read a 100-event stream                     p50 \(String(format: "%.1f", f.readP50Microseconds)) µs, p99 \(String(format: "%.1f", f.readP99Microseconds)) µs")
        print("    of which finding its frames (lastRevision)  p50 \(String(format: "%.1f", f.lookupP50Microseconds)) µs")
        print("  reopen after clean close                    \(String(format: "%.1f", f.reopenCleanMilliseconds)) ms")
        print("  reopen after crash, unindexed tail \(f.crashTailBytes >> 20) MiB   \(String(format: "%.1f", f.reopenAfterCrashMilliseconds)) ms")
        print("  append into the grown store, 100/batch: no sync \(String(format: "%.0f", f.appendUnsyncedEventsPerSecond)) events/s, fsync \(String(format: "%.0f", f.appendEventsPerSecond)) events/s")
        print("  resident memory added by opening: \(String(format: "%.1f", f.residentMegabytes)) MB (process file-backed pages then: \(String(format: "%.1f", f.fileBackedMegabytes)) MB); after stats and 12k stream reads: +\(String(format: "%.1f", f.residentAfterReadsMegabytes)) MB")
    }
    try? FileManager.default.removeItem(atPath: directory)
    exit(0)
}

print("Annals headline benchmark (\(full ? "full" : "quick") run) in \(directory)")
print("CRC-32C hardware instruction: \(CRC32C.isHardwareAccelerated ? "yes" : "no")")
let withPeers = !CommandLine.arguments.contains("--annals-only")
let workloads = Workloads(directory: directory, poolSize: 100_000)
print("events: realistic JSON, average \(workloads.averageEventBytes) bytes (type + metadata + payload)")
print("measuring machine limits…")
let limits = MachineLimits.measure(in: directory, batchBytes: 1000 * (workloads.averageEventBytes + 48))
var results: [Measurement] = []
@MainActor func run(_ title: String, _ body: () async throws -> Measurement) async throws {
    print("running \(title)…")
    let measurement = try await body()
    results.append(measurement)
}
try await run("append, 1,000-event batches, fsync") {
    try await workloads.appendBatches(total: 1_000_000 * scale, batch: 1000, durability: .fsyncBeforeAck, name: "batch1000-fsync")
}
try await run("append, 1,000-event batches, fsync, uncompressed") {
    try await workloads.appendBatches(total: 1_000_000 * scale, batch: 1000, durability: .fsyncBeforeAck,
                                      name: "batch1000-fsync-uncompressed", compression: .none)
}
try await run("append, 1,000-event batches, no sync") {
    try await workloads.appendBatches(total: 1_000_000 * scale, batch: 1000, durability: .none, name: "batch1000-nosync")
}
try await run("append, 1,000-event batches, no sync, uncompressed") {
    try await workloads.appendBatches(total: 1_000_000 * scale, batch: 1000, durability: .none,
                                      name: "batch1000-nosync-uncompressed", compression: .none)
}
try await run("append, 1,000-event batches, fsync, every body encrypted") {
    try await workloads.appendBatches(total: 1_000_000 * scale, batch: 1000, durability: .fsyncBeforeAck,
                                      name: "batch1000-fsync-encrypted", encrypted: true)
}
try await run("append, 100-event batches, fsync") {
    try await workloads.appendBatches(total: 200_000 * scale, batch: 100, durability: .fsyncBeforeAck, name: "batch100-fsync")
}
try await run("append, single events, fsync, 1 writer") {
    try await workloads.concurrentSingles(writers: 1, perWriter: 3_000)
}
try await run("append, single events, fsync, 64 writers") {
    try await workloads.concurrentSingles(writers: 64, perWriter: 500 * scale)
}
try await run("$all replay") { try await workloads.replay(name: "batch1000-fsync") }
try await run("$all replay, uncompressed") {
    try await workloads.replay(name: "batch1000-fsync-uncompressed", workload: "replay-all-uncompressed")
}
try await run("$all replay, every body encrypted") {
    try await workloads.replay(name: "batch1000-fsync-encrypted", workload: "replay-all-encrypted", encrypted: true)
}
try await run("read whole 100-event streams") { try await workloads.streamReads() }
try await run("reopen after clean close") { try workloads.reopen(name: "batch1000-fsync") }
print("checking compression…")
let compressed = workloads.compression(name: "batch1000-fsync")
let uncompressed = workloads.compression(name: "batch1000-fsync-uncompressed")
for name in ["batch1000-fsync", "batch1000-fsync-uncompressed", "batch1000-nosync", "batch1000-nosync-uncompressed", "batch1000-fsync-encrypted"] {
    try? FileManager.default.removeItem(atPath: directory + "/" + name)
}

if withPeers {
    let peers = PeerWorkloads(directory: directory, pool: workloads.pool, averageEventBytes: workloads.averageEventBytes)
    func runPeer<Peer: PeerStore>(_ open: (String, Bool) -> Peer) {
        print("running \(Peer.system): append 1,000-event batches with fsync (then replay)…")
        results += peers.appendBatches(open, total: 1_000_000 * scale, batch: 1000, durable: true, replay: true)
        print("running \(Peer.system): append 1,000-event batches, no sync…")
        results += peers.appendBatches(open, total: 1_000_000 * scale, batch: 1000, durable: false)
        print("running \(Peer.system): append 100-event batches, fsync…")
        results += peers.appendBatches(open, total: 200_000 * scale, batch: 100, durable: true)
        print("running \(Peer.system): single events, fsync…")
        results.append(peers.singles(open, count: 3_000))
        print("running \(Peer.system): stream reads…")
        results.append(peers.streamReads(open))
        try? FileManager.default.removeItem(atPath: directory)
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }
    runPeer { SQLitePeer(path: $0 + ".sqlite", durable: $1) }
    runPeer { LMDBPeer(path: $0, durable: $1, mapSizeBytes: (full ? 64 : 8) << 30) }
}

let report = HeadlineReport(results: results, limits: limits, compressed: compressed, uncompressed: uncompressed, full: full)
report.printTable()
try report.write(to: "bench-results")
if withPeers {
    print("")
    try await runQueries(sizes: full ? [1_000_000, 10_000_000] : [1_000_000])
}
