/// An index file over a range of sealed segments, `NNNNNNNNNNNNNNNN.idx` for one segment or
/// `NNNNNNNNNNNNNNNN-MMMMMMMMMMMMMMMM.idx` for a merged range (see `format-spec.md`, "Index
/// files"): a 96-byte header, the stream entries sorted by (stream hash, first revision), a
/// blocked Bloom filter of the stream hashes, then the query entries (one per events frame
/// and distinct event type or tag of its events) sorted by (key hash, first position).
/// Derived data: rebuilt from the segments whenever missing or failing a check.
enum IndexFile {
    static let magic: [UInt8] = Array("ANNALSIX".utf8)
    /// Version of the index file layout: 2 since format version 6 added the query entries
    /// (version-1 files are rebuilt).
    static let version: UInt16 = 2
    static let headerBytes = IndexHeaderLayout.size
    static let entryBytes = IndexEntryLayout.size
    static let bloomBlockBytes = 64
    /// Bloom filter sizing: about 10 bits per distinct stream hash.
    static let bloomBitsPerStream = 10
    /// Why a file of an earlier layout (without query entries) is not used: not damage, the
    /// next writable open rebuilds it.
    static let olderLayout = "index file of an earlier layout, version"
    /// Identifier of the stream hash function in the header (1 = 64-bit FNV-1a).
    static let fnv1aHashID: UInt32 = 1

    /// One entry: a frame of one stream.
    struct Entry: Sendable, Equatable {
        var streamHash: UInt64
        var firstRevision: UInt64
        var firstPosition: UInt64
        var segmentIndex: UInt32
        var offset: UInt32
        var eventCount: UInt32

        static func < (lhs: Entry, rhs: Entry) -> Bool {
            (lhs.streamHash, lhs.firstRevision) < (rhs.streamHash, rhs.firstRevision)
        }

        /// A query entry: `frame` filed under a key whose hash is `keyHash` (in `streamHash`).
        init(keyHash: UInt64, frame: FrameLocation) {
            self.init(streamHash: keyHash, firstRevision: frame.firstRevision, firstPosition: frame.firstPosition,
                      segmentIndex: UInt32(frame.segmentIndex), offset: frame.offset, eventCount: frame.eventCount)
        }

        init(streamHash: UInt64, firstRevision: UInt64, firstPosition: UInt64, segmentIndex: UInt32, offset: UInt32, eventCount: UInt32) {
            self.streamHash = streamHash
            self.firstRevision = firstRevision
            self.firstPosition = firstPosition
            self.segmentIndex = segmentIndex
            self.offset = offset
            self.eventCount = eventCount
        }

        /// The order of query entries: (key hash, first position).
        static func keyOrder(_ lhs: Entry, _ rhs: Entry) -> Bool {
            (lhs.streamHash, lhs.firstPosition) < (rhs.streamHash, rhs.firstPosition)
        }

        /// The frame the entry names.
        var frame: FrameLocation {
            FrameLocation(firstRevision: firstRevision, firstPosition: firstPosition, segmentIndex: UInt64(segmentIndex),
                          offset: offset, eventCount: eventCount)
        }
    }

    /// The file's bytes for `entries` (in any order) of segments `segments`, whose frames end
    /// at global position `nextPosition`. `fingerprint` identifies the segment files indexed
    /// (see ``fingerprint(ofHeaderChecksums:)``).
    static func encode(
        segments: ClosedRange<UInt64>, nextPosition: UInt64, hashID: UInt32, fingerprint: UInt32 = 0, entries unsorted: [Entry],
        keyEntries unsortedKeys: [Entry] = []
    ) -> [UInt8] {
        encode(segments: segments, nextPosition: nextPosition, hashID: hashID, fingerprint: fingerprint,
               sortedEntries: unsorted.sorted(by: <), sortedKeyEntries: unsortedKeys.sorted(by: Entry.keyOrder))
    }

    /// CRC-32C over the header checksums (u32, little-endian) of the segment files a file
    /// indexes, in order: compaction gives a rewritten segment a new header, so an index file
    /// written for the old one no longer matches and is never trusted (0: not recorded).
    static func fingerprint(ofHeaderChecksums headerChecksums: some Sequence<UInt32>) -> UInt32 {
        var checksums: [UInt8] = []
        for checksum in headerChecksums {
            for shift in stride(from: 0, to: 32, by: 8) { checksums.append(UInt8(truncatingIfNeeded: checksum >> UInt32(shift))) }
        }
        return checksums.withUnsafeBytes { CRC32C.checksum($0) }
    }

