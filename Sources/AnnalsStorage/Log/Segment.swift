import Synchronization

/// One segment file of the log: its checked header and its mapping.
///
/// Sealed segments are immutable. The open segment is written only by the log writer, and
/// only past the end that readers have been told about, so sharing it is safe.
@usableFromInline
final class Segment: Sendable {
    let header: SegmentHeader
    let file: MappedFile
    /// Offset of the dictionary frame whose checksum was verified last (0: none yet). Segments
    /// almost always have one dictionary, so one slot spares every later read the check.
    let verifiedDictionaryOffset = Atomic<Int>(0)
    /// Every dictionary frame verified so far, for compacted segments, which hold one per
    /// segment they were made from.
    let verifiedDictionaries = Locked<Set<Int>>([])
    /// A frame boundary a forward cursor stopped at (its offset and the position expected
    /// there): a later read from that position or beyond starts walking there instead of at
    /// the segment's first frame. Frames never move, so any recorded boundary stays valid.
    let resumeHint = Locked<ResumeHint>(ResumeHint(position: 0, offset: 0))

    /// The segment's dictionary copied for decoding single records (``LZ4DictionaryCopy``),
    /// made on first use (published by one compare-and-exchange; a copy made by a thread that
    /// lost the race is released) and released with the segment.
    let dictionaryCopy = Atomic<Unmanaged<LZ4DictionaryCopy>?>(nil)

    struct ResumeHint {
        var position: UInt64
        var offset: Int
    }

    /// The store's data keys, for the encrypted records this segment holds (nil: the store has
    /// none, and such a record is reported as corruption).
    let keyRing: KeyRing?
    /// Tells this instance apart from every other of the process, for as long as it runs
    /// (never reused, unlike its address): keys caches of its bytes (``LZ4PrefixDecoder``).
    let serial: UInt64
    private static let serials = Atomic<UInt64>(0)

    init(header: SegmentHeader, file: MappedFile, keyRing: KeyRing?) {
        self.serial = Self.serials.add(1, ordering: .relaxed).newValue
        self.header = header
        self.file = file
        self.keyRing = keyRing
    }

    deinit {
        dictionaryCopy.load(ordering: .acquiring)?.release()
    }

    /// The segment's number (its file name).
    var index: UInt64 { header.segmentIndex }
    /// The last segment number the file stands for (`index` unless compaction merged several).
    var lastIndex: UInt64 { header.lastSegmentIndex }
    /// Written by compaction: positions (and a stream's revisions) may skip removed events.
    var isCompacted: Bool { header.isCompacted }

    var path: String { file.path }
    /// The header's checksum: identifies the file's contents for index fingerprints.
    var headerChecksum: UInt32 { bytes.u32(SegmentHeaderLayout.headerChecksum) }
    var firstPosition: UInt64 { header.firstPosition }
    var bytes: UnsafeRawBufferPointer { file.bytes }

    /// The file ends with a durable-mark area (§3.8).
    var hasDurableMarks: Bool { header.hasDurableMarks }
    /// Where the frame area ends: the durable-mark area or the end of the file.
    var frameAreaEnd: Int { file.size - (hasDurableMarks ? Format.durableMarkAreaBytes : 0) }
    /// Bytes available for frames, leaving room for the seal frame that ends every segment.
    var frameCapacity: Int { frameAreaEnd - Format.sealFrameBytes }
    /// The newest valid durable mark, if the segment has a mark area.
    var durableMark: DurableMark? { hasDurableMarks ? DurableMark.latest(in: bytes, segmentIndex: index) : nil }

    /// Reads the frame at `offset` under this segment's version rules: a segment of format
    /// version 1 may hold no dictionary frame (§3.5).
    func probe(at offset: Int, verifyChecksum: Bool = true) -> FrameDecoder.Probe {
        let probe = FrameDecoder.probe(bytes, at: offset, verifyChecksum: verifyChecksum, limit: frameAreaEnd)
        if case .frame(let frame) = probe, frame.kind == .dictionary, !allowsCompression {
            return verifyChecksum ? .malformed("dictionary frame in a version-1 segment") : .invalid("dictionary frame in a version-1 segment")
        }
        return probe
    }

    /// Version 1 segments hold neither dictionary frames nor compressed records.
    var allowsCompression: Bool { header.formatVersion >= Format.appendSegmentVersion }

    func corruption(at offset: Int, _ reason: String) -> CorruptionError {
        CorruptionError(file: path, offset: offset, reason: reason)
    }
}

extension RandomAccessCollection where Element == Segment, Index == Int {
    /// The segment file that stands for segment number `number` (a compacted file stands for a
    /// range of numbers), or nil when the store has none.
    func segment(numbered number: UInt64) -> Segment? {
        guard let first = first, number >= first.index else { return nil }
        // Without compaction, number and slot advance together.
        let guess = number - first.index
        if guess < UInt64(count), self[startIndex + Int(guess)].index == number { return self[startIndex + Int(guess)] }
        let slot = lastIndex(atOrBefore: number, by: \.index)
        let candidate = self[slot]
        return candidate.index <= number && number <= candidate.lastIndex ? candidate : nil
    }
}

/// File names inside a store directory (see `format-spec.md`, "Store directory").
struct StoreLayout: Sendable {
    let root: String
    /// Where every file operation goes (the real file system, or a simulated one in tests).
    let storage: any Storage

    init(root: String, storage: any Storage = SystemStorage.shared) {
        self.root = root
        self.storage = storage
    }

