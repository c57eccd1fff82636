/// Opens the frames of one stream from their index locations, verifying each one: checksum,
/// record structure, and that the frame really is this stream's frame at that revision (so a
/// stale or wrong index entry can never return another stream's events).
struct StreamReader {
    let record: StreamRecord
    let segments: [Segment]

    /// The segment and checked header of the frame at `slot` of the stream's frame list.
    func openFrame(_ slot: Int) throws(ReadError) -> (Segment, FrameHeader) {
        let location = record.frames[slot]
        guard let segment = segments.segment(numbered: location.segmentIndex), segment.index == location.segmentIndex else {
            throw .corrupt(CorruptionError(file: "segment \(location.segmentIndex)", offset: Int(location.offset),
                                           reason: "indexed segment is not in the store"))
        }
        let offset = Int(location.offset)
        switch segment.probe(at: offset, verifyChecksum: true) {
        case .frame(let frame) where frame.kind == .events:
            if let problem = segment.validateRecords(of: frame) {
                throw .corrupt(segment.corruption(at: problem.offset, problem.reason))
            }
            guard frame.firstRevision == location.firstRevision, frame.firstPosition == location.firstPosition,
                  frame.eventCount == Int(location.eventCount),
                  segment.bytes.slice(offset + FrameLayout.streamName, frame.streamNameBytes).elementsEqual(record.name.utf8)
            else {
                throw .corrupt(segment.corruption(at: offset, "frame does not match the stream index entry for \(record.name)"))
            }
            return (segment, frame)
        case .frame:
            throw .corrupt(segment.corruption(at: offset, "stream index points at a frame without events"))
        case .endOfData:
            throw .corrupt(segment.corruption(at: offset, "stream index points past the end of data"))
        case .invalid(let reason), .malformed(let reason):
            throw .corrupt(segment.corruption(at: offset, reason))
        }
    }

    /// Starts loading the frame at `slot` (if there is one) into the cache while the current one
    /// is checked and read: its checksum will touch every byte. A hint only; nothing is trusted.
    func prefetchFrame(_ slot: Int) {
        guard slot >= 0, slot < record.frames.count else { return }
        let location = record.frames[slot]
        guard let segment = segments.segment(numbered: location.segmentIndex) else { return }
        let offset = Int(location.offset)
        guard segment.bytes.fits(offset, Format.frameHeaderBytes) else { return }
        segment.prefetch(at: offset, count: min(Int(segment.bytes.u32(offset + FrameLayout.length)), Self.prefetchLimitBytes))
    }

    /// The most of one frame a read prefetches.
    static let prefetchLimitBytes = 16 * 1024

    /// The events with `revisions`, which must all exist. Used for idempotency checks.
    func events(revisions: Range<UInt64>) throws(AppendError) -> [RecordedEvent] {
        var result: [RecordedEvent] = []
        guard !revisions.isEmpty else { return result }
        var slot = record.frameSlot(containing: revisions.lowerBound)
        var revision = revisions.lowerBound
        do {
            while revision < revisions.upperBound, slot < record.frames.count {
                let (segment, frame) = try openFrame(slot)
                var offset = frame.recordsOffset
                for index in 0..<frame.eventCount {
                    let layout = FrameDecoder.record(at: offset, in: segment.bytes)
                    let eventRevision = frame.firstRevision + UInt64(index)
                    if eventRevision >= revision && eventRevision < revisions.upperBound {
                        result.append(RecordedEvent(position: frame.firstPosition + UInt64(index), stream: record.name,
                                                    revision: eventRevision, segment: segment, layout: layout))
                    }
                    offset = layout.end
                }
                revision = frame.nextPosition - frame.firstPosition + frame.firstRevision
                slot += 1
            }
        } catch {
            throw .corrupt(error.corruption)
        }
        return result
    }
}

/// Reads one stream forwards or backwards from a revision, through the stream index: a lookup
/// and a binary search, then straight to the frames, however many segments the store has.
public struct StreamCursor: EventCursor {
    private let reader: StreamReader
    private let forwards: Bool
    private var remaining: Int
    private var slot: Int
    /// Revision of the next event to return.
    private var revision: UInt64
    private var done = false
    // Forwards: the frame being read.
    private var segment: Segment?
    private var recordOffset = 0
    private var frameFirstRevision: UInt64 = 0
    private var frameFirstPosition: UInt64 = 0
    private var eventsLeftInFrame = 0
    // Backwards: the frame's records, popped from the end.
    private var records: [EventRecordLayout] = []
    /// The stream's retention rule, if it has one.
    private let rule: RetentionView.Rule?

