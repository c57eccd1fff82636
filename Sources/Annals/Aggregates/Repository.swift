import CoreMetrics
import Foundation
import Tracing

/// Loads aggregates from their streams and executes commands on them with optimistic
/// concurrency: decide against the loaded state, append expecting the loaded revision, and on a
/// conflict catch up from the events that won and decide again (up to a bound).
///
/// - Thread safety: a value type holding the store; use it from any task. Concurrent
///   `execute` calls on one aggregate serialize through the store's expected-revision check —
///   no update is lost, each decision sees every event before it.
///
/// ```swift
/// let accounts = Repository<Account>(store)
/// try await accounts.execute(.deposit(500), on: "42")
/// let account = try accounts.load("42").state
/// ```
public struct Repository<A: Aggregate>: Sendable {
    /// The store the aggregates' streams live in.
    public let store: EventStore
    /// How events are encoded for appending and decoded (with upcasting) when loading.
    public let translator: EventTranslator<A.Event>
    /// How many times `execute` decides again after a conflict before it gives up.
    public let maximumConflictRetries: Int
    let snapshotter: Snapshotter<A>?
    /// `annals_commands_total` by `aggregate` (the category) and `outcome` (`written`,
    /// `unchanged`, `repeat`, `rejected`, `failed`), and `annals_command_conflicts_total`.
    private let outcomes: CommandOutcomes

    /// A repository that replays every event on load (see the `snapshots:` initializer for
    /// aggregates that conform to ``SnapshottingAggregate``).
    /// Events are decoded with the upcasters their types declare (``DomainEvent/upcasters``).
    public init(_ store: EventStore, codec: any EventCodec = JSONEventCodec(), maximumConflictRetries: Int = 10) {
        self.init(store, codec: codec, maximumConflictRetries: maximumConflictRetries, snapshotter: nil)
    }

    init(_ store: EventStore, codec: any EventCodec, maximumConflictRetries: Int, snapshotter: Snapshotter<A>?) {
        self.store = store
        self.translator = EventTranslator(codec: codec)
        self.maximumConflictRetries = max(0, maximumConflictRetries)
        self.snapshotter = snapshotter
        outcomes = CommandOutcomes(category: A.category, factory: store.metricsFactory)
    }

    /// Aggregate `id`: from its latest usable snapshot (snapshotting repositories) plus the
    /// events after it, or folded from all its events — up to and including `revision` when
    /// given (time travel: the state as it was then; a newer snapshot is not used for that).
    ///
    /// - Throws: ``RepositoryError/read(_:)`` or ``RepositoryError/decoding(_:)``.
    public func load(_ id: String, atRevision revision: UInt64? = nil) throws(RepositoryError<A.Rejection>) -> Loaded<A> {
        try catchUp(snapshotStart(id, atRevision: revision), through: revision).0
    }

    /// Aggregate `id` as it was when the log ended just after global position `position`: its
    /// events at positions up to `position`, folded from the initial state.
    ///
    /// - Throws: ``RepositoryError/read(_:)`` or ``RepositoryError/decoding(_:)``.
    public func load(_ id: String, atPosition position: UInt64) throws(RepositoryError<A.Rejection>) -> Loaded<A> {
        try replay(id) { $0.position <= position }
    }

    /// Aggregate `id` as it was at `time`: its events committed at or before it (timestamps
    /// never decrease along positions), folded from the initial state.
    ///
    /// - Throws: ``RepositoryError/read(_:)`` or ``RepositoryError/decoding(_:)``.
    public func load(_ id: String, asOf time: Timestamp) throws(RepositoryError<A.Rejection>) -> Loaded<A> {
        try replay(id) { $0.timestamp <= time }
    }

    /// Aggregate `id` folded from its first event while `includes` says so.
    private func replay(_ id: String, while includes: (RecordedEvent) -> Bool) throws(RepositoryError<A.Rejection>) -> Loaded<A> {
        try catchUp(Loaded(id: id, state: A.initial, revision: nil, unknownEvents: 0), through: nil, while: includes).0
    }

