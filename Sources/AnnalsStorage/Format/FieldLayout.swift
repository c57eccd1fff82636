/// Where every fixed field of the on-disk structures sits: one caseless enum per table of
/// `format-spec.md` with columns `offset | size | type | field | meaning`, a `static let` per
/// field giving its byte offset from the start of the structure (named as the table's field
/// column), `fields` listing the table's fixed-size rows in order, and `size`, the structure's
/// fixed size. Readers and writers name fields through these constants instead of numbers;
/// `FieldLayoutTests` reads the spec's tables and holds every offset and size here to them.
///
/// A field whose size the spec gives as a variable (`n`, `t`, …) is named by its offset alone
/// and is not in `fields`. The `$retention` payload and the snapshot metadata (§7A, given in
/// prose there) are named here too; the test checks only that their fields are contiguous.

/// One fixed-size field of a spec table: its name (the table's field column), offset and size
/// in bytes.
struct FieldSpec: Sendable, Equatable, CustomStringConvertible {
    let name: String
    let offset: Int
    let size: Int

    init(_ name: String, at offset: Int, size: Int) {
        self.name = name
        self.offset = offset
        self.size = size
    }

    var description: String { "\(name) (offset \(offset), size \(size))" }
}

/// §2.1: the segment header at offset 0 of every segment file.
enum SegmentHeaderLayout {
    static let magic = 0
    static let formatVersion = 8
    static let headerSize = 10
    static let flags = 12
    static let segmentIndex = 16
    static let segmentSize = 24
    static let firstPosition = 32
    static let createdAt = 40
    static let lastSegmentIndex = 48
    static let reserved = 56
    /// CRC-32C of the bytes before it.
    static let headerChecksum = 60
    static let size = 64

    static let fields: [FieldSpec] = [
        FieldSpec("magic", at: magic, size: 8),
        FieldSpec("formatVersion", at: formatVersion, size: 2),
        FieldSpec("headerSize", at: headerSize, size: 2),
        FieldSpec("flags", at: flags, size: 4),
        FieldSpec("segmentIndex", at: segmentIndex, size: 8),
        FieldSpec("segmentSize", at: segmentSize, size: 8),
        FieldSpec("firstPosition", at: firstPosition, size: 8),
        FieldSpec("createdAt", at: createdAt, size: 8),
        FieldSpec("lastSegmentIndex", at: lastSegmentIndex, size: 8),
        FieldSpec("reserved", at: reserved, size: 4),
        FieldSpec("headerChecksum", at: headerChecksum, size: 4),
    ]
}

/// §2.2: one slot of the durable-mark area, from the slot's start.
enum DurableMarkLayout {
    /// CRC-32C of the slot's bytes from `magic` on.
    static let checksum = 0
    static let magic = 4
    static let sequence = 8
    static let segmentIndex = 16
    static let acknowledgedOffset = 24
    static let durableOffset = 28
    static let acknowledgedPosition = 32
    static let durablePosition = 40
    static let bootID = 48
    static let size = 64

    static let fields: [FieldSpec] = [
        FieldSpec("checksum", at: checksum, size: 4),
        FieldSpec("magic", at: magic, size: 4),
        FieldSpec("sequence", at: sequence, size: 8),
        FieldSpec("segmentIndex", at: segmentIndex, size: 8),
        FieldSpec("acknowledgedOffset", at: acknowledgedOffset, size: 4),
        FieldSpec("durableOffset", at: durableOffset, size: 4),
        FieldSpec("acknowledgedPosition", at: acknowledgedPosition, size: 8),
        FieldSpec("durablePosition", at: durablePosition, size: 8),
        FieldSpec("bootID", at: bootID, size: 16),
    ]
}

/// §3.1: a frame, from the frame's start. `size` is the fixed header (all of a seal frame).
enum FrameLayout {
    /// CRC-32C of the frame's bytes from `length` on.
    static let checksum = 0
    static let length = 4
    static let kind = 8
    static let flags = 9
    static let streamNameLength = 10
    static let eventCount = 12
    static let firstPosition = 16
    static let firstRevision = 24
    static let size = 32
    /// `streamNameLength` bytes (events frames only), right after the header.
    static let streamName = size

