import CoreMetrics
import Foundation
import Logging
import ServiceLifecycle
import Tracing

/// Runs a ``Projection``: loads its committed state and checkpoint, catches up from there,
/// follows the log live, and commits state and checkpoint together.
///
/// - Exactly once: state and checkpoint are one event of `$projection-<name>`; a crash
///   loses only uncommitted progress, which is recomputed from the committed checkpoint.
/// - Commits as its ``ProjectionCheckpointPolicy`` says: every N consumed events, and once
///   caught up at most a short delay after the first uncommitted event, and at ``stop()``.
///   Each commit encodes the whole state: keep states small, or raise the policy's intervals.
/// - Its position passes every event of the log, consumed or not (other streams, system
///   events, its own checkpoints), so waiting for any position the log has reached ends.
/// - A new ``Projection/version`` rebuilds without downtime: while an older version is served
///   (its runner may go on), the new one builds from the first event into
///   ``Projection/buildStream`` (a crash resumes it there), and once it has caught up it takes
///   over in one append to the served stream; the older runner then stops with
///   ``ProjectionError/superseded(name:version:)``. ``isBuilding`` and ``lag`` show progress;
///   readers of ``Projection/committedState(in:codec:)`` never see a half-built version.
///   ``rebuild()`` starts this version again from the first event.
/// - A swift-service-lifecycle `Service`: in a `ServiceGroup`, a graceful shutdown makes it
///   commit and return, like ``stop()``.
/// - Logs through the store's logger (`annals.projection` set) and records
///   `annals_projection_events_total`, `annals_projection_checkpoints_total` and
///   `annals_projection_lag_events` (dimension `projection`) with the store's metrics factory.
///
/// ```swift
/// let runner = ProjectionRunner<OrdersView>(store: store)
/// let task = Task { try await runner.run() }
/// let result = try await orders.execute(.ship(carrier: "UPS", trackingNumber: "1Z"), on: "3")
/// if let position = result.lastPosition { try await store.waitUntilProjected(OrdersView.self, through: position) }
/// ```
public actor ProjectionRunner<P: Projection>: Service, WaitsForPosition {
    /// The store it reads and commits to.
    public let store: EventStore
    /// When it commits.
    public let checkpoints: ProjectionCheckpointPolicy
    private let translator: EventTranslator<P.Event>
    private let stateCodec: any EventCodec
    private let logger: Logger
    private let appliedEvents: Counter
    private let commits: Counter
    private let lagGauge: Gauge

    /// The state including events applied since the last commit.
    public private(set) var state: P.State = P.initialState
    /// The position of the next event to look at: every event before it was applied or is
    /// not one the projection consumes.
    public private(set) var position: UInt64 = 0
    /// The position the last commit recorded.
    public private(set) var committedPosition: UInt64 = 0
    /// Events skipped because their type is not in the projection's family.
    public private(set) var unknownEvents = 0
    /// The last revision of the stream it commits to (nil: that stream has no event yet).
    private var checkpointRevision: UInt64?
    /// The stream it commits to: `$projection-<name>`, or the build stream while a new version
    /// builds beside the one being served.
    private var target: String = P.checkpointStream
    /// While building: the served stream's last revision (what the takeover expects).
    private var servedRevision: UInt64?
    /// True while this version builds beside an older one that goes on being served: its
    /// commits go to `$projection-<name>@v<version>`, and it takes over when it has caught up.
    public private(set) var isBuilding = false
    private var loaded = false
    /// Consumed events applied since the last commit.
    private var uncommitted = 0
    /// Application events passed (not consumed) since the last commit: a commit is due for
    /// them too, so that waiting for them ends (system events, the runner's own checkpoints
    /// among them, never make one due).
    private var passedUnconsumed = 0
    /// When a commit became due (the first event that made it so).
    private var pendingSince: ContinuousClock.Instant?
    /// Events read at a time.
    static var batchSize: Int { 512 }
    /// A commit is due after this many events of any kind, so that a wait never has to
    /// examine more than this many events past the checkpoint.
    static var passedEventsBetweenCommits: UInt64 { 4_096 }
    /// True when the next commit would record something new.
    private var commitDue: Bool {
        uncommitted > 0 || passedUnconsumed > 0 || position - committedPosition >= Self.passedEventsBetweenCommits
    }
    private var running = false
    private var stopRequested = false
    /// The runner's current wait for commits, cancelled by ``stop()``.
    private var currentWait: Task<EventStore.CommitWait, Never>?
    /// Tasks in ``waitUntilApplied(through:timeout:)``.
    var positionWaiters = PositionWaiters()
    nonisolated var waitName: String { P.name }

    /// A runner for `P` over `store`; call ``run()`` in a task. Only one runner of a
    /// projection may run at a time (a second one's commit throws `concurrentRunner`).
    ///
    /// - Parameters:
    ///   - store: the store it reads and commits to.
    ///   - checkpoints: when to commit (default: every 1,000 events, and within 50 ms once live).
    ///   - codec: how the state and the events are encoded (events are upcast as their types
    ///     declare: ``DomainEvent/upcasters``).
    public init(
        store: EventStore, checkpoints: ProjectionCheckpointPolicy = ProjectionCheckpointPolicy(),
        codec: any EventCodec = JSONEventCodec()
    ) {
        self.store = store
        // Only the newest checkpoint counts: compaction may remove the older ones.
        store.declareNewestOnlySystemStreams(prefix: ProjectionCheckpoints.streamPrefix)
        self.checkpoints = checkpoints
        self.translator = EventTranslator(codec: codec)
        self.stateCodec = codec
        logger = store.logger(with: "annals.projection", P.name)
        let factory = store.metricsFactory
        let dimensions = [("projection", P.name)]
        appliedEvents = Counter(label: "annals_projection_events_total", dimensions: dimensions, factory: factory)
        commits = Counter(label: "annals_projection_checkpoints_total", dimensions: dimensions, factory: factory)
        lagGauge = Gauge(label: "annals_projection_lag_events", dimensions: dimensions, factory: factory)
    }

    /// Waits until the runner's in-memory ``state`` has passed the event at `position` (applied
    /// it, or skipped it as not the projection's). Called before ``run()`` starts, it waits for
    /// it. For the committed state, see `EventStore/waitUntilProjected(_:through:timeout:)`.
    ///
    /// - Throws: ``ProjectionWaitError``: `runnerStopped` when a ``run()`` ends while it waits
    ///   (before getting there), `timedOut` after `timeout`, `cancelled` when the waiting task is.
    public func waitUntilApplied(through position: UInt64, timeout: Duration = .seconds(30)) async throws(ProjectionWaitError) {
        try await waitUntilPassed(position, timeout: timeout)
    }

    /// Events committed to the store that the projection has not looked at yet.
    public var lag: UInt64 {
        let end = store.endPosition
        return end > position ? end - position : 0
    }

    /// Makes ``run()`` commit what it applied and return (the way to shut a projection down;
    /// cancelling its task instead stops it like a crash, without a commit).
    public func stop() {
        stopRequested = true
        currentWait?.cancel()
    }

    /// Loads the committed checkpoint (or starts fresh), catches up and follows the log until
    /// ``stop()`` (after a final commit), the task is cancelled or the store closes.
    /// Cancellation and a closed store stop it where it is, like a crash: events applied
    /// since the last commit are applied again by the next run (to the committed state, so
    /// still exactly once).
    ///
    /// - Throws: ``ProjectionError``; progress up to the last commit is kept.
    public func run() async throws(ProjectionError) {
        do {
            try await withGracefulShutdownHandler {
                try await runUntilStopped()
            } onGracefulShutdown: { [weak self] in
                Task { await self?.stop() }
            }
        } catch let error as ProjectionError {
            logger.error("projection stopped", metadata: ["annals.error": "\(error)", "annals.position": "\(position)"])
            throw error
        } catch {
            throw .projection(name: P.name, position: position, reason: "\(error)")
        }
    }

    private func runUntilStopped() async throws(ProjectionError) {
        guard !running else { throw .alreadyRunning(name: P.name) }
        running = true
        defer {
            running = false
            stopRequested = false // a stop() before run() ends that run; the next one runs
            positionWaiters.runEnded()
        }
        if !loaded, try load() == .building {
            logger.notice("an older version is served: building this one beside it from its build checkpoint",
                          metadata: ["annals.version": "\(P.version)", "annals.position": "\(position)"])
        }
        logger.debug("projection running", metadata: ["annals.position": "\(position)"])
        var filter = P.filter
        filter.includeSystemStreams = false
        while !Task.isCancelled, !stopRequested {
            let read = try await catchUp(filter)
            positionWaiters.resumePassed(position)
            lagGauge.record(lag)
            // A full batch: still catching up, where only the event count makes commits (each
            // encodes the whole state). Otherwise the runner is at the head of the log, whether
            // or not more events keep coming: commit within the policy's delay.
            if read == Self.batchSize { continue }
            // Built up to the head of the log: this version is served from now on.
            if isBuilding {
                try await takeOver()
                continue
            }
            var deadline: ContinuousClock.Instant?
            if commitDue, let since = pendingSince {
                let due = since + checkpoints.maxDelay
                if ContinuousClock.now >= due {
                    try await commit()
                    continue
                }
                deadline = due
            }
            if read > 0 { continue }
            // Caught up: wait for new events (or until the commit is due).
            if store.isClosed { break }
            let store = self.store
            let position = self.position
            let wait = Task { await store.waitForCommit(beyond: position, until: deadline) }
            currentWait = wait
            let outcome = await withTaskCancellationHandler { await wait.value } onCancel: { wait.cancel() }
            currentWait = nil
            if outcome == .ended, store.isClosed { break }
        }
        if stopRequested, !Task.isCancelled, commitDue { try await commit() }
    }

    /// Reads up to one batch of events from ``position``, applies those the projection
    /// consumes and passes the others; commits when the policy's event count is reached.
    /// Returns how many events were read (0: nothing new).
    private func catchUp(_ filter: SubscriptionFilter) async throws(ProjectionError) -> Int {
        guard let query = filter.indexedQuery else {
            var cursor = store.readAll(from: position, limit: Self.batchSize).makeCursor()
            return try await consume(&cursor, filter)
        }
        // Through the query index: the projection's events, and the checkpoints (to notice a
        // newer version taking over); the read covers the log to its visible end when it ends
        // before the batch is full.
        let withCheckpoints = EventQuery(query.items + [EventQuery.Item(types: [CheckpointRecord<P.State>.eventType])])
        var cursor = store.read(matching: withCheckpoints, from: position, limit: Self.batchSize).makeCursor()
        let read = try await consume(&cursor, filter)
        if read < Self.batchSize, cursor.visibleEnd > position {
            position = cursor.visibleEnd
            if pendingSince == nil, commitDue { pendingSince = .now }
        }
        return read
    }

    /// Applies what `cursor` returns (the events `filter` passes; the others are passed over).
    private func consume<Cursor: EventCursor>(_ cursor: inout Cursor, _ filter: SubscriptionFilter) async throws(ProjectionError) -> Int {
        var read = 0
        // A span per batch that applied something (none for an empty read).
        var span: (any Span)?
        defer { span?.end() }
        while true {
            let next: RecordedEvent?
            do { next = try cursor.next() } catch { throw .read(error) }
            guard let recorded = next else { break }
            read += 1
            if filter.matches(recorded) {
                if span == nil {
                    span = store.tracer.startSpan("annals.projection.apply", ofKind: .consumer)
                    span?.attributes["annals.projection"] = P.name
                    span?.attributes["annals.position"] = Int(recorded.position)
                }
                do { try apply(recorded) } catch {
                    span?.recordError(error)
                    span?.setStatus(SpanStatus(code: .error))
                    throw error
                }
                appliedEvents.increment()
                uncommitted += 1
            } else if recorded.stream.utf8.first != UInt8(ascii: "$") {
                passedUnconsumed += 1
            } else if !isBuilding, recorded.stream == P.checkpointStream, recorded.revision > (checkpointRevision ?? 0) || checkpointRevision == nil {
                // Someone else committed to the served stream: a newer version took over (or
                // another runner of this one runs). Known now, not at the next commit.
                try checkServedStream(after: recorded)
            }
            position = recorded.position + 1
            if pendingSince == nil, commitDue { pendingSince = .now }
            if uncommitted >= checkpoints.everyEvents { try await commit() }
        }
        return read
    }

    /// Starts this version again from the first event, without downtime: the next ``run()``
    /// builds it from ``Projection/initialState`` in ``Projection/buildStream`` while the
    /// served state stays as it is, and takes over once caught up. The reset is committed to
    /// the build stream, so it holds across restarts.
    ///
    /// - Throws: ``ProjectionError/alreadyRunning(name:)`` while ``run()`` runs.
    public func rebuild() async throws(ProjectionError) {
        guard !running else { throw .alreadyRunning(name: P.name) }
        if !loaded { _ = try load() }
        if !isBuilding {
            servedRevision = checkpointRevision
            checkpointRevision = try Self.checkpoint(in: P.buildStream, store: store, codec: stateCodec)?.revision
            target = P.buildStream
            isBuilding = true
        }
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

    private enum LoadOutcome { case fresh, resumed, building }

    /// The committed state to start from: the served checkpoint of this version; or, when an
    /// older version is served, this version's build checkpoint (or nothing: build from the
    /// first event) while the older one goes on being served.
    private func load() throws(ProjectionError) -> LoadOutcome {
        loaded = true
        guard let served = try Self.checkpoint(in: P.checkpointStream, store: store, codec: stateCodec) else {
            target = P.checkpointStream
            return .fresh
        }
        if served.version > P.version { throw .superseded(name: P.name, version: served.version) }
        if let record = served.record {
            target = P.checkpointStream
            checkpointRevision = served.revision
            resume(from: record)
            return .resumed
        }
        target = P.buildStream
        servedRevision = served.revision
        isBuilding = true
        if let build = try Self.checkpoint(in: P.buildStream, store: store, codec: stateCodec), let record = build.record {
            checkpointRevision = build.revision
            resume(from: record)
        } else {
            checkpointRevision = try Self.checkpoint(in: P.buildStream, store: store, codec: stateCodec)?.revision
        }
        return .building
    }

    /// The served stream has a checkpoint this runner did not write: stop, superseded by a
    /// newer version, or as a concurrent runner.
    private func checkServedStream(after recorded: RecordedEvent) throws(ProjectionError) {
        let header: CheckpointPosition
        do { header = try JSONDecoder().decode(CheckpointPosition.self, from: Data(try recorded.metadata)) } catch {
            throw .checkpoint(name: P.name, reason: "\(error)")
        }
        if header.version > P.version {
            logger.notice("a newer version took over", metadata: ["annals.version": "\(header.version)"])
            throw .superseded(name: P.name, version: header.version)
        }
        throw .concurrentRunner(name: P.name)
    }

    private func resume(from record: CheckpointRecord<P.State>) {
        state = record.state
        position = record.position
        committedPosition = record.position
        unknownEvents = record.unknownEvents
    }

    /// Makes this version the served one: its state and checkpoint go to `$projection-<name>`
    /// in one append that expects the served stream unchanged since last read (an older runner
    /// committing meanwhile makes it read again and retry).
    private func takeOver() async throws(ProjectionError) {
        while true {
            // Never behind what is served: the served position must not move back.
            if let served = try Self.checkpoint(in: P.checkpointStream, store: store, codec: stateCodec) {
                if served.version > P.version { throw .superseded(name: P.name, version: served.version) }
                if served.version == P.version { throw .concurrentRunner(name: P.name) }
                servedRevision = served.revision
                if served.position > position { return } // catch up further, then try again
            } else {
                servedRevision = nil
            }
            let record = CheckpointRecord(version: P.version, position: position, unknownEvents: unknownEvents, state: state)
            do {
                let revision = try await append(record, to: P.checkpointStream, expected: servedRevision.map { .exact($0) } ?? .noStream)
                target = P.checkpointStream
                checkpointRevision = revision
                servedRevision = nil
                isBuilding = false
                didCommit()
                logger.notice("the new version has caught up and is served now", metadata: ["annals.position": "\(position)"])
                return
            } catch .append(.wrongExpectedRevision) {
                continue // the served stream moved: read it again
            }
        }
    }

    private func commit(force: Bool = false) async throws(ProjectionError) {
        guard force || commitDue || checkpointRevision == nil else { return }
        let record = CheckpointRecord(version: P.version, position: position, unknownEvents: unknownEvents, state: state)
        do {
            checkpointRevision = try await append(record, to: target, expected: checkpointRevision.map { .exact($0) } ?? .noStream)
            didCommit()
        } catch .append(.wrongExpectedRevision) {
            // A newer version took over the served stream, or another runner of this one runs.
            if target == P.checkpointStream, let served = try Self.checkpoint(in: P.checkpointStream, store: store, codec: stateCodec),
               served.version > P.version {
                logger.notice("a newer version took over", metadata: ["annals.version": "\(served.version)"])
                throw .superseded(name: P.name, version: served.version)
            }
            throw .concurrentRunner(name: P.name)
        }
    }

    private func didCommit() {
        committedPosition = position
        uncommitted = 0
        passedUnconsumed = 0
        pendingSince = nil
        commits.increment()
        logger.trace("checkpoint committed", metadata: ["annals.position": "\(position)"])
    }

    /// Appends `record` as the newest checkpoint of `stream`; returns its revision.
    private func append(
        _ record: CheckpointRecord<P.State>, to stream: String, expected: ExpectedRevision
    ) async throws(ProjectionError) -> UInt64 {
        let payload: [UInt8]
        do { payload = try stateCodec.encode(record) } catch { throw .checkpoint(name: P.name, reason: "\(error)") }
        do {
            let result = try await store.appendToSystemStreams([StreamAppend(
                stream: stream,
                events: [EventData(type: CheckpointRecord<P.State>.eventType, payload: payload,
                                   metadata: Array(#"{"position":\#(record.position),"version":\#(P.version)}"#.utf8))],
                expected: expected)])
            return result[0].lastRevision
        } catch {
            throw .append(error)
        }
    }

    /// The newest checkpoint of `stream`: its revision, its version, and its record when it
    /// was written by this version of the projection (nil: another version, whose state this
    /// code must not decode).
    static func checkpoint(
        in stream: String, store: EventStore, codec: any EventCodec
    ) throws(ProjectionError) -> (record: CheckpointRecord<P.State>?, revision: UInt64, version: Int, position: UInt64)? {
        var cursor = store.readBackwards(stream, limit: 1).makeCursor()
        let last: RecordedEvent?
        do { last = try cursor.next() } catch { throw .read(error) }
        guard let last else { return nil }
        do {
            let header = try JSONDecoder().decode(CheckpointPosition.self, from: Data(try last.metadata))
            guard header.version == P.version else { return (nil, last.revision, header.version, header.position) }
            return (try codec.decode(CheckpointRecord<P.State>.self, from: try last.payload), last.revision, header.version,
                    header.position)
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
    /// having committed to this store) has a committed checkpoint that covers `position`: the
    /// event at `position` is in its stored state, or is a system event (which projections
    /// never consume). Read-your-writes for CQRS callers. The typed variant
    /// ``waitUntilProjected(_:through:timeout:)-(P.Type,_,_)`` also counts events outside the
    /// projection's filter as covered, and ignores checkpoints of other versions.
    ///
    /// ```swift
    /// let result = try await orders.execute(.place(order), on: "123")
    /// if let position = result.lastPosition { try await store.waitUntilProjected("orders-view", through: position) }
    /// ```
    ///
    /// - Throws: ``ProjectionWaitError``: `timedOut` after `timeout`, `cancelled` when the task
    ///   is cancelled, `storeClosed` when the store closes, `read`/`unreadableCheckpoint` when
    ///   the checkpoint cannot be read.
    public func waitUntilProjected(
        _ name: String, through position: UInt64, timeout: Duration = .seconds(30)
    ) async throws(ProjectionWaitError) {
        try await waitUntilProjected(name, version: nil, filter: nil, through: position, timeout: timeout)
    }

    /// As ``waitUntilProjected(_:through:timeout:)``, for a checkpoint of this version of the
    /// projection (a runner of an older version may still have the last word while the new
    /// one starts); events `P` does not consume (outside ``Projection/filter``) count as covered.
    public func waitUntilProjected<P: Projection>(
        _ projection: P.Type, through position: UInt64, timeout: Duration = .seconds(30)
    ) async throws(ProjectionWaitError) {
        try await waitUntilProjected(P.name, version: P.version, filter: P.filter, through: position, timeout: timeout)
    }

    /// Events past the checkpoint are examined one by one only up to this many (a runner
    /// commits at least that often: ``ProjectionRunner``'s passed-events rule).
    private static let skippedEventsExamined: UInt64 = 4_096

    private func waitUntilProjected(
        _ name: String, version: Int?, filter: SubscriptionFilter?, through position: UInt64, timeout: Duration
    ) async throws(ProjectionWaitError) {
        let stream = ProjectionCheckpoints.streamPrefix + name
        let deadline = ContinuousClock.now + timeout
        var filter = filter ?? SubscriptionFilter()
        filter.includeSystemStreams = false
        while true {
            if Task.isCancelled { throw .cancelled }
            let end = endPosition
            var covered: UInt64 = 0
            var cursor = readBackwards(stream, limit: 1).makeCursor()
            let last: RecordedEvent?
            do { last = try cursor.next() } catch { throw .read(error) }
            if let last {
                let checkpoint: CheckpointPosition
                do { checkpoint = try JSONDecoder().decode(CheckpointPosition.self, from: Data(try last.metadata)) } catch {
                    throw .unreadableCheckpoint(projection: name, reason: "\(error)")
                }
                if version.map({ $0 == checkpoint.version }) ?? true { covered = checkpoint.position }
            }
            if covered > position { return }
            // Past the checkpoint, events the projection does not consume count as covered.
            if position < end, position - covered < Self.skippedEventsExamined {
                var skipped = readAll(from: covered, limit: Int(position - covered + 1)).makeCursor()
                var consumed = false
                do {
                    while let event = try skipped.next(), !consumed { consumed = filter.matches(event) }
                } catch {
                    throw .read(error)
                }
                if !consumed { return }
            }
            if isClosed { throw .storeClosed }
            guard ContinuousClock.now < deadline else {
                throw .timedOut(projection: name, position: position, projectedThrough: covered)
            }
            switch await waitForCommit(beyond: end, until: deadline) {
            case .committed, .deadline: continue
            case .ended: if Task.isCancelled { throw .cancelled } else { throw .storeClosed }
            }
        }
    }
}
