import AnnalsTestSupport
import Foundation
import Testing
@testable import AnnalsStorage

@Suite struct IndexFileTests {
    /// A store of several sealed segments with many streams, closed cleanly.
    private let eventCount = 1200

    private func writeStore(at path: String, options: StoreOptions = smallSegments) async throws {
        let store = try EventStore.open(at: path, options: options)
        for index in 0..<eventCount {
            let stream = "stream-\(index % 23)"
            _ = try await store.append([checkableEvent(stream: stream, index: index, size: 400)], to: stream)
        }
        try await store.close()
    }

    private func snapshot(_ store: EventStore) throws -> [String: [UInt64]] {
        var result: [String: [UInt64]] = [:]
        for index in 0..<23 {
            var cursor = store.read("stream-\(index)").makeCursor()
            while let event = try cursor.next() { result["stream-\(index)", default: []].append(event.position) }
            #expect(store.lastRevision(of: "stream-\(index)") == UInt64(result["stream-\(index)", default: []].count - 1))
        }
        return result
    }

    private func indexFiles(_ path: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path + "/segments").filter { $0.hasSuffix(".idx") }.sorted()
    }

    /// Every sealed segment is covered by exactly one index file; neighbouring files of equal
    /// span are merged four at a time, and a clean reopen rebuilds nothing.
    @Test func sealedSegmentsAreCoveredByMergedIndexFiles() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        try await writeStore(at: path)
        let sealed = try segmentFiles(path).count - 1
        let files = try indexFiles(path)
        let ranges = files.compactMap(StoreLayout.indexRange(fileName:))
        #expect(sealed >= 5)
        #expect(ranges.flatMap { Array($0) }.sorted() == Array(0..<UInt64(sealed)), "\(files)")
        #expect(files.count < sealed, "four per-segment files were merged: \(files)")
        #expect(ranges.contains { $0.count == 4 })
        let store = try EventStore.open(at: path, options: smallSegments)
        #expect(store.recoveryReport.rebuiltIndexes.isEmpty)
        #expect(store.recoveryReport.warnings.isEmpty)
        let streams = try snapshot(store)
        #expect(streams.values.reduce(0) { $0 + $1.count } == eventCount)
        #expect(store.view.withLock { $0.tables.count } == files.count)
        try await store.close()
        #expect(StoreVerifier.verify(at: path).indexFiles == files.count)
    }

    /// A crash between a merge's rename and the removal of its sources leaves both: open uses
    /// the merged file and removes the superseded ones.
    @Test func leftoverSourcesOfAMergeAreRemovedAtOpen() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        try await writeStore(at: path)
        let merged = try #require(try indexFiles(path).first { StoreLayout.indexRange(fileName: $0)?.count == 4 })
        let range = try #require(StoreLayout.indexRange(fileName: merged))
        let layout = StoreLayout(root: path)
        let sources = range.map { layout.indexPath($0) }
        for segment in range {
            let bytes = IndexFile.encode(segments: segment...segment, nextPosition: 0, hashID: 1, entries: [])
            try Data(bytes).write(to: URL(fileURLWithPath: layout.indexPath(segment)))
        }
        let store = try EventStore.open(at: path, options: smallSegments)
        #expect(store.recoveryReport.rebuiltIndexes.isEmpty)
        #expect(store.recoveryReport.warnings.isEmpty)
        #expect(sources.allSatisfy { !FileManager.default.fileExists(atPath: $0) }, "superseded files removed")
        #expect(FileManager.default.fileExists(atPath: path + "/segments/" + merged))
        #expect(try snapshot(store).values.reduce(0) { $0 + $1.count } == eventCount)
        try await store.close()
    }

    /// Index files are derived data: deleted, truncated or bit-flipped, each is detected,
    /// reported by verify, rebuilt from the log at open, and reads come out the same.
    @Test(arguments: ["delete", "truncate", "flip-entry", "flip-bloom", "flip-header"])
    func damagedIndexFileIsRebuiltAndEqual(damage: String) async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        try await writeStore(at: path)
        let reference = try EventStore.open(at: path, options: StoreOptions(segmentSizeBytes: 64 * 1024, readOnly: true))
        let expected = try snapshot(reference)
        let name = try #require(try indexFiles(path).first)
        let range = try #require(StoreLayout.indexRange(fileName: name))
        let target = path + "/segments/" + name
        let original = try Data(contentsOf: URL(fileURLWithPath: target))
        switch damage {
        case "delete": try FileManager.default.removeItem(atPath: target)
        case "truncate": try original.prefix(original.count - 10).write(to: URL(fileURLWithPath: target))
        case "flip-entry": try modifyFile(target) { $0[80 + 40] ^= 0x04 }
        case "flip-bloom": try modifyFile(target) { $0[$0.count - 3] ^= 0x80 }
        default: try modifyFile(target) { $0[20] ^= 0x01 }
        }
        let verified = StoreVerifier.verify(at: path)
        if damage == "delete" {
            #expect(verified.isSound && verified.notes.contains { $0.contains("no index file covers") })
        } else {
            #expect(verified.problems.map(\.file) == [target], "verify checks index files against the log")
        }
        let store = try EventStore.open(at: path, options: smallSegments)
        let layout = StoreLayout(root: path)
        #expect(store.recoveryReport.rebuiltIndexes == range.map { layout.indexPath($0) })
        if damage != "delete" { #expect(store.recoveryReport.warnings.contains { $0.contains(target) }) }
        #expect(try snapshot(store) == expected)
        try await store.close()
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == original, "rebuilt and merged again: identical")
        let after = StoreVerifier.verify(at: path)
        #expect(after.isSound && after.notes.isEmpty, "\(after.problems) \(after.notes)")
    }

    /// Colliding hashes across indexed segments: every lookup checks the frame's name.
    @Test func collidingStreamsAcrossIndexedSegmentsStayApart() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        var options = smallSegments
        options.streamHasher = StreamHasher(name: "two-buckets", id: 0xFFFF_0002) { bytes in UInt64(bytes.count % 2) }
        var store = try EventStore.open(at: path, options: options)
        var expected: [String: Int] = [:]
        for index in 0..<400 {
            let stream = "s\(index % 9)"
            _ = try await store.append([checkableEvent(stream: stream, index: index, size: 300)], to: stream,
                                       expecting: expected[stream].map { .exact(UInt64($0 - 1)) } ?? .noStream)
            expected[stream, default: 0] += 1
        }
        #expect(try segmentFiles(path).count > 2)
        for _ in 0..<2 {
            for (stream, count) in expected {
                let events = try readStreamEvents(store, stream)
                #expect(events.count == count)
                #expect(events.allSatisfy { $0.stream == stream })
                #expect(events.map(\.revision) == Array(0..<UInt64(count)))
                #expect(store.lastRevision(of: stream) == UInt64(count - 1))
            }
            try await store.close()
            store = try EventStore.open(at: path, options: options)
        }
        try await store.close()
    }

    /// An index file written with another stream hash function is never trusted.
    @Test func indexWrittenWithAnotherHashFunctionIsRebuilt() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        var options = smallSegments
        options.streamHasher = StreamHasher(name: "other", id: 0xFFFF_0003) { _ in 7 }
        try await writeStore(at: path, options: options)
        let filesBefore = try indexFiles(path).count
        let store = try EventStore.open(at: path, options: smallSegments)
        #expect(store.recoveryReport.rebuiltIndexes.count == (try segmentFiles(path).count) - 1)
        #expect(store.recoveryReport.warnings.count == filesBefore)
        #expect(try snapshot(store).values.reduce(0) { $0 + $1.count } == eventCount)
        try await store.close()
    }
}