    static let fields: [FieldSpec] = [
        FieldSpec("checksum", at: checksum, size: 4),
        FieldSpec("length", at: length, size: 4),
        FieldSpec("kind", at: kind, size: 1),
        FieldSpec("flags", at: flags, size: 1),
        FieldSpec("streamNameLength", at: streamNameLength, size: 2),
        FieldSpec("eventCount", at: eventCount, size: 4),
        FieldSpec("firstPosition", at: firstPosition, size: 8),
        FieldSpec("firstRevision", at: firstRevision, size: 8),
    ]
}

/// §3.2: an event record, from the record's start. `size` is the fixed header, the same for
/// raw and compressed records. (``EventRecordLayout`` is where one record's parts lie.)
/// Public code inlines reads of these fields (``RecordedEvent``), hence `@usableFromInline`.
@usableFromInline enum RecordLayout {
    @usableFromInline static let recordLength = 0
    @usableFromInline static let typeLength = 4
    @usableFromInline static let flags = 6
    @usableFromInline static let metadataLength = 8
    @usableFromInline static let payloadLength = 12
    @usableFromInline static let timestamp = 16
    @usableFromInline static let eventId = 24
    @usableFromInline static let size = 40
    /// `typeLength` bytes of event type name, right after the header; the body follows it
    /// (metadata then payload, or for a compressed record ``CompressedBodyLayout``).
    @usableFromInline static let type = size

    static let fields: [FieldSpec] = [
        FieldSpec("recordLength", at: recordLength, size: 4),
        FieldSpec("typeLength", at: typeLength, size: 2),
        FieldSpec("flags", at: flags, size: 2),
        FieldSpec("metadataLength", at: metadataLength, size: 4),
        FieldSpec("payloadLength", at: payloadLength, size: 4),
        FieldSpec("timestamp", at: timestamp, size: 8),
        FieldSpec("eventId", at: eventId, size: 16),
    ]
}

/// §3.2, compressed records: the body after the type name (at `RecordLayout.type +
/// typeLength`), from the body's start. `size` is the part before the LZ4 block.
enum CompressedBodyLayout {
    /// Offset of the dictionary frame the block was compressed against; 0: none.
    static let dictionaryOffset = 0
    static let size = 4
    /// The LZ4 block, to the end of the record.
    static let block = size

    static let fields: [FieldSpec] = [
        FieldSpec("dictionaryOffset", at: dictionaryOffset, size: 4),
    ]
}

/// §3.2, tagged records: the tag block after the type name (at `RecordLayout.type +
/// typeLength`), from the block's start: the count, then each tag as a u16 length and its bytes.
enum TagBlockLayout {
    static let tagCount = 0
    static let size = 2
    /// The first tag's u16 length, right after the count.
    static let firstTag = size
    /// Bytes before each tag's UTF-8.
    static let tagLengthBytes = 2

    static let fields: [FieldSpec] = [
        FieldSpec("tagCount", at: tagCount, size: 2),
    ]

    /// Bytes of the block for `tags`.
    static func bytes(_ tags: [String]) -> Int {
        tags.isEmpty ? 0 : tags.reduce(size) { $0 + tagLengthBytes + $1.utf8.count }
    }
}

/// §5: the `checkpoint` file.
enum CheckpointLayout {
    static let magic = 0
    static let formatVersion = 8
    static let minimumReaderVersion = 10
    static let flags = 12
    static let segmentIndex = 16
    static let segmentOffset = 24
    static let nextPosition = 32
    static let sequence = 40
    static let lastTimestamp = 48
    static let reserved = 56
    /// CRC-32C of the bytes before it.
    static let checksum = 60
    static let size = 64

    static let fields: [FieldSpec] = [
        FieldSpec("magic", at: magic, size: 8),
        FieldSpec("formatVersion", at: formatVersion, size: 2),
        FieldSpec("minimumReaderVersion", at: minimumReaderVersion, size: 2),
        FieldSpec("flags", at: flags, size: 4),
        FieldSpec("segmentIndex", at: segmentIndex, size: 8),
        FieldSpec("segmentOffset", at: segmentOffset, size: 8),
        FieldSpec("nextPosition", at: nextPosition, size: 8),
        FieldSpec("sequence", at: sequence, size: 8),
        FieldSpec("lastTimestamp", at: lastTimestamp, size: 8),
        FieldSpec("reserved", at: reserved, size: 4),
        FieldSpec("checksum", at: checksum, size: 4),
    ]
}

