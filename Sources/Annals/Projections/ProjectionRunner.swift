import Foundation

/// Runs a ``Projection``: loads its committed state and checkpoint, catches up from there,
/// follows the log live, and commits state and checkpoint together.
///
/// - Exactly once: state and checkpoint are one event of `$projection-<name>`; a crash
///   loses only uncommitted progress, which is recomputed from the committed checkpoint.
/// - Commits every `checkpointEvery` events while catching up, and whenever it has applied
///   everything committed (so a live projection is at most one commit behind). Each commit
///   encodes the whole state: keep states small, or raise `checkpointEvery` for big ones.
/// - Rebuilds from the first event when the stored checkpoint has another ``Projection/version``
///   (or on ``rebuild()``).
///
/// ```swift
/// let runner = ProjectionRunner<OrdersView>(store: store)
/// let task = Task { try await runner.run() }
/// try await store.waitUntilProjected(OrdersView.name, through: result.lastPosition)
/// ```
public actor ProjectionRunner<P: Projection> {
    /// The store it reads and commits to.
    public let store: EventStore
    /// Events applied between commits while catching up.
    public let checkpointEvery: Int
    private let translator: EventTranslator<P.Event>
    private let stateCodec: any EventCodec

    /// The state including events applied since the last commit.
    public private(set) var state: P.State = P.initialState
    /// The position of the next event to apply.
    public private(set) var position: UInt64 = 0
    /// The position the last commit recorded.
    public private(set) var committedPosition: UInt64 = 0
    /// Events skipped because their type is not in the projection's family.
    public private(set) var unknownEvents = 0
    private var checkpointRevision: UInt64?
    private var loaded = false

    /// A runner for `P` over `store`; call ``run()`` in a task. Only one runner of a
    /// projection may run at a time (a second one's commit throws `concurrentRunner`).
    public init(
        store: EventStore, checkpointEvery: Int = 10_000, codec: any EventCodec = JSONEventCodec(), upcasters: Upcasters = Upcasters()
    ) {
        self.store = store
        // Only the newest checkpoint counts: compaction may remove the older ones.
        store.declareNewestOnlySystemStreams(prefix: ProjectionCheckpoints.streamPrefix)
        self.checkpointEvery = max(1, checkpointEvery)
        self.translator = EventTranslator(codec: codec, upcasters: upcasters)
        self.stateCodec = codec
    }

    private var waiters: [(position: UInt64, continuation: CheckedContinuation<Void, Never>)] = []

    /// Waits until the runner's in-memory ``state`` includes the event at `position`, or its
    /// ``run()`` returns. (Called before `run()` starts, it waits for it.) For the committed
    /// state, see `EventStore.waitUntilProjected`.
    public func waitUntilApplied(through position: UInt64) async {
        guard self.position <= position, !stopped else { return }
        await withCheckedContinuation { waiters.append((position, $0)) }
    }

    private var stopped = false

    private func resumeWaiters(all: Bool) {
        guard !waiters.isEmpty else { return }
        let ready = waiters.filter { all || $0.position < position }
        waiters.removeAll { all || $0.position < position }
        for waiter in ready { waiter.continuation.resume() }
    }

    /// Events committed to the store that the projection has not applied yet.
    public var lag: UInt64 {
        let end = store.endPosition
        return end > position ? end - position : 0
    }

    /// Loads the committed checkpoint (or starts fresh), catches up and follows the log until
    /// the task is cancelled or the store closes. Cancellation stops it where it is, like a
    /// crash: events applied since the last commit are applied again by the next run (to the
    /// committed state, so still exactly once). When the store closes, it commits first.
    ///
    /// - Throws: ``ProjectionError``; progress up to the last commit is kept.
    public func run() async throws(ProjectionError) {
        stopped = false
        defer {
            stopped = true
            resumeWaiters(all: true)
        }
        if !loaded, try load() == .otherVersion {
            // Say so at once, so that no reader waits on the old version's checkpoint.
            try await commit(force: true)
        }
        var iterator = store.projectionFeed(from: position, filter: P.filter)
        var sinceCommit = 0
        while true {
            guard let message = try await iterator.nextForProjection() else { break }
            switch message {
            case .event(let recorded):
                try apply(recorded)
                sinceCommit += 1
                position = recorded.position + 1
                if sinceCommit >= checkpointEvery || iterator.lag == 0 {
                    try await commit()
                    sinceCommit = 0
                }
            case .caughtUp(let end):
                position = end
                if position > committedPosition { try await commit() }
                sinceCommit = 0
            }
            resumeWaiters(all: false)
        }
        if !Task.isCancelled, position > committedPosition { try await commit() }
    }

    /// Forgets the committed state: the next ``run()`` starts from the first event with
    /// ``Projection/initialState``. Commits the reset, so it holds across restarts.
    public func rebuild() async throws(ProjectionError) {
        if !loaded { _ = try load() }
        state = P.initialState
        position = 0
        unknownEvents = 0
        committedPosition = 0
        try await commit(force: true)
    }

    private func apply(_ recorded: RecordedEvent) throws(ProjectionError) {
        let typed: TypedEvent<P.Event>
        do { typed = try translator.decode(recorded) } catch { throw .decoding(error) }
        switch typed {
        case .known(let event, _):
            do { try P.apply(event, recorded: recorded, to: &state) } catch {
                throw .projection(name: P.name, position: recorded.position, reason: "\(error)")
            }
        case .unknown:
            unknownEvents += 1
        }
    }

    private enum LoadOutcome { case fresh, resumed, otherVersion }

    private func load() throws(ProjectionError) -> LoadOutcome {
        loaded = true
        guard let stored = try Self.lastCheckpoint(in: store, codec: stateCodec) else { return .fresh }
        checkpointRevision = stored.revision
        guard let record = stored.record else { return .otherVersion } // rebuild from scratch
        state = record.state
        position = record.position
        committedPosition = record.position
        unknownEvents = record.unknownEvents
        return .resumed
    }

    private func commit(force: Bool = false) async throws(ProjectionError) {
        guard force || position > committedPosition || checkpointRevision == nil else { return }
        let record = CheckpointRecord(version: P.version, position: position, unknownEvents: unknownEvents, state: state)
        let payload: [UInt8]
        do { payload = try stateCodec.encode(record) } catch { throw .checkpoint(name: P.name, reason: "\(error)") }
        let expected: ExpectedRevision = checkpointRevision.map { .exact($0) } ?? .noStream
        do {
            let result = try await store.appendToSystemStreams([StreamAppend(
                stream: P.checkpointStream,
                events: [EventData(type: CheckpointRecord<P.State>.eventType, payload: payload,
                                   metadata: Array(#"{"position":\#(position),"version":\#(P.version)}"#.utf8))],
                expected: expected)])
            checkpointRevision = result[0].lastRevision
            committedPosition = position
        } catch {
            if case .wrongExpectedRevision = error { throw .concurrentRunner(name: P.name) }
            throw .append(error)
        }
    }

    /// The last checkpoint's revision, and its record when it was written by this version of
    /// the projection (nil: another version, whose state this code must not decode).
    static func lastCheckpoint(
        in store: EventStore, codec: any EventCodec
    ) throws(ProjectionError) -> (record: CheckpointRecord<P.State>?, revision: UInt64)? {
        var cursor = store.readBackwards(P.checkpointStream, limit: 1).makeCursor()
        let last: RecordedEvent?
        do { last = try cursor.next() } catch { throw .read(error) }
        guard let last else { return nil }
        do {
            let header = try JSONDecoder().decode(CheckpointPosition.self, from: Data(try last.metadata))
            guard header.version == P.version else { return (nil, last.revision) }
            return (try codec.decode(CheckpointRecord<P.State>.self, from: try last.payload), last.revision)
        } catch {
            throw .checkpoint(name: P.name, reason: "\(error)")
        }
    }
}

/// One committed checkpoint of a projection: its version, the next position, and the state.
struct CheckpointRecord<State: Codable & Sendable>: Codable, Sendable {
    static var eventType: String { "ProjectionCheckpoint" }
    var version: Int
    var position: UInt64
    var unknownEvents: Int
    var state: State
}

/// The metadata of a checkpoint event: readable whatever the state and its codec.
struct CheckpointPosition: Codable {
    var position: UInt64
    var version: Int
}

extension EventStore {
    /// Waits until the projection `name` (run by a ``ProjectionRunner``, in this process or
    /// having committed to this store) has committed a checkpoint past `position`: the event at
    /// `position` is in its stored state. Read-your-writes for CQRS callers:
    ///
    /// ```swift
    /// let result = try await orders.execute(.place(order), on: "123")
    /// try await store.waitUntilProjected("orders-view", through: result.append!.lastPosition)
    /// ```
    ///
    /// Returns early when the task is cancelled or the store closes (check `Task.isCancelled`).
    /// - Throws: ``ReadError`` when the checkpoint stream cannot be read.
    public func waitUntilProjected(_ name: String, through position: UInt64) async throws(ReadError) {
        try await waitUntilProjected(name, version: nil, through: position)
    }

    /// As ``waitUntilProjected(_:through:)``, for a checkpoint of this version of the projection
    /// (a runner of an older version may still have the last word while the new one starts).
    public func waitUntilProjected<P: Projection>(_ projection: P.Type, through position: UInt64) async throws(ReadError) {
        try await waitUntilProjected(P.name, version: P.version, through: position)
    }

    private func waitUntilProjected(_ name: String, version: Int?, through position: UInt64) async throws(ReadError) {
        let stream = ProjectionCheckpoints.streamPrefix + name
        while !Task.isCancelled {
            let end = endPosition
            var cursor = readBackwards(stream, limit: 1).makeCursor()
            if let last = try cursor.next(),
               let checkpoint = try? JSONDecoder().decode(CheckpointPosition.self, from: Data(try last.metadata)),
               checkpoint.position > position, version.map({ $0 == checkpoint.version }) ?? true {
                return
            }
            if await waitForCommit(beyond: end) <= end { return } // cancelled or closed
        }
    }
}
