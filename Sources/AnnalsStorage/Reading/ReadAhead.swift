#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Synchronization

/// Works, on another core, on the frames a long forward read is about to return: it verifies
/// each events frame's checksum and record structure (``Segment/verify(_:)``) and decodes its
/// LZ4-compressed bodies (``DecodedFrame``), in log order, a bounded distance ahead of the
/// reader. Each frame is claimed by one of the two, through one atomic watermark; whoever
/// claims it verifies it, and the reader decodes the bodies of the frames it claimed when each
/// is read, as without this. Frames claimed here are handed to the reader in order; when the
/// reader had to wait for one, this leaves frames to the reader more often (``FrameShare``), so
/// both cores stay busy whichever of them is the slower. A reader that waited too long, or a
/// copy of the cursor that comes to a frame already handed over, verifies the frame itself: a
/// frame is then verified twice, never not at all; after a few such waits (a machine too busy
/// to give this a core) the reader does all the rest alone.
///
/// Damage is reported by the reader exactly as without this: a frame that fails verification
/// here is handed back to the reader, which verifies it itself, and this stops; a body that
/// does not decode here is decoded again by the reader when read.
///
/// What it trusts: bytes verified here and read by the reader a moment later are the same
/// mapped bytes (sealed segments and the committed part of the open one never change); a
/// disk that returns different bytes for the same page between two reads is not detected.
///
/// State: the watermark, the reader's position and the flags are atomics; finished frames wait
/// in `finished`, guarded by its own lock (held only to add or take one). The work runs on a
/// queue of its own (its waits never hold a thread of the width-limited pool that runs Swift
/// tasks) and ends at the end of the read, at the first frame that fails, when the reader goes
/// away, or when the reader has not moved for a while. Every frame claimed here is handed over
/// before the work ends, so the reader never waits for one that will not come.
final class ReadAhead: Sendable {
    /// What the reader does with a frame (``take(slot:frame:)``).
    enum Claim {
        /// Verify it and decode its bodies yourself.
        case reader
        /// Verified here; the compressed bodies are in the decoded frame (nil: not decoded here,
        /// the reader decodes each when it is read: the frame starts with a raw record, its
        /// bodies are too few or too many bytes, or one does not decode, which the reader then
        /// reports).
        case verified(DecodedFrame?)
    }

    /// Every frame that starts before this (packed `slot << 40 | offset`) is claimed.
    private let claimed: Atomic<UInt64>
    /// Where the reader is, packed the same way.
    private let reader: Atomic<UInt64>
    /// Every frame that ends at or before this is decided here: handed over, left to the
    /// reader, or found claimed by it (`UInt64.max` once the work has ended). A frame that was
    /// decided before the reader looked but is not among the finished ones will not come (it
    /// was taken by another copy of the cursor): the reader verifies it itself.
    private let decided = Atomic<UInt64>(0)
    private let stopped = Atomic<Bool>(false)
    /// The reader waited for a frame claimed here since this last looked.
    private let readerWaited = Atomic<Bool>(false)
    /// Waits of the reader that reached `longestWait`.
    private let timedOutWaits = Atomic<Int>(0)
    /// The reader sleeps on `wakeReader` until a frame is handed over or decided.
    private let readerAsleep = Atomic<Bool>(false)
    private let wakeReader = DispatchSemaphore(value: 0)
    /// Frames claimed here and finished, in log order, for the reader to take.
    private let finished = Locked<FinishedFrames>(FinishedFrames())
    /// Buffers of decoded frames, reused (see ``DecodedFramePool``).
    private let pool = DecodedFramePool()

    private struct FinishedFrames {
        var frames: [(key: UInt64, claim: Claim)] = []
        var head = 0
    }

    /// Reads shorter than this are not worth a second thread.
    static let minimumBytes = 2 << 20
    /// The longest the reader waits for a frame claimed here before doing it itself (ns), and
    /// how many such waits end the work here.
    static let longestWait: UInt64 = 2_000_000
    static let timedOutWaitsBeforeStopping = 8
    /// How far ahead of the reader it runs: at most into the next segment, and this far into it.
    static let leadBytes = 2 << 20
    private static let cores = BodyCompressor.cores

