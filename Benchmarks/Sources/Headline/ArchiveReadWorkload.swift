import AnnalsStorage
import AnnalsTestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `annals-headline archive`: stream-read latency from archived segments against the same
/// segments in the store directory.
///
/// A store of 1,000 streams of 100 realistic events in 4 MiB segments. Each phase reads whole
/// random streams (every payload touched): warm (page cache full, after a warm-up) and cold
/// (the store closed, every segment file dropped from the page cache with
/// `posix_fadvise(DONTNEED)`, the store opened again, then the first 20 reads measured, before
/// readahead has brought most of the files back; 20 rounds). First with every segment in the store directory, then after
/// `archiveSegments(olderThan: .zero, to:)` moved every sealed one to the archive directory.
/// Here both directories are on the same disk, so the difference is what the archive costs
/// the engine itself; on another mount, cold reads pay that mount's latency.
struct ArchiveReadWorkload {
    let directory: String
    static let streams = 1_000
    static let segmentSizeBytes = 4 << 20
    static let warmReads = 20_000
    static let coldRounds = 20
    static let coldReadsPerRound = 20

    struct Phase {
        var warm: [Double] = []
        var cold: [Double] = []
    }

    struct Figures {
        let local: Phase
        let archived: Phase
        let segmentsArchived: Int
        let bytesArchived: Int
        let archiveSeconds: Double
    }

    var options: StoreOptions { StoreOptions(durability: .none, segmentSizeBytes: Self.segmentSizeBytes) }

    func run() async throws -> Figures {
        let path = directory + "/archive-reads", archivePath = directory + "/archive-reads-cold"
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.removeItem(atPath: archivePath)
        var generator = RealisticEvents(seed: 21)
        let pool = generator.events(20_000).map(\.event)
        var store: EventStore? = try EventStore.open(at: path, options: options)
        try await RollLatencyWorkload.populate(store!, streams: Self.streams, from: pool)
        // A last small append seals the store's data segments behind an open one.
        _ = try await store!.append([pool[0]], to: "tail")
        try await store!.flush()
        var random = SeededGenerator(seed: 22)
        let local = try await phase(&store, path: path, archivePath: nil, random: &random)
        let report = try await store!.archiveSegments(olderThan: .zero, to: archivePath)
        let archived = try await phase(&store, path: path, archivePath: archivePath, random: &random)
        try await store!.close()
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.removeItem(atPath: archivePath)
        return Figures(local: local, archived: archived, segmentsArchived: report.segmentsMoved, bytesArchived: report.bytesMoved,
                       archiveSeconds: report.seconds)
    }

    private func phase(_ store: inout EventStore?, path: String, archivePath: String?, random: inout SeededGenerator) async throws -> Phase {
        var phase = Phase()
        _ = try measure(store!, reads: 2_000, random: &random) // warm-up
        phase.warm = try measure(store!, reads: Self.warmReads, random: &random)
        for _ in 0..<Self.coldRounds {
            try await store!.close()
            store = nil // its mappings go: mapped pages stay in the page cache
            try await Task.sleep(for: .milliseconds(100)) // background jobs let go of it
            for directory in [path + "/segments"] + (archivePath.map { [$0] } ?? []) {
                for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasSuffix(".seg") {
                    Self.dropFromPageCache(directory + "/" + name)
                }
            }
            store = try EventStore.open(at: path, options: options)
            phase.cold += try measure(store!, reads: Self.coldReadsPerRound, random: &random)
        }
        return phase
    }

    static func dropFromPageCache(_ file: String) {
        let fd = open(file, O_RDONLY)
        guard fd >= 0 else { return }
        _ = posix_fadvise(fd, 0, 0, Int32(POSIX_FADV_DONTNEED))
        close(fd)
    }

    private func measure(_ store: EventStore, reads: Int, random: inout SeededGenerator) throws -> [Double] {
        var latencies: [Double] = []
        latencies.reserveCapacity(reads)
        var touched = 0
        for _ in 0..<reads {
            let stream = "acct-\(Int(random.next() % UInt64(Self.streams)))"
            let start = ContinuousClock.now
            var cursor = store.read(stream).makeCursor()
            var count = 0
            while let event = try cursor.next() {
                count += 1
                touched &+= try event.withPayloadBytes { Int($0.first ?? 0) }
            }
            let elapsed = ContinuousClock.now - start
            latencies.append(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            guard count == 100 else { throw BenchmarkFailure("\(stream) has \(count) events") }
        }
        if touched == -1 { Swift.print("") }
        return latencies
    }

    static func print(_ figures: Figures) {
        func row(_ name: String, _ values: [Double]) -> String {
            let sorted = values.sorted()
            func at(_ fraction: Double) -> String { String(format: "%.1f", sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))] * 1e6) }
            return "\(name.padding(toLength: 30, withPad: " ", startingAt: 0)) p50 \(at(0.5)) µs, p99 \(at(0.99)) µs, p99.9 \(at(0.999)) µs"
        }
        func ratio(_ archived: [Double], _ local: [Double]) -> String {
            String(format: "%.2f×", Stopwatch.percentile(archived, 0.5) / Stopwatch.percentile(local, 0.5))
        }
        Swift.print("whole 100-event stream reads, 4 MiB segments, 1,000 streams of 100 events")
        Swift.print("  " + row("local, warm", figures.local.warm))
        Swift.print("  " + row("archived, warm", figures.archived.warm) + "  (p50 \(ratio(figures.archived.warm, figures.local.warm)) local)")
        Swift.print("  " + row("local, cold", figures.local.cold))
        Swift.print("  " + row("archived, cold", figures.archived.cold) + "  (p50 \(ratio(figures.archived.cold, figures.local.cold)) local)")
        Swift.print(String(format: "archived %d segments (%.1f MB) in %.2f s: %.0f MB/s", figures.segmentsArchived,
                           Double(figures.bytesArchived) / 1e6, figures.archiveSeconds,
                           Double(figures.bytesArchived) / 1e6 / max(figures.archiveSeconds, 1e-9)))
    }
}
