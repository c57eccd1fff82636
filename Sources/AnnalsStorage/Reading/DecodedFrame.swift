/// The metadata and payload of the LZ4-compressed records of one verified events frame,
/// decoded ahead of a long forward read on another core (``ReadAhead``).
///
/// A ``RecordedEvent`` finds its body here from its record's address alone: records start at
/// least 40 bytes apart (their header), so `(record - first record) / 32` names one slot per
/// record, and the slot holds where its body starts in the buffer (`-1`: not decoded here, a
/// raw or encrypted record, read or decrypted from the mapping as ever). An event then needs one field for it, a reference to this
/// (each field of an event costs every read that makes events, measurably).
///
/// Immutable once made. Each event with its body here keeps the buffer alive; the buffer goes
/// back to its pool when the last of them is gone.
@usableFromInline
final class DecodedFrame: @unchecked Sendable {
    // @unchecked: the buffer is written only by `decode`, before the instance is shared.
    /// The slots (`Int32` each), then the bodies.
    @usableFromInline let buffer: UnsafeMutableRawBufferPointer
    @usableFromInline let bodies: UnsafeMutableRawPointer
    private let pool: DecodedFramePool
    /// Where the frame's first record starts in the mapping.
    @usableFromInline let firstRecord: UnsafeRawPointer
    @usableFromInline let slotCount: Int

    @usableFromInline static let slotShift = 5
    /// Decoded bytes a frame must have to be decoded ahead, and may have at most.
    static let minimumBytes = 8 << 10
    static let maximumBytes = 64 << 20

    private init(byteCount: Int, slotCount: Int, firstRecord: UnsafeRawPointer, pool: DecodedFramePool) {
        let slotBytes = (slotCount * MemoryLayout<Int32>.size + 15) & ~15
        buffer = pool.take(slotBytes + byteCount)
        bodies = buffer.baseAddress! + slotBytes
        self.pool = pool
        self.firstRecord = firstRecord
        self.slotCount = slotCount
        buffer.baseAddress!.initializeMemory(as: Int32.self, repeating: -1, count: slotCount)
    }

    deinit { pool.give(buffer) }

    /// Decodes the compressed records of `frame` (verified) in `segment` into a buffer from
    /// `pool`, or returns nil when the frame starts with a raw record (frames of raw records are
    /// not worth a pass over their records; one that mixes both and starts raw is decoded by
    /// the reader), when its bodies are fewer than `minimumBytes` or more than `maximumBytes`,
    /// or when one does not decode to its stated size (the reader then decodes each record
    /// itself and reports that one as corrupt, exactly as without this).
    static func decode(_ frame: FrameHeader, in segment: Segment, pool: DecodedFramePool) -> DecodedFrame? {
        let mapping = segment.bytes
        guard FrameDecoder.record(at: frame.recordsOffset, in: mapping).isCompressed else { return nil }
        var byteCount = 0
        var cursor = frame.recordsOffset
        for _ in 0..<frame.eventCount {
            let layout = FrameDecoder.record(at: cursor, in: mapping)
            if layout.isCompressed { byteCount += layout.metadataBytes + layout.payloadBytes }
            cursor = layout.end
        }
        // Small frames are left to the reader (a buffer and a hand-over per frame would cost
        // more than decoding them), and so are absurd sizes (a damaged frame whose checksum
        // matched: its records are then decoded one at a time and refused by the reader).
        guard byteCount >= minimumBytes, byteCount <= maximumBytes else { return nil }
        let slotCount = (cursor - frame.recordsOffset) >> slotShift + 1
        let decoded = DecodedFrame(byteCount: byteCount, slotCount: slotCount, firstRecord: mapping.baseAddress! + frame.recordsOffset,
                                   pool: pool)
        let slots = decoded.buffer.baseAddress!.assumingMemoryBound(to: Int32.self)
        let decoder = LZ4PrefixDecoder.current
        var offset = 0
        cursor = frame.recordsOffset
        for _ in 0..<frame.eventCount {
            let layout = FrameDecoder.record(at: cursor, in: mapping)
            let slot = (cursor - frame.recordsOffset) >> slotShift
            cursor = layout.end
            guard layout.isCompressed else { continue }
            let target = decoded.bodies + offset
            let ok = segment.withDecodedBody(of: layout, decoder: decoder, sharedCopy: false) { body in
                if let source = body.baseAddress { target.copyMemory(from: source, byteCount: body.count) }
            }
            guard ok else { return nil }
            slots[slot] = Int32(offset)
            offset += layout.metadataBytes + layout.payloadBytes
        }
        return decoded
    }

    /// The decoded body of the record at `record` (of this frame), or nil when it has none here.
    @inlinable
    func body(ofRecordAt record: UnsafeRawPointer) -> UnsafeRawPointer? {
        let slot = (record - firstRecord) >> Self.slotShift
        guard slot >= 0, slot < slotCount else { return nil }
        let offset = buffer.baseAddress!.assumingMemoryBound(to: Int32.self)[slot]
        return offset < 0 ? nil : UnsafeRawPointer(bodies + Int(offset))
    }
}

/// Buffers for ``DecodedFrame``s, kept for reuse when their frame is freed: a frame of a few
/// hundred KiB allocated afresh is mapped, faulted in page by page and unmapped again, which
/// costs more than decoding it. Buffers are sized to what they hold (in 4 KiB steps), a reused
/// one is at most twice that, and the pool keeps at most `retainedBytes`; once its read has
/// ended (``close()``) it keeps nothing.
///
/// Thread safety: the free list is guarded by its own lock, held only to add or take one.
final class DecodedFramePool: Sendable {
    private let state = Locked<State>(State())
    /// Buffers no frame uses (owned by the pool while listed), and their bytes.
    private struct State: @unchecked Sendable {
        var free: [UnsafeMutableRawBufferPointer] = []
        var bytes = 0
        var closed = false
    }
    static let retainedBytes = 16 << 20
    private static let granule = 4 << 10

    /// A buffer of at least `byteCount` bytes.
    func take(_ byteCount: Int) -> UnsafeMutableRawBufferPointer {
        let size = (max(byteCount, 1) + Self.granule - 1) / Self.granule * Self.granule
        let reused = state.withLock { state -> UnsafeMutableRawBufferPointer? in
            var best: Int?
            for (index, buffer) in state.free.enumerated() where buffer.count >= size && buffer.count <= 2 * size {
                if best.map({ buffer.count < state.free[$0].count }) ?? true { best = index }
            }
            guard let best else { return nil }
            state.bytes -= state.free[best].count
            return state.free.remove(at: best)
        }
        return reused ?? .allocate(byteCount: size, alignment: 64)
    }

    /// Takes back a buffer (frees it when the pool holds enough or is closed).
    func give(_ buffer: UnsafeMutableRawBufferPointer) {
        let kept = state.withLock { state -> Bool in
            guard !state.closed, state.bytes + buffer.count <= Self.retainedBytes else { return false }
            state.free.append(buffer)
            state.bytes += buffer.count
            return true
        }
        if !kept { buffer.deallocate() }
    }

    /// Frees every kept buffer and keeps none from now on (the read is over: frames still held
    /// by events free their buffers when the events go).
    func close() {
        let buffers = state.withLock { state -> [UnsafeMutableRawBufferPointer] in
            state.closed = true
            defer { state.free = []; state.bytes = 0 }
            return state.free
        }
        for buffer in buffers { buffer.deallocate() }
    }

    deinit { close() }
}
