import CoreMetrics

/// Which events a subscription delivers.
public struct SubscriptionFilter: Sendable, Hashable {
    /// Streams whose names start with one of these (nil: every stream).
    public var streamPrefixes: [String]?
    /// Event types to deliver (nil: every type).
    public var eventTypes: Set<String>?
    /// Whether to deliver events of system streams (names starting with `$`, such as
    /// projection checkpoints). Default false.
    public var includeSystemStreams: Bool
    /// Events by type and tag (nil: every event). A subscription or projection with a query
    /// reads through the store's query index: only the frames holding matching events, not
    /// the whole log.
    public var query: EventQuery?

    /// A filter; nil means "any".
    public init(
        streamPrefixes: [String]? = nil, eventTypes: Set<String>? = nil, includeSystemStreams: Bool = false, query: EventQuery? = nil
    ) {
        self.streamPrefixes = streamPrefixes
        self.eventTypes = eventTypes
        self.includeSystemStreams = includeSystemStreams
        self.query = query
    }

    /// The events matching `query`, through the query index.
    public static func matching(_ query: EventQuery) -> SubscriptionFilter { SubscriptionFilter(query: query) }

    /// The query to read with, when it narrows the read (nil: read `$all`).
    var indexedQuery: EventQuery? { query.flatMap { $0.matchesEverything ? nil : $0 } }

    /// Every event of every non-system stream.
    public static let all = SubscriptionFilter()

    /// The streams of one category: `.streamPrefix("order-")`.
    public static func streamPrefix(_ prefix: String) -> SubscriptionFilter { SubscriptionFilter(streamPrefixes: [prefix]) }

    /// Events of these types, in any stream.
    public static func eventTypes(_ types: Set<String>) -> SubscriptionFilter { SubscriptionFilter(eventTypes: types) }

    /// True when `event` passes.
    public func matches(_ event: RecordedEvent) -> Bool {
        if !includeSystemStreams, event.stream.utf8.first == UInt8(ascii: "$") { return false }
        if let streamPrefixes, !streamPrefixes.contains(where: { event.stream.hasPrefix($0) }) { return false }
        if let eventTypes, !eventTypes.contains(event.type) { return false }
        if let query, !query.matches(event) { return false }
        return true
    }
}

/// What a subscription delivers: events in position order, and once, a marker that it has
/// caught up with what was committed (after which events arrive live).
public enum SubscriptionMessage: Sendable {
    case event(RecordedEvent)
    /// Everything committed before this position was delivered (or filtered out); from here
    /// on, events arrive as they are committed.
    case caughtUp(position: UInt64)
}

/// Where a subscription starts.
public enum SubscriptionStart: Sendable, Hashable {
    /// The first event of the store.
    case start
    /// The next event committed after subscribing.
    case end
    /// The event at this global position (a checkpoint: the position after the last one
    /// handled).
    case position(UInt64)
}

extension EventStore {
    /// Events of `$all` from `start`: catches up, emits ``SubscriptionMessage/caughtUp(position:)``
    /// once, then delivers new events as they are committed (woken by the commit, no polling).
    ///
    /// - Ordering: position order, no gaps (filtered events are skipped, not reordered), no
    ///   duplicates.
    /// - Buffering: pull-based and bounded. The subscription reads at most `batchSize` events
    ///   ahead of its consumer; a slow consumer simply falls behind, reading from the log at
    ///   its own pace (the log is the buffer): no event is dropped and memory does not grow.
    ///   ``Subscription/Iterator/lag`` says how far behind it is.
    /// - Ends when the task is cancelled or the store is closed; throws `ReadError` on
    ///   corrupt data. Live delivery needs the store that appends (a read-only store's view is
    ///   fixed when it opens).
    ///
    /// ```swift
    /// for try await message in store.subscribe(from: .start, filter: .streamPrefix("order-")) {
    ///     switch message {
    ///     case .event(let event): handle(event)
    ///     case .caughtUp: print("live")
    ///     }
    /// }
    /// ```
    ///
    /// A subscription given a `name` records its lag (events committed and not yet delivered
    /// or skipped) as the gauge `annals_subscription_lag_events{subscription=name}` with the
    /// store's metrics factory, each time it reads a batch.
    public func subscribe(
        from start: SubscriptionStart = .start, filter: SubscriptionFilter = .all, batchSize: Int = 256, name: String? = nil
    ) -> Subscription {
        Subscription(store: self, start: start, filter: filter, batchSize: max(1, batchSize), name: name)
    }
}

