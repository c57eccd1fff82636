/// Which events compaction keeps (see `format-spec.md`, "Compaction"). Fixed when a compaction
/// starts; an event dead then stays dead, since retention only ever removes more as a stream
/// grows and time passes.
///
/// An event is dead when:
/// - retention removes it (tombstone, truncation, soft delete, max count, max age), except the
///   newest event of a stream that is not hard-deleted: it keeps the stream's revision known,
///   so the next append continues the numbering however much was removed before it;
/// - it is a snapshot of `S` (stream `$snapshot-S`) other than the newest, or any snapshot of a
///   hard-deleted `S`;
/// - it is in a system stream whose newest event supersedes the others, as the layer owning it
///   declared (projection checkpoints `$projection-P`, relay checkpoints `$relay-R`), and is
///   not the newest;
/// - it is a `$retention` record that a newer record for the same stream replaced.
struct Liveness {
    /// Retention as reads apply it when the compaction started.
    let rules: [String: RetentionView.Rule]
    /// The revision, in `$retention`, of the newest record of each stream.
    let newestRetentionRecord: [String: UInt64]
    /// Last revision of a stream (memoized: one index lookup per stream).
    private let lastRevisionOf: (String) -> UInt64?
    private var lastRevisions: [String: UInt64?] = [:]

    /// Prefixes of system streams whose newest event supersedes the others (declared by the
    /// layers that own them).
    let newestOnlyPrefixes: Set<String>

    static let snapshotPrefix = "$snapshot-"

    init(
        rules: [String: RetentionView.Rule], newestRetentionRecord: [String: UInt64], newestOnlyPrefixes: Set<String>,
        lastRevision: @escaping (String) -> UInt64?
    ) {
        self.rules = rules
        self.newestRetentionRecord = newestRetentionRecord
        self.newestOnlyPrefixes = newestOnlyPrefixes
        self.lastRevisionOf = lastRevision
    }

    private mutating func lastRevision(of stream: String) -> UInt64? {
        if let known = lastRevisions[stream] { return known }
        let found = lastRevisionOf(stream)
        lastRevisions[stream] = found
        return found
    }

    /// Index of the first event of `frame` that compaction keeps (`eventCount` when none).
    /// Dead events after a kept one stay (a frame keeps a contiguous run of events, so its
    /// positions and revisions still follow from its header); only `$retention` frames can
    /// have such holes, and their frames hold one record each.
    mutating func firstKept(_ frame: FrameHeader, stream: String, in segment: Segment) throws(ReadError) -> Int {
        if stream.first == StoreLimits.reservedStreamPrefix { return try firstKeptInSystemStream(frame, stream: stream, in: segment) }
        guard let rule = rules[stream] else { return 0 }
        if rule.deleted { return frame.eventCount }
        let newest = lastRevision(of: stream)
        var offset = frame.recordsOffset
        for index in 0..<frame.eventCount {
            let revision = frame.firstRevision + UInt64(index)
            let layout = FrameDecoder.record(at: offset, in: segment.bytes)
            if revision == newest || rule.keeps(revision: revision, timestamp: layout.timestamp(in: segment.bytes)) {
                return index
            }
            offset = layout.end
        }
        return frame.eventCount
    }

    private mutating func firstKeptInSystemStream(_ frame: FrameHeader, stream: String, in segment: Segment) throws(ReadError) -> Int {
        if stream.hasPrefix(Self.snapshotPrefix) {
            let owner = String(stream.dropFirst(Self.snapshotPrefix.count))
            if rules[owner]?.deleted == true { return frame.eventCount }
            return keepingNewestOnly(frame, stream: stream)
        }
        if stream != StreamRetention.stream {
            return newestOnlyPrefixes.contains(where: { stream.hasPrefix($0) }) ? keepingNewestOnly(frame, stream: stream) : 0
        }
        let newest = lastRevision(of: stream)
        var offset = frame.recordsOffset
        for index in 0..<frame.eventCount {
            let revision = frame.firstRevision + UInt64(index)
            let layout = FrameDecoder.record(at: offset, in: segment.bytes)
            let event = RecordedEvent(position: frame.firstPosition + UInt64(index), stream: stream, revision: revision,
                                      segment: segment, layout: layout)
            let name = try event.withPayloadBytes { StreamRetention.decode($0)?.stream }
            // Records this version cannot read are kept: a newer reader may need them.
            if revision == newest || name.map({ newestRetentionRecord[$0] == revision }) ?? true { return index }
            offset = layout.end
        }
        return frame.eventCount
    }

