/// Reads by event type and tag across streams (``EventQuery``), through the query index.
extension EventStore {
    /// The events matching `query`, in position order, starting at `position`.
    ///
    /// Reads through the query index: the frames filed under the query's types and tags (in
    /// the index files of sealed segments and in memory for the others), so its cost follows
    /// the number of matching frames, not the size of the store; a query that matches every
    /// event reads `$all`. Sees the events committed when iteration starts, like ``readAll(from:limit:)``;
    /// every frame is verified before its events are returned; events that retention removed
    /// are left out.
    ///
    /// - Throws (from the cursor): ``ReadError/corrupt(_:)`` for a frame that fails a check,
    ///   including one the index names that does not match its entry.
    public func read(matching query: EventQuery, from position: UInt64 = 0, limit: Int = .max) -> EventSequence<QueryCursor> {
        EventSequence { self.queryCursor(query, bound: position, backwards: false, limit: limit) }
    }

    /// The events matching `query` in reverse position order, from `position` (inclusive) or
    /// from the last committed event when nil. As ``read(matching:from:limit:)`` otherwise.
    public func readBackwards(matching query: EventQuery, from position: UInt64? = nil, limit: Int = .max) -> EventSequence<QueryCursor> {
        EventSequence { self.queryCursor(query, bound: position ?? .max, backwards: true, limit: limit) }
    }

    private func queryCursor(_ query: EventQuery, bound: UInt64, backwards: Bool, limit: Int) -> QueryCursor {
        let retention = retentionView()
        guard !query.matchesEverything else {
            let snapshot = snapshot()
            let source: QueryCursor.Source = backwards
                ? .backward(BackwardCursor(snapshot: snapshot, from: bound == .max ? nil : bound, limit: .max, retention: retention))
                : .forward(ForwardCursor(snapshot: snapshot, from: bound, limit: limit, retention: retention))
            return QueryCursor(source: source, query: query, limit: limit, visibleEnd: snapshot.end.nextPosition)
        }
        do { try completePendingKeys() } catch {
            return QueryCursor(source: .failed(error), query: query, limit: limit, visibleEnd: bound)
        }
        let (snapshot, planner) = view.withLock { view in
            (view.snapshot, QueryPlanner(tables: view.tables, memory: view.sealedUnindexed + [view.openFrames], hasher: options.streamHasher))
        }
        let frames = IndexedFrames(snapshot: snapshot, retention: retention, candidates: planner.candidates(for: query) ?? [],
                                   from: bound, backwards: backwards)
        return QueryCursor(source: .frames(frames), query: query, limit: limit, visibleEnd: snapshot.end.nextPosition)
    }

    /// Files the keys of the frames that the open found by header only (the open segment's
    /// checkpointed part), after verifying them: once, on the first query or conditional
    /// append. Until then those frames are in no query's candidates.
    ///
    /// - Throws: ``ReadError/corrupt(_:)`` for a frame that fails its checks.
    func completePendingKeys() throws(ReadError) {
        let (pending, missing): ([(Segment, Int)], UInt64?) = view.withLock { view in
            var list: [(UInt64, Int)] = Array(view.openFrames.keysPending)
            for index in view.sealedUnindexed { list += index.keysPending.map { ($0.key, $0.value) } }
            var found: [(Segment, Int)] = []
            for (number, offset) in list {
                guard let segment = view.segments.segment(numbered: number), segment.index == number else { return (found, number) }
                found.append((segment, offset))
            }
            return (found, nil)
        }
        if let missing {
            throw .corrupt(CorruptionError(file: layout.segmentPath(missing), offset: 0,
                                           reason: "frames of this segment wait for their keys, and the store has no such segment"))
        }
        for (segment, offset) in pending {
            let keyed = try segment.keyedFrames(upTo: offset)
            view.withLock { view in
                view.openFrames.addVerifiedKeys(keyed, ofSegment: segment.index, before: offset)
                for slot in view.sealedUnindexed.indices {
                    view.sealedUnindexed[slot].addVerifiedKeys(keyed, ofSegment: segment.index, before: offset)
                }
            }
        }
    }
}

/// Conditional appends: the check, under the writer lock.
extension EventStore {
    /// The position of the first event written before `end` (durable or not) that matches the
    /// condition's query at a position after its `after`, or nil. Runs under the writer lock,
    /// so nothing is written meanwhile.
    ///
    /// - Throws: ``AppendError/corrupt(_:)`` for a frame that fails its checks.
    func firstEvent(matching condition: AppendCondition, writtenBefore end: LogEnd) throws(AppendError) -> UInt64? {
        if condition.after == .max { return nil }
        let first = condition.after.map { $0 + 1 } ?? 0
        guard first < end.nextPosition else { return nil }
        let query = condition.failIfEventsMatch
        let retention = retentionView()
        var cursor: QueryCursor
        if query.matchesEverything {
            let snapshot = LogSnapshot(segments: view.withLock { $0.segments }, end: end)
            cursor = QueryCursor(source: .forward(ForwardCursor(snapshot: snapshot, from: first, limit: 1, retention: retention)),
                                 query: query, limit: 1, visibleEnd: end.nextPosition)
        } else {
            do throws(ReadError) { try completePendingKeys() } catch {
                throw .corrupt(error.corruption)
            }
            // The segments and the index files together: a compaction swaps both in one step.
            let (segments, planner) = view.withLock { view in
                (view.segments, QueryPlanner(tables: view.tables, memory: view.sealedUnindexed + [view.openFrames], hasher: options.streamHasher))
            }
            let snapshot = LogSnapshot(segments: segments, end: end)
            let frames = IndexedFrames(snapshot: snapshot, retention: retention, candidates: planner.candidates(for: query) ?? [],
                                       from: first, backwards: false)
            cursor = QueryCursor(source: .frames(frames), query: query, limit: 1, visibleEnd: end.nextPosition)
        }
        do throws(ReadError) { return try cursor.next()?.position } catch {
            throw .corrupt(error.corruption)
        }
    }
}
