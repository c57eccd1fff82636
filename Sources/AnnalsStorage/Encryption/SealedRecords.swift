import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The encrypted records of a frame, compressed and sealed before any byte of the append is
/// written (a failure leaves the log as it was), then copied into the mapping in order. A big
/// frame is sealed on every core, one contiguous share of its events per core. Each record is
/// exactly what ``FrameEncoder/writeEncryptedRecord`` makes. Made and used under the writer lock.
final class SealedRecords: Sendable {
    /// One share's records, back to back (each padded), and where each event's starts.
    private struct Share {
        let range: Range<Int>
        let arena: [UInt8]
        /// Per event of the range: offset in the arena and length without padding (nil: not encrypted).
        let records: [(offset: Int, length: Int)?]
    }

    private let shares: Locked<[Share]>
    /// Every event of the frame is encrypted.
    let sealsEveryEvent: Bool

    private init(sealsEveryEvent: Bool) {
        shares = Locked([])
        self.sealsEveryEvent = sealsEveryEvent
    }

    /// Frames with at least this many encrypted events are sealed on every core.
    static let parallelEventCount = 64

    /// Seals the encrypted events of `append` (`keys`: per event its data key, nil for one stored
    /// in the clear), whose first event gets `firstPosition` and `firstRevision`. One nonce per
    /// event comes from one call to the kernel's generator; `compressor` compresses bodies alone
    /// (nil: the store does not compress).
    ///
    /// - Throws: ``AppendError/encryptionFailed(_:)`` when the cipher refuses a record.
    static func seal(
        _ append: PreparedAppend, keys: [DataKey?], timestamp: Int64, firstPosition: UInt64, firstRevision: UInt64,
        compressor: BodyCompressor?
    ) throws(AppendError) -> SealedRecords {
        let events = append.events, ids = append.ids
        let result = SealedRecords(sealsEveryEvent: keys.allSatisfy { $0 != nil })
        var random = [UInt8](repeating: 0, count: events.count * EncryptedBodyLayout.nonceBytes)
        random.withUnsafeMutableBytes { Syscalls.fillRandom($0) }
        let nonces = random
        let name = Array(append.stream.utf8)
        let streams = compressor?.coreStreams ?? [] // made here, before any thread uses them
        let encrypted = keys.lazy.filter { $0 != nil }.count
        let shareCount = BodyCompressor.cores > 1 && encrypted >= parallelEventCount
            ? min(BodyCompressor.cores, events.count / (parallelEventCount / 2)) : 1
        let failed = Locked(false)
        @Sendable func sealShare(_ share: Int) {
            let range = (events.count * share / shareCount)..<(events.count * (share + 1) / shareCount)
            let capacity = range.reduce(0) { total, index in
                keys[index] == nil ? total : total + Format.aligned(FrameEncoder.recordBytes(events[index]) + EncryptedBodyLayout.overheadBytes)
            }
            var arena = [UInt8](repeating: 0, count: capacity)
            var records: [(offset: Int, length: Int)?] = []
            records.reserveCapacity(range.count)
            var scratch: [UInt8] = []
            let sealed = arena.withUnsafeMutableBytes { arena in
                nonces.withUnsafeBytes { nonces in
                    name.withUnsafeBytes { streamName in
                        var cursor = 0
                        for index in range {
                            guard let key = keys[index] else {
                                records.append(nil)
                                continue
                            }
                            guard let length = FrameEncoder.writeEncryptedRecord(
                                into: arena, at: cursor, event: events[index], id: ids[index], timestamp: timestamp, key: key,
                                nonce: nonces.slice(index * EncryptedBodyLayout.nonceBytes, EncryptedBodyLayout.nonceBytes),
                                position: firstPosition + UInt64(index), revision: firstRevision + UInt64(index),
                                streamName: streamName, compressor: compressor, stream: streams.isEmpty ? nil : streams[share],
                                scratch: &scratch)
                            else { return false }
                            records.append((cursor, length))
                            cursor += Format.aligned(length)
                        }
                        return true
                    }
                }
            }
            guard sealed else { return failed.withLock { $0 = true } }
            result.shares.withLock { $0.append(Share(range: range, arena: arena, records: records)) }
        }
        if shareCount > 1 { DispatchQueue.concurrentPerform(iterations: shareCount, execute: sealShare) } else { sealShare(0) }
        guard !failed.withLock({ $0 }) else { throw .encryptionFailed("AES-GCM refused to seal an event of \(append.stream)") }
        return result
    }

    /// Copies event `index`'s record (and its padding) to `offset` of `buffer`; returns its
    /// length without padding, or nil when the event is not encrypted.
    func copy(_ index: Int, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int? {
        shares.withLock { shares in
            guard let share = shares.first(where: { $0.range.contains(index) }),
                  let record = share.records[index - share.range.lowerBound]
            else { return nil }
            share.arena.withUnsafeBytes { arena in
                _ = buffer.copy(arena.slice(record.offset, Format.aligned(record.length)), to: offset)
            }
            return record.length
        }
    }
}
