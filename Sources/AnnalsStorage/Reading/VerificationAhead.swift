#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Synchronization

/// Verifies, on another core, the frames a long forward read is about to return: the checksum
/// and record structure of each events frame (``Segment/verify(_:)``), in log order, a bounded
/// distance ahead of the reader. The reader skips its own check for a frame this has verified
/// and checks every other frame itself, so a damaged frame is reported by the reader exactly as
/// without it (this stops at the first frame that fails and verifies nothing after it).
///
/// What it trusts: bytes verified here and read by the reader a moment later are the same
/// mapped bytes (sealed segments and the committed part of the open one never change); a
/// disk that returns different bytes for the same page between two reads is not detected.
///
/// Progress is published through atomics (the reader's position, what is verified); the work
/// runs on a queue of its own (an overcommitting one: its waits never hold a thread of the
/// width-limited pool that runs Swift tasks) and ends at the end of the read, at the first
/// frame that fails, when the reader goes away, or when the reader has not moved for a while
/// (it then verifies the rest itself).
final class VerificationAhead: Sendable {
    /// Everything before (slot, offset), packed as `slot << 40 | offset`, is verified.
    private let verified = Atomic<UInt64>(0)
    /// Where the reader is, packed the same way.
    private let reader = Atomic<UInt64>(0)
    private let stopped = Atomic<Bool>(false)

    /// Reads shorter than this are not worth a second thread.
    static let minimumBytes = 2 << 20
    /// How far ahead of the reader it runs: at most into the next segment, and this far into it.
    static let leadBytes = 8 << 20
    private static let cores = BodyCompressor.cores

    private static func pack(_ slot: Int, _ offset: Int) -> UInt64 { UInt64(slot) << 40 | UInt64(offset) }

    private init() {}

    /// Starts verifying ahead of a read of `snapshot` from the frame at `start` in slot `slot`
    /// (the segment's first frame when nil), or returns nil when the read is too short or the
    /// machine has one core.
    static func start(snapshot: LogSnapshot, slot: Int, from start: (offset: Int, position: UInt64)?) -> VerificationAhead? {
        guard cores > 1, slot < snapshot.segments.count else { return nil }
        var bytes = -(start?.offset ?? 0)
        for segment in snapshot.segments[slot...] where segment.index <= snapshot.end.segmentIndex {
            bytes += snapshot.readLimit(of: segment)
            if bytes >= minimumBytes { break }
        }
        guard bytes >= minimumBytes else { return nil }
        let ahead = VerificationAhead()
        ahead.reader.store(pack(slot, start?.offset ?? 0), ordering: .relaxed)
        DispatchQueue(label: "annals.verification-ahead").async { ahead.run(snapshot: snapshot, slot: slot, from: start) }
        return ahead
    }

    /// True when the frame of slot `slot` that ends at `end` was verified here.
    @inline(__always)
    func hasVerified(slot: Int, through end: Int) -> Bool {
        verified.load(ordering: .acquiring) >= Self.pack(slot, end)
    }

    /// The reader reached `offset` in slot `slot` (this waits when it is too far ahead of it).
    @inline(__always)
    func readerReached(slot: Int, offset: Int) {
        reader.store(Self.pack(slot, offset), ordering: .relaxed)
    }

    /// Ends the work (the read is over).
    func stop() { stopped.store(true, ordering: .relaxed) }

    private func run(snapshot: LogSnapshot, slot first: Int, from start: (offset: Int, position: UInt64)?) {
        var slot = first
        var segment = snapshot.segments[slot]
        var walk = segment.walk(from: start, verification: .headers, limit: snapshot.readLimit(of: segment))
        while !stopped.load(ordering: .relaxed) {
            switch walk.next() {
            case .events(let frame):
                guard waitForReader(slot: slot, offset: frame.offset), (try? segment.verify(frame)) != nil else { return }
                verified.store(Self.pack(slot, frame.end), ordering: .releasing)
            case .dictionary:
                continue
            case .seal:
                slot += 1
                guard slot < snapshot.segments.count, snapshot.segments[slot].index <= snapshot.end.segmentIndex else { return }
                segment = snapshot.segments[slot]
                walk = segment.walk(verification: .headers, limit: snapshot.readLimit(of: segment))
            case .limit, .endOfData, .notAFrame, .corrupt:
                return
            }
        }
    }

    /// Waits while the frame at (slot, offset) is more than the lead ahead of the reader.
    /// False when the work should end: stopped, or the reader has not moved for 50 ms.
    private func waitForReader(slot: Int, offset: Int) -> Bool {
        var idle = 0
        var last = reader.load(ordering: .relaxed)
        while !stopped.load(ordering: .relaxed) {
            let position = reader.load(ordering: .relaxed)
            let readerSlot = Int(position >> 40), readerOffset = Int(position & (1 << 40 - 1))
            let ahead = slot == readerSlot ? offset - readerOffset > Self.leadBytes
                : slot > readerSlot + 1 || (slot == readerSlot + 1 && offset > Self.leadBytes)
            guard ahead else { return true }
            if position == last { idle += 1 } else { idle = 0 }
            last = position
            if idle >= 250 { return false }
            usleep(200)
        }
        return false
    }
}

/// Holds a ``VerificationAhead`` for a cursor and stops it when the cursor (and every copy of
/// it) is gone.
final class VerificationAheadToken: Sendable {
    let ahead: VerificationAhead
    init(_ ahead: VerificationAhead) { self.ahead = ahead }
    deinit { ahead.stop() }
}
