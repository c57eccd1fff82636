import CAnnalsSupport

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One slot of a segment's durable-mark area (`format-spec.md` §3.8): how far the segment's
/// frames had been acknowledged, and how far they were on stable storage, when it was written.
///
/// A mark only ever states something that was already true when it was written, so a valid
/// slot found after any crash can be believed; a slot torn by a crash fails its checksum and
/// the other slot still holds the previous mark.
struct DurableMark: Sendable, Equatable {
    /// Incremented on every write of either slot; the writer writes slot `sequence % 2`.
    var sequence: UInt64
    var segmentIndex: UInt64
    /// Frame boundary: every frame before it was acknowledged to an appender.
    var acknowledgedOffset: Int
    /// Frame boundary (≤ `acknowledgedOffset`): every frame before it had been synced.
    var durableOffset: Int
    var acknowledgedPosition: UInt64
    var durablePosition: UInt64
    /// The machine's boot when the slot was written (zero: unknown).
    var bootID: UUID

    /// Where slot `slot` (0 or 1) of a segment of `segmentSize` bytes starts.
    static func slotOffset(_ slot: Int, segmentSize: Int) -> Int {
        segmentSize - Format.durableMarkAreaBytes + slot * Format.durableMarkSlotBytes
    }

    /// Where this mark goes in a segment of `segmentSize` bytes: slot `sequence % 2`.
    func slotOffset(segmentSize: Int) -> Int {
        Self.slotOffset(Int(sequence % 2), segmentSize: segmentSize)
    }

    /// Writes the mark into its slot of `buffer`, a whole segment's bytes.
    func write(into buffer: UnsafeMutableRawBufferPointer) {
        let offset = slotOffset(segmentSize: buffer.count)
        encode(into: buffer.mutableSlice(offset, Format.durableMarkSlotBytes))
    }

    /// Encodes the mark as one slot: `slot` is `Format.durableMarkSlotBytes` long.
    func encode(into slot: UnsafeMutableRawBufferPointer) {
        precondition(slot.count == Format.durableMarkSlotBytes)
        slot.zero(0, Format.durableMarkSlotBytes)
        Format.durableMarkMagic.withUnsafeBytes { _ = slot.copy($0, to: DurableMarkLayout.magic) }
        slot.storeU64(sequence, at: DurableMarkLayout.sequence)
        slot.storeU64(segmentIndex, at: DurableMarkLayout.segmentIndex)
        slot.storeU32(UInt32(acknowledgedOffset), at: DurableMarkLayout.acknowledgedOffset)
        slot.storeU32(UInt32(durableOffset), at: DurableMarkLayout.durableOffset)
        slot.storeU64(acknowledgedPosition, at: DurableMarkLayout.acknowledgedPosition)
        slot.storeU64(durablePosition, at: DurableMarkLayout.durablePosition)
        withUnsafeBytes(of: bootID.uuid) { _ = slot.copy($0, to: DurableMarkLayout.bootID) }
        let checksum = CRC32C.checksum(Self.checksummed(UnsafeRawBufferPointer(slot)))
        slot.storeU32(checksum, at: DurableMarkLayout.checksum)
    }

    /// The bytes a slot's checksum covers: everything after the checksum field.
    private static func checksummed(_ slot: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        slot.slice(DurableMarkLayout.magic, slot.count - DurableMarkLayout.magic)
    }

    /// The valid slot with the higher sequence of a segment whose header has the durable-marks
    /// flag, or nil when neither slot is valid (never written, torn, or damaged).
    static func latest(in bytes: UnsafeRawBufferPointer, segmentIndex: UInt64) -> DurableMark? {
        guard bytes.count >= Format.segmentHeaderBytes + Format.durableMarkAreaBytes else { return nil }
        let marks = (0..<2).compactMap { decode(bytes, at: slotOffset($0, segmentSize: bytes.count), segmentIndex: segmentIndex) }
        annals_acquire_fence()
        return marks.max { $0.sequence < $1.sequence }
    }

    private static func decode(_ bytes: UnsafeRawBufferPointer, at offset: Int, segmentIndex: UInt64) -> DurableMark? {
        let slot = bytes.slice(offset, Format.durableMarkSlotBytes)
        guard CRC32C.checksum(checksummed(slot)) == slot.u32(DurableMarkLayout.checksum),
              slot.slice(DurableMarkLayout.magic, Format.durableMarkMagic.count).elementsEqual(Format.durableMarkMagic),
              slot.u64(DurableMarkLayout.sequence) >= 1, slot.u64(DurableMarkLayout.segmentIndex) == segmentIndex
        else { return nil }
        let uuidBytes = Array(slot.slice(DurableMarkLayout.bootID, MemoryLayout<uuid_t>.size))
        let mark = DurableMark(
            sequence: slot.u64(DurableMarkLayout.sequence), segmentIndex: segmentIndex,
            acknowledgedOffset: Int(slot.u32(DurableMarkLayout.acknowledgedOffset)),
            durableOffset: Int(slot.u32(DurableMarkLayout.durableOffset)),
            acknowledgedPosition: slot.u64(DurableMarkLayout.acknowledgedPosition),
            durablePosition: slot.u64(DurableMarkLayout.durablePosition),
            bootID: UUID(uuid: (uuidBytes[0], uuidBytes[1], uuidBytes[2], uuidBytes[3], uuidBytes[4], uuidBytes[5],
                                uuidBytes[6], uuidBytes[7], uuidBytes[8], uuidBytes[9], uuidBytes[10], uuidBytes[11],
                                uuidBytes[12], uuidBytes[13], uuidBytes[14], uuidBytes[15])))
        let frameAreaEnd = bytes.count - Format.durableMarkAreaBytes
        guard Format.segmentHeaderBytes <= mark.durableOffset, mark.durableOffset <= mark.acknowledgedOffset,
              mark.acknowledgedOffset <= frameAreaEnd, mark.durableOffset % Format.frameAlignment == 0,
              mark.acknowledgedOffset % Format.frameAlignment == 0, mark.durablePosition <= mark.acknowledgedPosition
        else { return nil }
        return mark
    }

    /// The boundary this mark vouches for on a machine whose current boot is `currentBoot`:
    /// the acknowledged end when the machine has not restarted since the mark was written (a
    /// process crash keeps the page cache, so every acknowledged frame is still there),
    /// otherwise only the durable end.
    func vouchedEnd(currentBoot: UUID) -> (offset: Int, position: UInt64, acknowledged: Bool) {
        if bootID != DurableMark.unknownBoot, bootID == currentBoot {
            return (acknowledgedOffset, acknowledgedPosition, true)
        }
        return (durableOffset, durablePosition, false)
    }

    /// The boot id recorded when the boot is unknown.
    static let unknownBoot = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
}
