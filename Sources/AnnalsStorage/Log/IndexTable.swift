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
    /// Identifies the segment files indexed (``IndexFile/fingerprint(of:)``); 0: not recorded.
    let fingerprint: UInt32
    /// The stream hash of every `fenceStride`-th entry, kept in memory: a search bisects this
    /// small array and then touches one block of entries instead of probing across the file.
    private let fences: [UInt64]
    static let fenceStride = 64

    private init(file: MappedFile, summary: IndexFile.Summary) {
        self.segments = summary.segments
        self.file = file
        self.entryCount = summary.entries
        self.bloomBlocks = summary.bloomBlocks
        self.nextPosition = summary.nextPosition
        self.fingerprint = summary.fingerprint
        let bytes = file.bytes
        self.fences = stride(from: 0, to: summary.entries, by: Self.fenceStride).map {
            bytes.u64(IndexFile.headerBytes + $0 * IndexFile.entryBytes)
        }
    }

    /// Number of segments covered: tables of equal span are merged together.
    var span: UInt64 { segments.upperBound - segments.lowerBound + 1 }

    /// Maps and fully checks the index file at `path`. Returns why it cannot be used instead
    /// of throwing: an unusable index is rebuilt, not fatal.
    static func open(
        path: String, segments: ClosedRange<UInt64>, hashID: UInt32, storage: any Storage
    ) -> Result<IndexTable, CorruptionError> {
        let file: MappedFile
        do { file = try storage.openMappedFile(path: path, writable: false) } catch {
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
        // First fence at or above the hash: the run starts in the block before it (or at it).
        var fenceLow = 0
        var fenceHigh = fences.count
        while fenceLow < fenceHigh {
            let middle = (fenceLow + fenceHigh) / 2
            if fences[middle] < streamHash { fenceLow = middle + 1 } else { fenceHigh = middle }
        }
        var low = max(0, fenceLow - 1) * Self.fenceStride
        var high = min(entryCount, fenceLow * Self.fenceStride)
        while low < high {
            let middle = (low + high) / 2
            if hash(at: middle) < streamHash { low = middle + 1 } else { high = middle }
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
