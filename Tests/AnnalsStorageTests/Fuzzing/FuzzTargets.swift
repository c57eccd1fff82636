#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
// `make fuzz` compiles this file into the AnnalsStorage module itself (ANNALS_FUZZ_BUILD);
// the tests reach the same internals through a testable import. It never ships in the library.
#if !ANNALS_FUZZ_BUILD
@testable import AnnalsStorage
#endif

/// The decoders that take bytes from disk, as libFuzzer targets (`make fuzz`: `Tools/fuzz`
/// compiles them into the AnnalsStorage module with `-sanitize=fuzzer,address`) and as the replay of
/// every input that ever crashed one (`Tests/Fixtures/fuzz`, `FuzzRegressionTests`). A target
/// may reject its input in any way; it must never crash, hang or read out of bounds.
///
/// The first input byte chooses whether checksums are recomputed before the bytes are checked
/// (odd) or left as the input has them (even): with them fixed, mutations reach the record,
/// compression and index checks that stand behind the checksums.
enum FuzzTargets {
    enum Target: String, CaseIterable, Sendable {
        /// Frames of a segment: headers, record structure, dictionary references, LZ4 bodies.
        case frames
        /// An index file: header, checksums, sizes, entries, Bloom filter.
        case index
        /// One LZ4 block against a dictionary, into a buffer of a stated size.
        case lz4
        /// Small records: segment header, checkpoint, retention record, snapshot metadata.
        case records
        /// A whole store directory: writable open (recovery, index rebuilds), every read, verify.
        case open
    }

    static func run(_ target: Target, _ input: UnsafeRawBufferPointer) {
        guard let mode = input.first else { return }
        let fixChecksums = mode & 1 == 1
        let body = UnsafeRawBufferPointer(rebasing: input.dropFirst())
        switch target {
        case .frames: frames(Array(body), fixChecksums: fixChecksums)
        case .index: index(Array(body), fixChecksums: fixChecksums)
        case .lz4: lz4(body)
        case .records: records(Array(body), fixChecksums: fixChecksums)
        case .open: open(body, fixChecksums: fixChecksums)
        }
    }

    // MARK: Frames

    /// `bytes` after a 64-byte segment header: walks frames as recovery and the cursors do.
    static func frames(_ body: [UInt8], fixChecksums: Bool) {
        var bytes = [UInt8](repeating: 0, count: Format.segmentHeaderBytes) + body
        bytes += [UInt8](repeating: 0, count: Format.aligned(bytes.count) - bytes.count)
        if fixChecksums { fixFrameChecksums(&bytes) }
        bytes.withUnsafeBytes { walkFrames($0) }
    }

    /// Recomputes the checksum of every frame a walk would reach (a length that fits).
    static func fixFrameChecksums(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { buffer in
            var offset = Format.segmentHeaderBytes
            while buffer.count - offset >= Format.frameHeaderBytes {
                let length = Int(UnsafeRawBufferPointer(buffer).u32(offset + 4))
                guard length >= Format.frameHeaderBytes, length <= buffer.count - offset else { return }
                let checksum = CRC32C.checksum(UnsafeRawBufferPointer(buffer).slice(offset + 4, length - 4))
                buffer.storeU32(checksum, at: offset)
                offset += Format.aligned(length)
            }
        }
    }

    static func walkFrames(_ bytes: UnsafeRawBufferPointer) {
        var offset = Format.segmentHeaderBytes
        var dictionaries = Set<Int>()
        while true {
            guard case .frame(let frame) = FrameDecoder.probe(bytes, at: offset, verifyChecksum: true) else { return }
            switch frame.kind {
            case .seal: return
            case .dictionary: dictionaries.insert(offset)
            case .events:
                guard FrameDecoder.validateRecords(of: frame, in: bytes, isDictionary: { dictionaries.contains($0) }) == nil else { return }
                var cursor = frame.recordsOffset
                for _ in 0..<frame.eventCount {
                    let layout = FrameDecoder.record(at: cursor, in: bytes)
                    _ = String(decoding: bytes.slice(layout.typeOffset, layout.typeBytes), as: UTF8.self)
                    if layout.isCompressed {
                        let dictionaryOffset = Int(bytes.u32(layout.bodyOffset))
                        let dictionary = dictionaryOffset == 0 ? nil
                            : bytes.slice(dictionaryOffset + Format.frameHeaderBytes, Int(bytes.u32(dictionaryOffset + 4)) - Format.frameHeaderBytes)
                        _ = LZ4.decompress(bytes.slice(layout.blockOffset, layout.blockBytes),
                                           decodedCount: layout.metadataBytes + layout.payloadBytes, dictionary: dictionary)
                    } else {
                        _ = Array(bytes.slice(layout.metadataOffset, layout.metadataBytes + layout.payloadBytes))
                    }
                    cursor = layout.end
                }
            }
            offset = frame.end
        }
    }

