import AnnalsStorage
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
    let workloads = Workloads(directory: parent, poolSize: 100_000)
    if !FileManager.default.fileExists(atPath: CommandLine.arguments[2]) {
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

if CommandLine.arguments.contains("api") {
    // `annals-headline api`: aggregate loads, projection catch-up, subscription latency.
    try await APIWorkload.run(directory: directory)
    try? FileManager.default.removeItem(atPath: directory)
    exit(0)
}

if streamsMode {
    // `annals-headline streams [--full]`: stream reads, reopen and growth (1M; 10M with --full).
    print("Annals stream benchmark in \(directory)")
    var rows: [(String, StreamWorkload.Figures)] = []
    let sizes: [(Int, Int, Compression)] = [(1_000_000, 4 << 20, .lz4), (1_000_000, 4 << 20, .none)]
        + (full ? [(10_000_000, 32 << 20, .lz4), (10_000_000, 32 << 20, .none)] : [])
    for (events, segmentSize, compression) in sizes {
        print("loading \(events) events…")
        let figures = try await StreamWorkload(directory: directory, events: events, segmentSizeBytes: segmentSize,
                                               compression: compression).run()
        rows.append(("\(events / 1_000_000)M events, \(segmentSize >> 20) MiB segments, "
            + (compression == .lz4 ? "LZ4" : "uncompressed"), figures))
        try? FileManager.default.removeItem(atPath: directory + "/streams-\(events)")
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
print("checking compression…")
let compressed = workloads.compression(name: "batch1000-fsync")
let uncompressed = workloads.compression(name: "batch1000-fsync-uncompressed")
try await run("reopen after clean close") { try workloads.reopen(name: "batch1000-fsync") }

func format(_ value: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", value) }
func column(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
}
print("")
print("machine: memcpy \(format(limits.memcpyGigabytesPerSecond, 1)) GB/s, sequential write+fsync "
    + "\(format(limits.sequentialWriteGigabytesPerSecond, 2)) GB/s, 4 KiB fdatasync \(format(limits.fdatasyncPerSecond))/s "
    + "(p50 \(format(limits.fdatasyncP50Microseconds)) µs), CRC-32C \(format(limits.crc32cGigabytesPerSecond, 1)) GB/s")
print("         copy+msync of one 1,000-event batch (\(limits.batchBytes / 1024) KiB) into a fallocated mapping, one after another: "
    + "\(format(limits.mappedBatchSyncsPerSecond))/s = ceiling of \(format(limits.mappedBatchSyncsPerSecond * 1000)) events/s "
    + "for append-batch1000-fsync")
print("")
print(column("workload", 34) + column("events", 11) + column("events/s", 13) + column("MB/s", 9) + column("p50 µs", 10) + column("p99 µs", 10))
for result in results {
    print(column(result.workload, 34) + column("\(result.events)", 11) + column(format(result.eventsPerSecond), 13)
        + column(format(result.megabytesPerSecond, 1), 9)
        + column(result.p50Microseconds.map { format($0, 1) } ?? "-", 10)
        + column(result.p99Microseconds.map { format($0, 1) } ?? "-", 10))
}
print("")
print("compression (LZ4 per event against a 64 KiB dictionary per segment): metadata+payload \(format(compressed.bodyRatio, 2))x; "
    + "log bytes \(format(Double(uncompressed.logBytes) / Double(compressed.logBytes), 2))x smaller "
    + "(\(compressed.logBytes / 1_000_000) MB vs \(uncompressed.logBytes / 1_000_000) MB, record headers included); "
    + "\(compressed.compressedEvents) of \(compressed.events) events stored compressed")
print("reopen-clean: the p50 column is the open time (best of 5): index files stand for sealed segments; only the open segment is walked.")
print("targets (design brief): append ≥ 1.5M events/s with fsync per 1,000-event batch; 64 fsync'd single-event writers ≥ 100k events/s; "
    + "$all replay ≥ 10M events/s uncompressed, ≥ 4M compressed; compression ≥ 2x. SQLite and LMDB side by side: issue 7.")

struct Report: Codable {
    var machine: [String: Double]
    var results: [Measurement]
}
let report = Report(
    machine: [
        "memcpyGigabytesPerSecond": limits.memcpyGigabytesPerSecond,
        "sequentialWriteGigabytesPerSecond": limits.sequentialWriteGigabytesPerSecond,
        "fdatasyncPerSecond": limits.fdatasyncPerSecond,
        "crc32cGigabytesPerSecond": limits.crc32cGigabytesPerSecond,
        "mappedBatchSyncsPerSecond": limits.mappedBatchSyncsPerSecond,
        "compressionRatioMetadataAndPayload": compressed.bodyRatio,
        "compressionRatioLogBytes": Double(uncompressed.logBytes) / Double(compressed.logBytes),
    ],
    results: results)
let encoder = JSONEncoder()
encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
try FileManager.default.createDirectory(atPath: "bench-results", withIntermediateDirectories: true)
try encoder.encode(report).write(to: URL(fileURLWithPath: "bench-results/latest.json"))
print("wrote bench-results/latest.json")