    /// As above, for stream entries already in (stream hash, first revision) order and query
    /// entries in (key hash, first position) order.
    static func encode(
        segments: ClosedRange<UInt64>, nextPosition: UInt64, hashID: UInt32, fingerprint: UInt32 = 0, sortedEntries entries: [Entry],
        sortedKeyEntries keyEntries: [Entry] = []
    ) -> [UInt8] {
        var distinct = 0
        var previous: UInt64?
        for entry in entries where entry.streamHash != previous {
            distinct += 1
            previous = entry.streamHash
        }
        let blocks = max(1, (distinct * bloomBitsPerStream + 511) / 512)
        let entriesBytes = entries.count * entryBytes
        let keyEntriesStart = headerBytes + entriesBytes + blocks * bloomBlockBytes
        var bytes = [UInt8](repeating: 0, count: keyEntriesStart + keyEntries.count * entryBytes)
        bytes.withUnsafeMutableBytes { buffer in
            func store(_ entries: [Entry], from start: Int) {
                var offset = start
                for entry in entries {
                    buffer.storeU64(entry.streamHash, at: offset + IndexEntryLayout.streamHash)
                    buffer.storeU64(entry.firstRevision, at: offset + IndexEntryLayout.firstRevision)
                    buffer.storeU64(entry.firstPosition, at: offset + IndexEntryLayout.firstPosition)
                    buffer.storeU32(entry.segmentIndex, at: offset + IndexEntryLayout.segment)
                    buffer.storeU32(entry.offset, at: offset + IndexEntryLayout.offset)
                    buffer.storeU32(entry.eventCount, at: offset + IndexEntryLayout.eventCount)
                    offset += entryBytes
                }
            }
            store(entries, from: headerBytes)
            store(keyEntries, from: keyEntriesStart)
            let bloomStart = headerBytes + entriesBytes
            for entry in entries {
                BlockedBloom.insert(entry.streamHash, into: buffer, at: bloomStart, blocks: blocks)
            }
            let readable = UnsafeRawBufferPointer(buffer)
            _ = magic.withUnsafeBytes { buffer.copy($0, to: IndexHeaderLayout.magic) }
            buffer.storeU16(version, at: IndexHeaderLayout.formatVersion)
            buffer.storeU16(UInt16(headerBytes), at: IndexHeaderLayout.headerSize)
            buffer.storeU64(segments.lowerBound, at: IndexHeaderLayout.firstSegment)
            buffer.storeU64(segments.upperBound, at: IndexHeaderLayout.lastSegment)
            buffer.storeU64(UInt64(entries.count), at: IndexHeaderLayout.entryCount)
            buffer.storeU64(UInt64(blocks), at: IndexHeaderLayout.bloomBlocks)
            buffer.storeU64(nextPosition, at: IndexHeaderLayout.nextPosition)
            buffer.storeU32(hashID, at: IndexHeaderLayout.hashFunction)
            buffer.storeU32(CRC32C.checksum(readable.slice(headerBytes, entriesBytes)), at: IndexHeaderLayout.entriesChecksum)
            buffer.storeU32(CRC32C.checksum(readable.slice(bloomStart, blocks * bloomBlockBytes)), at: IndexHeaderLayout.bloomChecksum)
            buffer.storeU32(fingerprint, at: IndexHeaderLayout.segmentsFingerprint)
            buffer.storeU64(UInt64(keyEntries.count), at: IndexHeaderLayout.keyEntryCount)
            buffer.storeU32(CRC32C.checksum(readable.slice(keyEntriesStart, keyEntries.count * entryBytes)),
                            at: IndexHeaderLayout.keyEntriesChecksum)
            buffer.storeU32(CRC32C.checksum(readable.slice(0, IndexHeaderLayout.headerChecksum)), at: IndexHeaderLayout.headerChecksum)
        }
        return bytes
    }

    struct Summary {
        let segments: ClosedRange<UInt64>
        let entries: Int
        let bloomBlocks: Int
        let nextPosition: UInt64
        /// ``IndexFile/fingerprint(ofHeaderChecksums:)`` of the segments indexed, 0 when not recorded.
        let fingerprint: UInt32
        let keyEntries: Int

