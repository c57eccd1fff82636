import CoreMetrics

/// The store's metrics, made once at open with the factory of ``StoreOptions/metricsFactory``
/// (the bootstrapped one by default). Names follow Prometheus conventions; timers record
/// nanoseconds (a Prometheus backend exports them in seconds). The README's table lists them.
final class StoreMetrics: Sendable {
    /// `annals_appends_total`: frames appended (one per stream of an append call).
    let appends: Counter
    /// `annals_appended_events_total`: events appended.
    let appendedEvents: Counter
    /// `annals_appended_bytes_total`: bytes of frames written (after compression).
    let appendedBytes: Counter
    /// `annals_append_duration_seconds`: from an append call to its acknowledgement.
    let appendDuration: Timer
    /// `annals_append_failures_total`: append calls that threw (refusals included).
    let appendFailures: Counter
    /// `annals_flushes_total`: syncs run by group commit.
    let flushes: Counter
    /// `annals_flush_duration_seconds`: how long each sync took.
    let flushDuration: Timer
    /// `annals_flush_batch_appends`: appenders acknowledged by one sync (group commit at work).
    let flushBatch: Recorder
    /// `annals_segment_rolls_total`: segments sealed and started.
    let rolls: Counter
    /// `annals_recovery_duration_seconds`: the open's recovery.
    let recoveryDuration: Timer
    /// `annals_recovery_truncated_bytes_total`: torn-tail bytes recovery cut.
    let recoveryTruncatedBytes: Counter
    /// `annals_index_files_written_total`: index files of sealed segments written.
    let indexFilesWritten: Counter
    /// `annals_index_merges_total`: merges of index files.
    let indexMerges: Counter
    /// `annals_maintenance_failures_total`: background jobs that failed (and are retried).
    let maintenanceFailures: Counter
    /// `annals_compaction_examined_bytes_total`, `…_written_bytes_total`, `…_released_bytes_total`.
    let compactionExamined: Counter
    let compactionWritten: Counter
    let compactionReleased: Counter
    /// `annals_archived_bytes_total`: bytes of segment files moved to the archive.
    let archivedBytes: Counter
    /// `annals_live_bytes`, `annals_dead_bytes`: as the last space measurement
    /// (``EventStore/spaceUsage()``, a compaction) found them.
    let liveBytes: Gauge
    let deadBytes: Gauge

    init(factory: any MetricsFactory) {
        func counter(_ label: String) -> Counter { Counter(label: label, factory: factory) }
        func timer(_ label: String) -> Timer { Timer(label: label, preferredDisplayUnit: .milliseconds, factory: factory) }
        appends = counter("annals_appends_total")
        appendedEvents = counter("annals_appended_events_total")
        appendedBytes = counter("annals_appended_bytes_total")
        appendDuration = timer("annals_append_duration_seconds")
        appendFailures = counter("annals_append_failures_total")
        flushes = counter("annals_flushes_total")
        flushDuration = timer("annals_flush_duration_seconds")
        flushBatch = Recorder(label: "annals_flush_batch_appends", factory: factory)
        rolls = counter("annals_segment_rolls_total")
        recoveryDuration = timer("annals_recovery_duration_seconds")
        recoveryTruncatedBytes = counter("annals_recovery_truncated_bytes_total")
        indexFilesWritten = counter("annals_index_files_written_total")
        indexMerges = counter("annals_index_merges_total")
        maintenanceFailures = counter("annals_maintenance_failures_total")
        compactionExamined = counter("annals_compaction_examined_bytes_total")
        compactionWritten = counter("annals_compaction_written_bytes_total")
        compactionReleased = counter("annals_compaction_released_bytes_total")
        archivedBytes = counter("annals_archived_bytes_total")
        liveBytes = Gauge(label: "annals_live_bytes", factory: factory)
        deadBytes = Gauge(label: "annals_dead_bytes", factory: factory)
    }
}

extension Timer {
    /// Records the time since `start`.
    func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }
}