func readStreamEvents(_ store: EventStore, _ stream: String) throws -> [RecordedEvent] {
    var cursor = store.read(stream).makeCursor()
    var events: [RecordedEvent] = []
    while let event = try cursor.next() { events.append(event) }
    return events
}

@Suite struct FormatVectorTests {
    /// The test vectors printed in format-spec.md.
    @Test func streamHashMatchesTheSpecVectors() {
        #expect(StreamHasher.fnv1a.hash("") == 0xCBF2_9CE4_8422_2325)
        #expect(StreamHasher.fnv1a.hash("a") == 0xAF63_DC4C_8601_EC8C)
        #expect(StreamHasher.fnv1a.hash("order-123") == 0x1B96_F9C2_8B5D_5ABA)
    }
}

@Suite struct IndexMergeConcurrencyTests {
    /// Readers keep reading whole, gapless streams while the writer rolls segments and index
    /// files merge underneath them; afterwards the store verifies and the files are merged.
    @Test func streamReadsStayCompleteWhileIndexFilesMerge() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: StoreOptions(durability: .none, segmentSizeBytes: 16 * 1024))
        let streams = 10
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for index in 0..<2400 {
                    let stream = "s\(index % streams)"
                    _ = try await store.append([checkableEvent(stream: stream, index: index / streams, size: 200)], to: stream)
                }
            }
            for reader in 0..<3 {
                group.addTask {
                    var generator = SeededGenerator(seed: UInt64(reader))
                    for _ in 0..<400 {
                        let stream = "s\(Int.random(in: 0..<streams, using: &generator))"
                        let events = try readStreamEvents(store, stream)
                        #expect(events.map(\.revision) == Array(0..<UInt64(events.count)), "gapless \(stream)")
                        for event in events where (try? event.payload) != checkableEvent(stream: stream, index: Int(event.revision), size: 200).payload {
                            Issue.record("\(stream)@\(event.revision): wrong payload")
                        }
                        await Task.yield()
                    }
                }
            }
            try await group.waitForAll()
        }
        try await store.close()
        let sealed = try segmentFiles(path).count - 1
        let files = try FileManager.default.contentsOfDirectory(atPath: path + "/segments").filter { $0.hasSuffix(".idx") }
        #expect(sealed > 30)
        #expect(files.count <= 12, "\(sealed) sealed segments in \(files.count) index files")
        let report = StoreVerifier.verify(at: path)
        #expect(report.isSound && report.notes.isEmpty, "\(report.problems) \(report.notes)")
        let reopened = try EventStore.open(at: path, options: smallSegments)
        for stream in 0..<streams { #expect(reopened.lastRevision(of: "s\(stream)") == 239) }
        try await reopened.close()
    }
}

