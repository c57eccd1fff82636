/// Group commit's state, guarded by `EventStore.durability`: what the writer has written, what
/// is on stable storage, who waits for it, and whether a sync ever failed. One flush at a time
/// syncs the written bytes on the flush queue, outside this lock; the lock is held only to
/// pick the next job and to publish its result.
///
/// Lock order: taken inside the writer lock (the writer reports each write and each roll here)
/// and before the view's (a flush under `.fsyncBeforeAck` reveals what it made durable).
struct DurabilityState {
    /// The segment the writer writes, and where its written frames end.
    var written: (segment: Segment, end: LogEnd)
    /// In `written.segment`, bytes before this offset are on stable storage.
    var syncedOffset: Int
    /// Everything before this position is on stable storage.
    var durablePosition: UInt64
    /// The active segment's durable mark: how far recovery must never cut (§3.8).
    var marks: DurableMarkWriter
    /// Appenders waiting for a flush that covers their position.
    var waiters: [DurabilityWaiter] = []
    /// True while a flush runs (on the flush queue, or the periodic timer's).
    var flushRunning = false
    /// Set when a sync or a write fails: the store refuses writes from then on.
    var failure: SystemError?
    /// Flushes run since open.
    var flushCount = 0

    init(recovered: LogRecovery.Result, bootID: UUID) {
        written = (recovered.segments[recovered.segments.count - 1], recovered.end)
        syncedOffset = recovered.end.offset
        durablePosition = recovered.end.nextPosition
        marks = DurableMarkWriter(bootID: bootID, newest: recovered.lastMark, durable: recovered.end)
    }

    /// The writer wrote up to `end` in `segment`; with `acknowledged` (`.periodic`, `.none`) the
    /// appenders are told at once, so the durable mark vouches for it (a process crash must not
    /// let recovery cut it). A failed write of that mark fails the store, and is returned.
    mutating func wrote(_ end: LogEnd, in segment: Segment, acknowledged: Bool) -> SystemError? {
        written = (segment, end)
        guard acknowledged else { return nil }
        do { try marks.acknowledged(end, in: segment) } catch {
            failure = failure ?? error
            return error
        }
        return nil
    }

    /// The writer started `segment`: durable up to its header, nothing written yet.
    mutating func started(_ segment: Segment, at end: LogEnd) {
        written = (segment, end)
        syncedOffset = end.offset
        marks.startSegment(at: end)
    }
}

/// An appender suspended until its events are durable.
struct DurabilityWaiter {
    let position: UInt64
    let continuation: CheckedContinuation<Void, any Error>
}

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
