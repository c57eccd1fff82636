import ServiceLifecycle

/// Runs an ``ExternalProjection``: catches up from the read model's own checkpoint, follows
/// the log live, and saves the checkpoint every `checkpointEvery` events and whenever it has
/// handled everything committed. Delivery is at least once (see ``ExternalProjection``).
/// A swift-service-lifecycle `Service`: a graceful shutdown makes it save its checkpoint and
/// return, like ``stop()``.
public actor ExternalProjectionRunner<P: ExternalProjection>: Service {
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
    private var waiters: [(position: UInt64, continuation: CheckedContinuation<Void, Never>)] = []

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

    /// The loop of the current ``run()``, cancelled by ``stop()``.
    private var loop: Task<Void, any Error>?

    /// Makes ``run()`` save the checkpoint of what it handled and return.
    public func stop() {
        loop?.cancel()
    }

    /// Handles events until ``stop()`` or a graceful shutdown (after saving its checkpoint),
    /// the task is cancelled or the store closes.
    ///
    /// - Throws: ``ProjectionError``; the read model keeps what it saved.
    public func run() async throws(ProjectionError) {
        let loop = Task { try await self.handleUntilStopped() }
        self.loop = loop
        do {
            try await withGracefulShutdownHandler {
                try await withTaskCancellationHandler { try await loop.value } onCancel: { loop.cancel() }
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
        var iterator = store.projectionFeed(from: position, filter: P.filter)
        var sinceSave = 0
        defer { resumeWaiters(all: true) }
        while true {
            guard let message = try await iterator.nextForProjection() else { break }
            switch message {
            case .event(let recorded):
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
                position = recorded.position + 1
                sinceSave += 1
                if sinceSave >= checkpointEvery || iterator.lag == 0 {
                    try await save()
                    sinceSave = 0
                }
            case .caughtUp(let end):
                position = end
                try await save()
                sinceSave = 0
            }
            resumeWaiters(all: false)
        }
        try await save()
    }

    /// Waits until the event at `position` has been handled (by this runner, since it started)
    /// or the runner stops.
    public func waitUntilHandled(through position: UInt64) async {
        guard self.position <= position else { return }
        await withCheckedContinuation { waiters.append((position, $0)) }
    }

    private func save() async throws(ProjectionError) {
        guard position > savedPosition else { return }
        do { try await projection.saveCheckpoint(position) } catch {
            throw .checkpoint(name: P.name, reason: "\(error)")
        }
        savedPosition = position
    }

    private func resumeWaiters(all: Bool) {
        let ready = waiters.filter { all || $0.position < position }
        waiters.removeAll { all || $0.position < position }
        for waiter in ready { waiter.continuation.resume() }
    }
}
