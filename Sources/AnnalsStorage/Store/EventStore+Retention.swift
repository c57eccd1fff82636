/// Retention: soft and hard deletion, truncation, maximum count and age per stream. Settings
/// are events of the system stream `$retention` (see `format-spec.md` §7A), so they survive
/// crashes and other-language readers apply them too. Reads respect them at once; the space
/// comes back when compaction rewrites the segments.
extension EventStore {
    /// Replaces the retention settings of `stream`. Reads started afterwards skip the events
    /// the settings remove, in stream reads and in `$all`.
    ///
    /// - Throws: ``AppendError/streamDeleted(stream:)`` for a hard-deleted stream (a tombstone
    ///   is final), ``AppendError/invalidStreamName(_:reason:)`` for a system stream, and the
    ///   errors of any append (the settings are one).
    public func setRetention(_ retention: StreamRetention, for stream: String) async throws(AppendError) {
        guard !stream.isEmpty, stream.first != StoreLimits.reservedStreamPrefix else {
            throw .invalidStreamName(stream, reason: "retention applies to application streams")
        }
        let record = EventData(type: StreamRetention.eventType, payload: retention.encoded(for: stream))
        _ = try await append([StreamAppend(stream: StreamRetention.stream, events: [record])], systemStreams: true) {
            (settings) throws(AppendError) in
            if settings[stream]?.isDeleted == true { throw .streamDeleted(stream: stream) }
        } update: { settings in
            settings[stream] = retention
        }
    }

    /// Deletes `stream`. Soft (the default): it reads as empty, and appends continue at the
    /// next revision. Hard: a tombstone; it reads as empty and can never be written again.
    public func deleteStream(_ stream: String, hard: Bool = false) async throws(AppendError) {
        var settings = retention(of: stream)
        if hard {
            settings.isDeleted = true
        } else {
            settings.truncateBefore = lastRevision(of: stream).map { $0 + 1 } ?? settings.truncateBefore
        }
        try await setRetention(settings, for: stream)
    }

    /// Removes the events of `stream` before `revision`.
    public func truncateStream(_ stream: String, before revision: UInt64) async throws(AppendError) {
        var settings = retention(of: stream)
        settings.truncateBefore = max(settings.truncateBefore ?? 0, revision)
        try await setRetention(settings, for: stream)
    }

    /// The retention settings of `stream` (``StreamRetention/keepEverything`` when it has none).
    public func retention(of stream: String) -> StreamRetention {
        retentionSettings.withLock { $0[stream] } ?? .keepEverything
    }

    /// Retention as reads apply it now: per stream with settings, the first revision kept
    /// (truncation, soft delete, max count against its last revision), the oldest timestamp
    /// kept (max age), and tombstones.
    func retentionView(only stream: String? = nil) -> RetentionView {
        let settings = retentionSettings.withLock { settings -> [String: StreamRetention] in
            guard !settings.isEmpty else { return [:] }
            if let stream { return settings[stream].map { [stream: $0] } ?? [:] }
            return settings
        }
        guard !settings.isEmpty else { return .none }
        let now = options.clock.clock.nowNanoseconds()
        var view = RetentionView()
        for (name, retention) in settings {
            var first = retention.truncateBefore ?? 0
            if let maxCount = retention.maxCount, let last = lastRevision(of: name), last + 1 > maxCount {
                first = max(first, last + 1 - maxCount)
            }
            view.rules[name] = RetentionView.Rule(
                firstRevision: first, oldestTimestamp: retention.maxAgeNanoseconds.map { now - $0 }, deleted: retention.isDeleted)
        }
        return view
    }

    /// Reads the `$retention` stream into the in-memory settings (at open).
    func loadRetention() throws(OpenError) {
        var cursor = read(StreamRetention.stream).makeCursor()
        var settings: [String: StreamRetention] = [:]
        do throws(ReadError) {
            while let event = try cursor.next() {
                // An erased record (an encrypted store whose key was forgotten) says nothing.
                guard event.type == StreamRetention.eventType, !event.isErased else { continue }
                let decoded: (String, StreamRetention)?
                do { decoded = try event.withPayloadBytes({ StreamRetention.decode($0) }) } catch {
                    if case .bodyErased = error { continue }
                    throw error
                }
                guard let (stream, retention) = decoded else { continue }
                settings[stream] = retention
            }
        } catch {
            throw .corrupt(error.corruption)
        }
        retentionSettings.withLock { $0 = settings }
    }
}
