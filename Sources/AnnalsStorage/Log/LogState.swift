/// Everything about the log that changes, guarded by the store's mutex.
struct LogState {
    /// All segments in order; the last one is the one being written.
    var segments: [Segment]
    /// Offset in the active segment where the next frame goes.
    var writeOffset: Int
    /// True once the active segment has its seal frame: the next append must roll first.
    var activeSealed: Bool
    /// Position the next appended event gets.
    var nextPosition: UInt64
    /// What readers may see: everything written under `.none` / `.periodic`, everything durable
    /// under `.fsyncBeforeAck`.
    var visibleEnd: LogEnd
    /// Everything before this position is on stable storage.
    var durablePosition: UInt64
    /// In the active segment, bytes before this offset are on stable storage.
    var syncedOffset: Int
    /// The active segment's durable mark: how far recovery must never cut (§3.8).
    var marks: DurableMarkWriter
    /// Index files of sealed segments, in segment order.
    var tables: [IndexTable]
    /// Frames of the open segment (and, after recovery of a read-only store, of unindexed ones).
    var streams: StreamIndex
    /// Frames of sealed segments whose index files are being written off the lock, oldest
    /// first; each leaves memory when its files are in `tables`.
    var sealedUnindexed: [StreamIndex] = []
    /// The last segment whose index file was scheduled (a retried roll must not schedule it
    /// again with no frames).
    var indexScheduledThrough: UInt64?
    /// Appenders waiting for a flush that covers their position.
    var waiters: [DurabilityWaiter] = []
    var flushRunning = false
    /// Set when a sync fails: the store refuses writes from then on.
    var failure: SystemError?
    var closed = false
    /// Held while the store is open for writing; dropping it releases the lock.
    var lock: (any Sendable)?
    var checkpointSequence: UInt64
    /// True while the checkpoint file on disk has its clean-shutdown flag set: the first append
    /// clears it (synchronously) before it writes a byte (§5).
    var checkpointSaysClean: Bool
    /// Timestamp of the last append; the next one is never earlier (clock steps back).
    var lastTimestamp: Int64 = 0
    var appendCount = 0
    /// Compresses bodies against the active segment's dictionary frame (nil: none there yet).
    var compressor: BodyCompressor?
    /// Compresses large bodies alone while the active segment has no dictionary.
    var standaloneCompressor: BodyCompressor?
    /// Recent bodies: the next dictionary.
    var sampler: DictionarySampler
    /// Retention settings of the streams that have any (from the `$retention` stream).
    var retention: [String: StreamRetention] = [:]
    var flushCount = 0

    var activeSegment: Segment { segments[segments.count - 1] }

    /// ``IndexFile/fingerprint(ofHeaderChecksums:)`` of the segment files standing for the numbers `range`.
    func fingerprint(of range: ClosedRange<UInt64>) -> UInt32 {
        IndexFile.fingerprint(ofHeaderChecksums: segments.lazy.filter { range.contains($0.index) }.map(\.headerChecksum))
    }

    /// The frames of `stream` held in memory (sealed-unindexed, then open), oldest first.
    func recentRecord(for stream: String, hash: UInt64) -> StreamRecord? {
        guard !sealedUnindexed.isEmpty else { return streams.record(for: stream, hash: hash) }
        var frames: [FrameLocation] = []
        for pending in sealedUnindexed { if let record = pending.record(for: stream, hash: hash) { frames += record.frames } }
        if let record = streams.record(for: stream, hash: hash) { frames += record.frames }
        return frames.isEmpty ? nil : StreamRecord(name: stream, frames: frames)
    }
    var locator: StreamLocator { StreamLocator(tables: tables, segments: segments) }
    var writtenEnd: LogEnd { LogEnd(segmentIndex: activeSegment.index, offset: writeOffset, nextPosition: nextPosition) }

    /// Under `.periodic` and `.none`: everything written is acknowledged, so readers see it
    /// and the durable mark vouches for it (a process crash must not let recovery cut it).
    mutating func publishWritten() {
        visibleEnd = writtenEnd
        marks.acknowledged(writtenEnd, in: activeSegment)
    }

    init(recovered: LogRecovery.Result, lock: (any Sendable)?, checkpointSequence: UInt64, options: StoreOptions) {
        segments = recovered.segments
        writeOffset = recovered.end.offset
        activeSealed = recovered.lastSegmentSealed
        nextPosition = recovered.end.nextPosition
        visibleEnd = recovered.end
        durablePosition = recovered.end.nextPosition
        syncedOffset = recovered.end.offset
        marks = DurableMarkWriter(bootID: options.storage.storage.bootID, newest: recovered.lastMark,
                                  durable: recovered.end)
        streams = recovered.streams
        tables = recovered.tables
        lastTimestamp = recovered.lastTimestamp
        self.lock = lock
        self.checkpointSequence = checkpointSequence
        checkpointSaysClean = recovered.report.cleanShutdown && recovered.report.scannedBytes == 0
        sampler = DictionarySampler(segmentSizeBytes: options.segmentSizeBytes)
        if options.compression == .lz4, !options.readOnly {
            standaloneCompressor = BodyCompressor(dictionary: UnsafeRawBufferPointer(start: nil, count: 0), at: 0)
            // Keep using the open segment's dictionary, and start the next one from it.
            let active = recovered.segments[recovered.segments.count - 1]
            if let offset = recovered.lastSegmentDictionary, active.hasDictionary(at: offset) {
                let dictionary = active.dictionaryBytes(at: offset)
                compressor = BodyCompressor(dictionary: dictionary, at: offset)
                sampler.add(dictionary)
            }
        }
    }
}

/// An appender suspended until its events are durable.
struct DurabilityWaiter {
    let position: UInt64
    let continuation: CheckedContinuation<Void, any Error>
}
