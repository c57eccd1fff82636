import Foundation
import Testing
@testable import AnnalsStorage

@Suite struct IndexFileTests {
    /// A store of several sealed segments with many streams, closed cleanly.
    private func writeStore(at path: String, options: StoreOptions = smallSegments) async throws {
        let store = try EventStore.open(at: path, options: options)
        for index in 0..<500 {
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

    @Test func sealedSegmentsGetIndexFilesAndCleanReopenRebuildsNothing() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        try await writeStore(at: path)
        let segments = try segmentFiles(path)
        let indexes = try FileManager.default.contentsOfDirectory(atPath: path + "/segments").filter { $0.hasSuffix(".idx") }
        #expect(segments.count >= 4)
        #expect(indexes.count == segments.count - 1, "every sealed segment has an index file")
        let store = try EventStore.open(at: path, options: smallSegments)
        #expect(store.recoveryReport.rebuiltIndexes.isEmpty)
        #expect(store.recoveryReport.warnings.isEmpty)
        let streams = try snapshot(store)
        #expect(streams.values.reduce(0) { $0 + $1.count } == 500)
        #expect(store.state.withLock { $0.tables.count } == segments.count - 1)
        try await store.close()
    }

    /// Index files are derived data: deleted, truncated or bit-flipped, each is detected,
    /// reported, rebuilt from the log, and reads come out the same.
    @Test(arguments: ["delete", "truncate", "flip-entry", "flip-bloom", "flip-header"])
    func damagedIndexFileIsRebuiltAndEqual(damage: String) async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        try await writeStore(at: path)
        let reference = try EventStore.open(at: path, options: StoreOptions(segmentSizeBytes: 64 * 1024, readOnly: true))
        let expected = try snapshot(reference)
        let target = path + "/segments/0000000000000001.idx"
        let original = try Data(contentsOf: URL(fileURLWithPath: target))
        switch damage {
        case "delete": try FileManager.default.removeItem(atPath: target)
        case "truncate": try original.prefix(original.count - 10).write(to: URL(fileURLWithPath: target))
        case "flip-entry": try modifyFile(target) { $0[64 + 40] ^= 0x04 }
        case "flip-bloom": try modifyFile(target) { $0[$0.count - 3] ^= 0x80 }
        default: try modifyFile(target) { $0[20] ^= 0x01 }
        }
        let verified = StoreVerifier.verify(at: path)
        if damage == "delete" {
            #expect(verified.isSound && verified.notes.contains { $0.contains(target) })
        } else {
            #expect(verified.problems.map(\.file) == [target], "verify checks index files against the log")
        }
        let store = try EventStore.open(at: path, options: smallSegments)
        #expect(store.recoveryReport.rebuiltIndexes == [target])
        if damage != "delete" { #expect(store.recoveryReport.warnings.contains { $0.contains(target) }) }
        #expect(try snapshot(store) == expected)
        try await store.close()
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == original, "the rebuilt file is identical")
        let after = StoreVerifier.verify(at: path)
        let sealedSegments = try segmentFiles(path).count - 1
        #expect(after.isSound && after.indexFiles == sealedSegments)
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
        let store = try EventStore.open(at: path, options: smallSegments)
        #expect(store.recoveryReport.rebuiltIndexes.count == (try segmentFiles(path).count) - 1)
        #expect(try snapshot(store).values.reduce(0) { $0 + $1.count } == 500)
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
