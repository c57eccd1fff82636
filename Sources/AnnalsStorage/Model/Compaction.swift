/// How ``EventStore/compact(_:progress:)`` works.
public struct CompactionOptions: Sendable, Hashable {
    /// Seal the open segment first when it holds dead events, so they can go too (the unused
    /// end of a segment sealed early goes back to the file system). Default true.
    public var sealOpenSegment: Bool
    /// A segment is rewritten only when at least this fraction of its allocated bytes would
    /// come back (default 0.1); small segments are merged with their neighbours regardless.
    public var minimumGain: Double

    /// Options; the defaults suit a periodic maintenance call.
    public init(sealOpenSegment: Bool = true, minimumGain: Double = 0.1) {
        self.sealOpenSegment = sealOpenSegment
        self.minimumGain = minimumGain
    }
}

/// How far a compaction has got, reported after each index range it has examined.
public struct CompactionProgress: Sendable, Hashable {
    /// Segment files examined so far.
    public var segmentsExamined: Int
    /// Segment files the compaction will examine in all.
    public var segmentsTotal: Int
    /// Bytes of compacted segment files written so far.
    public var bytesWritten: Int
}

/// What a compaction did.
public struct CompactionReport: Sendable, Hashable, Codable {
    /// Segment files examined (all sealed ones covered by an index file).
    public var segmentsExamined = 0
    /// Segment files that were replaced.
    public var segmentsRewritten = 0
    /// Compacted files written in their place (fewer when small segments were merged).
    public var filesWritten = 0
    /// Events removed from the rewritten segments (dead by retention, superseded snapshots,
    /// projection checkpoints and retention records).
    public var eventsRemoved: UInt64 = 0
    /// Events copied into compacted files, positions and revisions unchanged.
    public var eventsKept: UInt64 = 0
    /// Bytes the file system had allocated for segment files before the compaction...
    public var allocatedBytesBefore = 0
    /// ...and after it (old files still open in readers are freed when those let go).
    public var allocatedBytesAfter = 0
    /// Bytes of compacted segment files written.
    public var bytesWritten = 0
    /// True when the open segment was sealed early so that its dead events could go.
    public var sealedOpenSegment = false
    /// Wall time, seconds.
    public var seconds = 0.0

    /// An empty report (nothing done yet).
    public init() {}
}

/// Space use of one segment file, as ``EventStore/spaceUsage()`` reports it.
public struct SegmentSpace: Sendable, Hashable, Codable {
    /// The first segment number the file stands for (its name).
    public var firstSegment: UInt64
    /// The last one (the same, unless compaction merged several into this file).
    public var lastSegment: UInt64
    /// True for the segment being written.
    public var isOpen: Bool
    /// True for a file written by compaction.
    public var isCompacted: Bool
    /// File size.
    public var fileBytes: Int
    /// Bytes the file system has allocated for the file.
    public var allocatedBytes: Int
    /// Bytes compaction would keep: header, kept frames, the dictionaries they need, seal.
    public var liveBytes: Int
    /// Bytes of events compaction would remove.
    public var deadBytes: Int
    /// Allocated bytes compaction would give back (for the open segment: its dead bytes, once
    /// sealed).
    public var reclaimableBytes: Int
    /// Events compaction would keep.
    public var liveEvents: UInt64
    /// Events compaction would remove.
    public var deadEvents: UInt64
    /// Bytes of the events' metadata and payload as appended.
    public var bodyBytes: UInt64 = 0
    /// Bytes the same bodies take in the file (compressed or raw): `bodyBytes /
    /// storedBodyBytes` is the compression ratio of metadata and payload.
    public var storedBodyBytes: UInt64 = 0
}

/// Why a compaction stopped. Every file it had already replaced stays replaced, each
/// replacement being atomic; the store is consistent and readable either way.
public enum CompactionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The store was opened read-only.
    case readOnly
    /// The store was closed (before or during the compaction).
    case storeClosed
    /// An earlier sync failed: the store accepts no writes until reopened.
    case storeFailed(SystemError)
    /// A segment failed its checks: compaction never copies data it cannot verify.
    case corrupt(CorruptionError)
    /// A file operation failed.
    case system(SystemError)

    /// One line for people: what stopped the compaction.
    public var description: String {
        switch self {
        case .readOnly: return "the store is open read-only"
        case .storeClosed: return "the store is closed"
        case .storeFailed(let error): return "the store stopped after a failed sync: \(error)"
        case .corrupt(let error): return "corrupt data: \(error)"
        case .system(let error): return "\(error)"
        }
    }
}
