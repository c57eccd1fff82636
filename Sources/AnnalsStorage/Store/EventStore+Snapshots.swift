/// Snapshots: an aggregate's state at a stream revision, stored in the log as events of the
/// system stream `$snapshot-<stream>` (see `format-spec.md`, "Snapshots"), so they are
/// checksummed, compressed and crash-safe exactly like events.
extension EventStore {
    /// The system stream that holds the snapshots of `stream`.
    public static func snapshotStream(of stream: String) -> String { "$snapshot-" + stream }

    /// The event type of snapshot records.
    public static let snapshotEventType = "$snapshot"

    /// Stores `bytes` as the state of `stream` after `revision`, written with the caller's
    /// `schemaVersion` (readers ask for the version they can decode). Durable as the store's
    /// ``Durability`` says. Only the latest snapshot of a stream matters; older ones are dead
    /// data for compaction. With `subject`, the snapshot is encrypted under that data subject's
    /// key (``EventData/subject``) and erased with it: a snapshot of state holding personal
    /// data must name its subject.
    ///
    /// - Throws: ``AppendError/snapshotAhead(stream:revision:lastRevision:)`` when the stream has
    ///   no such revision yet; ``AppendError/invalidStreamName(_:reason:)`` for an invalid name
    ///   or one too long to prefix with `$snapshot-`; the errors of any append.
    @discardableResult
    public func saveSnapshot(
        of stream: String, revision: UInt64, schemaVersion: UInt32, bytes: [UInt8], subject: String? = nil
    ) async throws(AppendError) -> AppendResult {
        guard !stream.isEmpty, stream.first != StoreLimits.reservedStreamPrefix else {
            throw .invalidStreamName(stream, reason: "snapshots are for application streams")
        }
        let last = lastRevision(of: stream)
        guard let last, revision <= last else { throw .snapshotAhead(stream: stream, revision: revision, lastRevision: last) }
        var metadata = [UInt8](repeating: 0, count: SnapshotMetadataLayout.size)
        metadata.withUnsafeMutableBytes { buffer in
            buffer.storeU64(revision, at: SnapshotMetadataLayout.revision)
            buffer.storeU32(schemaVersion, at: SnapshotMetadataLayout.schemaVersion)
        }
        let results = try await append([StreamAppend(
            stream: Self.snapshotStream(of: stream),
            events: [EventData(type: Self.snapshotEventType, payload: bytes, metadata: metadata, subject: subject)])], systemStreams: true)
        return results[0]
    }

    /// The latest snapshot of `stream` written with `schemaVersion`. Snapshots with another
    /// schema version are passed over without being decoded (at most `searchLimit` of them);
    /// a damaged snapshot record stops the search with a warning: the caller then replays the
    /// stream from its events, which is always correct.
    public func latestSnapshot(of stream: String, schemaVersion: UInt32, searchLimit: Int = 16) -> SnapshotLookup {
        var lookup = SnapshotLookup()
        guard !stream.isEmpty, stream.first != StoreLimits.reservedStreamPrefix else { return lookup }
        var cursor = readBackwards(Self.snapshotStream(of: stream), limit: max(1, searchLimit)).makeCursor()
        do {
            while let record = try cursor.next() {
                guard record.type == Self.snapshotEventType, record.metadataCount == SnapshotMetadataLayout.size else {
                    lookup.warnings.append("snapshot record at position \(record.position) has an unexpected shape; skipped")
                    continue
                }
                // Its subject was forgotten: as if there were none (the events it folded are
                // erased too, and replay folds them as such).
                if record.isErased { return lookup }
                let (revision, version) = try record.withMetadataBytes {
                    ($0.u64(SnapshotMetadataLayout.revision), $0.u32(SnapshotMetadataLayout.schemaVersion))
                }
                guard version == schemaVersion else {
                    lookup.skippedOtherVersions += 1
                    continue
                }
                lookup.snapshot = Snapshot(stream: stream, revision: revision, schemaVersion: version,
                                           bytes: try record.payload, position: record.position)
                return lookup
            }
        } catch {
            lookup.warnings.append("snapshot of \(stream) unreadable, replaying from events: \(error)")
        }
        return lookup
    }
}

/// A stored snapshot.
public struct Snapshot: Sendable, Hashable {
    /// The stream whose state it is.
    public let stream: String
    /// The last revision folded into it: replay continues at `revision + 1`.
    public let revision: UInt64
    /// The schema version of `bytes`, as the writer said.
    public let schemaVersion: UInt32
    /// The state, as the writer encoded it.
    public let bytes: [UInt8]
    /// Global position of the snapshot record.
    public let position: UInt64
}

/// What ``EventStore/latestSnapshot(of:schemaVersion:searchLimit:)`` found.
public struct SnapshotLookup: Sendable {
    /// The newest usable snapshot, or nil (replay from the first event).
    public var snapshot: Snapshot?
    /// Newer snapshots passed over because of their schema version.
    public var skippedOtherVersions = 0
    /// Snapshots that could not be used, and why.
    public var warnings: [String] = []
}
