/// The store's background work — the index file of each sealed segment, merges of index files,
/// the checkpoint written after a roll, the next segment file allocated ahead — and what of it
/// failed. A failed job is never dropped in silence: it is counted here with its error, and
/// retried (index files and checkpoints after ``StoreOptions`` 's retry delay; merges and the
/// next segment file at the next roll, which creates its file itself when none is ready) until
/// it succeeds or the store closes. Nothing acknowledged depends on these jobs: until an index
/// file is written its frames stay indexed in memory, and a missing file or a stale checkpoint
/// only makes the next open verify more of the log.
public struct MaintenanceStatus: Sendable, Equatable {
    /// Jobs that failed since the store was opened.
    public var failures = 0
    /// What the last failure was doing, and its error.
    public var lastFailure: String?
    /// Jobs waiting to be tried again.
    public var pendingRetries = 0
    /// Jobs retried since open (successfully or not).
    public var retries = 0
}
