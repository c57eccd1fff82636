/// The single writer's state, guarded by `EventStore.writer` (the writer lock). Appends, rolls,
/// compaction's seal of the open segment and close take that lock; readers never do (they read
/// ``LogView``). The lock is held across a roll's I/O, so appenders wait for a roll, readers
/// don't.
///
/// Lock order: the writer lock first, then group commit's (``DurabilityState``), then the
/// view's; the retention settings and the checkpointer's lock are leaves.
struct WriterState {
    /// The segment being written (also the last of ``LogView/segments``).
    var active: Segment
    /// Offset in the active segment where the next frame goes.
    var writeOffset: Int
    /// True once the active segment has its seal frame: the next append must roll first.
    var activeSealed: Bool
    /// Position the next appended event gets.
    var nextPosition: UInt64
    /// Timestamp of the last append; the next one is never earlier (clock steps back).
    var lastTimestamp: Int64
    /// Dictionary and compressors of the active segment (nil: the store does not compress).
    var compression: FrameCompression?
    /// The last segment whose index file was scheduled (a retried roll must not schedule it
    /// again with no frames).
    var indexScheduledThrough: UInt64?
    /// The next segment file, allocated ahead of the roll that needs it (nil: none ready).
    var preparedSegment: PreparedSegmentFile?
    /// Frames encoded and not yet written to the active segment's file.
    var staged = StagedFrames()
    /// Held while the store is open for writing; dropping it releases the lock file.
    var fileLock: (any Sendable)?

    /// Where the next frame goes.
    var writtenEnd: LogEnd { LogEnd(segmentIndex: active.index, offset: writeOffset, nextPosition: nextPosition) }

    init(recovered: LogRecovery.Result, fileLock: (any Sendable)?, options: StoreOptions) {
        active = recovered.segments[recovered.segments.count - 1]
        writeOffset = recovered.end.offset
        activeSealed = recovered.lastSegmentSealed
        nextPosition = recovered.end.nextPosition
        lastTimestamp = recovered.lastTimestamp
        self.fileLock = fileLock
        if options.compression == .lz4, !options.readOnly {
            compression = FrameCompression(segmentSizeBytes: options.segmentSizeBytes, active: active,
                                           dictionaryOffset: recovered.lastSegmentDictionary)
        }
    }
}
