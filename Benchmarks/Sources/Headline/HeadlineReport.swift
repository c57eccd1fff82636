import AnnalsStorage
import Foundation

/// The headline run's output: the table on the terminal, `latest.json` and `latest.svg`.
struct HeadlineReport {
    let results: [Measurement]
    let limits: MachineLimits
    let compressed: (bodyRatio: Double, logBytes: Int, compressedEvents: UInt64, events: UInt64)
    let uncompressed: (bodyRatio: Double, logBytes: Int, compressedEvents: UInt64, events: UInt64)
    let full: Bool

    static let systems = ["annals", "sqlite", "lmdb"]

    /// Workloads in the order of the table; the Annals-only ones compare with nothing.
    var workloads: [String] {
        var seen: [String] = []
        for result in results where !seen.contains(result.workload) { seen.append(result.workload) }
        return seen
    }

    func result(_ workload: String, _ system: String) -> Measurement? {
        results.first { $0.workload == workload && $0.system == system }
    }

    /// One performance target, measured as a ratio in this run.
    struct Target: Codable {
        var name: String
        /// What is compared with what.
        var measure: String
        var ratio: Double
        /// The ratio must be at least this (`atLeast`) or at most this (`!atLeast`).
        var required: Double
        var atLeast: Bool
        var met: Bool
    }

    /// The targets of the performance work, each a ratio between figures of this run (rows
    /// that did not run, such as the peers under `--annals-only`, leave theirs out).
    var targets: [Target] {
        var targets: [Target] = []
        func add(_ name: String, _ measure: String, _ ratio: Double?, atLeast required: Double) {
            guard let ratio, ratio.isFinite else { return }
            targets.append(Target(name: name, measure: measure, ratio: ratio, required: required, atLeast: true, met: ratio >= required))
        }
        func add(_ name: String, _ measure: String, _ ratio: Double?, atMost required: Double) {
            guard let ratio, ratio.isFinite else { return }
            targets.append(Target(name: name, measure: measure, ratio: ratio, required: required, atLeast: false, met: ratio <= required))
        }
        func rate(_ workload: String, _ system: String = "annals") -> Double? { result(workload, system)?.eventsPerSecond }
        func divide(_ a: Double?, _ b: Double?) -> Double? { a.flatMap { a in b.map { a / $0 } } }
        add("1a LZ4 durable batch append vs uncompressed", "append-batch1000-fsync ÷ append-batch1000-fsync-uncompressed",
            divide(rate("append-batch1000-fsync"), rate("append-batch1000-fsync-uncompressed")), atLeast: 1.0)
        add("1b uncompressed durable batch append vs copy+msync ceiling", "append-batch1000-fsync-uncompressed ÷ (copy+msync batches/s × 1,000)",
            divide(rate("append-batch1000-fsync-uncompressed"), limits.mappedBatchSyncsPerSecond * 1000), atLeast: 0.9)
        add("2a LZ4 $all replay vs LMDB", "replay-all ÷ lmdb replay-all", divide(rate("replay-all"), rate("replay-all", "lmdb")), atLeast: 1.0)
        add("2b uncompressed $all replay vs LMDB", "replay-all-uncompressed ÷ lmdb replay-all",
            divide(rate("replay-all-uncompressed"), rate("replay-all", "lmdb")), atLeast: 1.5)
        // Defined at 10M events (`streams --full`); this table's store has 100k events.
        add("3a LZ4 100-event stream read p50 (µs; target at 10M events, this store 100k)", "read-stream-100 p50 ÷ 20 µs",
            result("read-stream-100", "annals")?.p50Microseconds.map { $0 / 20 }, atMost: 1.0)
        add("3b LZ4 100-event stream read p99 (µs; target at 10M events, this store 100k)", "read-stream-100 p99 ÷ 60 µs",
            result("read-stream-100", "annals")?.p99Microseconds.map { $0 / 60 }, atMost: 1.0)
        add("4a 64 fsync'd single-event writers vs the 4 KiB fdatasync rate", "append-single-fsync-64writers ÷ fdatasync/s",
            divide(rate("append-single-fsync-64writers"), limits.fdatasyncPerSecond > 0 ? limits.fdatasyncPerSecond : nil), atLeast: 30)
        add("4b p99 of one such append vs the fdatasync time", "append-single-fsync-64writers p99 ÷ fdatasync p50",
            divide(result("append-single-fsync-64writers", "annals")?.p99Microseconds,
                   limits.fdatasyncP50Microseconds > 0 ? limits.fdatasyncP50Microseconds : nil), atMost: 3)
        add("encryption: durable batch append, every body encrypted", "append-batch1000-fsync-encrypted ÷ append-batch1000-fsync",
            divide(rate("append-batch1000-fsync-encrypted"), rate("append-batch1000-fsync")), atLeast: 0.7)
        add("encryption: $all replay, every body encrypted", "replay-all-encrypted ÷ replay-all",
            divide(rate("replay-all-encrypted"), rate("replay-all")), atLeast: 0.7)
        return targets
    }