    private mutating func keepingNewestOnly(_ frame: FrameHeader, stream: String) -> Int {
        guard let newest = lastRevision(of: stream), newest >= frame.firstRevision else { return 0 }
        return Int(min(newest - frame.firstRevision, UInt64(frame.eventCount)))
    }
}

/// One segment as compaction sees it: the frames it keeps (and from which event), the
/// dictionary frames their compressed records need, and the bytes kept and removed.
struct SegmentPlan {
    struct KeptFrame {
        let header: FrameHeader
        let stream: String
        /// Index of the first event kept.
        let firstKept: Int
        /// Offset of that event's record.
        let firstKeptOffset: Int
        /// Aligned bytes of the frame once rewritten.
        let keptBytes: Int
    }

    let segment: Segment
    var frames: [KeptFrame] = []
    /// Offsets of the dictionary frames kept records name, in file order.
    var dictionaries: [Int] = []
    var dictionaryBytes = 0
    var keptEvents: UInt64 = 0
    var removedEvents: UInt64 = 0
    /// Metadata and payload bytes of every event as appended, and as stored.
    var bodyBytes: UInt64 = 0
    var storedBodyBytes: UInt64 = 0
    /// Aligned bytes of the frames as they would be rewritten.
    var keptFrameBytes = 0
    /// Bytes of frames (and parts of frames) that would go.
    var removedBytes = 0
    /// End of the frames examined.
    var usedBytes = Format.segmentHeaderBytes

    /// True when rewriting would change nothing in the frames.
    var keepsEverything: Bool { removedEvents == 0 }

    /// Bytes the segment's contents need in a compacted file (without header and seal).
    var compactedBytes: Int { dictionaryBytes + keptFrameBytes }

    /// Walks the frames of `segment` up to `limit` (its seal for a sealed segment) and decides
    /// what stays. Frames are checksum-verified: compaction never copies bytes it has not checked.
    static func make(for segment: Segment, limit: Int? = nil, liveness: inout Liveness) throws(ReadError) -> SegmentPlan {
        var plan = SegmentPlan(segment: segment)
        var dictionaries: [Int: Int] = [:]
        var usedDictionaries = Set<Int>()
        let bytes = segment.bytes
        var walk = segment.walk(verification: .checksumsAndRecords, limit: limit)
        walking: while true {
            let frame: FrameHeader
            switch walk.next() {
            case .events(let found):
                frame = found
            case .dictionary(let dictionary):
                dictionaries[dictionary.offset] = Format.aligned(dictionary.length)
                continue walking
            case .seal, .limit:
                break walking
            case .endOfData(let offset):
                if limit == nil { throw .corrupt(segment.corruption(at: offset, "sealed segment ends without a seal frame")) }
                break walking
            case .notAFrame(let offset, let reason), .corrupt(let offset, let reason):
                throw .corrupt(segment.corruption(at: offset, reason))
            }
            let stream = segment.streamName(of: frame)
            let firstKept = try liveness.firstKept(frame, stream: stream, in: segment)
            var cursor = frame.recordsOffset
            var keptBytes = Format.aligned(FrameLayout.streamName + frame.streamNameBytes)
            var firstKeptOffset = cursor
            for index in 0..<frame.eventCount {
                let layout = FrameDecoder.record(at: cursor, in: bytes)
                plan.bodyBytes += UInt64(layout.metadataBytes + layout.payloadBytes)
                plan.storedBodyBytes += UInt64(layout.offset + layout.length - layout.bodyOffset)
                if index == firstKept { firstKeptOffset = cursor }
                if index >= firstKept {
                    keptBytes += Format.aligned(layout.length)
                    if layout.isCompressed {
                        let dictionary = Int(bytes.u32(layout.dictionaryOffsetField))
                        if dictionary != 0 { usedDictionaries.insert(dictionary) }
                    }
                }
                cursor = layout.end
            }
            plan.keptEvents += UInt64(frame.eventCount - firstKept)
            plan.removedEvents += UInt64(firstKept)
            if firstKept < frame.eventCount {
                plan.frames.append(KeptFrame(header: frame, stream: stream, firstKept: firstKept, firstKeptOffset: firstKeptOffset,
                                             keptBytes: keptBytes))
                plan.keptFrameBytes += keptBytes
                plan.removedBytes += Format.aligned(frame.length) - keptBytes
            } else {
                plan.removedBytes += Format.aligned(frame.length)
            }
        }
        plan.usedBytes = walk.offset
        plan.dictionaries = usedDictionaries.sorted()
        plan.dictionaryBytes = plan.dictionaries.reduce(0) { $0 + (dictionaries[$1] ?? 0) }
        return plan
    }
}
