import Foundation

/// An aggregate whose state can be snapshotted: `Codable`, with a schema version for the
/// snapshot encoding. Bump ``snapshotSchemaVersion`` whenever the state's shape or meaning
/// changes: older snapshots are then ignored (never decoded) and the state is replayed.
public protocol SnapshottingAggregate: Aggregate, Codable {
    static var snapshotSchemaVersion: Int { get }
    /// The data subject whose personal data this state holds, if any: its snapshots are then
    /// encrypted under that subject's key and erased with it (`EventStore.forget(subject:)`),
    /// like the events they fold. Default nil: snapshots are stored like events naming no
    /// subject, so a state that holds personal data must name its subject here, or its
    /// snapshots would keep that data after the subject is forgotten.
    var snapshotSubject: String? { get }
}

extension SnapshottingAggregate {
    /// No data subject unless the aggregate says otherwise.
    public var snapshotSubject: String? { nil }
}

/// When a repository stores a snapshot after a successful command.
public enum SnapshotPolicy<A: Aggregate>: Sendable {
    /// Never: loads always replay every event.
    case never
    /// When the stream's revision count crosses a multiple of `n` (n events since the last).
    case every(UInt64)
    /// When the predicate says so, given the new state and its revision.
    case when(@Sendable (A, UInt64) -> Bool)

    func wants(_ state: A, before: UInt64?, after: UInt64) -> Bool {
        switch self {
        case .never: return false
        case .every(let n):
            guard n > 0 else { return false }
            let eventsBefore = before.map { $0 + 1 } ?? 0
            return (after + 1) / n > eventsBefore / n
        case .when(let predicate): return predicate(state, after)
        }
    }
}

/// How a repository turns states into snapshots and back (set only for snapshotting aggregates).
struct Snapshotter<A: Aggregate>: Sendable {
    let schemaVersion: UInt32
    let policy: SnapshotPolicy<A>
    let encode: @Sendable (A) throws -> [UInt8]
    let decode: @Sendable ([UInt8]) throws -> A
    /// The data subject a state's snapshot is encrypted under (``SnapshottingAggregate/snapshotSubject``).
    let subject: @Sendable (A) -> String?

    init(policy: SnapshotPolicy<A>) where A: SnapshottingAggregate {
        self.schemaVersion = UInt32(clamping: A.snapshotSchemaVersion)
        self.policy = policy
        self.encode = { state in
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return Array(try encoder.encode(state))
        }
        self.decode = { bytes in try JSONDecoder().decode(A.self, from: Data(bytes)) }
        self.subject = { $0.snapshotSubject }
    }
}

extension Repository where A: SnapshottingAggregate {
    /// A repository that loads from the latest snapshot with the aggregate's
    /// ``SnapshottingAggregate/snapshotSchemaVersion`` (plus the events after it) and stores
    /// snapshots after commands as `snapshots` says. A snapshot that is missing, of another
    /// schema version, damaged or undecodable is passed over: the aggregate is replayed from
    /// its events (correct, only slower).
    public init(
        _ store: EventStore, snapshots: SnapshotPolicy<A>, codec: any EventCodec = JSONEventCodec(), maximumConflictRetries: Int = 10
    ) {
        self.init(store, codec: codec, maximumConflictRetries: maximumConflictRetries, snapshotter: Snapshotter(policy: snapshots))
    }
}
