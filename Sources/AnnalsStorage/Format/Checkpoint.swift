/// The store's `checkpoint` file: how far the log is known to be valid, so that recovery scans
/// only what came after it. Written with temp file + fsync + rename + directory fsync, so it is
/// either the old or the new version, never a mix (see `format-spec.md`, "Checkpoint").
struct Checkpoint: Sendable, Equatable {
    /// Newest format version that wrote to this store.
    var formatVersion: UInt16 = Format.version
    /// Oldest reader version that can read this store: 2, since a segment this writer appends
    /// to may hold dictionary frames and compressed records; 3 once compaction has written a
    /// segment.
    var minimumReaderVersion: UInt16 = Format.appendSegmentVersion
    /// Set by a clean close: the position below is exactly the end of the log.
    var cleanShutdown: Bool
    /// The segment that holds the end of the checkpointed data.
    var segmentIndex: UInt64
    /// Byte offset in that segment where unverified data begins (a frame boundary).
    var segmentOffset: UInt64
    /// Global position of the first event at or after that offset.
    var nextPosition: UInt64
    /// Incremented on every write of the file.
    var sequence: UInt64
    /// Timestamp of the newest event when written, so appends after a restart never go back
    /// in time even when the clock does.
    var lastTimestamp: Int64 = 0

    func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Format.checkpointBytes)
        bytes.withUnsafeMutableBytes { buffer in
            Format.checkpointMagic.withUnsafeBytes { _ = buffer.copy($0, to: CheckpointLayout.magic) }
            buffer.storeU16(formatVersion, at: CheckpointLayout.formatVersion)
            buffer.storeU16(minimumReaderVersion, at: CheckpointLayout.minimumReaderVersion)
            buffer.storeU32(cleanShutdown ? 1 : 0, at: CheckpointLayout.flags)
            buffer.storeU64(segmentIndex, at: CheckpointLayout.segmentIndex)
            buffer.storeU64(segmentOffset, at: CheckpointLayout.segmentOffset)
            buffer.storeU64(nextPosition, at: CheckpointLayout.nextPosition)
            buffer.storeU64(sequence, at: CheckpointLayout.sequence)
            buffer.storeI64(lastTimestamp, at: CheckpointLayout.lastTimestamp)
            let checksum = CRC32C.checksum(UnsafeRawBufferPointer(buffer).slice(0, CheckpointLayout.checksum))
            buffer.storeU32(checksum, at: CheckpointLayout.checksum)
        }
        return bytes
    }

    enum DecodeFailure: Error {
        case corrupt(String)
        case unsupported(minimumReaderVersion: UInt16)
    }

    static func decode(_ bytes: [UInt8]) -> Result<Checkpoint, DecodeFailure> {
        bytes.withUnsafeBytes { raw in
            guard raw.count == Format.checkpointBytes else { return .failure(.corrupt("size \(raw.count)")) }
            guard raw.slice(CheckpointLayout.magic, Format.checkpointMagic.count).elementsEqual(Format.checkpointMagic) else {
                return .failure(.corrupt("bad magic"))
            }
            guard CRC32C.checksum(raw.slice(0, CheckpointLayout.checksum)) == raw.u32(CheckpointLayout.checksum) else {
                return .failure(.corrupt("checksum mismatch"))
            }
            let minimumReader = raw.u16(CheckpointLayout.minimumReaderVersion)
            guard minimumReader <= Format.version else { return .failure(.unsupported(minimumReaderVersion: minimumReader)) }
            return .success(Checkpoint(
                formatVersion: raw.u16(CheckpointLayout.formatVersion),
                minimumReaderVersion: minimumReader,
                cleanShutdown: raw.u32(CheckpointLayout.flags) & 1 == 1,
                segmentIndex: raw.u64(CheckpointLayout.segmentIndex),
                segmentOffset: raw.u64(CheckpointLayout.segmentOffset),
                nextPosition: raw.u64(CheckpointLayout.nextPosition),
                sequence: raw.u64(CheckpointLayout.sequence),
                lastTimestamp: raw.i64(CheckpointLayout.lastTimestamp)
            ))
        }
    }
}
