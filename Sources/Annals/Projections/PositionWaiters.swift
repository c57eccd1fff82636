/// Tasks waiting for a runner to pass a position (``ProjectionRunner/waitUntilApplied(through:timeout:)``,
/// ``ExternalProjectionRunner/waitUntilHandled(through:timeout:)``), and how many runs ended: a
/// waiter woken by the end of a run tells it from a timeout. Owned by the runner actor.
struct PositionWaiters {
    private var waiting: [UInt64: (position: UInt64, continuation: CheckedContinuation<Void, Never>)] = [:]
    private var lastID: UInt64 = 0
    /// Runs ended so far.
    private(set) var runsEnded = 0

    mutating func nextID() -> UInt64 {
        lastID += 1
        return lastID
    }

    mutating func register(_ id: UInt64, for position: UInt64, _ continuation: CheckedContinuation<Void, Never>) {
        waiting[id] = (position, continuation)
    }

    /// Wakes waiter `id` (its timeout, or its task's cancellation), if it still waits.
    mutating func resume(_ id: UInt64) {
        waiting.removeValue(forKey: id)?.continuation.resume()
    }

    /// Wakes the waiters that `position` has passed.
    mutating func resumePassed(_ position: UInt64) {
        for (id, waiter) in waiting where waiter.position < position {
            waiting.removeValue(forKey: id)
            waiter.continuation.resume()
        }
    }

    /// A run ended: every waiter wakes.
    mutating func runEnded() {
        runsEnded += 1
        for (id, waiter) in waiting {
            waiting.removeValue(forKey: id)
            waiter.continuation.resume()
        }
    }
}

/// A runner actor whose position tasks can wait for.
protocol WaitsForPosition: Actor {
    /// Every event before it has been passed.
    var position: UInt64 { get }
    var positionWaiters: PositionWaiters { get set }
    /// The projection's name, for errors.
    nonisolated var waitName: String { get }
}

extension WaitsForPosition {
    /// Waits until ``position`` passes `target`.
    ///
    /// - Throws: ``ProjectionWaitError``: `runnerStopped` when a run ends while it waits,
    ///   `timedOut` after `timeout`, `cancelled` when the waiting task is.
    func waitUntilPassed(_ target: UInt64, timeout: Duration) async throws(ProjectionWaitError) {
        if position > target { return }
        let runsEndedBefore = positionWaiters.runsEnded
        let id = positionWaiters.nextID()
        let timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            await self?.resumePositionWaiter(id)
        }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled { continuation.resume() } else { positionWaiters.register(id, for: target, continuation) }
            }
        } onCancel: {
            Task { await self.resumePositionWaiter(id) }
        }
        if position > target { return }
        if Task.isCancelled { throw .cancelled }
        if positionWaiters.runsEnded != runsEndedBefore { throw .runnerStopped(projection: waitName, position: target) }
        throw .timedOut(projection: waitName, position: target, projectedThrough: position)
    }

    private func resumePositionWaiter(_ id: UInt64) {
        positionWaiters.resume(id)
    }
}