/// An `EventStore/subscribe(from:filter:batchSize:)` sequence.
public struct Subscription: AsyncSequence, Sendable {
    public typealias Element = SubscriptionMessage
    public typealias Failure = ReadError

    let store: EventStore
    let start: SubscriptionStart
    let filter: SubscriptionFilter
    let batchSize: Int
    let name: String?

    public func makeAsyncIterator() -> Iterator {
        let position: UInt64
        switch start {
        case .start: position = 0
        case .end: position = store.endPosition
        case .position(let value): position = value
        }
        let lag = name.map { Gauge(label: "annals_subscription_lag_events", dimensions: [("subscription", $0)], factory: store.metricsFactory) }
        return Iterator(store: store, readPosition: position, filter: filter, batchSize: batchSize, lagGauge: lag)
    }

    /// Pulls messages; `next()` suspends while the subscription waits for new commits.
    public struct Iterator: AsyncIteratorProtocol {
        let store: EventStore
        /// The position after the last event read from the log (delivered or read ahead).
        private var readPosition: UInt64
        let filter: SubscriptionFilter
        let batchSize: Int
        private var buffer: [RecordedEvent] = []
        private var bufferIndex = 0
        private var caughtUp = false
        /// The named subscription's lag gauge (nil: not named).
        private let lagGauge: Gauge?

        init(store: EventStore, readPosition: UInt64, filter: SubscriptionFilter, batchSize: Int, lagGauge: Gauge? = nil) {
            self.store = store
            self.readPosition = readPosition
            self.filter = filter
            self.batchSize = batchSize
            self.lagGauge = lagGauge
        }

        /// The position from which events are still to be delivered: everything before it was
        /// delivered or filtered out. A checkpoint a consumer may resume from after handling
        /// what it received.
        public var position: UInt64 {
            bufferIndex < buffer.count ? buffer[bufferIndex].position : readPosition
        }

        /// Committed events this subscription has not delivered yet (or skipped by its filter).
        public var lag: UInt64 {
            let end = store.endPosition
            let position = self.position
            return end > position ? end - position : 0
        }

        public mutating func next(isolation actor: isolated (any Actor)? = #isolation) async throws(ReadError) -> SubscriptionMessage? {
            while true {
                if bufferIndex < buffer.count {
                    defer { bufferIndex += 1 }
                    return .event(buffer[bufferIndex])
                }
                if Task.isCancelled { return nil }
                let read = try fill()
                if let lagGauge { lagGauge.record(lag) }
                if read > 0 { continue }
                if !caughtUp {
                    caughtUp = true
                    return .caughtUp(position: readPosition)
                }
                let end = await store.waitForCommit(beyond: readPosition)
                if end <= readPosition { return nil } // cancelled or closed
            }
        }

        public mutating func next() async throws(ReadError) -> SubscriptionMessage? {
            try await next(isolation: nil)
        }

        /// Reads up to `batchSize` events from `next`; keeps those that pass the filter.
        /// Returns how many were read (0 at the end of what is committed).
        private mutating func fill() throws(ReadError) -> Int {
            buffer.removeAll(keepingCapacity: true)
            bufferIndex = 0
            if let query = filter.indexedQuery {
                // Through the query index: only matching events come back; the read covers the
                // log up to its visible end once it ends before the batch is full.
                var cursor = store.read(matching: query, from: readPosition, limit: batchSize).makeCursor()
                var read = 0
                while let event = try cursor.next() {
                    read += 1
                    readPosition = event.position + 1
                    if filter.matches(event) { buffer.append(event) }
                }
                if read < batchSize { readPosition = Swift.max(readPosition, cursor.visibleEnd) }
                return read
            }
            var cursor = store.readAll(from: readPosition, limit: batchSize).makeCursor()
            var read = 0
            while let event = try cursor.next() {
                read += 1
                readPosition = event.position + 1
                if filter.matches(event) { buffer.append(event) }
            }
            return read
        }
    }
}
