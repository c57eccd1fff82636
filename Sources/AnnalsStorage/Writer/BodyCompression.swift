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
    ///
    /// Memory: reading single events keeps a copy of each segment's dictionary with a small
    /// decoding area (24 KiB per segment with this writer's 16 KiB dictionaries), at most
    /// 32 MiB for the process, freed with the segment; and each thread that decodes keeps a
    /// buffer of 80 to 320 KiB (a dictionary and its output) for its life.
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
        let results = PrecompressedBodies(events: events, shares: shares)
        let lz4 = self.lz4, workers = self.workers, minimum = minimumBodyBytes
        DispatchQueue.concurrentPerform(iterations: shares) { share in
            var scratch: [UInt8] = []
            results.fill(share: share) { index, target in
                guard events[index].metadata.count + events[index].payload.count >= minimum else { return nil }
                return Self.compress(metadata: events[index].metadata, payload: events[index].payload, into: target,
                                     with: lz4, stream: workers[share], scratch: &scratch)
            }
        }
        return results
    }
}

/// Blocks compressed ahead of writing: per event, nil (store raw) or the block's bytes. Each
/// share of the events is filled by one thread (``fill(share:_:)``) into its own part of one
/// buffer; read once every share is filled.
final class PrecompressedBodies: @unchecked Sendable {
    // @unchecked: a share's part of the buffer and its block entries are written by the one
    // thread filling it, and read only after the threads are joined
    // (`DispatchQueue.concurrentPerform`).
    private let shareStarts: [Int]
    /// Per event: its metadata and payload bytes.
    private let bodyBytes: [Int]
    /// Per share: where its part of `buffer` starts (one more entry: the end).
    private let shareOffsets: [Int]
    private let buffer: UnsafeMutableRawBufferPointer
    /// Per event: where its block starts in `buffer` and its size (0: stored raw).
    private let blocks: UnsafeMutableBufferPointer<(offset: Int, count: Int)>

    /// Room for the blocks of `events` split into `shares` contiguous shares: each block is
    /// smaller than its body, so a share needs at most its bodies' bytes.
    init(events: [EventData], shares: Int) {
        let starts = (0...shares).map { events.count * $0 / shares }
        let bodyBytes = events.map { $0.metadata.count + $0.payload.count }
        var offsets = [0]
        for share in 0..<shares { offsets.append(offsets[share] + bodyBytes[starts[share]..<starts[share + 1]].reduce(0, +)) }
        shareStarts = starts
        self.bodyBytes = bodyBytes
        shareOffsets = offsets
        buffer = .allocate(byteCount: max(offsets[shares], 1), alignment: 16)
        blocks = .allocate(capacity: events.count)
        blocks.initialize(repeating: (0, 0))
    }

    deinit {
        buffer.deallocate()
        blocks.deallocate()
    }

    /// Fills share `share`: `compress(index, target)` compresses event `index` into `target`
    /// (sized so that the record ends strictly smaller than raw; never empty) and returns the
    /// block's size, or nil to store the body raw.
    func fill(share: Int, _ compress: (Int, UnsafeMutableRawBufferPointer) -> Int?) {
        var cursor = shareOffsets[share]
        for index in shareStarts[share]..<shareStarts[share + 1] {
            // As the frame encoder does: the block must leave the record strictly smaller. (It
            // always fits the share's part: each block written before is smaller than its body.)
            let capacity = min(shareOffsets[share + 1] - cursor, bodyBytes[index] - Format.compressedBodyHeaderBytes - 1)
            guard capacity > 0,
                  let written = compress(index, UnsafeMutableRawBufferPointer(rebasing: buffer[cursor..<(cursor + capacity)])),
                  written > 0
            else { continue }
            blocks[index] = (cursor, written)
            cursor += written
        }
    }

    /// Calls `body` with the block of event `index`, or nil when it is stored raw.
    func withBlock<R>(of index: Int, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
        let block = blocks[index]
        guard block.count > 0 else { return body(nil) }
        return body(UnsafeRawBufferPointer(rebasing: buffer[block.offset..<(block.offset + block.count)]))
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