    /// Where loading starts: the latest snapshot that applies, or the initial state.
    private func snapshotStart(_ id: String, atRevision revision: UInt64?) -> Loaded<A> {
        let initial = Loaded<A>(id: id, state: A.initial, revision: nil, unknownEvents: 0)
        guard let snapshotter else { return initial }
        let lookup = store.latestSnapshot(of: A.stream(for: id), schemaVersion: snapshotter.schemaVersion)
        guard let snapshot = lookup.snapshot, revision.map({ snapshot.revision <= $0 }) ?? true,
              let state = try? snapshotter.decode(snapshot.bytes)
        else { return initial }
        return Loaded(id: id, state: state, revision: snapshot.revision, unknownEvents: 0, snapshotRevision: snapshot.revision)
    }

    /// Every event of aggregate `id`, decoded (unknown ones included), in revision order.
    public func history(_ id: String) throws(RepositoryError<A.Rejection>) -> [TypedEvent<A.Event>] {
        var cursor = store.read(A.stream(for: id)).makeCursor()
        var events: [TypedEvent<A.Event>] = []
        do {
            while let recorded = try cursor.next() { events.append(try decode(recorded)) }
        } catch let error as RepositoryError<A.Rejection> {
            throw error
        } catch {
            throw .read(error as? ReadError ?? .corrupt(CorruptionError(file: store.path, offset: 0, reason: "\(error)")))
        }
        return events
    }

