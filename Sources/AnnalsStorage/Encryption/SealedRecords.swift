import Dispatch
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The encrypted records of a big frame, compressed and sealed on every core (one contiguous
/// share of the events per core) before the frame is written, then copied into the mapping in
/// order. Each record is exactly what ``FrameEncoder/writeEncryptedRecord`` writes in place.
/// Made and used under the writer lock.
final class SealedRecords: Sendable {
    /// One share's records, back to back (each padded), and where each event's starts.
    private struct Share {
        let range: Range<Int>
        let arena: [UInt8]
        /// Per event of the range: offset in the arena and length without padding (nil: not encrypted).
        let records: [(offset: Int, length: Int)?]
    }

    private let shares: Locked<[Share]>

    private init() { shares = Locked([]) }

    /// Frames with at least this many encrypted events are sealed on every core.
    static let parallelEventCount = 64

    /// The records sealed ahead, or nil when the frame is too small to gain (or one core).
    static func prepare(
        events: [EventData], ids: [UUID], timestamp: Int64, encryption: FrameEncryption, firstPosition: UInt64,
        firstRevision: UInt64, streamName: UnsafeRawBufferPointer, nonces: [UInt8]
    ) -> SealedRecords? {
        let cores = BodyCompressor.cores
        guard cores > 1, encryption.keys.lazy.filter({ $0 != nil }).count >= parallelEventCount else { return nil }
        let shareCount = min(cores, events.count / (parallelEventCount / 2))
        let result = SealedRecords()
        let compressor = encryption.compressor
        let streams = compressor?.coreStreams ?? [] // made here, before the threads use them
        let name = Array(streamName)
        DispatchQueue.concurrentPerform(iterations: shareCount) { share in
            let range = (events.count * share / shareCount)..<(events.count * (share + 1) / shareCount)
            let capacity = range.reduce(0) { total, index in
                encryption.keys[index] == nil ? total
                    : total + Format.aligned(FrameEncoder.recordBytes(events[index]) + EncryptedBodyLayout.overheadBytes)
            }
            var arena = [UInt8](repeating: 0, count: capacity)
            var records: [(offset: Int, length: Int)?] = []
            records.reserveCapacity(range.count)
            var scratch: [UInt8] = []
            arena.withUnsafeMutableBytes { arena in
                nonces.withUnsafeBytes { nonces in
                    name.withUnsafeBytes { streamName in
                        var cursor = 0
                        for index in range {
                            guard let key = encryption.keys[index] else {
                                records.append(nil)
                                continue
                            }
                            let length = FrameEncoder.writeEncryptedRecord(
                                into: arena, at: cursor, event: events[index], id: ids[index], timestamp: timestamp, key: key,
                                nonce: nonces.slice(index * EncryptedBodyLayout.nonceBytes, EncryptedBodyLayout.nonceBytes),
                                position: firstPosition + UInt64(index), revision: firstRevision + UInt64(index),
                                streamName: streamName, compressor: compressor, stream: streams.isEmpty ? nil : streams[share], scratch: &scratch)
                            records.append((cursor, length))
                            cursor += Format.aligned(length)
                        }
                    }
                }
            }
            result.shares.withLock { $0.append(Share(range: range, arena: arena, records: records)) }
        }
        return result
    }

    /// Copies event `index`'s record (and its padding) to `offset` of `buffer`; returns its
    /// length without padding. Called after ``prepare`` returned, for encrypted events only.
    func copy(_ index: Int, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        shares.withLock { shares in
            let share = shares.first { $0.range.contains(index) }!
            let record = share.records[index - share.range.lowerBound]!
            share.arena.withUnsafeBytes { arena in
                _ = buffer.copy(arena.slice(record.offset, Format.aligned(record.length)), to: offset)
            }
            return record.length
        }
    }
}
