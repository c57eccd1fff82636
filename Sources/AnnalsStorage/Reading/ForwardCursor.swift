/// Reads the log forwards from a position, frame by frame, straight from the mappings.
/// Each frame's checksum and structure are verified before its first event is returned.
public struct ForwardCursor: EventCursor {
    private let snapshot: LogSnapshot
    private let startPosition: UInt64
    private var remaining: Int
    private var slot: Int
    /// The walk over the frames of the segment at `slot`, by header (frames are verified when
    /// their events are returned).
    private var walk: FrameWalker
    private var done = false
    // The frame being read.
    private var segment: Segment?
    private var stream = ""
    private var recordOffset = 0
    /// The frame's bytes before this were hinted to the CPU's cache (up to `frameEnd`; nothing
    /// when they are past it).
    private var prefetchedOffset = 0
    private var frameEnd = 0
    private var eventsLeftInFrame = 0
    private var position: UInt64 = 0
    private var revision: UInt64 = 0
    /// Offset and first position of the frame being read (a resume point for the next read).
    private var frameOffset = 0
    private var framePosition: UInt64 = 0
    private let retention: RetentionView
    /// The retention rule of the frame's stream, if it has one.
    private var rule: RetentionView.Rule?
    /// Frames verified and decoded on another core ahead of a long read (nil: this cursor
    /// verifies each frame and events decode their own bodies).
    private var ahead: ReadAheadToken?
    /// The bodies of the frame being read, decoded ahead on another core (nil: not decoded).
    private var decoded: DecodedFrame?

    /// Reads of at least this many events work ahead on another core.
    static let readAheadEvents = 100_000

    init(snapshot: LogSnapshot, from start: UInt64, limit: Int, retention: RetentionView = .none) {
        self.snapshot = snapshot
        self.retention = retention
        self.startPosition = start
        self.remaining = max(0, limit)
        let slot = snapshot.slot(for: start)
        self.slot = slot
        let first = snapshot.segments[slot]
        // Batched reads (subscriptions, relays) continue where the previous batch stopped
        // instead of walking the segment from its start again.
        let hint = first.resumeHint.withLock { $0 }
        let resume = hint.offset > Format.segmentHeaderBytes && hint.position >= first.firstPosition && hint.position <= start
            && hint.offset < snapshot.readLimit(of: first)
        self.walk = first.walk(from: resume ? (hint.offset, hint.position) : nil, verification: .headers,
                               limit: snapshot.readLimit(of: first))
        if start >= snapshot.end.nextPosition { done = true }
        if !done, limit >= Self.readAheadEvents {
            ahead = ReadAhead.start(snapshot: snapshot, slot: slot, from: resume ? (hint.offset, hint.position) : nil, skippingBefore: start)
                .map(ReadAheadToken.init)
        }
    }

    /// The next event, or nil at the end of what was committed when the read began.
    ///
    /// - Throws: ``ReadError/corrupt(_:)`` naming the file and offset of a bad frame.
    public mutating func next() throws(ReadError) -> RecordedEvent? {
        guard remaining > 0, !done else { return nil }
        while true {
            while eventsLeftInFrame == 0 {
                let loaded: Bool
                do { loaded = try loadFrame() } catch {
                    endReadAhead()
                    throw error
                }
                guard loaded else {
                    done = true
                    endReadAhead()
                    return nil
                }
            }
            guard let segment else { return nil }
            prefetch(segment)
            let layout = FrameDecoder.record(at: recordOffset, in: segment.bytes)
            let eventPosition = position, eventRevision = revision
            recordOffset = layout.end
            position += 1
            revision += 1
            eventsLeftInFrame -= 1
            // Events that retention removed are skipped (they stay in the log until compaction).
            if let rule, !rule.keeps(revision: eventRevision, timestamp: layout.timestamp(in: segment.bytes)) { continue }
            remaining -= 1
            let event = RecordedEvent(position: eventPosition, stream: stream, revision: eventRevision, segment: segment, layout: layout,
                                      decodedFrame: layout.isCompressed ? decoded : nil)
            if remaining == 0 {
                let hint = Segment.ResumeHint(position: framePosition, offset: frameOffset)
                segment.resumeHint.withLock { $0 = hint }
                endReadAhead()
            }
            return event
        }
    }

