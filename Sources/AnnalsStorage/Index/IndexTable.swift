import CAnnalsSupport

/// An index file over a range of sealed segments, mapped read-only and checked: a lookup by
/// stream hash goes through an in-memory bucket directory straight to the few sorted entries
/// that can match.
final class IndexTable: Sendable {
    /// The sealed segments this file indexes.
    let segments: ClosedRange<UInt64>
    let file: MappedFile
    let entryCount: Int
    /// Global position after the last event of the range (what the index says).
    let nextPosition: UInt64
    /// Identifies the segment files indexed (``IndexFile/fingerprint(ofHeaderChecksums:)``); 0: not recorded.
    let fingerprint: UInt32
    /// Where each hash bucket starts: bucket `b` (the top `bucketBits` bits of the stream hash)
    /// holds entries `bucketStarts[b] ..< bucketStarts[b + 1]`. Kept in memory (half a byte to
    /// a byte per entry), so a lookup goes straight to the few entries that can match: one
    /// cache miss into the file instead of a search across it. Built at open from the sorted
    /// hashes (the file's checks include their order).
    private let bucketStarts: [UInt32]
    private let bucketBits: Int
    /// Number of query entries (frames by event type or tag), and where they start.
    let keyEntryCount: Int
    private let keyEntriesOffset: Int
    /// The query entries' bucket directory, as ``bucketStarts`` for the stream entries.
    private let keyBucketStarts: [UInt32]
    private let keyBucketBits: Int

    private init(file: MappedFile, summary: IndexFile.Summary, buckets: (starts: [UInt32], bits: Int), keyBuckets: (starts: [UInt32], bits: Int)) {
        self.segments = summary.segments
        self.file = file
        self.entryCount = summary.entries
        self.nextPosition = summary.nextPosition
        self.fingerprint = summary.fingerprint
        self.bucketStarts = buckets.starts
        self.bucketBits = buckets.bits
        self.keyEntryCount = summary.keyEntries
        self.keyEntriesOffset = summary.keyEntriesOffset
        self.keyBucketStarts = keyBuckets.starts
        self.keyBucketBits = keyBuckets.bits
    }

    /// Checks a section's entries (through `check`, which visits each entry's hash in order)
    /// and builds its bucket directory in the same pass.
    private static func buildBuckets(
        entries: Int, bits: Int, check: ((_ index: Int, _ hash: UInt64) -> Void) -> CorruptionReason?
    ) -> Result<[UInt32], CorruptionReason> {
        var problem: CorruptionReason?
        let starts = [UInt32](unsafeUninitializedCapacity: (1 << bits) + 1) { starts, initialized in
            // starts[b] = the first entry whose bucket is at least b (entries are sorted by hash).
            var next = 0
            problem = check { index, hash in
                let bucket = Self.bucket(of: hash, bits: bits)
                while next <= bucket {
                    starts[next] = UInt32(index)
                    next += 1
                }
            }
            while next < starts.count {
                starts[next] = UInt32(entries)
                next += 1
            }
            initialized = starts.count
        }
        if let problem { return .failure(problem) }
        return .success(starts)
    }

    /// About 4–8 entries per bucket; one bucket for a small file.
    static func bucketBits(forEntries entries: Int) -> Int {
        guard entries >= 16 else { return 0 }
        return min(28, (Int.bitWidth - 1 - entries.leadingZeroBitCount) - 2)
    }

    @inline(__always)
    private static func bucket(of hash: UInt64, bits: Int) -> Int {
        bits == 0 ? 0 : Int(truncatingIfNeeded: hash >> UInt64(64 - bits))
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
        let bytes = file.bytes
        let checked = IndexFile.validate(bytes, segments: segments, hashID: hashID).flatMap { summary in
            let bits = Self.bucketBits(forEntries: summary.entries)
            let keyBits = Self.bucketBits(forEntries: summary.keyEntries)
            return buildBuckets(entries: summary.entries, bits: bits) { IndexFile.checkEntries(bytes, of: summary, visit: $0) }
                .flatMap { starts in
                    buildBuckets(entries: summary.keyEntries, bits: keyBits) { IndexFile.checkKeyEntries(bytes, of: summary, visit: $0) }
                        .map { (summary, (starts, bits), ($0, keyBits)) }
                }
        }
        switch checked {
        case .success(let (summary, buckets, keyBuckets)):
            return .success(IndexTable(file: file, summary: summary, buckets: buckets, keyBuckets: keyBuckets))
        case .failure(let problem):
            return .failure(CorruptionError(file: path, offset: problem.offset, reason: problem.reason))
        }
    }