    /// Decides `command` against aggregate `id` and appends the resulting events atomically,
    /// durable as the store's `Durability` says, with `context` in their ``EventMetadata``.
    /// On a concurrent change it catches up and decides again, at most
    /// ``maximumConflictRetries`` times.
    ///
    /// With a ``CommandContext/commandID`` the command is idempotent: when its events are
    /// already in the stream (a retry), nothing is decided or written and the original events
    /// and positions are returned.
    ///
    /// - Throws: ``RepositoryError/rejected(_:)`` with the aggregate's rejection (nothing
    ///   written), ``RepositoryError/tooManyConflicts(stream:attempts:)``, or a storage error.
    @discardableResult
    public func execute(
        _ command: A.Command, on id: String, context: CommandContext = CommandContext()
    ) async throws(RepositoryError<A.Rejection>) -> Executed<A> {
        // A span per command; the events carry its trace context in their metadata.
        let span = store.tracer.startSpan("annals.command", ofKind: .internal)
        defer { span.end() }
        var context = context
        if span.isRecording {
            span.attributes["annals.aggregate"] = A.category
            span.attributes["annals.aggregate.id"] = id
            context.traceContext = TraceContextInjector.headers(of: span.context, by: store.tracer)
        }
        do throws(RepositoryError<A.Rejection>) {
            let executed: Executed<A>
            do {
                // The store's `annals.append` span is a child of the command's.
                executed = try await ServiceContext.withValue(span.context) { [context] in
                    try await decideAndAppend(command, on: id, context: context)
                }
            } catch let error as RepositoryError<A.Rejection> {
                throw error
            } catch {
                throw RepositoryError<A.Rejection>.encoding("\(error)") // not reached: only repository errors are thrown
            }
            (executed.isRepeat ? outcomes.repeated : executed.events.isEmpty ? outcomes.unchanged : outcomes.written).increment()
            return executed
        } catch {
            if case .rejected = error { outcomes.rejected.increment() } else { outcomes.failed.increment() }
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error))
            throw error
        }
    }

    private func decideAndAppend(
        _ command: A.Command, on id: String, context: CommandContext
    ) async throws(RepositoryError<A.Rejection>) -> Executed<A> {
        let stream = A.stream(for: id)
        let commandID = context.commandID
        let firstEventID = commandID.map { CommandContext.eventID(of: $0, index: 0) }
        var (loaded, original) = try catchUp(snapshotStart(id, atRevision: nil), through: nil, finding: firstEventID)
        let metadata = context.metadata
        for _ in 0...maximumConflictRetries {
            if let original, let commandID { return try executedBefore(original, commandID: commandID, loaded: loaded) }
            let events: [A.Event]
            do { events = try loaded.state.decide(command) } catch { throw .rejected(error) }
            guard !events.isEmpty else { return Executed(loaded: loaded, events: [], append: nil) }
            var data: [EventData] = []
            for (index, event) in events.enumerated() {
                let eventID = commandID.map { CommandContext.eventID(of: $0, index: index) }
                do { data.append(try translator.encode(event, id: eventID, metadata: metadata)) } catch {
                    throw .encoding("\(error)")
                }
            }
            let expected: ExpectedRevision = loaded.revision.map { .exact($0) } ?? .noStream
            do {
                let result = try await store.append(data, to: stream, expecting: expected)
                let state = events.reduce(loaded.state) { $0.evolve($1) }
                if let snapshotter, snapshotter.policy.wants(state, before: loaded.revision, after: result.lastRevision),
                   let bytes = try? snapshotter.encode(state) {
                    // Best effort: the command succeeded whether or not its snapshot is stored.
                    _ = try? await store.saveSnapshot(of: stream, revision: result.lastRevision,
                                                      schemaVersion: snapshotter.schemaVersion, bytes: bytes,
                                                      subject: snapshotter.subject(state))
                }
                return Executed(loaded: Loaded(id: id, state: state, revision: result.lastRevision,
                                               unknownEvents: loaded.unknownEvents, snapshotRevision: loaded.snapshotRevision),
                                events: events, append: result)
            } catch {
                guard case .wrongExpectedRevision(_, _, let actual) = error else { throw .append(error) }
                outcomes.conflicts.increment()
                (loaded, original) = try await catchUp(loaded, reaching: actual, finding: firstEventID)
            }
        }
        throw .tooManyConflicts(stream: stream, attempts: maximumConflictRetries + 1)
    }

    /// The result of the earlier execution of command `commandID`, whose first event is
    /// `first`: its events (those with the ids derived from the command id, in a row).
    private func executedBefore(
        _ first: RecordedEvent, commandID: UUID, loaded: Loaded<A>
    ) throws(RepositoryError<A.Rejection>) -> Executed<A> {
        var cursor = store.read(first.stream, from: first.revision).makeCursor()
        var events: [A.Event] = []
        var last = first
        while true {
            let next: RecordedEvent?
            do { next = try cursor.next() } catch { throw .read(error) }
            guard let recorded = next, recorded.id == CommandContext.eventID(of: commandID, index: events.count) else { break }
            if case .known(let event, _) = try decode(recorded) { events.append(event) } else { break }
            last = recorded
        }
        let append = AppendResult(stream: first.stream, firstPosition: first.position, lastPosition: last.position,
                                  firstRevision: first.revision, lastRevision: last.revision)
        return Executed(loaded: loaded, events: events, append: append, isRepeat: true)
    }

    /// `loaded` advanced to at least revision `actual` (what a conflict reported). The winning
    /// append may not be visible yet — under `.fsyncBeforeAck` readers see it once it is
    /// durable — so this waits for commits until it is.
    private func catchUp(
        _ loaded: Loaded<A>, reaching actual: UInt64?, finding eventID: UUID?
    ) async throws(RepositoryError<A.Rejection>) -> (Loaded<A>, found: RecordedEvent?) {
        var current = loaded
        var found: RecordedEvent?
        while true {
            let end = store.endPosition
            let step = try catchUp(current, through: nil, finding: eventID)
            current = step.0
            found = found ?? step.found
            guard let actual, current.revision.map({ $0 < actual }) ?? true else { return (current, found) }
            if Task.isCancelled || store.isClosed { throw .append(.storeClosed) }
            _ = await store.waitForCommit(beyond: end)
        }
    }

    /// `loaded` advanced by the events after its revision (up to `revision`, and while
    /// `includes` says so), and the first of them whose id is `eventID`.
    private func catchUp(
        _ loaded: Loaded<A>, through revision: UInt64?, finding eventID: UUID? = nil,
        while includes: (RecordedEvent) -> Bool = { _ in true }
    ) throws(RepositoryError<A.Rejection>) -> (Loaded<A>, found: RecordedEvent?) {
        let from = loaded.revision.map { $0 + 1 } ?? 0
        if let revision, revision < from { return (loaded, nil) }
        let limit = revision.map { Int(clamping: $0 - from + 1) } ?? .max
        var cursor = store.read(A.stream(for: loaded.id), from: from, limit: limit).makeCursor()
        var state = loaded.state
        var last = loaded.revision
        var unknown = loaded.unknownEvents
        var found: RecordedEvent?
        while true {
            let next: RecordedEvent?
            do { next = try cursor.next() } catch { throw .read(error) }
            guard let recorded = next, includes(recorded) else { break }
            if let eventID, found == nil, recorded.id == eventID { found = recorded }
            switch try decode(recorded) {
            case .known(let event, _): state = state.evolve(event)
            case .unknown(let event):
                state = state.evolve(unknown: event)
                unknown += 1
            }
            last = recorded.revision
        }
        let caughtUp = Loaded(id: loaded.id, state: state, revision: last, unknownEvents: unknown, snapshotRevision: loaded.snapshotRevision)
        return (caughtUp, found)
    }

    private func decode(_ recorded: RecordedEvent) throws(RepositoryError<A.Rejection>) -> TypedEvent<A.Event> {
        do { return try translator.decode(recorded) } catch { throw .decoding(error) }
    }
}

