/// The one walk over a segment's frames (`format-spec.md` §3.4): from a frame boundary, frame by
/// frame, checking what its ``Verification`` asks, following the expected global position (a
/// compacted segment may skip forward) and remembering the dictionary frames it passes. Recovery,
/// the cursors, verification, compaction planning and checking, and statistics are built on it;
/// what a consumer does at the end of the walk (a torn tail, corruption, a missing seal) is its
/// own decision.
///
/// A walk never reads outside the segment's frame area, and every length it follows was checked
/// against the bytes it lies in first. It keeps its ``Segment`` (and so the mapping its bytes
/// point into) alive; the frames it reads are sealed or already published, so it can move
/// between threads with the cursor that holds it.
struct FrameWalker: @unchecked Sendable {
    /// How much of each frame is checked before it is handed out.
    enum Verification {
        /// Header fields only: for finding frames. Whatever a consumer returns from such a frame
        /// it verifies first (``Segment/verify(_:)``).
        case headers
        /// The checksum and the kind's fields.
        case checksums
        /// The checksum, the kind's fields and, for an events frame, its records (lengths,
        /// flags, dictionary references).
        case checksumsAndRecords
    }

    /// What the walk found at its current offset.
    enum Step {
        /// A sound events frame; the walk moved past it.
        case events(FrameHeader)
        /// A sound dictionary frame; the walk moved past it and remembers it.
        case dictionary(FrameHeader)
        /// The seal frame: the walk ends after it.
        case seal(FrameHeader)
        /// Zero bytes where the next frame would start: the walk ends here.
        case endOfData(offset: Int)
        /// The walk reached its limit: `offset` is where it stopped (past the limit when the
        /// last frame ran over it).
        case limit(offset: Int)
        /// Bytes that are not a frame and that no checksum vouches for (what a torn write can
        /// leave, or damage): the walk ends here.
        case notAFrame(offset: Int, reason: String)
        /// A frame whose checksum matches but whose fields or records are wrong, or whose
        /// position does not continue the walk: corruption wherever it is. The walk ends here.
        case corrupt(offset: Int, reason: String)
    }

    let bytes: UnsafeRawBufferPointer
    let verification: Verification
    /// The segment whose mapping `bytes` is (nil for a file that is not a segment yet).
    private let segment: Segment?
    /// Where frames must end (the segment's frame area).
    private let frameAreaEnd: Int
    private let isCompacted: Bool
    private let allowsCompression: Bool
    /// Walk only up to this offset, exclusive (nil: to the end of data or the seal).
    private let limit: Int?
    /// Whether a frame whose position does not continue the walk ends it (`.corrupt`). Off, the
    /// walk follows each frame's own positions and the consumer checks them (verification,
    /// which reports a problem and goes on).
    private let checksPositions: Bool
    /// Checks a record's dictionary reference (nil: the dictionary frames this walk passed).
    private let isDictionary: (@Sendable (Int) -> Bool)?

    /// Offset of the next frame.
    private(set) var offset: Int
    /// The global position the next events frame must start at.
    private(set) var expectedPosition: UInt64
    /// Offsets of the dictionary frames passed, in order.
    private(set) var dictionaries: [Int] = []
    /// Offset of the frame handed out last (events or dictionary), if any.
    private var previousOffset: Int?

    /// The frame handed out last (events or dictionary), if any, read again by its header.
    var previous: FrameHeader? {
        guard let previousOffset, case .frame(let frame) = FrameDecoder.probe(bytes, at: previousOffset, verifyChecksum: false,
                                                                            limit: frameAreaEnd) else { return nil }
        return frame
    }

    /// A walk over `segment` from `start` (a frame boundary and the position expected there;
    /// default: its first frame).
    init(_ segment: Segment, from start: (offset: Int, position: UInt64)? = nil, verification: Verification,
         limit: Int? = nil, checksPositions: Bool = true) {
        self.init(bytes: segment.bytes, frameAreaEnd: segment.frameAreaEnd, firstPosition: segment.firstPosition,
                  isCompacted: segment.isCompacted, allowsCompression: segment.allowsCompression,
                  from: start, verification: verification, limit: limit, checksPositions: checksPositions,
                  isDictionary: { segment.hasDictionary(at: $0) }, segment: segment)
    }

    /// A walk over the bytes of a segment file that is not (yet) a ``Segment``: compaction's
    /// output, checked before it replaces anything.
    init(bytes: UnsafeRawBufferPointer, frameAreaEnd: Int, firstPosition: UInt64, isCompacted: Bool,
         allowsCompression: Bool, from start: (offset: Int, position: UInt64)? = nil, verification: Verification,
         limit: Int? = nil, checksPositions: Bool = true, isDictionary: (@Sendable (Int) -> Bool)? = nil,
         segment: Segment? = nil) {
        self.bytes = bytes
        self.checksPositions = checksPositions
        self.segment = segment
        self.frameAreaEnd = frameAreaEnd
        self.isCompacted = isCompacted
        self.allowsCompression = allowsCompression
        self.verification = verification
        self.limit = limit
        self.isDictionary = isDictionary
        offset = start?.offset ?? Format.segmentHeaderBytes
        expectedPosition = start?.position ?? firstPosition
    }

    /// True when a frame starting at `position` may follow data that ended at `expected`:
    /// exactly there, or (in a compacted segment) further on, past events compaction removed.
    func accepts(position: UInt64) -> Bool {
        position == expectedPosition || (isCompacted && position > expectedPosition)
    }

    /// The next step. A step that ends the walk leaves it where it is: asking again gives the
    /// same step.
    mutating func next() -> Step {
        if let limit, offset >= limit { return .limit(offset: offset) }
        let probe = FrameDecoder.probe(bytes, at: offset, verifyChecksum: verification != .headers, limit: frameAreaEnd)
        let frame: FrameHeader
        switch probe {
        case .frame(let found): frame = found
        case .endOfData: return .endOfData(offset: offset)
        case .invalid(let reason): return .notAFrame(offset: offset, reason: reason)
        case .malformed(let reason): return .corrupt(offset: offset, reason: reason)
        }
        if frame.kind == .dictionary, !allowsCompression {
            let reason = "dictionary frame in a version-1 segment"
            return verification == .headers ? .notAFrame(offset: offset, reason: reason) : .corrupt(offset: offset, reason: reason)
        }
        guard !checksPositions || accepts(position: frame.firstPosition) else {
            return .corrupt(offset: offset, reason: "\(frame.kind) frame at position \(frame.firstPosition), expected \(expectedPosition)")
        }
        switch frame.kind {
        case .seal:
            return .seal(frame)
        case .dictionary:
            dictionaries.append(offset)
            previousOffset = offset
            offset = frame.end
            return .dictionary(frame)
        case .events:
            if verification == .checksumsAndRecords {
                let passed = dictionaries
                let check = isDictionary ?? { passed.contains($0) }
                if let problem = FrameDecoder.validateRecords(of: frame, in: bytes, allowsCompression: allowsCompression,
                                                              isDictionary: check) {
                    return .corrupt(offset: problem.offset, reason: problem.reason)
                }
            }
            previousOffset = offset
            expectedPosition = frame.nextPosition
            offset = frame.end
            return .events(frame)
        }
    }

}

extension Segment {
    /// A walk over this segment's frames (see ``FrameWalker``).
    func walk(from start: (offset: Int, position: UInt64)? = nil, verification: FrameWalker.Verification,
              limit: Int? = nil, checksPositions: Bool = true) -> FrameWalker {
        FrameWalker(self, from: start, verification: verification, limit: limit, checksPositions: checksPositions)
    }
}