    func entry(_ index: Int) -> IndexFile.Entry {
        entry(at: IndexFile.headerBytes + index * IndexFile.entryBytes)
    }

    /// The entry (stream or query) at byte `offset` of the file.
    private func entry(at offset: Int) -> IndexFile.Entry {
        let bytes = file.bytes
        return IndexFile.Entry(streamHash: bytes.u64(offset + IndexEntryLayout.streamHash),
                               firstRevision: bytes.u64(offset + IndexEntryLayout.firstRevision),
                               firstPosition: bytes.u64(offset + IndexEntryLayout.firstPosition),
                               segmentIndex: bytes.u32(offset + IndexEntryLayout.segment),
                               offset: bytes.u32(offset + IndexEntryLayout.offset),
                               eventCount: bytes.u32(offset + IndexEntryLayout.eventCount))
    }

    private func hash(at index: Int) -> UInt64 {
        file.bytes.u64(IndexFile.headerBytes + index * IndexFile.entryBytes + IndexEntryLayout.streamHash)
    }

    /// The entries of the bucket `streamHash` falls in: every entry with that hash is among them.
    @inline(__always)
    private func bucketRange(of streamHash: UInt64) -> Range<Int> {
        let bucket = Self.bucket(of: streamHash, bits: bucketBits)
        return bucketStarts.withUnsafeBufferPointer { Int($0[bucket])..<Int($0[bucket + 1]) }
    }

    /// Starts loading the entries `streamHash` could be among, so that lookups in several
    /// files wait for their cache misses together. A hint only.
    func prefetchEntries(for streamHash: UInt64) {
        let range = bucketRange(of: streamHash)
        guard !range.isEmpty else { return }
        let first = IndexFile.headerBytes + range.lowerBound * IndexFile.entryBytes
        let end = IndexFile.headerBytes + range.upperBound * IndexFile.entryBytes
        for offset in stride(from: first, to: end, by: 64) { annals_prefetch(file.bytes.baseAddress! + offset) }
    }

    /// Indexes of the entries with `streamHash`, in revision order (empty when absent).
    func entries(for streamHash: UInt64) -> Range<Int> {
        let bucket = bucketRange(of: streamHash)
        var low = bucket.lowerBound
        var high = bucket.upperBound
        if high - low > 16 {
            // A crowded bucket (hashes are not perfectly even): bisect it.
            while low < high {
                let middle = (low + high) / 2
                if hash(at: middle) < streamHash { low = middle + 1 } else { high = middle }
            }
        } else {
            while low < high && hash(at: low) < streamHash { low += 1 }
        }
        var end = low
        while end < bucket.upperBound && hash(at: end) == streamHash { end += 1 }
        return low..<end
    }

    var sizeBytes: Int { file.size }

    // MARK: Query entries

    /// Query entry `index` (a frame filed under a key; its hash is in `streamHash`).
    func keyEntry(_ index: Int) -> IndexFile.Entry {
        entry(at: keyEntriesOffset + index * IndexFile.entryBytes)
    }

    /// Indexes of the query entries with `keyHash`, in position order (empty when absent).
    func keyEntries(for keyHash: UInt64) -> Range<Int> {
        guard keyEntryCount > 0 else { return 0..<0 }
        let bucket = Self.bucket(of: keyHash, bits: keyBucketBits)
        let range = keyBucketStarts.withUnsafeBufferPointer { Int($0[bucket])..<Int($0[bucket + 1]) }
        func hash(at index: Int) -> UInt64 { file.bytes.u64(keyEntriesOffset + index * IndexFile.entryBytes + IndexEntryLayout.streamHash) }
        var low = range.lowerBound, high = range.upperBound
        while low < high {
            let middle = (low + high) / 2
            if hash(at: middle) < keyHash { low = middle + 1 } else { high = middle }
        }
        var end = low
        // A key's run may be long (a common type): bisect for its end too.
        var top = range.upperBound
        while end < top {
            let middle = (end + top) / 2
            if hash(at: middle) <= keyHash { end = middle + 1 } else { top = middle }
        }
        return low..<end
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
