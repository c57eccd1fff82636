#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Keeps the active segment's durable mark (`format-spec.md` §3.8) up to date, so that
/// recovery can tell acknowledged frames, which it must never cut, from a torn tail.
///
/// Part of ``DurabilityState``, guarded by its lock: the writer updates it after a write under
/// `.periodic`/`.none` and at a roll, group commit after each sync. A mark is one small
/// `pwrite` into the segment's mark area: it reaches the disk with the next sync of the segment
/// (which runs to the end of the file) or by the kernel's writeback, and costs no sync of its
/// own. A failed write throws: the caller fails the store, since recovery could then cut what
/// was acknowledged.
struct DurableMarkWriter {
    /// The machine's boot, recorded in every mark.
    let bootID: UUID
    /// The newest mark of the active segment: found at open or written since (nil: none yet).
    private(set) var newest: DurableMark?
    /// The end of the last sync of the active segment: every frame before it is durable.
    private(set) var durable: LogEnd

    init(bootID: UUID, newest: DurableMark?, durable: LogEnd) {
        self.bootID = bootID
        self.newest = newest
        self.durable = durable
    }

    /// A segment being sealed: it gets no mark after the one a roll writes with its seal
    /// (its contents never change once the seal is synced, and its mapping turns read-only).
    private var sealedSegment: UInt64?

    /// A new active segment: it is durable up to its header, and has no mark yet.
    mutating func startSegment(at end: LogEnd) {
        newest = nil
        durable = end
    }

    /// The roll sealing segment `index` wrote its last mark: later flushes write none there.
    mutating func seal(_ index: UInt64) {
        sealedSegment = index
    }

    /// True when the newest mark says exactly that everything before `end` is acknowledged and
    /// durable (writing it again would change nothing).
    func names(exactly end: LogEnd) -> Bool {
        guard let newest, end.segmentIndex == newest.segmentIndex else { return false }
        return newest.durableOffset == end.offset && newest.acknowledgedOffset == end.offset
    }

    /// The active segment is synced up to `end`; `acknowledged` (at or after it) is what the
    /// appenders have been told. Written before any appender is acknowledged.
    mutating func synced(_ end: LogEnd, acknowledged: LogEnd, in segment: Segment) throws(SystemError) {
        guard end.segmentIndex == segment.index, end.nextPosition >= durable.nextPosition else { return }
        durable = end
        try write(acknowledged: acknowledged, in: segment)
    }

    /// Appends up to `end` were acknowledged without a sync (`.periodic`, `.none`): a process
    /// crash must not let recovery cut them.
    mutating func acknowledged(_ end: LogEnd, in segment: Segment) throws(SystemError) {
        try write(acknowledged: end, in: segment)
    }

    private mutating func write(acknowledged: LogEnd, in segment: Segment) throws(SystemError) {
        guard sealedSegment != segment.index, segment.hasDurableMarks, segment.file.isWritable,
              acknowledged.segmentIndex == segment.index,
              durable.segmentIndex == segment.index, acknowledged.offset >= durable.offset,
              acknowledged.offset <= segment.frameAreaEnd
        else { return }
        let mark = DurableMark(sequence: (newest?.sequence ?? 0) + 1, segmentIndex: segment.index,
                               acknowledgedOffset: acknowledged.offset, durableOffset: durable.offset,
                               acknowledgedPosition: acknowledged.nextPosition, durablePosition: durable.nextPosition,
                               bootID: bootID)
        try segment.file.write(at: mark.slotOffset(segmentSize: segment.file.size), count: Format.durableMarkSlotBytes) {
            mark.encode(into: $0)
        }
        newest = mark
    }
}
