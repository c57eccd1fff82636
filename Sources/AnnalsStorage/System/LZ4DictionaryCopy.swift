import Synchronization

/// A segment's dictionary copied once onto the heap, right before a small output area that
/// every thread decoding single records of that segment shares: liblz4 then takes a match that
/// reaches into the dictionary as an ordinary back-reference (its inline copy loop) instead of
/// calling `memmove` for it, as it must when the dictionary lies elsewhere (the mapping).
/// Profiles of 100-event stream reads in a 10M-event store put that `memmove` at 30% of all
/// samples. (Long reads have ``LZ4PrefixDecoder``, a copy per thread, which never waits for
/// another thread; this one serves the reads that hop between segments, one record here and
/// ten there, for which a copy per thread and segment would cost too much memory.)
///
/// Thread safety: the output area is claimed for one decode by an atomic flag and never waited
/// for: a thread that finds it taken (another thread, or the same one decoding inside the
/// body it was handed) decodes elsewhere, as it does a body larger than the area. So one
/// reader at a time per segment gains; with many readers of one segment the others decode as
/// they would without it, after one load of the flag.
///
/// Memory: the copies of every segment of the process take at most ``budgetBytes`` together
/// (a segment that finds the budget spent asks again on a later read); a copy lives as long as
/// its segment.
final class LZ4DictionaryCopy: @unchecked Sendable {
    // @unchecked: the buffer's dictionary part is written once, before the instance is shared;
    // the output part only by the thread that claimed `busy`.
    /// Offset of the dictionary frame this is a copy of, in its segment.
    let dictionaryOffset: Int
    private let dictionaryCount: Int
    /// The dictionary (`dictionaryCount` bytes), then `outputCapacity` bytes of output.
    private let buffer: UnsafeMutableRawPointer
    private let busy = Atomic<Bool>(false)

    /// Largest body decoded here (the realistic events of the benchmarks are a few hundred
    /// bytes; in a larger one the `memmove`s weigh less).
    static let outputCapacity = 8 << 10
    /// Most bytes all copies of the process take together: about 1,300 segments' worth with
    /// the 16 KiB dictionaries this writer makes, about 450 with the largest a reader accepts.
    static let budgetBytes = 32 << 20
    private static let usedBytes = Atomic<Int>(0)

    private var byteCount: Int { dictionaryCount + Self.outputCapacity }

    /// Bytes the copies of the process take now.
    static var bytesInUse: Int { usedBytes.load(ordering: .relaxed) }

    private init(dictionary: UnsafeRawBufferPointer, at offset: Int) {
        dictionaryOffset = offset
        dictionaryCount = dictionary.count
        buffer = .allocate(byteCount: dictionary.count + Self.outputCapacity, alignment: 64)
        buffer.copyMemory(from: dictionary.baseAddress!, byteCount: dictionary.count)
    }

    deinit {
        buffer.deallocate()
        Self.usedBytes.subtract(byteCount, ordering: .relaxed)
    }

    /// A copy of `dictionary` (the dictionary frame at `offset`), or nil when it is empty,
    /// larger than a dictionary may be, or the copies would take more than `budget` bytes.
    static func make(dictionary: UnsafeRawBufferPointer, at offset: Int, budget: Int = budgetBytes) -> LZ4DictionaryCopy? {
        guard dictionary.count > 0, dictionary.count <= Format.maximumDictionaryBytes else { return nil }
        let bytes = dictionary.count + outputCapacity
        // A load first: once the budget is spent, asking costs no write to the shared counter.
        guard usedBytes.load(ordering: .relaxed) + bytes <= budget else { return nil }
        guard usedBytes.add(bytes, ordering: .relaxed).newValue <= budget else {
            usedBytes.subtract(bytes, ordering: .relaxed)
            return nil
        }
        return LZ4DictionaryCopy(dictionary: dictionary, at: offset)
    }

    /// Decodes `block`, which must produce exactly `decodedCount` bytes, against the copy and
    /// calls `body` with the decoded bytes (valid during the call). Nil, without calling
    /// `body`, when the output area is taken or too small (the caller decodes elsewhere);
    /// false when the block does not decode to exactly that size (corruption).
    func decode(_ block: UnsafeRawBufferPointer, decodedCount: Int, _ body: (UnsafeRawBufferPointer) -> Void) -> Bool? {
        // A load before the exchange: a taken area costs readers of the segment no write to it.
        guard decodedCount <= Self.outputCapacity, block.count > 0, block.count <= Int(Int32.max),
              !busy.load(ordering: .relaxed),
              busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
        else { return nil }
        defer { busy.store(false, ordering: .releasing) }
        let output = UnsafeMutableRawBufferPointer(start: buffer + dictionaryCount, count: decodedCount)
        guard LZ4.decompress(block, into: output, dictionary: UnsafeRawBufferPointer(start: buffer, count: dictionaryCount)) else {
            return false
        }
        body(UnsafeRawBufferPointer(output))
        return true
    }
}
