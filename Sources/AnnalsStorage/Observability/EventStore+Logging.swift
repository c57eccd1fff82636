import CoreMetrics
import Logging

/// What the store tells its logger and metrics about recovery, rolls, background work and
/// compaction (the append and flush paths record theirs where they run).
extension EventStore {
    /// The logger layers built on the store log to: ``StoreOptions/logger`` with
    /// `annals.store` set, and `key` set to `value` (`annals.projection`, `annals.relay`…).
    public func logger(with key: String, _ value: String) -> Logger {
        var logger = self.logger
        logger[metadataKey: key] = "\(value)"
        return logger
    }

    /// The factory the store and the layers built on it record metrics with
    /// (``StoreOptions/metricsFactory``, or the bootstrapped one).
    public var metricsFactory: any MetricsFactory { options.metricsFactory ?? MetricsSystem.factory }

    /// After open: what recovery found and did.
    func reportRecovery(took duration: Duration) {
        let nanoseconds = duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
        metrics.recoveryDuration.recordNanoseconds(nanoseconds)
        let report = recoveryReport
        metrics.recoveryTruncatedBytes.increment(by: report.truncatedBytes)
        logger.debug("opened", metadata: [
            "annals.readOnly": "\(options.readOnly)", "annals.position": "\(endPosition)",
            "annals.cleanShutdown": "\(report.cleanShutdown)", "annals.scannedBytes": "\(report.scannedBytes)",
        ])
        if report.truncatedBytes > 0 {
            logger.notice("recovery cut a torn tail", metadata: [
                "annals.bytes": "\(report.truncatedBytes)", "annals.at": "\(report.truncation.map { "\($0)" } ?? "-")",
            ])
        }
        if let damage = report.damage {
            logger.error("acknowledged data is damaged: reads stop before it", metadata: ["annals.damage": "\(damage)"])
        }
        for index in report.rebuiltIndexes { logger.notice("index file rebuilt", metadata: ["annals.file": "\(index)"]) }
        for file in report.removedTemporaryFiles + report.removedSupersededFiles {
            logger.debug("left-over file removed", metadata: ["annals.file": "\(file)"])
        }
        for warning in report.warnings { logger.notice("recovery: \(warning)") }
    }

    /// A background job failed; it is retried when `failure.retry` says so.
    func reportMaintenanceFailure(_ failure: MaintenanceFailure) {
        metrics.maintenanceFailures.increment()
        logger.warning("background work failed", metadata: [
            "annals.job": "\(failure.what)", "annals.error": "\(failure.error.map { "\($0)" } ?? "-")",
            "annals.retry": "\(failure.retry ? "after the retry delay" : "at the next roll")",
        ])
    }
}
