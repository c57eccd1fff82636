import AnnalsStorage
import AnnalsTestSupport
import Foundation

/// Issue 5's figures: disk use before and after compacting a store where half the streams
/// were deleted or truncated (`du`, the file system's own numbers), compaction throughput, and
/// append throughput while compaction runs against the same appends without it.
struct CompactionWorkload {
    let directory: String
    let events: Int
    let segmentSizeBytes = 4 << 20

    struct Figures {
        var events = 0
        var streams = 0
        var duBeforeKilobytes = 0
        var duAfterKilobytes = 0
        var report = CompactionReport()
        var bytesExamined = 0
        var appendAloneEventsPerSecond = 0.0
        var appendDuringCompactionEventsPerSecond = 0.0
        var appendedDuringCompaction = 0
    }

    var options: StoreOptions { StoreOptions(durability: .none, segmentSizeBytes: segmentSizeBytes) }

    /// 100-event streams; then a quarter of them deleted (half soft, half hard) and a quarter
    /// truncated to their last 10 events.
    func makeStore(_ path: String) async throws -> Int {
        var generator = RealisticEvents(seed: 5)
        let pool = generator.events(20_000).map(\.event)
        let streams = events / 100
        let store = try EventStore.open(at: path, options: options)
        var written = 0
        for round in 0..<100 {
            var batch: [StreamAppend] = []
            for stream in 0..<streams {
                batch.append(StreamAppend(stream: "acct-\(stream)", events: [pool[(round * streams + stream) % pool.count]]))
                if batch.count == 1000 {
                    written += try await store.append(batch).count
                    batch.removeAll(keepingCapacity: true)
                }
            }
            if !batch.isEmpty { written += try await store.append(batch).count }
        }
        for stream in 0..<streams {
            switch stream % 4 {
            case 0: try await store.deleteStream("acct-\(stream)", hard: stream % 8 == 0)
            case 1: try await store.truncateStream("acct-\(stream)", before: 90)
            default: break
            }
        }
        try await store.close()
        return streams
    }

    static func du(_ path: String) throws -> Int {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/du")
        process.arguments = ["-sk", path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Int(String(decoding: data, as: UTF8.self).split(separator: "\t").first ?? "") ?? 0
    }

    /// Appends 100-event batches to `store` until `stop` says so; returns events and seconds.
    static func appendWhile(_ store: EventStore, pool: [EventData], stop: @Sendable () -> Bool) async throws -> (Int, Double) {
        let clock = ContinuousClock()
        let start = clock.now
        var count = 0
        while !stop() {
            let events = (0..<100).map { pool[(count + $0) % pool.count] }
            _ = try await store.append(events, to: "live-\(count / 100 % 500)")
            count += 100
        }
        let elapsed = clock.now - start
        return (count, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    func run() async throws -> Figures {
        var figures = Figures()
        let path = directory + "/compaction-\(events)"
        let copy = path + "-alone"
        try? FileManager.default.removeItem(atPath: path)
        figures.streams = try await makeStore(path)
        figures.events = events
        figures.duBeforeKilobytes = try Self.du(path)
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        var generator = RealisticEvents(seed: 9)
        let pool = generator.events(5_000).map(\.event)

        // Compaction alone, then the same compaction with a writer appending beside it.
        let store = try EventStore.open(at: path, options: options)
        figures.bytesExamined = try store.spaceUsage().filter { !$0.isOpen }.reduce(0) { $0 + $1.fileBytes }
        let appendingStore = try EventStore.open(at: copy, options: options)
        figures.report = try await store.compact()
        try await store.close()
        figures.duAfterKilobytes = try Self.du(path)

        let duration = figures.report.seconds
        let deadline = ContinuousClock.now + .seconds(max(duration, 0.5))
        let (alone, aloneSeconds) = try await Self.appendWhile(appendingStore, pool: pool) { ContinuousClock.now >= deadline }
        figures.appendAloneEventsPerSecond = Double(alone) / aloneSeconds
        let done = Locked(false)
        let writer = Task { try await Self.appendWhile(appendingStore, pool: pool) { done.value } }
        _ = try await appendingStore.compact()
        done.value = true
        let (during, duringSeconds) = try await writer.value
        figures.appendedDuringCompaction = during
        figures.appendDuringCompactionEventsPerSecond = Double(during) / duringSeconds
        try await appendingStore.close()
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.removeItem(atPath: copy)
        return figures
    }

    static func print(_ f: Figures) {
        let mb = Double(f.bytesExamined) / 1e6
        Swift.print("""
            \(f.events) events in \(f.streams) streams of 100; a quarter deleted, a quarter truncated to 10 events
              du before compaction            \(f.duBeforeKilobytes) KiB
              du after compaction             \(f.duAfterKilobytes) KiB (\(String(format: "%.0f", 100 * (1 - Double(f.duAfterKilobytes) / Double(max(1, f.duBeforeKilobytes)))))% smaller)
              compaction                      \(String(format: "%.2f", f.report.seconds)) s for \(String(format: "%.0f", mb)) MB of segments: \(String(format: "%.0f", mb / f.report.seconds)) MB/s examined, \(String(format: "%.0f", Double(f.report.bytesWritten) / 1e6 / f.report.seconds)) MB/s written
                                              \(f.report.segmentsRewritten) segments rewritten into \(f.report.filesWritten) files, \(f.report.eventsRemoved) events removed, \(f.report.eventsKept) kept
              appends (100/batch, no sync)    alone \(String(format: "%.0f", f.appendAloneEventsPerSecond)) events/s; during compaction \(String(format: "%.0f", f.appendDuringCompactionEventsPerSecond)) events/s (\(f.appendedDuringCompaction) events)
            """)
    }
}

/// A value shared with a task (benchmark plumbing).
final class Locked<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}