    // MARK: Index files

    static func index(_ body: [UInt8], fixChecksums: Bool) {
        var bytes = body
        if fixChecksums { fixIndexChecksums(&bytes) }
        bytes.withUnsafeBytes { readable in
            let range = readable.count >= 32 ? readable.u64(16)...max(readable.u64(16), readable.u64(24)) : 0...0
            guard case .success(let summary) = IndexFile.validate(readable, segments: range, hashID: IndexFile.fnv1aHashID) else { return }
            guard IndexFile.checkEntries(readable, of: summary, visit: { _, _ in }) == nil else { return }
            let bloomStart = IndexFile.headerBytes + summary.entries * IndexFile.entryBytes
            for slot in 0..<summary.entries {
                let hash = readable.u64(IndexFile.headerBytes + slot * IndexFile.entryBytes)
                _ = BlockedBloom.mayContain(hash, in: readable, at: bloomStart, blocks: summary.bloomBlocks)
            }
        }
    }

    /// Recomputes an index file's three checksums (entries, Bloom filter, header) for the
    /// sizes its header states, bounded by the file.
    static func fixIndexChecksums(_ bytes: inout [UInt8]) {
        guard bytes.count >= IndexFile.headerBytes else { return }
        bytes.withUnsafeMutableBytes { buffer in
            let readable = UnsafeRawBufferPointer(buffer)
            let entries = Int(min(readable.u64(IndexHeaderLayout.entryCount), UInt64(buffer.count)))
            let entriesEnd = min(buffer.count, IndexFile.headerBytes + entries * IndexFile.entryBytes)
            buffer.storeU32(CRC32C.checksum(readable.slice(IndexFile.headerBytes, entriesEnd - IndexFile.headerBytes)),
                            at: IndexHeaderLayout.entriesChecksum)
            buffer.storeU32(CRC32C.checksum(readable.slice(entriesEnd, buffer.count - entriesEnd)), at: IndexHeaderLayout.bloomChecksum)
            buffer.storeU32(CRC32C.checksum(readable.slice(0, IndexHeaderLayout.headerChecksum)), at: IndexHeaderLayout.headerChecksum)
        }
    }

    // MARK: LZ4

    /// u32 decoded size (capped at 1 MiB), u16 dictionary length, the dictionary, the block.
    static func lz4(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 6 else { return }
        let decoded = Int(bytes.u32(0) % (1 << 20))
        let dictionaryBytes = min(Int(bytes.u16(4)), bytes.count - 6)
        let dictionary = bytes.slice(6, dictionaryBytes)
        let block = bytes.slice(6 + dictionaryBytes, bytes.count - 6 - dictionaryBytes)
        _ = LZ4.decompress(block, decodedCount: decoded, dictionary: dictionary.isEmpty ? nil : dictionary)
    }

    // MARK: Small records

    static func records(_ body: [UInt8], fixChecksums: Bool) {
        var header = body.prefix(Format.segmentHeaderBytes).map { $0 }
        if fixChecksums, header.count == Format.segmentHeaderBytes {
            header.withUnsafeMutableBytes { buffer in
                let checksum = CRC32C.checksum(UnsafeRawBufferPointer(buffer).slice(0, SegmentHeaderLayout.headerChecksum))
                buffer.storeU32(checksum, at: SegmentHeaderLayout.headerChecksum)
            }
        }
        header.withUnsafeBytes { _ = try? SegmentHeader.decode($0, file: "fuzz") }
        var checkpoint = Array(body.prefix(Format.checkpointBytes))
        if fixChecksums, checkpoint.count == Format.checkpointBytes {
            checkpoint.withUnsafeMutableBytes { buffer in
                let checksum = CRC32C.checksum(UnsafeRawBufferPointer(buffer).slice(0, CheckpointLayout.checksum))
                buffer.storeU32(checksum, at: CheckpointLayout.checksum)
            }
        }
        _ = Checkpoint.decode(checkpoint)
        body.withUnsafeBytes { bytes in
            _ = StreamRetention.decode(bytes)
            if bytes.count >= SnapshotMetadataLayout.size {
                _ = (bytes.u64(SnapshotMetadataLayout.revision), bytes.u32(SnapshotMetadataLayout.schemaVersion))
            }
        }
    }

