#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Dispatch
import Synchronization

/// Whether a store compresses the events it appends.
public enum Compression: Sendable, Hashable {
    /// Events are stored as given.
    case none
    /// Each event's metadata and payload are stored as one LZ4 block against a dictionary of
    /// recent events kept in the segment (about 2.3× on realistic JSON events; each event still
    /// decodes alone). Bodies that do not shrink are stored raw. The default.
    case lz4
}

/// The writer's compressor for the active segment: LZ4 blocks against the segment's
/// dictionary frame, or standalone blocks for large bodies before that frame exists. Used
/// under the writer lock only (``precompress(_:)`` fans out to other threads and joins).
final class BodyCompressor: @unchecked Sendable {
    /// Offset of the dictionary frame in the active segment; 0 for standalone blocks.
    let dictionaryOffset: Int
    /// Bodies smaller than this are not worth a compression attempt.
    let minimumBodyBytes: Int
    private let lz4: LZ4.BlockCompressor
    private var scratch: [UInt8] = []

    init(dictionary: UnsafeRawBufferPointer, at offset: Int) {
        dictionaryOffset = offset
        minimumBodyBytes = offset == 0 ? 1024 : 32
        lz4 = LZ4.BlockCompressor(dictionary: dictionary)
    }

    /// Compresses metadata followed by payload into `target`; nil when the block would not fit
    /// in `target` (the caller stores the body raw).
    func compress(metadata: [UInt8], payload: [UInt8], into target: UnsafeMutableRawBufferPointer) -> Int? {
        Self.compress(metadata: metadata, payload: payload, into: target, with: lz4, stream: nil, scratch: &scratch)
    }

    private static func compress(
        metadata: [UInt8], payload: [UInt8], into target: UnsafeMutableRawBufferPointer,
        with lz4: LZ4.BlockCompressor, stream: LZ4.WorkingStream?, scratch: inout [UInt8]
    ) -> Int? {
        guard !metadata.isEmpty else {
            return payload.withUnsafeBytes { lz4.compress($0, into: target, using: stream) }
        }
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: metadata)
        scratch.append(contentsOf: payload)
        return scratch.withUnsafeBytes { lz4.compress($0, into: target, using: stream) }
    }

    /// Compresses as ``compress(metadata:payload:into:)`` does, from any thread: with that
    /// thread's own working stream (one of ``coreStreams``) and scratch buffer.
    func compress(
        metadata: [UInt8], payload: [UInt8], into target: UnsafeMutableRawBufferPointer, stream: LZ4.WorkingStream, scratch: inout [UInt8]
    ) -> Int? {
        Self.compress(metadata: metadata, payload: payload, into: target, with: lz4, stream: stream, scratch: &scratch)
    }

    /// One working stream per core, for work fanned out under the writer lock (read there first).
    var coreStreams: [LZ4.WorkingStream] { workers }

    /// Frames with at least this many events are compressed on every core before writing.
    static let parallelEventCount = 64
    static let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
    private lazy var workers: [LZ4.WorkingStream] = (0..<Self.cores).map { _ in LZ4.WorkingStream() }

    /// The bodies of a big frame compressed in parallel (one contiguous share of the events per
    /// core), ready to be copied into the mapping; nil when the frame is too small to gain.
    /// Each block is exactly what ``compress(metadata:payload:into:)`` would produce.
    func precompress(_ events: [EventData]) -> PrecompressedBodies? {
        guard Self.cores > 1, events.count >= Self.parallelEventCount else { return nil }
        let shares = min(Self.cores, events.count / (Self.parallelEventCount / 2))
        let results = PrecompressedBodies(count: events.count)
        let lz4 = self.lz4, workers = self.workers, minimum = minimumBodyBytes
        DispatchQueue.concurrentPerform(iterations: shares) { share in
            let range = (events.count * share / shares)..<(events.count * (share + 1) / shares)
            var arena: [UInt8] = []
            arena.reserveCapacity(range.reduce(0) { $0 + events[$1].metadata.count + events[$1].payload.count })
            var blocks = [Range<Int>?](repeating: nil, count: range.count)
            var scratch: [UInt8] = []
            var target = [UInt8](repeating: 0, count: 4096)
            for (slot, index) in range.enumerated() {
                let event = events[index]
                let bodyBytes = event.metadata.count + event.payload.count
                // As the frame encoder does: the block must leave the record strictly smaller.
                let capacity = bodyBytes - Format.compressedBodyHeaderBytes - 1
                guard bodyBytes >= minimum, capacity > 0 else { continue }
                if target.count < capacity { target = [UInt8](repeating: 0, count: capacity) }
                let written = target.withUnsafeMutableBytes { buffer in
                    Self.compress(metadata: event.metadata, payload: event.payload,
                                  into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<capacity]),
                                  with: lz4, stream: workers[share], scratch: &scratch)
                }
                guard let written else { continue }
                blocks[slot] = arena.count..<(arena.count + written)
                arena.append(contentsOf: target[..<written])
            }
            results.store(share: range, arena: arena, blocks: blocks)
        }
        return results
    }
}

