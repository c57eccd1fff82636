/// An index file over a range of sealed segments, mapped read-only and checked: lookups by
/// stream hash go through its Bloom filter and an interpolation search over its sorted entries.
final class IndexTable: Sendable {
    /// The sealed segments this file indexes.
    let segments: ClosedRange<UInt64>
    let file: MappedFile
    let entryCount: Int
    let bloomBlocks: Int
    /// Global position after the last event of the range (what the index says).
    let nextPosition: UInt64

    private init(file: MappedFile, summary: IndexFile.Summary) {
        self.segments = summary.segments
        self.file = file
        self.entryCount = summary.entries
        self.bloomBlocks = summary.bloomBlocks
        self.nextPosition = summary.nextPosition
    }

    /// Number of segments covered: tables of equal span are merged together.
    var span: UInt64 { segments.upperBound - segments.lowerBound + 1 }

    /// Maps and fully checks the index file at `path`. Returns why it cannot be used instead
    /// of throwing: an unusable index is rebuilt, not fatal.
    static func open(path: String, segments: ClosedRange<UInt64>, hashID: UInt32) -> Result<IndexTable, CorruptionError> {
        let file: MappedFile
        do { file = try MappedFile.open(path: path, writable: false) } catch {
            return .failure(CorruptionError(file: path, offset: 0, reason: error.errorNumber == ENOENT ? "missing" : error.description))
        }
        switch IndexFile.validate(file.bytes, segments: segments, hashID: hashID) {
        case .success(let summary):
            return .success(IndexTable(file: file, summary: summary))
        case .failure(let problem):
            return .failure(CorruptionError(file: path, offset: problem.offset, reason: problem.reason))
        }
    }

    func entry(_ index: Int) -> IndexFile.Entry {
        let bytes = file.bytes
        let offset = IndexFile.headerBytes + index * IndexFile.entryBytes
        return IndexFile.Entry(streamHash: bytes.u64(offset), firstRevision: bytes.u64(offset + 8),
                               firstPosition: bytes.u64(offset + 16), segmentIndex: bytes.u32(offset + 24),
                               offset: bytes.u32(offset + 28), eventCount: bytes.u32(offset + 32))
    }

    private func hash(at index: Int) -> UInt64 {
        file.bytes.u64(IndexFile.headerBytes + index * IndexFile.entryBytes)
    }

    /// Indexes of the entries with `streamHash`, in revision order (empty when absent).
    func entries(for streamHash: UInt64) -> Range<Int> {
        guard BlockedBloom.mayContain(streamHash, in: file.bytes,
                                      at: IndexFile.headerBytes + entryCount * IndexFile.entryBytes, blocks: bloomBlocks)
        else { return 0..<0 }
        // Stream hashes are uniform over 64 bits, so interpolation finds the run in two or three
        // probes (cache misses) where bisection takes log2(entries); bisection takes over if
        // interpolation stops narrowing.
        var low = 0
        var high = entryCount // first entry with hash >= streamHash lies in [low, high]
        var lowHash: UInt64 = 0
        var highHash: UInt64 = .max
        var interpolations = 0
        while low < high {
            let middle: Int
            if interpolations < 4, high - low > 8 {
                interpolations += 1
                let span = Double(highHash &- lowHash) + 1
                let fraction = Double(streamHash &- lowHash) / span
                middle = min(high - 1, max(low, low + Int(fraction * Double(high - low))))
            } else {
                middle = (low + high) / 2
            }
            let value = hash(at: middle)
            if value < streamHash {
                low = middle + 1
                lowHash = value
            } else {
                high = middle
                highHash = value
            }
        }
        var end = low
        while end < entryCount && hash(at: end) == streamHash { end += 1 }
        return low..<end
    }

    var sizeBytes: Int { file.size }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