/// §7.2: the header at offset 0 of a stream index file.
enum IndexHeaderLayout {
    static let magic = 0
    static let formatVersion = 8
    static let headerSize = 10
    static let flags = 12
    static let firstSegment = 16
    static let lastSegment = 24
    static let entryCount = 32
    static let bloomBlocks = 40
    static let nextPosition = 48
    static let hashFunction = 56
    static let entriesChecksum = 60
    static let bloomChecksum = 64
    static let segmentsFingerprint = 68
    static let keyEntryCount = 72
    static let keyEntriesChecksum = 80
    static let reserved = 84
    /// CRC-32C of the bytes before it.
    static let headerChecksum = 92
    static let size = 96

    static let fields: [FieldSpec] = [
        FieldSpec("magic", at: magic, size: 8),
        FieldSpec("formatVersion", at: formatVersion, size: 2),
        FieldSpec("headerSize", at: headerSize, size: 2),
        FieldSpec("flags", at: flags, size: 4),
        FieldSpec("firstSegment", at: firstSegment, size: 8),
        FieldSpec("lastSegment", at: lastSegment, size: 8),
        FieldSpec("entryCount", at: entryCount, size: 8),
        FieldSpec("bloomBlocks", at: bloomBlocks, size: 8),
        FieldSpec("nextPosition", at: nextPosition, size: 8),
        FieldSpec("hashFunction", at: hashFunction, size: 4),
        FieldSpec("entriesChecksum", at: entriesChecksum, size: 4),
        FieldSpec("bloomChecksum", at: bloomChecksum, size: 4),
        FieldSpec("segmentsFingerprint", at: segmentsFingerprint, size: 4),
        FieldSpec("keyEntryCount", at: keyEntryCount, size: 8),
        FieldSpec("keyEntriesChecksum", at: keyEntriesChecksum, size: 4),
        FieldSpec("reserved", at: reserved, size: 8),
        FieldSpec("headerChecksum", at: headerChecksum, size: 4),
    ]
}

/// §7.2: one entry of a stream index file, from the entry's start.
enum IndexEntryLayout {
    static let streamHash = 0
    static let firstRevision = 8
    static let firstPosition = 16
    static let segment = 24
    static let offset = 28
    static let eventCount = 32
    static let reserved = 36
    static let size = 40

    static let fields: [FieldSpec] = [
        FieldSpec("streamHash", at: streamHash, size: 8),
        FieldSpec("firstRevision", at: firstRevision, size: 8),
        FieldSpec("firstPosition", at: firstPosition, size: 8),
        FieldSpec("segment", at: segment, size: 4),
        FieldSpec("offset", at: offset, size: 4),
        FieldSpec("eventCount", at: eventCount, size: 4),
        FieldSpec("reserved", at: reserved, size: 4),
    ]
}

/// §7A: the payload of a `$retention` event (given in prose there, so checked only for
/// contiguity).
enum RetentionRecordLayout {
    static let version = 0
    static let flags = 1
    static let nameLength = 2
    static let reserved = 4
    static let truncateBefore = 8
    static let maxCount = 16
    static let maxAgeNanoseconds = 24
    static let size = 32
    /// `nameLength` bytes of stream name, right after the fixed part.
    static let name = size

    static let fields: [FieldSpec] = [
        FieldSpec("version", at: version, size: 1),
        FieldSpec("flags", at: flags, size: 1),
        FieldSpec("nameLength", at: nameLength, size: 2),
        FieldSpec("reserved", at: reserved, size: 4),
        FieldSpec("truncateBefore", at: truncateBefore, size: 8),
        FieldSpec("maxCount", at: maxCount, size: 8),
        FieldSpec("maxAgeNanoseconds", at: maxAgeNanoseconds, size: 8),
    ]
}

/// §7A: the metadata of a `$snapshot` event (given in prose there, so checked only for
/// contiguity). `size` is the whole metadata.
enum SnapshotMetadataLayout {
    static let revision = 0
    static let schemaVersion = 8
    static let reserved = 12
    static let size = 16

