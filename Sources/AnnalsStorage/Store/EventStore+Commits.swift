import Synchronization

/// Waiting for new commits: how subscriptions follow the log live without polling.
extension EventStore {
    /// Suspends until the store's committed end passes `position` — that is, until an event
    /// at `position` or later is visible to readers — and returns the new ``endPosition``.
    /// Returns at once when it already has.
    ///
    /// Commits are what readers may see: durable events under ``Durability/fsyncBeforeAck``,
    /// written events otherwise. Returns early (with the end as it is) when the task is
    /// cancelled or the store is closed; callers check `Task.isCancelled`. A read-only store
    /// sees no new commits (its view is fixed when it opens), so this returns only on
    /// cancellation or close there.
    ///
    /// ```swift
    /// var next = store.endPosition
    /// while !Task.isCancelled {
    ///     for try await event in store.readAll(from: next) { handle(event); next = event.position + 1 }
    ///     _ = await store.waitForCommit(beyond: next)
    /// }
    /// ```
    public func waitForCommit(beyond position: UInt64) async -> UInt64 {
        let end = endPosition
        if end > position || Task.isCancelled { return end }
        let id = commitWatch.nextID()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<UInt64, Never>) in
                let immediate: UInt64? = commitWatch.waiters.withLock { watch in
                    // Re-checked under the watch lock: a commit published since the first check
                    // has already run its notification.
                    let end = self.endPosition
                    if end > position || watch.closed || watch.cancelled.remove(id) != nil { return end }
                    watch.list.append(CommitWaiter(id: id, after: position, continuation: continuation))
                    commitWatch.count.add(1, ordering: .relaxed)
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter: CommitWaiter? = commitWatch.waiters.withLock { watch in
                guard let index = watch.list.firstIndex(where: { $0.id == id }) else {
                    watch.cancelled.insert(id) // not registered yet: refuse it when it comes
                    return nil
                }
                commitWatch.count.subtract(1, ordering: .relaxed)
                return watch.list.remove(at: index)
            }
            waiter?.continuation.resume(returning: self.endPosition)
        }
    }

    /// Wakes the waiters that the visible end has passed. Cheap when nobody waits.
    func publishCommits() {
        guard commitWatch.count.load(ordering: .relaxed) > 0 else { return }
        let end = endPosition
        let ready: [CommitWaiter] = commitWatch.waiters.withLock { watch in
            let ready = watch.list.filter { $0.after < end || watch.closed }
            watch.list.removeAll { $0.after < end || watch.closed }
            commitWatch.count.subtract(ready.count, ordering: .relaxed)
            return ready
        }
        for waiter in ready { waiter.continuation.resume(returning: end) }
    }

    /// Wakes every waiter for good (the store is closing).
    func closeCommitWatch() {
        commitWatch.waiters.withLock { $0.closed = true }
        commitWatch.count.add(1, ordering: .relaxed) // make publishCommits look
        publishCommits()
    }
}

/// A task suspended in ``EventStore/waitForCommit(beyond:)``.
struct CommitWaiter {
    let id: UInt64
    let after: UInt64
    let continuation: CheckedContinuation<UInt64, Never>
}

/// The waiters for new commits, apart from the log state so that appends do not contend on it.
final class CommitWatch: Sendable {
    struct Waiters {
        var list: [CommitWaiter] = []
        /// Ids cancelled before they registered.
        var cancelled: Set<UInt64> = []
        var closed = false
    }

    let waiters = Locked(Waiters())
    /// Registered waiters (plus one after close), read without the lock on every commit.
    let count = Atomic<Int>(0)
    private let ids = Atomic<UInt64>(0)

    func nextID() -> UInt64 { ids.add(1, ordering: .relaxed).newValue }
}