    var lockPath: String { root + "/lock" }
    /// The directory holding the store directory (`.` for a relative name without one).
    var parentDirectory: String {
        let trimmed = root.hasSuffix("/") && root.count > 1 ? String(root.dropLast()) : root
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }
    var checkpointPath: String { root + "/checkpoint" }
    /// The key store (§1B).
    var keysPath: String { root + "/" + KeyStoreFile.fileName }
    var segmentsDirectory: String { root + "/segments" }

    /// `segments/0000000000000042.seg`: the index as 16 zero-padded decimal digits.
    func segmentPath(_ index: UInt64) -> String {
        segmentsDirectory + "/" + Self.segmentFileName(index)
    }

    /// `segments/0000000000000042.idx` for one sealed segment, or
    /// `segments/0000000000000040-0000000000000043.idx` for a merged range.
    func indexPath(_ segments: ClosedRange<UInt64>) -> String {
        let first = String(Self.segmentFileName(segments.lowerBound).dropLast(4))
        if segments.lowerBound == segments.upperBound { return segmentsDirectory + "/" + first + ".idx" }
        return segmentsDirectory + "/" + first + "-" + String(Self.segmentFileName(segments.upperBound).dropLast(4)) + ".idx"
    }

    func indexPath(_ segment: UInt64) -> String { indexPath(segment...segment) }

    /// The segment range named by an index file name, or nil for anything else.
    static func indexRange(fileName: String) -> ClosedRange<UInt64>? {
        guard fileName.hasSuffix(".idx") else { return nil }
        let stem = fileName.dropLast(4)
        let parts = stem.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.allSatisfy({ $0.utf8.count == 16 }),
              let first = parts.first.flatMap({ UInt64($0) }), let last = parts.last.flatMap({ UInt64($0) }),
              parts.count <= 2, first <= last
        else { return nil }
        return first...last
    }

    static func segmentFileName(_ index: UInt64) -> String {
        let digits = String(index)
        return String(repeating: "0", count: max(0, 16 - digits.count)) + digits + ".seg"
    }

    /// The segment index named by a file name, or nil for anything else.
    static func segmentIndex(fileName: String) -> UInt64? {
        guard fileName.hasSuffix(".seg"), fileName.utf8.count == 20 else { return nil }
        return UInt64(fileName.dropLast(4))
    }

    /// Where segment `index` is: in the archive directory below its boundary, else here.
    func segmentPath(_ index: UInt64, archive: ArchiveLocation?) -> String {
        if let archive, index < archive.firstLocalSegment { return archive.segmentPath(index) }
        return segmentPath(index)
    }

    /// The store's `archive` file (§1A).
    var archiveManifestPath: String { root + "/" + ArchiveManifest.fileName }

    /// The segment files of the store, in `segments/` and in its archive (`format-spec.md`
    /// §1, §1A).
    func listSegments(archive: ArchiveLocation?) throws(SystemError) -> SegmentListing {
        var listing = SegmentListing()
        var local: [UInt64: String] = [:]
        for name in try storage.directoryEntries(segmentsDirectory) ?? [] {
            if let index = Self.segmentIndex(fileName: name) {
                local[index] = segmentsDirectory + "/" + name
            } else if name.hasSuffix(".tmp") {
                listing.temporaryFiles.append(segmentsDirectory + "/" + name)
            }
        }
        var archived: [UInt64: String] = [:]
        // With nothing archived yet, the archive directory holds nothing of the log.
        if let archive, archive.firstLocalSegment > 0 {
            for name in try storage.directoryEntries(archive.directory) ?? [] {
                if let index = Self.segmentIndex(fileName: name) {
                    archived[index] = archive.directory + "/" + name
                } else if name.hasSuffix(".tmp") {
                    listing.temporaryFiles.append(archive.directory + "/" + name)
                }
            }
        }
        let boundary = archive?.firstLocalSegment ?? 0
        var files: [SegmentListing.File] = []
        // Archived files at or above the boundary are copies a run made before it stopped: never
        // read, and replaced when that number is archived. Local files below it are archived:
        // left-overs once their archived copy is there (without it, recovery reports the
        // archived file missing and nothing is deleted).
        for (index, path) in archived where index < boundary {
            files.append(SegmentListing.File(index: index, path: path, archived: true))
        }
        for (index, path) in local {
            if index >= boundary {
                files.append(SegmentListing.File(index: index, path: path, archived: false))
            } else if let copy = archived[index] {
                listing.leftoverCopies.append(SegmentListing.LeftoverCopy(path: path, archivedCopy: copy))
            }
        }
        listing.files = files.sorted { $0.index < $1.index }
        return listing
    }
}

/// The segment files of a store, wherever they are (`segments/` or the archive directory).
struct SegmentListing: Sendable {
    struct File: Sendable {
        let index: UInt64
        let path: String
        /// In the archive directory.
        let archived: Bool
    }

    /// In number order, each number at most once: below the archive's boundary the archived
    /// file, at or above it the local one.
    var files: [File] = []
    /// `.tmp` files in `segments/`, and in the archive directory once it holds segments: a
    /// writer's open deletes them.
    var temporaryFiles: [String] = []
    /// Local files of archived segments, left by an archive run that stopped after its commit:
    /// a writer's open deletes each one that is byte for byte its archived copy.
    var leftoverCopies: [LeftoverCopy] = []

    struct LeftoverCopy: Sendable {
        let path: String
        let archivedCopy: String
    }

    var indexes: [UInt64] { files.map(\.index) }
}
