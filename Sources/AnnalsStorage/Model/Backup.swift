/// What a backup did (``EventStore/backup(to:)``).
public struct BackupReport: Sendable, Hashable, Codable {
    /// The backup holds the events at positions `0..<events`: every event durable when it began.
    public var events: UInt64 = 0
    /// Segment files written (new ones, the open segment's prefix, replaced ones).
    public var segmentsCopied = 0
    /// Sealed segment files already in the destination, checked and kept.
    public var segmentsKept = 0
    /// Bytes written to the destination (segment and index files).
    public var bytesCopied = 0
    /// How long it took.
    public var seconds = 0.0

    /// An empty report.
    public init() {}
}

/// Why a backup stopped. The destination stays a store that opens (or absent, for a first
/// backup): see ``EventStore/backup(to:)``.
public enum BackupError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The store was closed.
    case storeClosed
    /// An earlier sync failed: the store is not trusted until reopened.
    case storeFailed(SystemError)
    /// The destination holds something that is not a backup of this store.
    case foreignDestination(path: String, reason: String)
    /// A file operation failed.
    case system(SystemError)

    /// One line for people.
    public var description: String {
        switch self {
        case .storeClosed: "the store is closed"
        case .storeFailed(let error): "the store failed earlier: \(error)"
        case .foreignDestination(let path, let reason): "\(path) is not a backup of this store: \(reason)"
        case .system(let error): "\(error)"
        }
    }
}