/// Blocks compressed ahead of writing: per event, nil (store raw) or the block's bytes.
final class PrecompressedBodies: Sendable {
    typealias Share = (range: Range<Int>, arena: [UInt8], blocks: [Range<Int>?])
    private let shares = Locked<[Share]>([])
    let count: Int

    init(count: Int) { self.count = count }

    /// Called once per share, from the thread that compressed it.
    func store(share range: Range<Int>, arena: [UInt8], blocks: [Range<Int>?]) {
        shares.withLock { $0.append((range, arena, blocks)) }
    }

    /// Calls `body` with the block of event `index`, or nil when it is stored raw. Called after
    /// every share was stored.
    func withBlock<R>(of index: Int, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
        guard let share = shares.withLock({ $0.first(where: { $0.range.contains(index) }) }),
              let block = share.blocks[index - share.range.lowerBound]
        else { return body(nil) }
        return share.arena.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[block])) }
    }
}

/// The most recent event bodies the writer appended, from which the next segment's
/// dictionary is taken.
struct DictionarySampler {
    /// Bytes a dictionary takes (0: the segments are too small for dictionaries).
    let dictionaryBytes: Int
    private var recent: [UInt8] = []

    init(segmentSizeBytes: Int) {
        let size = min(Self.largestDictionaryBytes, (segmentSizeBytes / 16) & ~(Format.frameAlignment - 1))
        dictionaryBytes = size >= Format.minimumDictionaryBytes ? size : 0
    }

    /// The dictionaries this writer makes are at most 16 KiB, although readers accept 64 KiB:
    /// a reader decoding events of many segments keeps their dictionaries in cache. Measured
    /// on 10M realistic events in 127 segments: whole-stream reads 14% faster than with 64 KiB
    /// dictionaries, for a store 5% larger.
    static let largestDictionaryBytes = 16 * 1024

    /// True once a full dictionary's worth of bodies was seen.
    var isReady: Bool { dictionaryBytes > 0 && recent.count >= dictionaryBytes }

    mutating func add(_ bytes: [UInt8]) {
        guard dictionaryBytes > 0 else { return }
        recent.append(contentsOf: bytes.suffix(dictionaryBytes))
        if recent.count > 2 * dictionaryBytes { recent.removeFirst(recent.count - dictionaryBytes) }
    }

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        guard dictionaryBytes > 0 else { return }
        recent.append(contentsOf: bytes.suffix(dictionaryBytes))
        if recent.count > 2 * dictionaryBytes { recent.removeFirst(recent.count - dictionaryBytes) }
    }

    /// The dictionary: the last ``dictionaryBytes`` bytes seen, most recent last (LZ4 reaches
    /// the end of a dictionary with the shortest offsets).
    var dictionary: ArraySlice<UInt8> { recent.suffix(dictionaryBytes) }
}
