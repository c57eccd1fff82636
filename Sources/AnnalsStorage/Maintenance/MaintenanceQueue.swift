import Dispatch

/// One piece of the store's background work.
enum MaintenanceJob: Sendable {
    /// The index files of the sealed segments whose frames are in `frames` (the last of them
    /// `lastSegment`, whose events end before `nextPosition`), then merges.
    case indexFiles(frames: StreamIndex, nextPosition: UInt64, lastSegment: UInt64)
    /// Merges of index files, while four neighbouring files cover the same span.
    case mergeIndexFiles
    /// A checkpoint, written after the index files scheduled before it (unless one of them
    /// failed and waits for its retry: the checkpoint does not depend on index files).
    case checkpoint(Checkpoint)
    /// The next segment file, allocated ahead of the roll that needs it.
    case prepareSegment
    /// Sealed segments old enough for ``StoreOptions/archive`` move to the archive.
    case archiveSegments
}

/// A job that did not complete: what it was doing and why.
struct MaintenanceFailure: Error {
    let what: String
    let error: (any Error)?
    /// False for work that a later event redoes anyway (a merge at the next roll).
    var retry = true

    var description: String { error.map { "\(what): \($0)" } ?? what }
}

/// Runs the store's background work, one job at a time in the order scheduled, on its own
/// queue (never on the Swift concurrency pool, never under the writer lock), and keeps
/// ``MaintenanceStatus``. A failed job is counted with its error; index files and checkpoints
/// are scheduled again after the retry delay until they succeed or the store closes, merges
/// and the next segment file wait for the next roll. Nothing is dropped in silence. Its own
/// mutexes guard the status and whether it still takes jobs. Compaction runs on the same
/// queue, so it never overlaps an index write or merge.
final class MaintenanceQueue: Sendable {
    private let queue = DispatchQueue(label: "annals.maintenance", qos: .utility)
    private let status = Locked(MaintenanceStatus())
    /// False once the store closes: no job is scheduled after that.
    private let accepting = Locked(true)
    private let retryDelay: DispatchTimeInterval

    init(retryDelay: Duration) {
        let (seconds, attoseconds) = retryDelay.components
        self.retryDelay = .nanoseconds(Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
    }

    /// What failed since open, and what waits for a retry.
    var currentStatus: MaintenanceStatus { status.withLock { $0 } }

    /// Runs `job` with `run` after the jobs already scheduled. `run` returns the failure, if
    /// any; the job is then retried after the delay unless `isClosed` says the store closed
    /// (the next open redoes what is missing). `run` holds its store only while it runs.
    func schedule(
        _ job: MaintenanceJob, isClosed: @escaping @Sendable () -> Bool,
        run: @escaping @Sendable (MaintenanceJob) -> MaintenanceFailure?
    ) {
        accepting.withLock { accepting in
            guard accepting else { return }
            queue.async { self.execute(job, isClosed: isClosed, run: run) }
        }
    }

    /// Takes no job from now on; the ones scheduled before still run (``drain()`` waits for
    /// them), their retries do not. So nothing of the store's runs once close has drained.
    func stopAccepting() {
        accepting.withLock { $0 = false }
    }

    private func execute(
        _ job: MaintenanceJob, isClosed: @escaping @Sendable () -> Bool,
        run: @escaping @Sendable (MaintenanceJob) -> MaintenanceFailure?
    ) {
        guard let failure = run(job) else { return }
        status.withLock { status in
            status.failures += 1
            status.lastFailure = failure.description
            if failure.retry { status.pendingRetries += 1 }
        }
        guard failure.retry else { return }
        queue.asyncAfter(deadline: .now() + retryDelay) {
            let closed = isClosed()
            self.status.withLock { status in
                status.pendingRetries -= 1
                if !closed { status.retries += 1 }
            }
            guard !closed else { return }
            self.execute(job, isClosed: isClosed, run: run)
        }
    }

    /// Counts a failure of work run outside a job (compaction reports its own errors).
    func recordFailure(_ failure: MaintenanceFailure) {
        status.withLock { status in
            status.failures += 1
            status.lastFailure = failure.description
        }
    }

    /// Runs `body` on the queue, after the jobs already scheduled, and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: body()) }
        }
    }

    /// Waits for the jobs already scheduled (close uses it before releasing the lock).
    func drain() async {
        await run {}
    }
}