    // MARK: A whole store

    /// The input as files: records of u8 kind (0 segment, 1 checkpoint, 2 index file), u32
    /// length, bytes. Segments are numbered in order; an index file covers segment 0 to the
    /// number in its first byte. Opened writable (recovery cuts tails, rebuilds indexes), read
    /// in every way, closed, verified.
    static func open(_ input: UnsafeRawBufferPointer, fixChecksums: Bool) {
        let directory = scratchDirectory()
        guard (try? Syscalls.makeDirectory(directory)) != nil || (try? Syscalls.status(directory)) != nil else { return }
        defer { removeTree(directory) }
        try? Syscalls.makeDirectory(directory + "/segments")
        var offset = 0
        var segment: UInt64 = 0
        while input.count - offset >= 5, segment < 16 {
            let kind = input[offset]
            let length = min(Int(input.u32(offset + 1)), input.count - offset - 5)
            var bytes = Array(input.slice(offset + 5, length))
            offset += 5 + length
            switch kind % 3 {
            case 0:
                if fixChecksums, bytes.count >= Format.segmentHeaderBytes {
                    bytes.withUnsafeMutableBytes { buffer in
                        buffer.storeU64(segment, at: 16)
                        buffer.storeU64(UInt64(buffer.count), at: 24)
                        let checksum = CRC32C.checksum(UnsafeRawBufferPointer(buffer).slice(0, SegmentHeaderLayout.headerChecksum))
                buffer.storeU32(checksum, at: SegmentHeaderLayout.headerChecksum)
                    }
                    fixFrameChecksums(&bytes)
                }
                write(bytes, to: directory + "/segments/" + StoreLayout.segmentFileName(segment))
                segment += 1
            case 1:
                write(bytes, to: directory + "/checkpoint")
            default:
                let last = UInt64(bytes.first ?? 0) % 8
                write(bytes, to: StoreLayout(root: directory).indexPath(0...last))
            }
        }
        guard let store = try? EventStore.open(at: directory, options: StoreOptions(segmentSizeBytes: 4096, createIfMissing: false)) else {
            _ = StoreVerifier.verify(at: directory)
            return
        }
        var streams = Set<String>()
        var forwards = store.readAll().makeCursor()
        while let event = try? forwards.next() {
            streams.insert(event.stream)
            _ = try? event.payload
            _ = try? event.metadata
        }
        var backwards = store.readAllBackwards().makeCursor()
        while (try? backwards.next()) != nil {}
        for stream in streams.prefix(8) {
            var reader = store.read(stream).makeCursor()
            while (try? reader.next()) != nil {}
            var reverse = store.readBackwards(stream).makeCursor()
            while (try? reverse.next()) != nil {}
        }
        _ = try? store.spaceUsage()
        let closing = store
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            try? await closing.close()
            done.signal()
        }
        done.wait()
        _ = StoreVerifier.verify(at: directory)
    }

    private static func scratchDirectory() -> String {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        return base + "/annals-fuzz-\(getpid())"
    }

    private static func write(_ bytes: [UInt8], to path: String) {
        guard let fd = try? Syscalls.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644) else { return }
        defer { Syscalls.close(fd) }
        if !bytes.isEmpty { try? Syscalls.writeAll(fd, bytes, at: 0, path: path) }
    }

    private static func removeTree(_ path: String) {
        for name in (try? Syscalls.directoryEntries(path + "/segments")) ?? [] { try? Syscalls.unlinkIfPresent(path + "/segments/" + name) }
        try? Syscalls.removeDirectoryIfPresent(path + "/segments")
        for name in (try? Syscalls.directoryEntries(path)) ?? [] { try? Syscalls.unlinkIfPresent(path + "/" + name) }
        try? Syscalls.removeDirectoryIfPresent(path)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