    /// Moves to the next frame that holds events at or after the start position.
    private mutating func loadFrame() throws(ReadError) -> Bool {
        while slot < snapshot.segments.count {
            let current = snapshot.segments[slot]
            guard current.index <= snapshot.end.segmentIndex else { return false }
            let frame: FrameHeader
            switch walk.next() {
            case .events(let found):
                frame = found
            case .dictionary:
                continue
            case .seal(let seal):
                try current.verify(seal)
                slot += 1
                guard slot < snapshot.segments.count else { continue }
                let next = snapshot.segments[slot]
                if next.firstPosition != seal.firstPosition {
                    throw .corrupt(next.corruption(at: SegmentHeaderLayout.firstPosition,
                                                   "segment starts at position \(next.firstPosition), expected \(seal.firstPosition)"))
                }
                walk = next.walk(verification: .headers, limit: snapshot.readLimit(of: next))
                continue
            case .limit(let offset):
                guard current.index < snapshot.end.segmentIndex else { return false }
                throw .corrupt(current.corruption(at: offset, "segment ends without a seal frame"))
            case .endOfData(let offset):
                if current.index == snapshot.end.segmentIndex {
                    throw .corrupt(current.corruption(at: offset, "committed data missing"))
                }
                throw .corrupt(current.corruption(at: offset, "segment ends without a seal frame"))
            case .notAFrame(let offset, let reason), .corrupt(let offset, let reason):
                throw .corrupt(current.corruption(at: offset, reason))
            }
            guard frame.nextPosition > startPosition else { continue }
            decoded = nil
            // Only a frame verified on the other core and read from the mapping is worth hinting
            // to the cache: one verified here is in it already, and of one decoded there only
            // the record headers are read.
            var prefetches = false
            if let ahead = ahead?.ahead {
                switch ahead.take(slot: slot, frame: frame) {
                case .reader: try current.verify(frame)
                case .verified(let bodies):
                    decoded = bodies
                    prefetches = bodies == nil
                }
            } else {
                try current.verify(frame)
            }
            stream = current.streamName(of: frame)
            rule = retention.isEmpty ? nil : retention.rules[stream]
            if let rule, rule.deleted || frame.firstRevision + UInt64(frame.eventCount) <= rule.firstRevision { continue }
            segment = current
            frameOffset = frame.offset
            framePosition = frame.firstPosition
            recordOffset = frame.recordsOffset
            prefetchedOffset = frame.recordsOffset & ~63
            frameEnd = prefetches ? frame.end : 0
            position = frame.firstPosition
            revision = frame.firstRevision
            eventsLeftInFrame = frame.eventCount
            while position < startPosition {
                recordOffset = FrameDecoder.record(at: recordOffset, in: current.bytes).end
                position += 1
                revision += 1
                eventsLeftInFrame -= 1
            }
            return true
        }
        return false
    }

    /// Bytes of the frame hinted to the CPU's cache ahead of the record being read, for frames
    /// the other core verified: their bytes are then in that core's cache rather than this
    /// one's, and records lie too far apart for the hardware to see a stream.
    static let prefetchDistance = 2048

    /// Hints the cache lines up to `prefetchDistance` past the current record.
    @inline(__always)
    private mutating func prefetch(_ segment: Segment) {
        let target = min(recordOffset + Self.prefetchDistance, frameEnd)
        guard prefetchedOffset < target else { return }
        segment.prefetch(at: prefetchedOffset, count: target - prefetchedOffset)
        prefetchedOffset = (target + 63) & ~63
    }

    /// Lets the other core go, with the frames it decoded (the events returned keep theirs).
    private mutating func endReadAhead() {
        ahead = nil
        decoded = nil
    }
}
