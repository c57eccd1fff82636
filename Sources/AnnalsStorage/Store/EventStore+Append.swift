/// Appending: validation, frame writing, segment rolls.
extension EventStore {
    /// Appends `events` to `stream` as one atomic frame with consecutive revisions and
    /// positions, and returns where they landed once the store's ``Durability`` holds.
    ///
    /// Idempotent by event id: when every event carries an id and the same ids already sit at
    /// the place this append would go (`expected` revision + 1; for `.any`/`.streamExists`, the
    /// end of the stream), nothing is written and the original result is returned — also
    /// after a restart. A batch that matches only part of what is there throws
    /// ``AppendError/idempotencyMismatch(stream:revision:reason:)``.
    ///
    /// ```swift
    /// let result = try await store.append([placed], to: "order-123", expecting: .noStream)
    /// ```
    ///
    /// - Throws: ``AppendError``. A failed check (`wrongExpectedRevision`,
    ///   `idempotencyMismatch`) or invalid input (`invalidStreamName`, `invalidEventType`,
    ///   `emptyAppend`, `tooLarge`) is detected before anything is written. A failed check is
    ///   thrown only once the appends it conflicts with are visible to readers (durable, under
    ///   ``Durability/fsyncBeforeAck``): reading the stream after a `wrongExpectedRevision`
    ///   shows at least the `actual` revision it reports.
    @discardableResult
    public func append(
        _ events: [EventData], to stream: String, expecting expected: ExpectedRevision = .any
    ) async throws(AppendError) -> AppendResult {
        let results = try await append([StreamAppend(stream: stream, events: events, expected: expected)])
        return results[0]
    }

    /// Appends several streams' events atomically: each ``StreamAppend`` is its own frame, in
    /// order, and the frames are one group on disk (`format-spec.md` §3.1) that a crash keeps
    /// whole or drops whole; readers never see part of it. One durability wait for all.
    ///
    /// Every element is validated and checked (expected revision, idempotency) before any is
    /// written; if one fails, nothing is written. The group is written into one segment (the
    /// open one, or a new one when it does not fit there), so it can hold at most
    /// ``maximumAppendBytes`` in all (``EventStore/encodedSize(of:to:)`` per element);
    /// a larger one throws ``AppendError/tooLarge(stream:frameBytes:limitBytes:)`` and writes
    /// nothing.
    public func append(_ batch: [StreamAppend]) async throws(AppendError) -> [AppendResult] {
        try await append(batch, systemStreams: false)
    }

    /// Appends `batch` only if no event matching `condition.failIfEventsMatch` was stored after
    /// `condition.after` (anywhere, when it is nil): the Dynamic Consistency Boundary's
    /// conditional append. Decide from ``read(matching:from:limit:)``, remember the last
    /// position read, and append with that position: a concurrent writer that stored a
    /// conflicting event in between makes this append fail, so a rule spanning streams ("a
    /// member holds at most 3 books") holds under concurrency.
    ///
    /// The check and the write are atomic under the single writer, and they see every append
    /// accepted before, durable or not. Expected revisions and idempotent retries by event id
    /// combine with it: a retry whose events are all already stored returns the original
    /// results without checking the condition again. Events that retention removed do not
    /// count.
    ///
    /// - Throws: ``AppendError/appendConditionFailed(position:)`` with the first conflicting
    ///   position (thrown once that event is visible to readers); nothing is written. Every
    ///   other ``AppendError`` as ``append(_:)``.
    @discardableResult
    public func append(_ batch: [StreamAppend], condition: AppendCondition) async throws(AppendError) -> [AppendResult] {
        try await append(batch, systemStreams: false, condition: condition)
    }

    /// Appends `events` to `stream` under `condition`: ``append(_:condition:)`` for one stream.
    @discardableResult
    public func append(
        _ events: [EventData], to stream: String, expecting expected: ExpectedRevision = .any, condition: AppendCondition
    ) async throws(AppendError) -> AppendResult {
        try await append([StreamAppend(stream: stream, events: events, expected: expected)], condition: condition)[0]
    }

    /// Appends to system streams — names starting with `$` — for layers built on the store
    /// (projection state and checkpoints). Same guarantees as ``append(_:)``; every element's
    /// stream must start with `$`, and `$all` is refused.
    ///
    /// System streams are ordinary streams in the log: `$all` readers see their events, and
    /// subscriptions of the `Annals` module skip them unless asked. The engine's own system
    /// streams — `$retention` and the snapshot streams `$snapshot-…` — are written only through
    /// the engine (``setRetention(_:for:)``, ``saveSnapshot(of:revision:schemaVersion:bytes:subject:)``),
    /// which checks what goes into them: this method refuses them. `$projection-…` belongs to
    /// the `Annals` layer and `$relay-…` to `AnnalsKafka`, which declare them newest-only
    /// (``declareNewestOnlySystemStreams(prefix:)``): compaction keeps only their newest event.
    public func appendToSystemStreams(_ batch: [StreamAppend]) async throws(AppendError) -> [AppendResult] {
        for item in batch where item.stream.first != StoreLimits.reservedStreamPrefix || item.stream == "$all" {
            throw .invalidStreamName(item.stream, reason: "system stream names start with \"$\" and are not \"$all\"")
        }
        for item in batch where item.stream == StreamRetention.stream || item.stream.hasPrefix(Liveness.snapshotPrefix) {
            throw .invalidStreamName(item.stream, reason: "written only by the store itself (retention settings, snapshots)")
        }
        return try await append(batch, systemStreams: true)
    }
}
