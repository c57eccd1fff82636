/// What readers see: the segment files, the index files, the frames indexed only in memory and
/// the visible end. Guarded by `EventStore.view`, the only lock a reader takes; it is held
/// just long enough to copy these values (references and copy-on-write buffers), never across
/// a system call, a sync or a file write. So a reader never waits for a roll, a flush, an index
/// write or a compaction: each of them does its I/O first and then publishes its result here
/// in one short step.
///
/// Who changes what (lock order: writer, then durability, then view):
/// - the writer adds the frames it writes to `openFrames`, and on a roll moves them to
///   `sealedUnindexed` and appends the new segment;
/// - the visible end moves with the writer (`.periodic`, `.none`) or with group commit
///   (`.fsyncBeforeAck`);
/// - index maintenance swaps `sealedUnindexed` entries for the `tables` written from them,
///   and merged tables for their sources;
/// - compaction swaps segments and their table.
struct LogView {
    /// All segments in order; the last one is the one being written.
    var segments: [Segment]
    /// Index files of sealed segments, in segment order.
    var tables: [IndexTable]
    /// What readers may see: everything written under `.none` / `.periodic`, everything durable
    /// under `.fsyncBeforeAck`. Frames past it may already be in `openFrames`: readers filter.
    var visibleEnd: LogEnd
    /// Frames of the open segment (and, after recovery of a read-only store, of unindexed ones).
    var openFrames: StreamIndex
    /// Frames of sealed segments whose index files are being written, oldest first; each
    /// leaves memory in the same step that puts its files in `tables`, so a stream read sees
    /// each frame exactly once.
    var sealedUnindexed: [StreamIndex] = []

    /// A reader's consistent view of the log.
    var snapshot: LogSnapshot { LogSnapshot(segments: segments, end: visibleEnd) }

    /// The frames of `stream` held in memory (sealed-unindexed, then open), oldest first.
    func recentRecord(for stream: String, hash: UInt64) -> StreamRecord? {
        guard !sealedUnindexed.isEmpty else { return openFrames.record(for: stream, hash: hash) }
        var frames: [FrameLocation] = []
        for pending in sealedUnindexed { if let record = pending.record(for: stream, hash: hash) { frames += record.frames } }
        if let record = openFrames.record(for: stream, hash: hash) { frames += record.frames }
        return frames.isEmpty ? nil : StreamRecord(name: stream, frames: frames)
    }

    /// Finds streams through the index files (searched by the caller after the lock is released).
    var locator: StreamLocator { StreamLocator(tables: tables, segments: segments) }

    /// ``IndexFile/fingerprint(ofHeaderChecksums:)`` of the segment files standing for the numbers `range`.
    func fingerprint(of range: ClosedRange<UInt64>) -> UInt32 {
        IndexFile.fingerprint(ofHeaderChecksums: segments.lazy.filter { range.contains($0.index) }.map(\.headerChecksum))
    }

    /// Moves `end` forward (never back: a flush and a roll may both publish).
    mutating func reveal(_ end: LogEnd) {
        if end.segmentIndex > visibleEnd.segmentIndex || (end.segmentIndex == visibleEnd.segmentIndex && end.offset > visibleEnd.offset) {
            visibleEnd = end
        }
    }
}