        /// Where the query entries start.
        var keyEntriesOffset: Int { headerBytes + entries * entryBytes + bloomBlocks * bloomBlockBytes }
    }

    /// Checks an index file's header, both checksums and sizes; ``checkEntries(_:of:visit:)``
    /// checks the entries themselves. Returns its summary, or why the file cannot be trusted.
    static func validate(
        _ bytes: UnsafeRawBufferPointer, segments expected: ClosedRange<UInt64>, hashID: UInt32
    ) -> Result<Summary, CorruptionReason> {
        guard bytes.fits(0, headerBytes) else { return .failure(CorruptionReason(offset: 0, "shorter than a header")) }
        guard bytes.slice(IndexHeaderLayout.magic, magic.count).elementsEqual(magic) else {
            return .failure(CorruptionReason(offset: 0, "bad magic"))
        }
        // An earlier layout has its header checksum elsewhere: its version is read first.
        let fileVersion = bytes.u16(IndexHeaderLayout.formatVersion)
        if fileVersion >= 1, fileVersion < version {
            return .failure(CorruptionReason(offset: IndexHeaderLayout.formatVersion, olderLayout + " \(fileVersion)"))
        }
        guard CRC32C.checksum(bytes.slice(0, IndexHeaderLayout.headerChecksum)) == bytes.u32(IndexHeaderLayout.headerChecksum) else {
            return .failure(CorruptionReason(offset: IndexHeaderLayout.headerChecksum, "header checksum mismatch"))
        }
        guard fileVersion == version, Int(bytes.u16(IndexHeaderLayout.headerSize)) == headerBytes else {
            return .failure(CorruptionReason(offset: IndexHeaderLayout.formatVersion, "unsupported version \(fileVersion)"))
        }
        let firstSegment = bytes.u64(IndexHeaderLayout.firstSegment), lastSegment = bytes.u64(IndexHeaderLayout.lastSegment)
        guard firstSegment == expected.lowerBound, lastSegment == expected.upperBound else {
            return .failure(CorruptionReason(offset: IndexHeaderLayout.firstSegment, "indexes segments \(firstSegment)-\(lastSegment)"))
        }
        guard bytes.u32(IndexHeaderLayout.hashFunction) == hashID else {
            return .failure(CorruptionReason(offset: IndexHeaderLayout.hashFunction, "different stream hash function"))
        }
        let entryCount = bytes.u64(IndexHeaderLayout.entryCount)
        let blocks = bytes.u64(IndexHeaderLayout.bloomBlocks)
        let keyEntryCount = bytes.u64(IndexHeaderLayout.keyEntryCount)
        guard entryCount < UInt64(Int32.max), blocks >= 1, blocks < UInt64(Int32.max), keyEntryCount < UInt64(Int32.max),
              bytes.count == headerBytes + Int(entryCount + keyEntryCount) * entryBytes + Int(blocks) * bloomBlockBytes
        else {
            return .failure(CorruptionReason(offset: IndexHeaderLayout.entryCount, "sizes do not match the file length \(bytes.count)"))
        }
        let entriesBytes = Int(entryCount) * entryBytes
        guard CRC32C.checksum(bytes.slice(headerBytes, entriesBytes)) == bytes.u32(IndexHeaderLayout.entriesChecksum) else {
            return .failure(CorruptionReason(offset: headerBytes, "entries checksum mismatch"))
        }
        let bloom = bytes.slice(headerBytes + entriesBytes, Int(blocks) * bloomBlockBytes)
        guard CRC32C.checksum(bloom) == bytes.u32(IndexHeaderLayout.bloomChecksum) else {
            return .failure(CorruptionReason(offset: headerBytes + entriesBytes, "Bloom filter checksum mismatch"))
        }
        let summary = Summary(segments: expected, entries: Int(entryCount), bloomBlocks: Int(blocks),
                              nextPosition: bytes.u64(IndexHeaderLayout.nextPosition),
                              fingerprint: bytes.u32(IndexHeaderLayout.segmentsFingerprint), keyEntries: Int(keyEntryCount))
        guard CRC32C.checksum(bytes.slice(summary.keyEntriesOffset, summary.keyEntries * entryBytes))
            == bytes.u32(IndexHeaderLayout.keyEntriesChecksum)
        else { return .failure(CorruptionReason(offset: summary.keyEntriesOffset, "query entries checksum mismatch")) }
        return .success(summary)
    }
}