    func printTable() {
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
        print(column("workload", 36) + column("events", 10) + column("annals ev/s", 13) + column("sqlite ev/s", 13)
            + column("lmdb ev/s", 12) + column("×sqlite", 9) + column("×lmdb", 8) + column("annals p50/p99 µs", 20)
            + column("sqlite p50 µs", 15) + column("lmdb p50 µs", 13))
        for workload in workloads {
            let annals = result(workload, "annals"), sqlite = result(workload, "sqlite"), lmdb = result(workload, "lmdb")
            func rate(_ m: Measurement?) -> String { m.map { format($0.eventsPerSecond) } ?? "-" }
            func ratio(_ other: Measurement?) -> String {
                guard let annals, let other, other.eventsPerSecond > 0 else { return "-" }
                return format(annals.eventsPerSecond / other.eventsPerSecond, 1) + "×"
            }
            func latency(_ m: Measurement?) -> String {
                guard let p50 = m?.p50Microseconds else { return "-" }
                return format(p50, 1) + (m?.p99Microseconds.map { "/" + format($0, 1) } ?? "")
            }
            print(column(workload, 36) + column("\(annals?.events ?? sqlite?.events ?? 0)", 10) + column(rate(annals), 13)
                + column(rate(sqlite), 13) + column(rate(lmdb), 12) + column(ratio(sqlite), 9) + column(ratio(lmdb), 8)
                + column(latency(annals), 20) + column(sqlite?.p50Microseconds.map { format($0, 1) } ?? "-", 15)
                + column(lmdb?.p50Microseconds.map { format($0, 1) } ?? "-", 13))
        }
        print("")
        print("annals rows use LZ4 (the default) unless named -uncompressed; sqlite: WAL, events table + unique (stream, revision) "
            + "index, synchronous=FULL/OFF; lmdb: events by position + (stream, revision) index, default sync / MDB_NOSYNC.")
        print("the 64-writer row has no peer figure: neither peer has group commit, their single-writer row is the comparison.")
        print("compression: metadata+payload \(format(compressed.bodyRatio, 2))x; log \(format(Double(uncompressed.logBytes) / Double(compressed.logBytes), 2))x "
            + "smaller (\(compressed.logBytes / 1_000_000) MB vs \(uncompressed.logBytes / 1_000_000) MB); "
            + "\(compressed.compressedEvents) of \(compressed.events) events stored compressed")
        print("reopen-clean: the p50 column is the open time (best of 5).")
        print("")
        print("targets (ratios of this run's figures):")
        for target in targets {
            print("  " + column(target.met ? "met" : "MISSED", 6) + "  " + target.name + ": " + format(target.ratio, 2)
                + (target.atLeast ? " (≥ " : " (≤ ") + format(target.required, 2) + "; " + target.measure + ")")
        }
        print("targets (design brief): append ≥ 1.5M events/s with fsync per 1,000-event batch (≥ 30× both peers); "
            + "64 fsync'd single-event writers ≥ 100k events/s; $all replay ≥ 10M events/s uncompressed, ≥ 4M compressed; "
            + "100-event stream read p50 ≤ 20 µs at 10M events (this table's store has 100k).")
    }