    static let fields: [FieldSpec] = [
        FieldSpec("revision", at: revision, size: 8),
        FieldSpec("schemaVersion", at: schemaVersion, size: 4),
        FieldSpec("reserved", at: reserved, size: 4),
    ]
}

/// §1A: the store's `archive` file. `directory` (`directoryLength` bytes of UTF-8) follows
/// the fixed part; the checksum follows the directory.
enum ArchiveManifestLayout {
    static let magic = 0
    static let formatVersion = 8
    static let reserved = 10
    static let directoryLength = 12
    static let firstLocalSegment = 16
    static let archiveID = 24
    static let size = 40
    /// `directoryLength` bytes of UTF-8, right after the fixed part.
    static let directory = size

    static let fields: [FieldSpec] = [
        FieldSpec("magic", at: magic, size: 8),
        FieldSpec("formatVersion", at: formatVersion, size: 2),
        FieldSpec("reserved", at: reserved, size: 2),
        FieldSpec("directoryLength", at: directoryLength, size: 4),
        FieldSpec("firstLocalSegment", at: firstLocalSegment, size: 8),
        FieldSpec("archiveID", at: archiveID, size: 16),
    ]
}

/// §1A: the `annals-archive` file in an archive directory.
enum ArchiveMarkerLayout {
    static let magic = 0
    static let archiveID = 8
    static let reserved = 24
    /// CRC-32C of the bytes before it.
    static let checksum = 28
    static let size = 32

    static let fields: [FieldSpec] = [
        FieldSpec("magic", at: magic, size: 8),
        FieldSpec("archiveID", at: archiveID, size: 16),
        FieldSpec("reserved", at: reserved, size: 4),
        FieldSpec("checksum", at: checksum, size: 4),
    ]
}

/// §3.9, encrypted records: the body after the type name and the tag block (at
/// `RecordLayout.type + typeLength + g`), from the body's start. `size` is the part before the
/// ciphertext; the 16-byte GCM tag follows the ciphertext.
enum EncryptedBodyLayout {
    static let keyID = 0
    static let nonce = 4
    static let size = 16
    /// The ciphertext, `c` bytes, right after the nonce.
    static let ciphertext = size
    /// Bytes of the AES-GCM nonce and tag.
    static let nonceBytes = 12
    static let tagBytes = 16
    /// What encryption adds to a record: key id, nonce and tag.
    static let overheadBytes = size + tagBytes

    static let fields: [FieldSpec] = [
        FieldSpec("keyId", at: keyID, size: 4),
        FieldSpec("nonce", at: nonce, size: 12),
    ]
}

/// §1B: the header of the store's `keys` file.
enum KeyStoreHeaderLayout {
    static let magic = 0
    static let version = 8
    static let flags = 10
    static let reserved = 12
    static let checkNonce = 16
    static let check = 28
    /// CRC-32C of the bytes before it.
    static let checksum = 60
    static let size = 64

    static let fields: [FieldSpec] = [
        FieldSpec("magic", at: magic, size: 8),
        FieldSpec("version", at: version, size: 2),
        FieldSpec("flags", at: flags, size: 2),
        FieldSpec("reserved", at: reserved, size: 4),
        FieldSpec("checkNonce", at: checkNonce, size: 12),
        FieldSpec("check", at: check, size: 32),
        FieldSpec("checksum", at: checksum, size: 4),
    ]
}

/// §1B: one entry of the `keys` file (entries follow the header back to back).
enum KeyStoreEntryLayout {
    static let kind = 0
    static let reserved = 1
    static let keyID = 4
    static let subjectDigest = 8
    static let nonce = 40
    static let wrapped = 52
    /// CRC-32C of the bytes before it.
    static let checksum = 100
    static let size = 104

    static let fields: [FieldSpec] = [
        FieldSpec("kind", at: kind, size: 1),
        FieldSpec("reserved", at: reserved, size: 3),
        FieldSpec("keyId", at: keyID, size: 4),
        FieldSpec("subjectDigest", at: subjectDigest, size: 32),
        FieldSpec("nonce", at: nonce, size: 12),
        FieldSpec("wrapped", at: wrapped, size: 48),
        FieldSpec("checksum", at: checksum, size: 4),
    ]
}
