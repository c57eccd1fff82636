import Dispatch

/// Group commit: appenders that need durability register a waiter; one flush at a time runs
/// on a dedicated queue (never on the Swift concurrency pool) and covers every frame written
/// before it started, so concurrent appenders share one `msync` (and, under `fsyncBeforeAck`,
/// one `pwrite` of the frames they staged: ``StagedFrames``).
extension EventStore {
    /// Makes everything appended so far durable, whatever the store's ``Durability``.
    ///
    /// - Throws: ``AppendError/storeFailed(_:)`` if the sync fails.
    public func flush() async throws(AppendError) {
        guard !options.readOnly else { return }
        let target = durability.withLock { $0.written.end.nextPosition }
        try await waitUntilDurable(target)
    }

    /// Number of appends written and flushes performed since open (for group-commit checks and
    /// statistics).
    @_spi(Testing) public var commitCounters: (appends: Int, flushes: Int) {
        (appendCounter.load(ordering: .relaxed), durability.withLock { $0.flushCount })
    }

    func waitUntilDurable(_ position: UInt64) async throws(AppendError) {
        do {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                enum Outcome { case durable, failed(SystemError), waiting(startFlush: Bool) }
                let outcome: Outcome = durability.withLock { state in
                    if let failure = state.failure { return .failed(failure) }
                    if state.durablePosition >= position { return .durable }
                    state.waiters.append(DurabilityWaiter(position: position, continuation: continuation))
                    if state.flushRunning { return .waiting(startFlush: false) }
                    state.flushRunning = true
                    return .waiting(startFlush: true)
                }
                switch outcome {
                case .durable: continuation.resume()
                case .failed(let error): continuation.resume(throwing: AppendError.storeFailed(error))
                // The sync runs on the flush queue, never blocking a thread of the Swift
                // concurrency pool (measured: flushing inline on the appender's thread was not
                // faster here, and it starves other tasks while the sync blocks).
                case .waiting(let startFlush): if startFlush { flushQueue.async { self.runFlushes(role: .queue) } }
                }
            }
        } catch let error as AppendError {
            throw error
        } catch {
            throw .storeClosed
        }
    }

    /// Who is flushing: the flush queue for waiting appenders (until no waiter is left), or
    /// the periodic timer (one flush unless appenders are waiting).
    enum FlushRole { case queue, timer }

    /// Flushes with `flushRunning` set by whoever started it; at most one flush runs at a time.
    /// The sync runs outside every lock. The writer lock is held to write the staged frames
    /// and, with the durability lock inside it, to pick the job; the durability lock to publish
    /// its result, the view's (inside it) to reveal what became durable.
    func runFlushes(role: FlushRole) {
        let acknowledgesOnSync = options.durability == .fsyncBeforeAck
        while true {
            /// Sync `segment` from `start` (to the end of the file when it has a durable-mark
            /// area, so the last mark goes to disk too): everything up to `end` becomes durable.
            typealias Job = (segment: Segment, start: Int, end: LogEnd)
            let pick = { (state: inout DurabilityState, staging: SystemError?) -> Result<Job, SystemError>? in
                if let staging { state.failure = state.failure ?? staging }
                if let failure = state.failure { return .failure(failure) }
                if state.waiters.isEmpty && state.durablePosition == state.written.end.nextPosition {
                    state.flushRunning = false
                    return nil
                }
                return .success((state.written.segment, state.syncedOffset, state.written.end))
            }
            // The frames appenders staged go to the file first (one write for all of them), in
            // the same critical section as the pick of the job: every frame the job covers is
            // then in the file. Only `fsyncBeforeAck` stages frames.
            let next: Result<Job, SystemError>? = if acknowledgesOnSync {
                writer.withLock { writer in
                    var staging: SystemError?
                    if durability.withLock({ $0.failure == nil }) {
                        do throws(SystemError) { try writer.staged.write() } catch { staging = error }
                    }
                    return durability.withLock { pick(&$0, staging) }
                }
            } else {
                durability.withLock { pick(&$0, nil) }
            }
            guard let next else { return }
            var outcome = next
            if case .success(let job) = next {
                let syncEnd = job.segment.hasDurableMarks ? job.segment.file.size : job.end.offset
                let started = ContinuousClock.now
                do { try job.segment.file.sync(job.start..<syncEnd) } catch { outcome = .failure(error) }
                metrics.flushes.increment()
                metrics.flushDuration.recordInterval(since: started)
            }
            let (ready, error, done): ([DurabilityWaiter], SystemError?, Bool) = durability.withLock { state in
                state.flushCount += 1
                // A sync that failed elsewhere meanwhile (a roll's, close's) fails this one too.
                if case .success = outcome, let failure = state.failure { outcome = .failure(failure) }
                // The mark goes before any appender hears of the sync: recovery must never cut
                // what it acknowledges. A failed mark write fails the flush: nothing is acknowledged.
                if case .success(let job) = outcome, state.written.segment === job.segment {
                    do throws(SystemError) {
                        try state.marks.synced(job.end, acknowledged: acknowledgesOnSync ? job.end : state.written.end,
                                               in: job.segment)
                    } catch {
                        outcome = .failure(error)
                    }
                }
                switch outcome {
                case .failure(let error):
                    state.failure = state.failure ?? error
                    let all = state.waiters
                    state.waiters = []
                    state.flushRunning = false
                    return (all, error, true)
                case .success(let job):
                    if state.written.segment === job.segment { state.syncedOffset = max(state.syncedOffset, job.end.offset) }
                    if job.end.nextPosition > state.durablePosition { state.durablePosition = job.end.nextPosition }
                    if acknowledgesOnSync { view.withLock { $0.reveal(job.end) } }
                    let durable = state.durablePosition
                    let ready = state.waiters.filter { $0.position <= durable }
                    state.waiters.removeAll { $0.position <= durable }
                    let done = role == .timer && state.waiters.isEmpty
                    if done { state.flushRunning = false }
                    return (ready, nil, done)
                }
            }
            if let error {
                logger.error("\(error.call == "pwrite" ? "a write" : "a sync") failed: the store takes no more writes until it is reopened",
                             metadata: ["annals.error": "\(error)", "annals.waiting": "\(ready.count)"])
                for waiter in ready { waiter.continuation.resume(throwing: AppendError.storeFailed(error)) }
            } else {
                metrics.flushBatch.record(ready.count)
                publishCommits()
                for waiter in ready { waiter.continuation.resume() }
            }
            if done { return }
        }
    }

    func startPeriodicFlush(every interval: Duration) {
        let timer = DispatchSource.makeTimerSource(queue: flushQueue)
        let (seconds, attoseconds) = interval.components
        let nanoseconds = Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000)
        timer.schedule(deadline: .now() + .nanoseconds(nanoseconds), repeating: .nanoseconds(nanoseconds))
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            let needed = self.durability.withLock { state in
                guard !state.flushRunning, state.durablePosition < state.written.end.nextPosition, state.failure == nil else {
                    return false
                }
                state.flushRunning = true
                return true
            }
            if needed { self.runFlushes(role: .timer) }
        }
        periodicTimer.withLock { $0 = PeriodicTimer(source: timer) }
        timer.resume()
    }
}

/// The periodic flush timer. Dispatch sources are thread-safe but not marked `Sendable`.
struct PeriodicTimer: @unchecked Sendable {
    let source: any DispatchSourceTimer
}
