/// Writes the bytes of a compacted segment (see `format-spec.md`, "Compacted segments"): a
/// version-3 header naming the segment numbers it stands for, the dictionary frames its
/// compressed records need (copied unchanged), the kept frames (rewritten when events before
/// them went or a dictionary moved), and a seal frame. Compressed blocks are copied as they
/// are: they decode against the same dictionary bytes at a new offset.
enum CompactedSegmentEncoder {
    struct Output {
        var bytes: [UInt8]
        var header: SegmentHeader
        /// One index entry per events frame written, with the stream's name for hashing.
        var frames: [(stream: String, location: FrameLocation)]
    }

    /// Builds the file for `plans` (consecutive segments, oldest first) standing for segment
    /// numbers `numbers`, whose events run from `firstPosition` to `endPosition` (the next
    /// segment's first position).
    static func encode(
        _ plans: [SegmentPlan], numbers: ClosedRange<UInt64>, firstPosition: UInt64, endPosition: UInt64, createdAt: Int64
    ) -> Output {
        let size = Format.segmentHeaderBytes + plans.reduce(0) { $0 + $1.compactedBytes } + Format.sealFrameBytes
        var bytes = [UInt8](repeating: 0, count: size)
        let header = SegmentHeader(segmentIndex: numbers.lowerBound, lastSegmentIndex: numbers.upperBound,
                                   segmentSizeBytes: UInt64(size), firstPosition: firstPosition,
                                   createdAtNanoseconds: createdAt, isCompacted: true)
        var frames: [(stream: String, location: FrameLocation)] = []
        bytes.withUnsafeMutableBytes { buffer in
            header.encode(into: buffer)
            var offset = Format.segmentHeaderBytes
            // Dictionaries first, so every record's dictionary precedes it.
            var movedDictionaries: [[Int: Int]] = []
            for plan in plans {
                var moved: [Int: Int] = [:]
                for old in plan.dictionaries {
                    let source = plan.segment.bytes
                    let length = Format.aligned(Int(source.u32(old + FrameLayout.length)))
                    _ = buffer.copy(source.slice(old, length), to: offset)
                    moved[old] = offset
                    offset += length
                }
                movedDictionaries.append(moved)
            }
            for (slot, plan) in plans.enumerated() {
                for kept in plan.frames {
                    let location = writeFrame(kept, from: plan.segment, dictionaries: movedDictionaries[slot], into: buffer, at: offset)
                    frames.append((kept.stream, location))
                    offset += kept.keptBytes
                }
            }
            _ = FrameEncoder.writeSealFrame(into: buffer, at: offset, nextPosition: endPosition)
        }
        return Output(bytes: bytes, header: header, frames: frames)
    }

    /// Copies the kept events of one frame to `offset`, with a new header (first position and
    /// revision moved past the removed events), dictionary offsets rewritten and a new checksum.
    private static func writeFrame(
        _ kept: SegmentPlan.KeptFrame, from segment: Segment, dictionaries: [Int: Int],
        into buffer: UnsafeMutableRawBufferPointer, at offset: Int
    ) -> FrameLocation {
        let source = segment.bytes
        let frame = kept.header
        let prefix = Format.aligned(FrameLayout.streamName + frame.streamNameBytes)
        _ = buffer.copy(source.slice(frame.offset, prefix), to: offset)
        let recordsBytes = frame.offset + Format.aligned(frame.length) - kept.firstKeptOffset
        _ = buffer.copy(source.slice(kept.firstKeptOffset, recordsBytes), to: offset + prefix)
        // Padding of the source's last record may be absent from the source's length: zero it.
        let length = prefix + (frame.offset + frame.length - kept.firstKeptOffset)
        buffer.zero(offset + length, kept.keptBytes - length)
        let count = frame.eventCount - kept.firstKept
        var cursor = offset + prefix
        for _ in 0..<count {
            let layout = FrameDecoder.record(at: cursor, in: UnsafeRawBufferPointer(buffer))
            if layout.isCompressed {
                let old = Int(UnsafeRawBufferPointer(buffer).u32(layout.dictionaryOffsetField))
                if old != 0, let moved = dictionaries[old] { buffer.storeU32(UInt32(moved), at: layout.dictionaryOffsetField) }
            }
            cursor = layout.end
        }
        let firstPosition = frame.firstPosition + UInt64(kept.firstKept)
        let firstRevision = frame.firstRevision + UInt64(kept.firstKept)
        buffer.storeU32(UInt32(length), at: offset + FrameLayout.length)
        // A sealed file holds whole groups only: a kept frame needs no link to the next.
        buffer.storeU8(0, at: offset + FrameLayout.flags)
        buffer.storeU32(UInt32(count), at: offset + FrameLayout.eventCount)
        buffer.storeU64(firstPosition, at: offset + FrameLayout.firstPosition)
        buffer.storeU64(firstRevision, at: offset + FrameLayout.firstRevision)
        FrameEncoder.storeChecksum(ofFrameAt: offset, length: length, in: buffer)
        return FrameLocation(firstRevision: firstRevision, firstPosition: firstPosition, segmentIndex: 0,
                             offset: UInt32(offset), eventCount: UInt32(count))
    }

    /// Checks a built file the way a reader will before it replaces anything: header, every
    /// frame's checksum and records, dictionaries, increasing positions, the seal. A failure
    /// is a bug in compaction, and compaction stops with nothing replaced.
    static func check(_ bytes: UnsafeRawBufferPointer, path: String) -> CorruptionError? {
        let header: SegmentHeader
        do { header = try SegmentHeader.decode(bytes, file: path) } catch {
            return CorruptionError(file: path, offset: 0, reason: "\(error)")
        }
        guard header.isCompacted else { return CorruptionError(file: path, offset: SegmentHeaderLayout.flags, reason: "not a compacted segment") }
        var walk = FrameWalker(bytes: bytes, frameAreaEnd: bytes.count, firstPosition: header.firstPosition, isCompacted: true,
                               allowsCompression: true, verification: .checksumsAndRecords)
        while true {
            switch walk.next() {
            case .events, .dictionary:
                continue
            case .seal(let frame):
                return frame.end == bytes.count ? nil : CorruptionError(file: path, offset: frame.offset, reason: "seal frame does not end the file")
            case .endOfData(let offset), .limit(let offset):
                return CorruptionError(file: path, offset: offset, reason: "no seal frame")
            case .notAFrame(let offset, let reason), .corrupt(let offset, let reason):
                return CorruptionError(file: path, offset: offset, reason: reason)
            }
        }
    }
}
