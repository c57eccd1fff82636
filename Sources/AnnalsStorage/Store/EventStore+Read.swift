/// A position-ordered reader over committed events, pulled one at a time. Cursors read from
/// the segment mappings without locks and never block the writer.
public protocol EventCursor: Sendable {
    /// The next event, nil at the end. Throws ``ReadError`` on corrupt data.
    mutating func next() throws(ReadError) -> RecordedEvent?
}

/// A lazy sequence of recorded events. Iteration takes a snapshot of what is committed when it
/// starts and reads only that. Use it with `for try await`, or call ``makeCursor()`` for a
/// synchronous loop without async overhead.
public struct EventSequence<Cursor: EventCursor>: AsyncSequence, Sendable {
    public typealias Element = RecordedEvent
    private let makeCursorBody: @Sendable () -> Cursor

    init(_ makeCursor: @escaping @Sendable () -> Cursor) {
        self.makeCursorBody = makeCursor
    }

    /// A cursor over the events committed now.
    public func makeCursor() -> Cursor { makeCursorBody() }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(cursor: makeCursorBody()) }

    /// Pulls events from the cursor; throws ``ReadError``.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var cursor: Cursor
        public mutating func next() async throws -> RecordedEvent? { try cursor.next() }
    }
}

extension EventStore {
    /// All events of the store (`$all`) in position order, starting at `position`.
    ///
    /// Sees the events committed when iteration starts (durable ones under
    /// ``Durability/fsyncBeforeAck``). Every frame is checksum-verified before its events are
    /// returned; corruption throws ``ReadError/corrupt(_:)``.
    public func readAll(from position: UInt64 = 0, limit: Int = .max) -> EventSequence<ForwardCursor> {
        EventSequence { ForwardCursor(snapshot: self.snapshot(), from: position, limit: limit, retention: self.retentionView()) }
    }

    /// All events of the store (`$all`) in reverse position order, from `position` (inclusive)
    /// or from the last committed event when `position` is nil.
    public func readAllBackwards(from position: UInt64? = nil, limit: Int = .max) -> EventSequence<BackwardCursor> {
        EventSequence { BackwardCursor(snapshot: self.snapshot(), from: position, limit: limit, retention: self.retentionView()) }
    }

    /// The position the next appended event will get once everything visible is counted: the
    /// number of events ever committed (positions are gapless from 0).
    public var endPosition: UInt64 { view.withLock { $0.visibleEnd.nextPosition } }

    /// True once ``close()`` has been called (or the store failed): no more appends will
    /// commit through this instance.
    public var isClosed: Bool { closed.load(ordering: .relaxed) || durability.withLock { $0.failure != nil } }

    func snapshot() -> LogSnapshot {
        view.withLock { $0.snapshot }
    }
}