    init(
        record: StreamRecord?, segments: [Segment], visibleEnd: UInt64, forwards: Bool, from start: UInt64?, limit: Int,
        retention: RetentionView.Rule? = nil
    ) {
        self.forwards = forwards
        self.rule = retention
        self.remaining = max(0, limit)
        self.slot = 0
        self.revision = 0
        guard var record, !(retention?.deleted ?? false) else {
            self.reader = StreamReader(record: StreamRecord(name: "", frames: []), segments: [])
            done = true
            return
        }
        // Only frames committed when the read began.
        while let last = record.frames.last, last.firstPosition >= visibleEnd { record.frames.removeLast() }
        self.reader = StreamReader(record: record, segments: segments)
        let next = record.nextRevision
        if forwards {
            let first = max(start ?? 0, retention?.firstRevision ?? 0)
            if first >= next {
                done = true
            } else {
                revision = first
                slot = record.frameSlot(containing: first)
                reader.prefetchFrame(slot)
            }
        } else {
            if next == 0 || (start ?? UInt64.max) < (retention?.firstRevision ?? 0) || next <= (retention?.firstRevision ?? 0) {
                done = true
            } else {
                revision = min(start ?? UInt64.max, next - 1)
                slot = record.frameSlot(containing: revision)
            }
        }
    }

    /// The next event of the stream in the cursor's direction, or nil.
    ///
    /// - Throws: ``ReadError/corrupt(_:)`` naming the file and offset of a bad frame.
    public mutating func next() throws(ReadError) -> RecordedEvent? {
        while remaining > 0, !done {
            guard let event = forwards ? try nextForwards() : try nextBackwards() else { return nil }
            guard let rule else { return event }
            if event.revision < rule.firstRevision {
                done = true // backwards past the first kept revision
                return nil
            }
            if rule.keeps(revision: event.revision, timestamp: event.timestamp.nanosecondsSinceEpoch) { return event }
            remaining += 1 // skipped by max age: does not count against the limit
        }
        return nil
    }

    @inline(__always)
    private mutating func nextForwards() throws(ReadError) -> RecordedEvent? {
        while eventsLeftInFrame == 0 {
            guard slot < reader.record.frames.count else {
                done = true
                return nil
            }
            let (frameSegment, frame) = try reader.openFrame(slot)
            reader.prefetchFrame(slot + 1)
            slot += 1
            if !Self.frame(frame, holds: revision) {
                // Compaction removes events: the stream continues at the next frame it kept.
                try Self.checkGap(frame, in: frameSegment, expected: revision, of: reader)
                if frame.firstRevision < revision { continue }
                revision = frame.firstRevision
            }
            segment = frameSegment
            recordOffset = frame.recordsOffset
            frameFirstRevision = frame.firstRevision
            frameFirstPosition = frame.firstPosition
            eventsLeftInFrame = frame.eventCount
            while frameFirstRevision + UInt64(frame.eventCount - eventsLeftInFrame) < revision {
                recordOffset = FrameDecoder.record(at: recordOffset, in: frameSegment.bytes).end
                eventsLeftInFrame -= 1
            }
        }
        guard let segment else { return nil }
        let layout = FrameDecoder.record(at: recordOffset, in: segment.bytes)
        let event = RecordedEvent(position: frameFirstPosition + (revision - frameFirstRevision), stream: reader.record.name,
                                  revision: revision, segment: segment, layout: layout)
        recordOffset = layout.end
        eventsLeftInFrame -= 1
        revision += 1
        remaining -= 1
        return event
    }

    @inline(__always)
    private mutating func nextBackwards() throws(ReadError) -> RecordedEvent? {
        if records.isEmpty {
            guard slot >= 0 else {
                done = true
                return nil
            }
            let (frameSegment, frame) = try reader.openFrame(slot)
            reader.prefetchFrame(slot - 1)
            if !Self.frame(frame, holds: revision) {
                try Self.checkGap(frame, in: frameSegment, expected: revision, of: reader)
                guard frame.firstRevision < revision else {
                    throw .corrupt(frameSegment.corruption(
                        at: frame.offset, "stream \(reader.record.name): frame has revisions from \(frame.firstRevision), expected \(revision)"))
                }
                revision = frame.firstRevision + UInt64(frame.eventCount) - 1
            }
            slot -= 1
            segment = frameSegment
            frameFirstRevision = frame.firstRevision
            frameFirstPosition = frame.firstPosition
            var offset = frame.recordsOffset
            let wanted = Int(revision - frame.firstRevision) + 1
            records.removeAll(keepingCapacity: true)
            for _ in 0..<wanted {
                let layout = FrameDecoder.record(at: offset, in: frameSegment.bytes)
                records.append(layout)
                offset = layout.end
            }
        }
        guard let segment, let layout = records.popLast() else { return nil }
        let event = RecordedEvent(position: frameFirstPosition + (revision - frameFirstRevision), stream: reader.record.name,
                                  revision: revision, segment: segment, layout: layout)
        remaining -= 1
        if revision == 0 { done = true } else { revision -= 1 }
        return event
    }

    private static func frame(_ frame: FrameHeader, holds revision: UInt64) -> Bool {
        frame.firstRevision <= revision && revision < frame.firstRevision + UInt64(frame.eventCount)
    }

    /// The stream's frames must continue each other: a damaged index that skips or repeats
    /// revisions is corruption, never a reason to compute a wrong position. Only a store that
    /// compaction has rewritten may skip revisions (the events it removed).
    private static func checkGap(_ frame: FrameHeader, in segment: Segment, expected revision: UInt64, of reader: StreamReader) throws(ReadError) {
        guard reader.segments.contains(where: \.isCompacted) else {
            throw .corrupt(segment.corruption(
                at: frame.offset, "stream \(reader.record.name): frame has revisions from \(frame.firstRevision), expected \(revision)"))
        }
    }
}
