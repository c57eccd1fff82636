/// When a ``ProjectionRunner`` commits its state and checkpoint (one event of
/// `$projection-<name>` each time, carrying the whole state).
///
/// A commit happens after ``everyEvents`` consumed events, and, once the runner is at the head
/// of the log (a read finds less than a full batch, however many events keep arriving), at most
/// ``maxDelay`` after the first event it applied since the last commit; and when the runner is
/// stopped with ``ProjectionRunner/stop()``. While it catches up (full batches), only the count
/// applies: each commit encodes the whole state. So a busy live projection
/// commits about once per `maxDelay` however many events arrive, and a read-your-writes wait
/// (`EventStore/waitUntilProjected(_:through:timeout:)`) returns about `maxDelay` after the
/// event was applied. Application events the projection passes without consuming make a commit
/// due in the same way (so that waiting for them ends too); system events (snapshots, other
/// projections' checkpoints, its own) never do.
public struct ProjectionCheckpointPolicy: Sendable, Hashable {
    /// Consumed events between commits (at least 1). Default 1,000.
    public var everyEvents: Int
    /// Once caught up, how long applied events may stay uncommitted. Default 50 ms.
    public var maxDelay: Duration

    /// A policy; the defaults cost one commit per 1,000 events while catching up and at most
    /// 20 commits a second live.
    public init(everyEvents: Int = 1_000, maxDelay: Duration = .milliseconds(50)) {
        self.everyEvents = max(1, everyEvents)
        self.maxDelay = max(.zero, maxDelay)
    }
}

/// Why a wait for a projection (`EventStore/waitUntilProjected(_:through:timeout:)`,
/// ``ProjectionRunner/waitUntilApplied(through:timeout:)``) ended without it getting there.
public enum ProjectionWaitError: Error, Sendable, Equatable {
    /// The deadline passed; `projectedThrough` is the position before which the projection's
    /// newest checkpoint (or the runner's state) had got.
    case timedOut(projection: String, position: UInt64, projectedThrough: UInt64)
    /// The waiting task was cancelled.
    case cancelled
    /// The store was closed.
    case storeClosed
    /// The runner's ``ProjectionRunner/run()`` ended before it applied the event.
    case runnerStopped(projection: String, position: UInt64)
    /// The checkpoint stream could not be read.
    case read(ReadError)
    /// The newest checkpoint's metadata does not decode.
    case unreadableCheckpoint(projection: String, reason: String)
}
