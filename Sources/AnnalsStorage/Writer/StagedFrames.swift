/// Frames encoded by appends and not yet written to their segment file: one contiguous run of
/// the active segment, written with one `pwrite` by ``write()``.
///
/// Under ``Durability/fsyncBeforeAck`` no one reads a frame before the sync that makes it
/// durable, so a frame can wait here for the flush that syncs it: the flush writes every frame
/// staged so far in one call just before its sync, and the appenders' critical section is an
/// encoding into memory instead of a system call each. Everything that reads or syncs written
/// frames writes the staged ones first: the flush, a roll, close, a dictionary frame (its
/// compressor reads it back), and a write whose checks read recent events (an append condition;
/// caller-supplied event ids, when the stream's last frame is staged). Under the other modes
/// frames are revealed as soon as they are written, so each is written at once.
///
/// Part of ``WriterState``, guarded by the writer lock.
struct StagedFrames {
    /// Staged bytes beyond this are written before more are staged.
    static let limitBytes = 4 << 20

    private let buffer = FrameBuffer()
    /// The segment the staged frames belong to, and where in it they start.
    private var segment: Segment?
    private var fileOffset = 0

    var isEmpty: Bool { buffer.count == 0 }

    /// True when `frame` is staged (not yet in its file).
    func holds(_ frame: FrameLocation) -> Bool {
        guard let segment, !isEmpty else { return false }
        return frame.segmentIndex == segment.index && Int(frame.offset) >= fileOffset
    }

    /// Encodes a frame of at most `capacity` bytes with `encode` (it returns the frame's size)
    /// and stages it for `offset` of `segment`, right after the frames staged so far. Returns
    /// the size staged.
    ///
    /// - Throws: ``SystemError`` when writing the frames staged so far fails (they must go
    ///   first when the new one would pass ``limitBytes``); nothing is staged then.
    mutating func stage(
        in segment: Segment, at offset: Int, capacity: Int, _ encode: (UnsafeMutableRawBufferPointer) -> Int
    ) throws(SystemError) -> Int {
        if !isEmpty, buffer.count + capacity > Self.limitBytes { try write() }
        if isEmpty {
            self.segment = segment
            fileOffset = offset
        }
        precondition(segment === self.segment && offset == fileOffset + buffer.count,
                     "staged frames must be contiguous in one segment")
        return buffer.append(capacity: capacity, encode)
    }

    /// Writes every staged frame to its segment file (one `pwrite`), and forgets them.
    ///
    /// - Throws: ``SystemError`` when the write fails. The staged frames are forgotten all the
    ///   same: the caller fails the store, and recovery finds whatever reached the file.
    mutating func write() throws(SystemError) {
        guard let segment, !isEmpty else { return }
        defer {
            buffer.removeAll()
            self.segment = nil
        }
        try segment.file.write(buffer.bytes, at: fileOffset)
    }
}