    private static func pack(_ slot: Int, _ offset: Int) -> UInt64 { UInt64(slot) << 40 | UInt64(offset) }

    private init(start: UInt64) {
        claimed = Atomic(start)
        reader = Atomic(start)
    }

    /// Starts working ahead of a read of `snapshot` from the frame at `start` in slot `slot`
    /// (the segment's first frame when nil), leaving alone the frames that end before position
    /// `first` (the reader skips them), or returns nil when the read is too short or the
    /// machine has one core.
    static func start(snapshot: LogSnapshot, slot: Int, from start: (offset: Int, position: UInt64)?, skippingBefore first: UInt64) -> ReadAhead? {
        guard cores > 1, slot < snapshot.segments.count else { return nil }
        var bytes = -(start?.offset ?? 0)
        for segment in snapshot.segments[slot...] where segment.index <= snapshot.end.segmentIndex {
            bytes += snapshot.readLimit(of: segment)
            if bytes >= minimumBytes { break }
        }
        guard bytes >= minimumBytes else { return nil }
        let ahead = ReadAhead(start: pack(slot, start?.offset ?? 0))
        DispatchQueue(label: "annals.read-ahead").async { ahead.run(snapshot: snapshot, slot: slot, from: start, skippingBefore: first) }
        return ahead
    }

    /// Claims the events frame `frame` of slot `slot` for the reader, or takes it from here
    /// when it was claimed here, waiting while it is being worked on (that costs the reader
    /// less than doing the work again), for at most `longestWait`. The reader calls this for its
    /// frames in log order; a copy of the cursor that comes to a frame already handed over
    /// verifies it itself.
    func take(slot: Int, frame: FrameHeader) -> Claim {
        let key = Self.pack(slot, frame.offset)
        reader.store(key, ordering: .relaxed)
        var waitingSince: UInt64 = 0
        while true {
            let watermark = claimed.load(ordering: .acquiring)
            if watermark <= key {
                if claimed.compareExchange(expected: watermark, desired: Self.pack(slot, frame.end), ordering: .acquiringAndReleasing).exchanged {
                    return .reader
                }
                continue
            }
            // Loaded before the finished frames are looked at: a frame is handed over before it
            // counts as decided, so a frame decided but not found will not come.
            let decidedEnd = decided.load(ordering: .acquiring)
            let taken: Claim? = finished.withLock { finished in
                while finished.head < finished.frames.count, finished.frames[finished.head].key < key { finished.head += 1 }
                guard finished.head < finished.frames.count, finished.frames[finished.head].key == key else { return nil }
                let claim = finished.frames[finished.head].claim
                finished.head += 1
                if finished.head == finished.frames.count || finished.head >= 64 {
                    finished.frames.removeFirst(finished.head)
                    finished.head = 0
                }
                return claim
            }
            if let taken { return taken }
            if decidedEnd >= Self.pack(slot, frame.end) { return .reader }
            let now = DispatchTime.now().uptimeNanoseconds
            if waitingSince == 0 {
                waitingSince = now
                readerWaited.store(true, ordering: .relaxed)
            } else if now - waitingSince > Self.longestWait {
                // This thread did not get a core for that long (a loaded machine): the reader
                // does the frame itself, and after a few such frames all of them (the work here
                // stops).
                if timedOutWaits.add(1, ordering: .relaxed).newValue >= Self.timedOutWaitsBeforeStopping { stop() }
                return .reader
            }
            // Asleep, not spinning: the core goes to this thread's work. Said before the next
            // look at the finished frames, so a frame handed over after it wakes the reader.
            readerAsleep.store(true, ordering: .sequentiallyConsistent)
            if finished.withLock({ $0.frames.last.map { $0.key >= key } ?? false }) || decided.load(ordering: .acquiring) >= Self.pack(slot, frame.end) {
                readerAsleep.store(false, ordering: .relaxed)
                continue
            }
            _ = wakeReader.wait(timeout: .now() + .nanoseconds(Int(Self.longestWait)))
            readerAsleep.store(false, ordering: .relaxed)
        }
    }