/// An aggregate's state and the stream revision it reflects.
public struct Loaded<A: Aggregate>: Sendable {
    /// The aggregate's id (its stream is `A.stream(for: id)`).
    public let id: String
    /// The state folded from the snapshot (if any) and the events.
    public let state: A
    /// The revision of the last event folded in; nil when the stream has no event.
    public let revision: UInt64?
    /// Events of types (or schema versions) this code does not know, passed to
    /// ``Aggregate/evolve(unknown:)`` (since the snapshot, when loaded from one).
    public let unknownEvents: Int
    /// The revision of the snapshot loading started from; nil when it replayed every event.
    public var snapshotRevision: UInt64? = nil
}

/// What ``Repository/execute(_:on:context:)`` did.
public struct Executed<A: Aggregate>: Sendable {
    /// The aggregate after the command's events.
    public let loaded: Loaded<A>
    /// The events decided (empty: the command changed nothing and nothing was written).
    public let events: [A.Event]
    /// Where they landed.
    public let append: AppendResult?
    /// True when the command had been executed before (same ``CommandContext/commandID``):
    /// nothing was decided or written, `events` and `append` are the original ones.
    public var isRepeat = false

    /// The aggregate's state after the command.
    public var state: A { loaded.state }
    /// The global position of the command's last event (nil: nothing was written): what to
    /// wait for before reading a projection of it.
    public var lastPosition: UInt64? { append?.lastPosition }
}

/// Why a repository operation failed.
public enum RepositoryError<Rejection: Error>: Error {
    /// The aggregate refused the command; nothing was written.
    case rejected(Rejection)
    /// Other writers kept changing the aggregate; gave up after this many decisions.
    case tooManyConflicts(stream: String, attempts: Int)
    /// The store refused the append (see `AppendError`).
    case append(AppendError)
    /// Reading the stream failed (see `ReadError`).
    case read(ReadError)
    /// An event of a known type could not be decoded.
    case decoding(EventDecodingError)
    /// The codec could not encode an event.
    case encoding(String)
}

/// A repository's command counters.
struct CommandOutcomes: Sendable {
    let written, unchanged, repeated, rejected, failed, conflicts: Counter

    init(category: String, factory: any MetricsFactory) {
        func outcome(_ name: String) -> Counter {
            Counter(label: "annals_commands_total", dimensions: [("aggregate", category), ("outcome", name)], factory: factory)
        }
        written = outcome("written")
        unchanged = outcome("unchanged")
        repeated = outcome("repeat")
        rejected = outcome("rejected")
        failed = outcome("failed")
        conflicts = Counter(label: "annals_command_conflicts_total", dimensions: [("aggregate", category)], factory: factory)
    }
}