extension IndexFile {
    /// Checks, in one pass, the stream entries of a file that passed
    /// ``validate(_:segments:hashID:)``: ascending (stream hash, first revision) order, which
    /// lookups rely on, and a segment of the file's range in every entry. Hands each entry's
    /// hash to `visit` on the way. Returns the first problem, or nil.
    @inline(__always)
    static func checkEntries(
        _ bytes: UnsafeRawBufferPointer, of summary: Summary, visit: (_ index: Int, _ streamHash: UInt64) -> Void
    ) -> CorruptionReason? {
        checkSection(bytes, from: headerBytes, count: summary.entries, segments: summary.segments,
                     secondKey: IndexEntryLayout.firstRevision, what: "entry", order: "(stream hash, revision)", visit: visit)
    }

    /// As ``checkEntries(_:of:visit:)``, for the query entries: ascending (key hash, first
    /// position) order and a segment of the file's range in every entry.
    @inline(__always)
    static func checkKeyEntries(
        _ bytes: UnsafeRawBufferPointer, of summary: Summary, visit: (_ index: Int, _ keyHash: UInt64) -> Void
    ) -> CorruptionReason? {
        checkSection(bytes, from: summary.keyEntriesOffset, count: summary.keyEntries, segments: summary.segments,
                     secondKey: IndexEntryLayout.firstPosition, what: "query entry", order: "(key hash, position)", visit: visit)
    }

    /// The entries of one section in ascending (hash, field at `secondKey`) order, each naming
    /// a segment of `segments`.
    @inline(__always)
    private static func checkSection(
        _ bytes: UnsafeRawBufferPointer, from start: Int, count: Int, segments: ClosedRange<UInt64>, secondKey: Int,
        what: String, order: String, visit: (_ index: Int, _ hash: UInt64) -> Void
    ) -> CorruptionReason? {
        var previous: (hash: UInt64, second: UInt64) = (0, 0)
        for index in 0..<count {
            let offset = start + index * entryBytes
            let entry = (hash: bytes.u64(offset + IndexEntryLayout.streamHash), second: bytes.u64(offset + secondKey))
            if index > 0, entry < previous {
                return CorruptionReason(offset: offset, "\(what) \(index) is out of \(order) order")
            }
            let segment = bytes.u32(offset + IndexEntryLayout.segment)
            guard segments.contains(UInt64(segment)) else {
                return CorruptionReason(offset: offset + IndexEntryLayout.segment, "\(what) \(index) names segment \(segment)")
            }
            visit(index, entry.hash)
            previous = entry
        }
        return nil
    }
}

/// A Bloom filter whose probes for one key all fall in one 64-byte block (one cache line), so a
/// negative answer costs one memory access. Six bits per key, ~10 bits per key overall.
enum BlockedBloom {
    static let probes = 6

    /// SplitMix64's finalizer: spreads the stream hash over all 64 bits.
    @inline(__always)
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Block = high 32 bits of mix(h) scaled to the block count; bit i = bits [9i, 9i+9) of
    /// mix(mix(h)), a bit number 0...511 inside the block (byte = bit / 8, bit = bit % 8).
    @inline(__always)
    static func location(_ hash: UInt64, blocks: Int) -> (block: Int, bits: UInt64) {
        let first = mix(hash)
        let block = Int(((first >> 32) &* UInt64(blocks)) >> 32)
        return (block, mix(first))
    }

    static func insert(_ hash: UInt64, into buffer: UnsafeMutableRawBufferPointer, at start: Int, blocks: Int) {
        let (block, bits) = location(hash, blocks: blocks)
        let base = start + block * IndexFile.bloomBlockBytes
        for probe in 0..<probes {
            let bit = Int((bits >> UInt64(9 * probe)) & 511)
            buffer[base + bit / 8] |= UInt8(1) << UInt8(bit % 8)
        }
    }

    @inline(__always)
    static func mayContain(_ hash: UInt64, in bytes: UnsafeRawBufferPointer, at start: Int, blocks: Int) -> Bool {
        let (block, bits) = location(hash, blocks: blocks)
        let base = start + block * IndexFile.bloomBlockBytes
        for probe in 0..<probes {
            let bit = Int((bits >> UInt64(9 * probe)) & 511)
            if bytes[base + bit / 8] & (UInt8(1) << UInt8(bit % 8)) == 0 { return false }
        }
        return true
    }
}