    /// Ends the work (the read is over) and frees the buffers kept for reuse.
    func stop() {
        stopped.store(true, ordering: .relaxed)
        pool.close()
    }

    private func run(snapshot: LogSnapshot, slot firstSlot: Int, from start: (offset: Int, position: UInt64)?, skippingBefore first: UInt64) {
        var slot = firstSlot
        var segment = snapshot.segments[slot]
        var walk = segment.walk(from: start, verification: .headers, limit: snapshot.readLimit(of: segment))
        var share = FrameShare()
        defer {
            decided.store(.max, ordering: .releasing)
            wakeReaderIfAsleep()
        }
        while !isStopped() {
            switch walk.next() {
            case .events(let frame):
                guard frame.nextPosition > first else { continue }
                guard waitForReader(slot: slot, offset: frame.offset) else { return }
                let key = Self.pack(slot, frame.offset), end = Self.pack(slot, frame.end)
                if share.leavesToReader(readerWaited: readerWaited.exchange(false, ordering: .relaxed)) {
                    // Handed over before the watermark passes it, so the reader never waits for it.
                    publish(key, .reader)
                    _ = claim(key, end)
                    decided.store(end, ordering: .releasing)
                    continue
                }
                guard claim(key, end) else {
                    decided.store(end, ordering: .releasing)
                    continue
                }
                guard (try? segment.verify(frame)) != nil else {
                    publish(key, .reader)
                    return
                }
                publish(key, .verified(DecodedFrame.decode(frame, in: segment, pool: pool)))
                decided.store(end, ordering: .releasing)
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

    /// Which frames are left to the reader: one in every `period`, where the period shrinks
    /// each time the reader had to wait for a frame claimed here (this core is the slower: the
    /// reader should take more) and grows after the reader went two periods without waiting
    /// (the reader, or its consumer, is the slower: this should take more). It starts by taking
    /// every frame.
    struct FrameShare {
        static let longest = 64
        private(set) var period = longest
        private var sinceLeft = 0
        private var sinceWait = 0

        /// Whether the next frame is the reader's, given whether the reader waited since the last.
        mutating func leavesToReader(readerWaited: Bool) -> Bool {
            if readerWaited {
                period = max(2, period - 1)
                sinceWait = 0
                sinceLeft = 0
                return true
            }
            sinceWait += 1
            if sinceWait >= 2 * period, period < Self.longest {
                period += 1
                sinceWait = 0
            }
            sinceLeft += 1
            guard period < Self.longest, sinceLeft >= period else { return false }
            sinceLeft = 0
            return true
        }
    }

    private func isStopped() -> Bool { stopped.load(ordering: .relaxed) }

    /// Claims the frame at `key` (ending at `end`) here: false when the reader claimed it first.
    private func claim(_ key: UInt64, _ end: UInt64) -> Bool {
        var watermark = claimed.load(ordering: .acquiring)
        while watermark <= key {
            let (exchanged, found) = claimed.compareExchange(expected: watermark, desired: end, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            watermark = found
        }
        return false
    }

    private func publish(_ key: UInt64, _ claim: Claim) {
        finished.withLock { $0.frames.append((key, claim)) }
        wakeReaderIfAsleep()
    }

    private func wakeReaderIfAsleep() {
        if readerAsleep.exchange(false, ordering: .sequentiallyConsistent) { wakeReader.signal() }
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

/// Holds a ``ReadAhead`` for a cursor and stops it when the cursor (and every copy of it) is
/// gone.
final class ReadAheadToken: Sendable {
    let ahead: ReadAhead
    init(_ ahead: ReadAhead) { self.ahead = ahead }
    deinit { ahead.stop() }
}
