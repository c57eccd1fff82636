import ServiceLifecycle

/// Runs an ``ExternalProjection``: catches up from the read model's own checkpoint, follows
/// the log live, and saves the checkpoint every `checkpointEvery` events and whenever it has
/// handled everything committed. Delivery is at least once (see ``ExternalProjection``).
/// A swift-service-lifecycle `Service`: a graceful shutdown makes it save its checkpoint and
/// return, like ``stop()``. Saves happen every `checkpointEvery` handled events and whenever it
/// has caught up; cancellation of its task stops it like a crash would, after a last save.
public actor ExternalProjectionRunner<P: ExternalProjection>: Service, WaitsForPosition {
    /// The store it reads.
    public let store: EventStore
    /// The read model it feeds.
    public let projection: P
    /// Events handled between checkpoint saves while catching up.
    public let checkpointEvery: Int
    private let translator: EventTranslator<P.Event>

    /// The position of the next event to handle.
    public private(set) var position: UInt64 = 0
    /// The last position saved with ``ExternalProjection/saveCheckpoint(_:)``.
    public private(set) var savedPosition: UInt64 = 0
    /// Events skipped because their type is not in the projection's family.
    public private(set) var unknownEvents = 0
    /// Tasks in ``waitUntilHandled(through:timeout:)``.
    var positionWaiters = PositionWaiters()
    nonisolated var waitName: String { P.name }

    /// A runner for `projection` over `store`; call ``run()`` in a task.
    public init(store: EventStore, projection: P, checkpointEvery: Int = 1000, codec: any EventCodec = JSONEventCodec()) {
        self.store = store
        self.projection = projection
        self.checkpointEvery = max(1, checkpointEvery)
        self.translator = EventTranslator(codec: codec)
    }

    /// Events committed to the store that the projection has not handled yet.
    public var lag: UInt64 {
        let end = store.endPosition
        return end > position ? end - position : 0
    }

    private var stopRequested = false
    private var running = false
    /// The current wait for commits, cancelled by ``stop()`` (never the handling of an event).
    private var currentWait: Task<Bool, Never>?

    /// Makes ``run()`` save the checkpoint of what it handled and return (a `stop()` before
    /// `run()` makes that run return at once, after loading and saving the checkpoint).
    public func stop() {
        stopRequested = true
        currentWait?.cancel()
    }

    /// Handles events until ``stop()`` or a graceful shutdown (then saves its checkpoint and
    /// returns), the task is cancelled or the store closes. The read model's `handle` and
    /// `saveCheckpoint` never run in a cancelled task because of `stop()`.
    ///
    /// - Throws: ``ProjectionError``; the read model keeps what it saved.
    public func run() async throws(ProjectionError) {
        guard !running else { throw .alreadyRunning(name: P.name) }
        running = true
        defer {
            running = false
            stopRequested = false
            positionWaiters.runEnded()
        }
        do {
            try await withGracefulShutdownHandler {
                try await handleUntilStopped()
            } onGracefulShutdown: { [weak self] in
                Task { await self?.stop() }
            }
        } catch let error as ProjectionError {
            throw error
        } catch {
            throw .projection(name: P.name, position: position, reason: "\(error)")
        }
    }

    private func handleUntilStopped() async throws(ProjectionError) {
        do { position = try await projection.loadCheckpoint() ?? 0 } catch {
            throw .checkpoint(name: P.name, reason: "\(error)")
        }
        savedPosition = position
        var filter = P.filter
        filter.includeSystemStreams = false
        var sinceSave = 0
        while !Task.isCancelled, !stopRequested {
            var cursor = store.readAll(from: position, limit: 512).makeCursor()
            var read = 0
            while !stopRequested {
                let next: RecordedEvent?
                do { next = try cursor.next() } catch { throw .read(error) }
                guard let recorded = next else { break }
                read += 1
                if filter.matches(recorded) {
                    let typed: TypedEvent<P.Event>
                    do { typed = try translator.decode(recorded) } catch { throw .decoding(error) }
                    switch typed {
                    case .known(let event, _):
                        do { try await projection.handle(event, recorded: recorded) } catch {
                            throw .projection(name: P.name, position: recorded.position, reason: "\(error)")
                        }
                    case .unknown:
                        unknownEvents += 1
                    }
                    sinceSave += 1
                }
                position = recorded.position + 1
                if sinceSave >= checkpointEvery {
                    try await save()
                    sinceSave = 0
                }
            }
            positionWaiters.resumePassed(position)
            if read > 0 { continue }
            // Caught up: save what was handled, then wait for new commits.
            try await save()
            sinceSave = 0
            if store.isClosed || stopRequested { break }
            let store = self.store
            let position = self.position
            let wait = Task { await store.waitForCommit(beyond: position) > position }
            currentWait = wait
            let committed = await withTaskCancellationHandler { await wait.value } onCancel: { wait.cancel() }
            currentWait = nil
            if !committed, store.isClosed { break }
        }
        try await save()
    }

    /// Waits until the runner has passed the event at `position` (handled it, or skipped it as
    /// not the read model's). Called before ``run()`` starts, it waits for it.
    ///
    /// - Throws: ``ProjectionWaitError``: `runnerStopped` when a ``run()`` ends while it waits
    ///   (before getting there), `timedOut` after `timeout`, `cancelled` when the waiting task is.
    public func waitUntilHandled(through position: UInt64, timeout: Duration = .seconds(30)) async throws(ProjectionWaitError) {
        try await waitUntilPassed(position, timeout: timeout)
    }

    private func save() async throws(ProjectionError) {
        guard position > savedPosition else { return }
        do { try await projection.saveCheckpoint(position) } catch {
            throw .checkpoint(name: P.name, reason: "\(error)")
        }
        savedPosition = position
    }
}