@Suite struct StaleCheckpointTests {
    /// A crash can leave the checkpoint pointing at a segment that was since sealed, indexed
    /// and merged (merges run beside the roll that writes the checkpoint). Recovery must verify
    /// from there without mistaking the merged index's earlier segments for missing frames.
    @Test func staleCheckpointInsideAMergedIndexRangeRecovers() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: smallSegments)
        for index in 0..<1200 {
            let stream = "s\(index % 5)"
            _ = try await store.append([checkableEvent(stream: stream, index: index / 5, size: 400)], to: stream)
        }
        let expected = try readEverything(store).map(\.id)
        try await store.close()
        let merged = try #require(try FileManager.default.contentsOfDirectory(atPath: path + "/segments")
            .compactMap(StoreLayout.indexRange(fileName:)).first { $0.count == 4 })
        // Point the checkpoint at the third segment of the merged range, as a roll that crashed
        // before writing its checkpoint would have left it.
        let stale = merged.lowerBound + 2
        let header = try Data(contentsOf: URL(fileURLWithPath: StoreLayout(root: path).segmentPath(stale))).prefix(64)
        let firstPosition = [UInt8](header).withUnsafeBytes { $0.u64(32) }
        let checkpoint = Checkpoint(cleanShutdown: false, segmentIndex: stale, segmentOffset: 64,
                                    nextPosition: firstPosition, sequence: 99)
        try SystemStorage.shared.writeFileAtomically(checkpoint.encoded(), to: path + "/checkpoint", directory: path)
        let reopened = try EventStore.open(at: path, options: smallSegments)
        #expect(reopened.recoveryReport.scannedBytes > 64 * 1024, "verified from the stale checkpoint on")
        #expect(reopened.recoveryReport.rebuiltIndexes.isEmpty)
        #expect(try readEverything(reopened).map(\.id) == expected)
        for stream in 0..<5 { #expect(reopened.lastRevision(of: "s\(stream)") == 239) }
        _ = try await reopened.append([checkableEvent(stream: "s0", index: 240, size: 10)], to: "s0", expecting: .exact(239))
        try await reopened.close()
    }
}
