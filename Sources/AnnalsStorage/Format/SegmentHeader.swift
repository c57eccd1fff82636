/// The 64-byte header at the start of every segment file (see `format-spec.md`, "Segment
/// header"). Written once when the segment is created; never changed afterwards.
struct SegmentHeader: Sendable, Equatable {
    var formatVersion: UInt16 = Format.appendSegmentVersion
    /// The segment's sequence number; also its file name.
    var segmentIndex: UInt64
    /// The last segment number the file stands for: itself, or for a compacted file that
    /// merged several segments, the last of them (their numbers have no file of their own).
    var lastSegmentIndex: UInt64
    /// The file's size: the space frames may use is this minus the header.
    var segmentSizeBytes: UInt64
    /// Global position of the first event this segment holds (or would hold).
    var firstPosition: UInt64
    /// When the segment was created, nanoseconds since the Unix epoch.
    var createdAtNanoseconds: Int64
    /// Written by compaction: sealed from birth, positions may skip removed events.
    var isCompacted: Bool
    /// The file ends with a durable-mark area (§3.8): frames end before it. Set on every
    /// segment the log writer creates; never on a compacted one.
    var hasDurableMarks: Bool

    init(
        formatVersion: UInt16 = Format.appendSegmentVersion, segmentIndex: UInt64, lastSegmentIndex: UInt64? = nil,
        segmentSizeBytes: UInt64, firstPosition: UInt64, createdAtNanoseconds: Int64, isCompacted: Bool = false,
        hasDurableMarks: Bool = false
    ) {
        self.formatVersion = isCompacted ? Format.compactedSegmentVersion : formatVersion
        self.segmentIndex = segmentIndex
        self.lastSegmentIndex = lastSegmentIndex ?? segmentIndex
        self.segmentSizeBytes = segmentSizeBytes
        self.firstPosition = firstPosition
        self.createdAtNanoseconds = createdAtNanoseconds
        self.isCompacted = isCompacted
        self.hasDurableMarks = hasDurableMarks && !isCompacted
    }

    func encode(into buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count >= Format.segmentHeaderBytes)
        buffer.zero(0, Format.segmentHeaderBytes)
        Format.segmentMagic.withUnsafeBytes { _ = buffer.copy($0, to: SegmentHeaderLayout.magic) }
        buffer.storeU16(formatVersion, at: SegmentHeaderLayout.formatVersion)
        buffer.storeU16(UInt16(Format.segmentHeaderBytes), at: SegmentHeaderLayout.headerSize)
        buffer.storeU32((isCompacted ? Format.segmentCompactedFlag : 0) | (hasDurableMarks ? Format.segmentDurableMarksFlag : 0),
                        at: SegmentHeaderLayout.flags)
        buffer.storeU64(segmentIndex, at: SegmentHeaderLayout.segmentIndex)
        buffer.storeU64(segmentSizeBytes, at: SegmentHeaderLayout.segmentSize)
        buffer.storeU64(firstPosition, at: SegmentHeaderLayout.firstPosition)
        buffer.storeI64(createdAtNanoseconds, at: SegmentHeaderLayout.createdAt)
        if isCompacted { buffer.storeU64(lastSegmentIndex, at: SegmentHeaderLayout.lastSegmentIndex) }
        let checksum = CRC32C.checksum(UnsafeRawBufferPointer(buffer).slice(0, SegmentHeaderLayout.headerChecksum))
        buffer.storeU32(checksum, at: SegmentHeaderLayout.headerChecksum)
    }

    /// Why a header could not be read (the format layer's own error; the layers above turn it
    /// into theirs).
    enum DecodeError: Error, CustomStringConvertible {
        /// The header fails a check.
        case corrupt(CorruptionError)
        /// The header says a format version this code does not read.
        case unsupportedVersion(file: String, found: Int)

        var description: String {
            switch self {
            case .corrupt(let error): return error.description
            case .unsupportedVersion(let file, let found):
                return "\(file) has format version \(found); this build supports up to \(Format.version)"
            }
        }
    }

    /// Reads and checks a header: magic, checksum, version, sizes.
    static func decode(_ bytes: UnsafeRawBufferPointer, file: String) throws(DecodeError) -> SegmentHeader {
        func corrupt(_ reason: String) -> DecodeError {
            .corrupt(CorruptionError(file: file, offset: 0, reason: reason))
        }
        guard bytes.fits(0, Format.segmentHeaderBytes) else { throw corrupt("file shorter than a segment header") }
        guard bytes.slice(SegmentHeaderLayout.magic, Format.segmentMagic.count).elementsEqual(Format.segmentMagic) else {
            throw corrupt("bad segment magic")
        }
        let stored = bytes.u32(SegmentHeaderLayout.headerChecksum)
        guard CRC32C.checksum(bytes.slice(0, SegmentHeaderLayout.headerChecksum)) == stored else {
            throw corrupt("segment header checksum mismatch")
        }
        let version = bytes.u16(SegmentHeaderLayout.formatVersion)
        guard version >= 1 && version <= Format.version else {
            throw .unsupportedVersion(file: file, found: Int(version))
        }
        guard Int(bytes.u16(SegmentHeaderLayout.headerSize)) == Format.segmentHeaderBytes else { throw corrupt("unexpected header size") }
        let flags = bytes.u32(SegmentHeaderLayout.flags)
        let compacted = version >= Format.compactedSegmentVersion && flags & Format.segmentCompactedFlag != 0
        let marked = version >= Format.appendSegmentVersion && flags & Format.segmentDurableMarksFlag != 0
        let header = SegmentHeader(
            formatVersion: version,
            segmentIndex: bytes.u64(SegmentHeaderLayout.segmentIndex),
            lastSegmentIndex: compacted ? bytes.u64(SegmentHeaderLayout.lastSegmentIndex) : nil,
            segmentSizeBytes: bytes.u64(SegmentHeaderLayout.segmentSize),
            firstPosition: bytes.u64(SegmentHeaderLayout.firstPosition),
            createdAtNanoseconds: bytes.i64(SegmentHeaderLayout.createdAt),
            isCompacted: compacted,
            hasDurableMarks: marked && !compacted
        )
        guard header.lastSegmentIndex >= header.segmentIndex else {
            throw corrupt("header covers segments \(header.segmentIndex) to \(header.lastSegmentIndex)")
        }
        guard header.segmentSizeBytes == UInt64(bytes.count) else {
            throw corrupt("header says \(header.segmentSizeBytes) bytes but the file has \(bytes.count)")
        }
        guard !header.hasDurableMarks || bytes.count >= Format.segmentHeaderBytes + Format.sealFrameBytes + Format.durableMarkAreaBytes else {
            throw corrupt("segment of \(bytes.count) bytes is too small for its durable-mark area")
        }
        return header
    }
}
