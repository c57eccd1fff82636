/// Archiving by age, as a store option (``StoreOptions/archive``): the store moves each sealed
/// segment whose newest event is older than ``olderThan`` to ``directory`` on its own, in the
/// background, after segment rolls and when it opens.
public struct ArchivePolicy: Sendable, Hashable {
    /// The archive directory: absolute, or relative to the store directory. Another file
    /// system (a cheaper disk, a network file system) is the point; it must stay mounted
    /// whenever the store is open (``OpenError/archiveUnavailable(directory:reason:)``).
    public var directory: String
    /// How old the newest event of a sealed segment must be before the segment moves.
    public var olderThan: Duration

    /// A policy moving segments older than `olderThan` to `directory`.
    public init(directory: String, olderThan: Duration) {
        self.directory = directory
        self.olderThan = olderThan
    }
}

/// What an archive run did (``EventStore/archiveSegments(olderThan:to:)``).
public struct ArchiveReport: Sendable, Hashable, Codable {
    /// The archive directory, as a path.
    public var directory = ""
    /// Segment files moved by this run.
    public var segmentsMoved = 0
    /// Bytes of the files moved.
    public var bytesMoved = 0
    /// Segment files numbered below this are in the archive, after the run.
    public var firstLocalSegment: UInt64 = 0
    /// How long it took.
    public var seconds = 0.0

    /// An empty report.
    public init() {}
}

/// Why an archive run stopped. Whatever it had not committed stays where it was: each segment
/// is in `segments/` or in the archive, whole, and reads go on either way.
public enum ArchiveError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The store was opened read-only.
    case readOnly
    /// The store was closed.
    case storeClosed
    /// An earlier sync failed: the store is not trusted until reopened.
    case storeFailed(SystemError)
    /// The store already archives to another directory (one archive per store).
    case otherDirectory(current: String, requested: String)
    /// The directory holds something that is not this store's archive (files without an
    /// `annals-archive` marker, another store's archive), or the store's archive directory
    /// is not there.
    case foreignDirectory(path: String, reason: String)
    /// A segment to move failed its checks: it stays where it is.
    case corrupt(CorruptionError)
    /// A file operation failed.
    case system(SystemError)

    /// One line for people.
    public var description: String {
        switch self {
        case .readOnly: "the store was opened read-only"
        case .storeClosed: "the store is closed"
        case .storeFailed(let error): "the store failed earlier: \(error)"
        case .otherDirectory(let current, let requested):
            "the store archives to \(current); it cannot archive to \(requested) as well"
        case .foreignDirectory(let path, let reason): "\(path) cannot be this store's archive: \(reason)"
        case .corrupt(let error): "corrupt segment, not archived: \(error)"
        case .system(let error): "\(error)"
        }
    }
}
