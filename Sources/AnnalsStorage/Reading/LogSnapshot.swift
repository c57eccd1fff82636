import CAnnalsSupport

/// What a reader sees: the segments and the visible end, copied together from ``LogView``.
/// Segments hold their mappings, so a snapshot stays readable whatever the writer does next.
struct LogSnapshot: Sendable {
    let segments: [Segment]
    let end: LogEnd

    /// Slot of the segment holding `position` (the last segment starting at or before it).
    func slot(for position: UInt64) -> Int {
        segments.lastIndex(atOrBefore: position, by: \.firstPosition)
    }

    /// How far frames may be read in `segment`: the visible end in the end segment, the whole
    /// file (up to its seal) before it.
    func readLimit(of segment: Segment) -> Int {
        segment.index == end.segmentIndex ? end.offset : segment.file.size
    }
}

extension Segment {
    /// Hints the CPU to load `count` bytes from `offset` (whole cache lines; a hint only, never
    /// read or checked).
    func prefetch(at offset: Int, count: Int = 64) {
        guard let base = bytes.baseAddress, offset >= 0 else { return }
        let end = min(bytes.count, offset + count)
        var line = offset
        while line < end {
            annals_prefetch(base + line)
            line += 64
        }
    }

    /// Checks a frame's checksum and record structure before any of its events is returned.
    func verify(_ frame: FrameHeader) throws(ReadError) {
        let bytes = self.bytes
        let stored = bytes.u32(frame.offset + FrameLayout.checksum)
        guard FrameDecoder.checksum(ofFrameAt: frame.offset, length: frame.length, in: bytes) == stored else {
            throw .corrupt(corruption(at: frame.offset, "frame checksum mismatch"))
        }
        if frame.kind == .events, let problem = validateRecords(of: frame) {
            throw .corrupt(corruption(at: problem.offset, problem.reason))
        }
    }

    /// The stream name of an events frame.
    func streamName(of frame: FrameHeader) -> String {
        String(decoding: bytes.slice(frame.offset + FrameLayout.streamName, frame.streamNameBytes), as: UTF8.self)
    }
}

extension RandomAccessCollection where Index == Int {
    /// Index of the last element whose `key` is at most `target` (0 when none is), for
    /// collections sorted by `key`: a bisection.
    func lastIndex<Key: Comparable>(atOrBefore target: Key, by key: (Element) -> Key) -> Int {
        var low = startIndex
        var high = endIndex - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if key(self[middle]) <= target { low = middle } else { high = middle - 1 }
        }
        return Swift.max(low, startIndex)
    }
}
