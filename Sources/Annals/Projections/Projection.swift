/// A read model whose state lives in the store itself: the runner commits the state and the
/// checkpoint (global position) together as one event of the system stream
/// `$projection-<name>`, so across crashes every event is applied to the stored state exactly
/// once.
///
/// ```swift
/// struct OrdersView: Projection {
///     typealias Event = OrderEvent
///     static let name = "orders-view"
///     static let version = 1
///     static let initialState: [String: OrderSummary] = [:]
///     static func apply(_ event: OrderEvent, recorded: RecordedEvent, to state: inout [String: OrderSummary]) { … }
/// }
/// ```
public protocol Projection: Sendable {
    /// The events it reads.
    associatedtype Event: EventFamily
    /// The view it maintains: encoded with the runner's codec at each checkpoint.
    associatedtype State: Codable & Sendable

    /// Unique among the store's projections; names the stream `$projection-<name>`.
    static var name: String { get }
    /// Bump it when `apply` changes meaning: the runner of the new version builds from the first
    /// event beside the served one, and takes over once it has caught up.
    static var version: Int { get }
    /// Which events it reads (system streams never). Default: all.
    static var filter: SubscriptionFilter { get }
    /// The state before any event.
    static var initialState: State { get }
    /// Folds one event in. Unknown event types are skipped (and counted by the runner).
    static func apply(_ event: Event, recorded: RecordedEvent, to state: inout State) throws
}

extension Projection {
    /// Every event of every application stream.
    public static var filter: SubscriptionFilter { .all }

    /// The projection's state as it was when the log ended just after global position
    /// `position`: the events it consumes up to there, folded from ``initialState`` (a replay
    /// of the log, read-only; the runner and its checkpoint are not involved).
    ///
    /// - Throws: ``ProjectionError`` when an event does not read, decode or apply.
    public static func state(
        in store: EventStore, atPosition position: UInt64, codec: any EventCodec = JSONEventCodec()
    ) throws(ProjectionError) -> State {
        try replay(in: store, codec: codec) { $0.position <= position }
    }

    /// The projection's state as it was at `time`: the events it consumes committed at or
    /// before it, folded from ``initialState``.
    public static func state(
        in store: EventStore, asOf time: Timestamp, codec: any EventCodec = JSONEventCodec()
    ) throws(ProjectionError) -> State {
        try replay(in: store, codec: codec) { $0.timestamp <= time }
    }

    private static func replay(
        in store: EventStore, codec: any EventCodec, while includes: (RecordedEvent) -> Bool
    ) throws(ProjectionError) -> State {
        var filter = Self.filter
        filter.includeSystemStreams = false
        let translator = EventTranslator<Event>(codec: codec)
        var state = initialState
        var cursor = store.readAll().makeCursor()
        while true {
            let next: RecordedEvent?
            do { next = try cursor.next() } catch { throw .read(error) }
            guard let recorded = next, includes(recorded) else { break }
            guard filter.matches(recorded) else { continue }
            let typed: TypedEvent<Event>
            do { typed = try translator.decode(recorded) } catch { throw .decoding(error) }
            guard case .known(let event, _) = typed else { continue }
            do { try apply(event, recorded: recorded, to: &state) } catch {
                throw .projection(name: name, position: recorded.position, reason: "\(error)")
            }
        }
        return state
    }
    /// The system stream holding the projection's served checkpoints.
    public static var checkpointStream: String { ProjectionCheckpoints.streamPrefix + name }
    /// The system stream where this version builds while an older one is served:
    /// `$projection-<name>@v<version>`.
    public static var buildStream: String { checkpointStream + "@v\(version)" }

    /// The state of this version as last committed to the served stream, with the position it
    /// covers; nil when another version (older, or one still building) is served, or none is.
    /// What a reader of the projection's committed state sees: never a half-built version.
    ///
    /// - Throws: ``ProjectionError`` when the checkpoint cannot be read or decoded.
    public static func committedState(
        in store: EventStore, codec: any EventCodec = JSONEventCodec()
    ) throws(ProjectionError) -> (state: State, position: UInt64)? {
        guard let served = try ProjectionRunner<Self>.checkpoint(in: checkpointStream, store: store, codec: codec),
              let record = served.record else { return nil }
        return (record.state, record.position)
    }
}

/// A read model outside the store (a database, a search index, a cache) that owns its
/// checkpoint. Delivery is **at least once**: after a crash, events after the last saved
/// checkpoint are handled again, so `handle` must be idempotent (or tolerate repeats).
public protocol ExternalProjection: Sendable {
    associatedtype Event: EventFamily
    /// For logs and errors.
    static var name: String { get }
    /// Which events it reads (system streams never). Default: all.
    static var filter: SubscriptionFilter { get }
    /// The position after the last event the read model has stored (nil: start from the first).
    func loadCheckpoint() async throws -> UInt64?
    /// Applies one event to the read model.
    func handle(_ event: Event, recorded: RecordedEvent) async throws
    /// Records that every event before `position` is handled.
    func saveCheckpoint(_ position: UInt64) async throws
}

extension ExternalProjection {
    /// Every event of every application stream.
    public static var filter: SubscriptionFilter { .all }
}

/// Why a projection runner stopped.
public enum ProjectionError: Error, Sendable, Equatable {
    /// Reading the log failed.
    case read(ReadError)
    /// Committing the checkpoint failed.
    case append(AppendError)
    /// Another runner of the same projection committed in between: two runners of one
    /// projection must not run at once.
    case concurrentRunner(name: String)
    /// An event of a known type did not decode.
    case decoding(EventDecodingError)
    /// The projection's `apply`/`handle` or its checkpoint code threw.
    case projection(name: String, position: UInt64, reason: String)
    /// The stored checkpoint could not be decoded or encoded.
    case checkpoint(name: String, reason: String)
    /// ``ProjectionRunner/run()`` or ``ProjectionRunner/rebuild()`` was called on a runner
    /// whose `run()` is running.
    case alreadyRunning(name: String)
    /// A newer version of the projection is served now: this runner stops (its state is no
    /// longer the served one).
    case superseded(name: String, version: Int)
}

extension EventStore {
    /// The subscription a projection runner reads: its filter, never system streams.
    func projectionFeed(from position: UInt64, filter: SubscriptionFilter) -> Subscription.Iterator {
        var filter = filter
        filter.includeSystemStreams = false
        return subscribe(from: .position(position), filter: filter, batchSize: 512).makeAsyncIterator()
    }
}

extension Subscription.Iterator {
    /// The next message, with read errors as ``ProjectionError/read(_:)``.
    mutating func nextForProjection() async throws(ProjectionError) -> SubscriptionMessage? {
        do { return try await next() } catch { throw .read(error) }
    }
}

/// The system streams that hold projection checkpoints: `$projection-` and the projection's
/// name, one event per commit, the newest of which supersedes the others.
public enum ProjectionCheckpoints {
    /// The prefix of every projection checkpoint stream.
    public static let streamPrefix = "$projection-"
}
