/// Reads the events matching an ``EventQuery`` in position order (forwards or backwards): the
/// candidate frames the query index found, each verified (checksum, structure, and the position,
/// revision and count its index entry gave) before any of its events is looked at; or, for a
/// query that matches everything, `$all`. A frame the index led to that fails a check is
/// corruption, never skipped; a sound frame without a matching event (a key hash collision)
/// is passed over. Events that retention removed are skipped, as in `$all`.
public struct QueryCursor: EventCursor {
    enum Source: Sendable {
        case frames(IndexedFrames)
        case forward(ForwardCursor)
        case backward(BackwardCursor)
        case failed(ReadError)
    }

    private var source: Source
    private let query: EventQuery
    private var remaining: Int
    /// The end of what the read sees: every event before this position that matches has been
    /// returned once a forward cursor returns nil (not before; not after a limit stopped it).
    /// A follower that reads by query resumes from here.
    public let visibleEnd: UInt64

    init(source: Source, query: EventQuery, limit: Int, visibleEnd: UInt64) {
        self.source = source
        self.query = query
        self.remaining = max(0, limit)
        self.visibleEnd = visibleEnd
    }

    /// The next matching event, nil at the end.
    ///
    /// - Throws: ``ReadError/corrupt(_:)`` for a frame that fails a check.
    public mutating func next() throws(ReadError) -> RecordedEvent? {
        guard remaining > 0 else { return nil }
        let event: RecordedEvent?
        switch source {
        case .failed(let error):
            remaining = 0
            throw error
        case .frames(var frames):
            event = try frames.next(matching: query)
            source = .frames(frames)
        case .forward(var cursor):
            event = try Self.nextMatching(query, in: &cursor)
            source = .forward(cursor)
        case .backward(var cursor):
            event = try Self.nextMatching(query, in: &cursor)
            source = .backward(cursor)
        }
        if event != nil { remaining -= 1 }
        return event
    }

    private static func nextMatching(_ query: EventQuery, in cursor: inout some EventCursor) throws(ReadError) -> RecordedEvent? {
        while let event = try cursor.next() {
            if query.matches(event) { return event }
        }
        return nil
    }
}

/// The candidate frames of a query and the walk over their events.
struct IndexedFrames: @unchecked Sendable {
    // @unchecked: `segment` and the events it hands out point into mappings the snapshot keeps.
    let snapshot: LogSnapshot
    let retention: RetentionView
    /// Candidate frames, in the order they are read.
    let frames: [FrameLocation]
    let backwards: Bool
    /// Forwards: the first position wanted; backwards: the last.
    let bound: UInt64
    /// The query, compiled for matching records in place (set by the first read).
    private var matcher: QueryMatcher?
    private var slot = 0
    /// The matching events of the current frame, in read order, and the next one to return.
    private var pending: [RecordedEvent] = []
    private var pendingSlot = 0

    init(snapshot: LogSnapshot, retention: RetentionView, candidates: [FrameLocation], from bound: UInt64, backwards: Bool) {
        self.snapshot = snapshot
        self.retention = retention
        self.backwards = backwards
        self.bound = bound
        let visible = snapshot.end.nextPosition
        let wanted = candidates.filter { frame in
            frame.firstPosition < visible && (backwards ? frame.firstPosition <= bound : frame.firstPosition + UInt64(frame.eventCount) > bound)
        }
        frames = backwards ? wanted.reversed() : wanted
    }

    mutating func next(matching query: EventQuery) throws(ReadError) -> RecordedEvent? {
        while true {
            if pendingSlot < pending.count {
                pendingSlot += 1
                return pending[pendingSlot - 1]
            }
            guard slot < frames.count else { return nil }
            let location = frames[slot]
            slot += 1
            if matcher == nil { matcher = QueryMatcher(query) }
            pending = try events(of: location, matching: matcher!)
            pendingSlot = 0
            if backwards { pending.reverse() }
        }
    }

    /// The events of the frame at `location` that match `query` and lie within the bound,
    /// after verifying the frame.
    private func events(of location: FrameLocation, matching matcher: QueryMatcher) throws(ReadError) -> [RecordedEvent] {
        guard let segment = snapshot.segments.segment(numbered: location.segmentIndex), segment.index == location.segmentIndex else {
            throw .corrupt(CorruptionError(file: snapshot.segments.first?.path ?? "", offset: 0,
                                           reason: "the query index names segment \(location.segmentIndex), which the store does not have"))
        }
        let offset = Int(location.offset)
        guard case .frame(let frame) = segment.probe(at: offset, verifyChecksum: true) else {
            throw .corrupt(segment.corruption(at: offset, "frame checksum mismatch at a frame the query index names"))
        }
        guard frame.kind == .events, frame.firstPosition == location.firstPosition, frame.firstRevision == location.firstRevision,
              frame.eventCount == Int(location.eventCount)
        else { throw .corrupt(segment.corruption(at: offset, "the frame does not match the query index entry that names it")) }
        if let problem = segment.validateRecords(of: frame) { throw .corrupt(segment.corruption(at: problem.offset, problem.reason)) }
        let stream = segment.streamName(of: frame)
        let rule = retention.isEmpty ? nil : retention.rules[stream]
        if let rule, rule.deleted { return [] }
        var events: [RecordedEvent] = []
        var cursor = frame.recordsOffset
        let bytes = segment.bytes
        for index in 0..<frame.eventCount {
            let layout = FrameDecoder.record(at: cursor, in: bytes)
            cursor = layout.end
            let position = frame.firstPosition + UInt64(index), revision = frame.firstRevision + UInt64(index)
            guard backwards ? position <= bound : position >= bound else { continue }
            if let rule, !rule.keeps(revision: revision, timestamp: layout.timestamp(in: bytes)) { continue }
            guard matcher.matches(layout, in: bytes) else { continue }
            events.append(RecordedEvent(position: position, stream: stream, revision: revision, segment: segment, layout: layout))
        }
        return events
    }
}
