/// Reads the log backwards from a position (or the end). Frames only link forwards, so each
/// segment's frame offsets are collected by a header walk first; each frame is verified before
/// its events are returned, last event first.
public struct BackwardCursor: EventCursor {
    private let snapshot: LogSnapshot
    private let startPosition: UInt64
    private var remaining: Int
    private var slot: Int
    private var frames: [FrameHeader] = []
    private var framesLoadedForSlot = -1
    private var segment: Segment?
    private var stream = ""
    private var records: [EventRecordLayout] = []
    private var firstPosition: UInt64 = 0
    private var firstRevision: UInt64 = 0
    private var done = false
    private let retention: RetentionView
    private var rule: RetentionView.Rule?

    init(snapshot: LogSnapshot, from start: UInt64?, limit: Int, retention: RetentionView = .none) {
        self.snapshot = snapshot
        self.retention = retention
        let last = snapshot.end.nextPosition
        self.startPosition = min(start ?? UInt64.max, last == 0 ? 0 : last - 1)
        self.remaining = max(0, limit)
        self.slot = snapshot.slot(for: startPosition)
        if last == 0 { done = true }
    }

    /// The previous event, or nil before the first.
    ///
    /// - Throws: ``ReadError/corrupt(_:)`` naming the file and offset of a bad frame.
    public mutating func next() throws(ReadError) -> RecordedEvent? {
        guard remaining > 0, !done else { return nil }
        while true {
            while records.isEmpty {
                guard try loadPreviousFrame() else {
                    done = true
                    return nil
                }
            }
            guard let segment, let layout = records.popLast() else { return nil }
            let index = UInt64(records.count)
            if let rule, !rule.keeps(revision: firstRevision + index, timestamp: layout.timestamp(in: segment.bytes)) { continue }
            remaining -= 1
            return RecordedEvent(position: firstPosition + index, stream: stream, revision: firstRevision + index,
                                 segment: segment, layout: layout)
        }
    }

    private mutating func loadPreviousFrame() throws(ReadError) -> Bool {
        while slot >= 0 {
            let current = snapshot.segments[slot]
            if framesLoadedForSlot != slot {
                frames = try collectFrames(of: current)
                framesLoadedForSlot = slot
            }
            guard let frame = frames.popLast() else {
                slot -= 1
                continue
            }
            guard frame.firstPosition <= startPosition else { continue }
            try current.verify(frame)
            let name = current.streamName(of: frame)
            rule = retention.isEmpty ? nil : retention.rules[name]
            if let rule, rule.deleted || frame.firstRevision + UInt64(frame.eventCount) <= rule.firstRevision { continue }
            var layouts: [EventRecordLayout] = []
            layouts.reserveCapacity(frame.eventCount)
            var cursor = frame.recordsOffset
            let lastWanted = min(frame.nextPosition - 1, startPosition)
            for position in frame.firstPosition...lastWanted {
                _ = position
                let layout = FrameDecoder.record(at: cursor, in: current.bytes)
                layouts.append(layout)
                cursor = layout.end
            }
            segment = current
            stream = name
            records = layouts
            firstPosition = frame.firstPosition
            firstRevision = frame.firstRevision
            return true
        }
        return false
    }

    private func collectFrames(of segment: Segment) throws(ReadError) -> [FrameHeader] {
        var result: [FrameHeader] = []
        var walk = segment.walk(verification: .headers, limit: snapshot.readLimit(of: segment))
        while true {
            switch walk.next() {
            case .events(let frame):
                result.append(frame)
            case .dictionary:
                continue
            case .seal, .limit:
                return result
            case .endOfData(let offset):
                throw .corrupt(segment.corruption(at: offset, "committed data missing"))
            case .notAFrame(let offset, let reason), .corrupt(let offset, let reason):
                throw .corrupt(segment.corruption(at: offset, reason))
            }
        }
    }
}
