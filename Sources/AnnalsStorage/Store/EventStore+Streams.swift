/// Reading one stream.
extension EventStore {
    /// The events of `stream` in revision order, from `revision` (inclusive).
    ///
    /// Sees what was committed when iteration starts. A stream read is an index lookup and
    /// goes straight to the stream's frames; each frame is checksum-verified first.
    ///
    /// ```swift
    /// for try await event in store.read("order-123") { apply(event) }
    /// ```
    public func read(_ stream: String, from revision: UInt64 = 0, limit: Int = .max) -> EventSequence<StreamCursor> {
        EventSequence {
            let (record, segments, end) = self.streamSnapshot(stream)
            return StreamCursor(record: record, segments: segments, visibleEnd: end, forwards: true, from: revision, limit: limit,
                                retention: self.retentionView(only: stream).rules[stream])
        }
    }

    /// The events of `stream` newest first, from `revision` (inclusive) or from the last event.
    public func readBackwards(_ stream: String, from revision: UInt64? = nil, limit: Int = .max) -> EventSequence<StreamCursor> {
        EventSequence {
            let (record, segments, end) = self.streamSnapshot(stream)
            return StreamCursor(record: record, segments: segments, visibleEnd: end, forwards: false, from: revision, limit: limit,
                                retention: self.retentionView(only: stream).rules[stream])
        }
    }

    /// The revision of the last committed event of `stream`, or nil when it has none.
    public func lastRevision(of stream: String) -> UInt64? {
        let (record, _, end) = streamSnapshot(stream)
        guard let record, let frame = record.frames.last(where: { $0.firstPosition < end }) else { return nil }
        return frame.nextRevision - 1
    }

    /// True when `stream` has at least one committed event.
    public func streamExists(_ stream: String) -> Bool { lastRevision(of: stream) != nil }

    /// The stream's frames and what is visible, taken under the view's lock (never the
    /// writer's); the index files are searched after it is released.
    private func streamSnapshot(_ stream: String) -> (StreamRecord?, [Segment], UInt64) {
        let hash = options.streamHasher.hash(stream)
        let (recent, tables, segments, end) = view.withLock {
            ($0.recentRecord(for: stream, hash: hash), $0.tables, $0.segments, $0.visibleEnd.nextPosition)
        }
        let record = StreamLocator(tables: tables, segments: segments).record(for: stream, hash: hash, recent: recent)
        return (record, segments, end)
    }
}
