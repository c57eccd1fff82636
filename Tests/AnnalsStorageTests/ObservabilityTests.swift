import Foundation
import Logging
import MetricsTestKit
import Synchronization
import Testing
@_spi(Testing) @testable import AnnalsStorage

/// A store given a logger and a metrics factory reports what the README's tables say; one
/// given neither reports nothing.
@Suite struct ObservabilityTests {
    /// Every log line, kept for the test to look at.
    final class CapturedLogs: @unchecked Sendable {
        struct Line { let level: Logger.Level; let message: String; let metadata: Logger.Metadata }
        let lines = Mutex<[Line]>([])
        func contains(_ level: Logger.Level, _ message: String) -> Bool {
            lines.withLock { $0.contains { $0.level == level && $0.message.contains(message) } }
        }
        var all: [Line] { lines.withLock { $0 } }
    }

    struct CapturingHandler: LogHandler {
        let captured: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            var merged = metadata
            merged.merge(event.metadata ?? [:]) { $1 }
            captured.lines.withLock { $0.append(.init(level: event.level, message: "\(event.message)", metadata: merged)) }
        }
    }

    static func options(_ storage: SimulatedStorage, logs: CapturedLogs, metrics: TestMetrics) -> StoreOptions {
        var options = StoreOptions(segmentSizeBytes: 8192, compression: .none)
        options.storage = StorageChoice(storage: storage)
        options.maintenanceRetryDelay = .milliseconds(5)
        options.logger = Logger(label: "test") { _ in CapturingHandler(captured: logs) }
        options.metricsFactory = metrics
        return options
    }

    @Test func metricsAndLogLinesAreWhereTheTablesSay() async throws {
        let storage = SimulatedStorage()
        let logs = CapturedLogs()
        let metrics = TestMetrics()
        let path = "/sim/observed"
        var store: EventStore? = try EventStore.open(at: path, options: Self.options(storage, logs: logs, metrics: metrics))
        let payload = [UInt8](repeating: 7, count: 300)
        // Appends across several rolls, a stream that retention empties, a compaction.
        for index in 0..<80 {
            _ = try await store!.append([EventData(type: "T", payload: payload)], to: index % 2 == 0 ? "dead" : "live-\(index % 3)")
        }
        try await store!.truncateStream("dead", before: 1_000)
        await store!.maintenance.drain()
        _ = try store!.spaceUsage()
        _ = try await store!.compact()
        // A background write that fails once, then its retry.
        storage.fail(.writeFile, errno: EIO)
        while store!.view.withLock({ $0.segments.count }) < 8 {
            _ = try await store!.append([EventData(type: "T", payload: payload)], to: "live-0")
        }
        for _ in 0..<400 where store!.maintenanceStatus.pendingRetries > 0 || storage.plannedFailuresHappened == false {
            try await Task.sleep(for: .milliseconds(5))
        }
        await store!.maintenance.drain()
        #expect(logs.contains(.warning, "background work failed"), "\(logs.all.map(\.message))")
        let appends = try metrics.expectCounter("annals_appends_total").totalValue
        #expect(appends >= 81)
        #expect(try metrics.expectCounter("annals_appended_events_total").totalValue == appends)
        #expect(try metrics.expectCounter("annals_appended_bytes_total").totalValue > Int64(appends) * 300)
        #expect(try metrics.expectTimer("annals_append_duration_seconds").values.count == Int(appends))
        #expect(try metrics.expectCounter("annals_flushes_total").totalValue > 0)
        #expect(!(try metrics.expectTimer("annals_flush_duration_seconds").values.isEmpty))
        #expect(!(try metrics.expectRecorder("annals_flush_batch_appends").values.isEmpty))
        #expect(try metrics.expectCounter("annals_segment_rolls_total").totalValue >= 7)
        #expect(try metrics.expectCounter("annals_index_files_written_total").totalValue >= 4)
        #expect(try metrics.expectCounter("annals_index_merges_total").totalValue >= 1)
        #expect(try metrics.expectCounter("annals_maintenance_failures_total").totalValue == 1)
        #expect(try metrics.expectCounter("annals_compaction_released_bytes_total").totalValue > 0)
        #expect(try metrics.expectCounter("annals_compaction_written_bytes_total").totalValue > 0)
        #expect(try metrics.expectCounter("annals_compaction_examined_bytes_total").totalValue > 0)
        #expect(try metrics.expectGauge("annals_live_bytes").lastValue ?? 0 > 0)
        #expect(try metrics.expectGauge("annals_dead_bytes").lastValue ?? 0 > 0)
        #expect(logs.contains(.notice, "compaction done"))
        #expect(logs.contains(.debug, "segment sealed"))
        #expect(logs.all.allSatisfy { $0.metadata["annals.store"] == "\(path)" }, "every line names the store")
        // A refused append is counted as a failure.
        await #expect(throws: AppendError.self) { _ = try await store!.append([], to: "live-0") }
        #expect(try metrics.expectCounter("annals_append_failures_total").totalValue == 1)

        // Reopened after a crash with a torn tail: recovery's figures and its notice.
        let end = store!.endPosition
        _ = end
        let image = storage.imageNow(seed: 3)
        store = nil
        let reopenedLogs = CapturedLogs()
        let reopenedMetrics = TestMetrics()
        let reopened = try EventStore.open(at: path, options: Self.options(image, logs: reopenedLogs, metrics: reopenedMetrics))
        #expect(try reopenedMetrics.expectTimer("annals_recovery_duration_seconds").values.count == 1)
        _ = try reopenedMetrics.expectCounter("annals_recovery_truncated_bytes_total")
        #expect(reopenedLogs.contains(.debug, "opened"))
        if reopened.recoveryReport.truncatedBytes > 0 { #expect(reopenedLogs.contains(.notice, "torn tail")) }
        try await reopened.close()
    }

    @Test func aFailedSyncIsAnErrorLine() async throws {
        let storage = SimulatedStorage()
        let logs = CapturedLogs()
        let store = try EventStore.open(at: "/sim/failing", options: Self.options(storage, logs: logs, metrics: TestMetrics()))
        _ = try await store.append([EventData(type: "T", payload: [1])], to: "s")
        storage.fail(.sync, errno: EIO)
        await #expect(throws: AppendError.self) { _ = try await store.append([EventData(type: "T", payload: [2])], to: "s") }
        #expect(logs.contains(.error, "a sync failed"))
        try? await store.close()
    }

    @Test func aStoreGivenNothingLogsAndRecordsNothing() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"))
        #expect(store.logger.handler is SwiftLogNoOpLogHandler, "the default logger prints nothing")
        #expect(StoreOptions().metricsFactory == nil, "metrics go to what the app bootstrapped (nothing by default)")
        _ = try await store.append([EventData(type: "T", payload: [1])], to: "s")
        try await store.close()
    }
}