    func write(to directory: String) throws {
        struct Report: Codable {
            var date: String
            var mode: String
            var machine: [String: Double]
            var results: [Measurement]
            var targets: [Target]
        }
        let report = Report(
            date: ISO8601DateFormatter().string(from: Date()), mode: full ? "full" : "quick",
            machine: [
                "memcpyGigabytesPerSecond": limits.memcpyGigabytesPerSecond,
                "sequentialWriteGigabytesPerSecond": limits.sequentialWriteGigabytesPerSecond,
                "fdatasyncPerSecond": limits.fdatasyncPerSecond,
                "crc32cGigabytesPerSecond": limits.crc32cGigabytesPerSecond,
                "mappedBatchSyncsPerSecond": limits.mappedBatchSyncsPerSecond,
                "compressionRatioMetadataAndPayload": compressed.bodyRatio,
                "compressionRatioLogBytes": Double(uncompressed.logBytes) / Double(compressed.logBytes),
                "processorCount": Double(ProcessInfo.processInfo.activeProcessorCount),
            ],
            results: results, targets: targets)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try encoder.encode(report).write(to: URL(fileURLWithPath: directory + "/latest.json"))
        try Data(svg().utf8).write(to: URL(fileURLWithPath: directory + "/latest.svg"))
        print("wrote \(directory)/latest.json and \(directory)/latest.svg")
    }

    /// Grouped horizontal bars, events/s on a log scale, one group per compared workload.
    func svg() -> String {
        let compared = workloads.filter { workload in Self.systems.dropFirst().contains { result(workload, $0) != nil } }
        let colors = ["annals": "#d9480f", "sqlite": "#1c7ed6", "lmdb": "#37b24d"]
        let barHeight = 16, gap = 4, groupGap = 18, left = 230, width = 900, plotWidth = 560
        let maximum = results.map(\.eventsPerSecond).max() ?? 1
        let minimum = max(1, (results.map(\.eventsPerSecond).filter { $0 > 0 }.min() ?? 1) / 2)
        func x(_ value: Double) -> Int {
            Int(Double(plotWidth) * (log10(max(value, minimum)) - log10(minimum)) / (log10(maximum * 1.5) - log10(minimum)))
        }
        let groupHeight = 3 * (barHeight + gap) + groupGap
        let height = 70 + compared.count * groupHeight + 40
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="24" font-size="15" font-weight="bold">Annals vs SQLite vs LMDB — events/s (log scale), same events and batches</text>
            <text x="\(left)" y="42" fill="#555">\(limits.describe) · \(ISO8601DateFormatter().string(from: Date()))</text>

            """
        for (index, system) in Self.systems.enumerated() {
            svg += "<rect x=\"\(left + index * 110)\" y=\"52\" width=\"12\" height=\"12\" fill=\"\(colors[system]!)\"/>"
            svg += "<text x=\"\(left + index * 110 + 16)\" y=\"62\">\(system)</text>\n"
        }
        var y = 80
        for workload in compared {
            svg += "<text x=\"\(left - 8)\" y=\"\(y + barHeight + 8)\" text-anchor=\"end\" font-weight=\"bold\">\(workload)</text>\n"
            for (row, system) in Self.systems.enumerated() {
                let top = y + row * (barHeight + gap)
                guard let measurement = result(workload, system) else { continue }
                let length = max(1, x(measurement.eventsPerSecond))
                svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(length)\" height=\"\(barHeight)\" fill=\"\(colors[system]!)\"/>"
                svg += "<text x=\"\(left + length + 6)\" y=\"\(top + barHeight - 4)\">\(Self.human(measurement.eventsPerSecond))</text>\n"
            }
            y += groupHeight
        }
        svg += "<text x=\"\(left)\" y=\"\(height - 14)\" fill=\"#555\">Annals rows: LZ4 compression (default). "
            + "Reproduce: make bench (see README).</text>\n</svg>\n"
        return svg
    }

    static func human(_ value: Double) -> String {
        switch value {
        case 1e6...: String(format: "%.2fM", value / 1e6)
        case 1e3...: String(format: "%.1fk", value / 1e3)
        default: String(format: "%.0f", value)
        }
    }
}

extension MachineLimits {
    /// One line for the chart.
    var describe: String {
        String(format: "memcpy %.1f GB/s, fdatasync %.0f/s, %d cores", memcpyGigabytesPerSecond, fdatasyncPerSecond,
               ProcessInfo.processInfo.activeProcessorCount)
    }
}
