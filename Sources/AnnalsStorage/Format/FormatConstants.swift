/// Numbers that define the on-disk format. `format-spec.md` is the reference; this file and
/// the spec change together. Field offsets and structure sizes are in `FieldLayout.swift`.
enum Format {
    /// The newest format version this code reads and writes. Version 2 added dictionary
    /// frames and LZ4-compressed event records; version 3 added compacted segments; version 4
    /// added durable marks (which version-3 readers read past, but version-3 writers would
    /// overwrite: the checkpoint's version keeps them out); version 5 added archived segments
    /// (the `archive` file, which older readers do not know: they would read the store
    /// without its archived part, so the checkpoint's minimum reader version keeps them out).
    /// Version 6 added tags in event records (record flag bit 1) and multi-stream groups (frame
    /// flag bit 0), which older readers take for corruption: checkpoints of a store with a
    /// tagged record or a group name version 6.
    /// Version 7 added encrypted records (record flag bit 2) and the `keys` file: checkpoints
    /// of a store with an encrypted record name version 7.
    /// Files of every earlier version read unchanged.
    static let version: UInt16 = 7
    /// The minimum reader version of a store with encrypted records (`format-spec.md` §3.9).
    static let encryptedRecordsVersion: UInt16 = 7
    /// The minimum reader version of a store with tagged records (`format-spec.md` §3.2).
    static let taggedRecordsVersion: UInt16 = 6
    /// The minimum reader version of a store with archived segments (`format-spec.md` §1A).
    static let archiveVersion: UInt16 = 5
    /// The version written into the header of a segment the log writer creates: its contents
    /// are version 2 (frames with gapless positions), which version-2 readers read.
    static let appendSegmentVersion: UInt16 = 2
    /// The version of a segment written by compaction: positions may skip the events it removed.
    static let compactedSegmentVersion: UInt16 = 3
    /// Segment header flag: the file was written by compaction (version 3).
    static let segmentCompactedFlag: UInt32 = 1
    /// Segment header flag: the file ends with a durable-mark area (§3.8). Set on every
    /// segment the log writer creates; older readers ignore it.
    static let segmentDurableMarksFlag: UInt32 = 2

    // MARK: Durable marks (the last 128 bytes of a segment with the flag above)
    static let durableMarkAreaBytes = 128
    static let durableMarkSlotBytes = DurableMarkLayout.size
    static let durableMarkMagic: [UInt8] = Array("ANMK".utf8)

    // MARK: Segment header (64 bytes at offset 0 of every segment file)
    static let segmentMagic: [UInt8] = Array("ANNALSSG".utf8)
    static let segmentHeaderBytes = SegmentHeaderLayout.size

    // MARK: Frames
    /// Every frame starts at a multiple of this.
    static let frameAlignment = 8
    /// Fixed part of a frame before the stream name.
    static let frameHeaderBytes = FrameLayout.size
    /// A seal frame is a bare frame header.
    static let sealFrameBytes = FrameLayout.size
    /// Fixed part of an event record before its type name.
    static let eventHeaderBytes = RecordLayout.size

    enum FrameKind: UInt8 {
        /// One or more events of one stream.
        case events = 1
        /// The last frame of a segment: no more frames follow in this file.
        case seal = 2
        /// An LZ4 dictionary that later compressed records of the same segment name by offset.
        case dictionary = 3
    }

    // MARK: Compression
    /// Event record flag: the metadata and payload are stored as one LZ4 block.
    static let recordCompressedFlag: UInt16 = 1
    /// Event record flag: a tag block follows the type name (§3.2, version 6).
    static let recordTaggedFlag: UInt16 = 2
    /// Event record flag: the body is AES-256-GCM encrypted (§3.9, version 7); with the
    /// compressed flag too, the plaintext is an LZ4 block without a dictionary.
    static let recordEncryptedFlag: UInt16 = 4
    /// Events frame flag: the next events frame belongs to the same atomic append (§3.1,
    /// version 6); the group's last frame has it clear.
    static let frameContinuedFlag: UInt8 = 1
    /// Bytes before the LZ4 block of a compressed record: the u32 dictionary frame offset.
    static let compressedBodyHeaderBytes = CompressedBodyLayout.size
    /// Largest dictionary a dictionary frame may carry (LZ4 looks back at most 64 KiB).
    static let maximumDictionaryBytes = 64 * 1024
    /// Smallest dictionary worth writing; smaller segments store events raw.
    static let minimumDictionaryBytes = 1024

    // MARK: Key store (the `keys` file, §1B)
    static let keyStoreMagic: [UInt8] = Array("ANNALSKY".utf8)
    static let keyStoreVersion: UInt16 = 1
    /// Key store flag: every record's body is encrypted (under the store key unless it names a subject).
    static let keyStoreEncryptsEverythingFlag: UInt16 = 1

    // MARK: Checkpoint (the `checkpoint` file)
    static let checkpointMagic: [UInt8] = Array("ANNALSCP".utf8)
    static let checkpointBytes = CheckpointLayout.size

    @inline(__always)
    static func aligned(_ value: Int) -> Int { (value + frameAlignment - 1) & ~(frameAlignment - 1) }
}
