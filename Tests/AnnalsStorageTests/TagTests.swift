import AnnalsTestSupport
import Foundation
import Testing
@testable import AnnalsStorage

/// Tags are stored with their events (raw and compressed records alike), read back in order,
/// survive a reopen and compaction, are refused beyond their bounds before anything is
/// written, and make checkpoints keep readers that do not know them out.
@Suite struct TagTests {
    static func event(_ index: Int, tags: [String]) -> EventData {
        EventData(type: "Lent", payload: Array(#"{"n":\#(index),"note":"\#(String(repeating: "book ", count: 30))"}"#.utf8), tags: tags)
    }

    static func tags(_ index: Int) -> [String] {
        index % 5 == 0 ? [] : ["member:\(index % 7)", "book:\(index % 11)", "région:Île-de-France"].prefix(index % 4).map { $0 }
    }

    @Test(arguments: [Compression.lz4, .none])
    func tagsRoundTripThroughRollsReopenAndCompaction(compression: Compression) async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let options = StoreOptions(segmentSizeBytes: 16_384, compression: compression)
        let store = try EventStore.open(at: path, options: options)
        for index in 0..<600 { _ = try await store.append([Self.event(index, tags: Self.tags(index))], to: "member-\(index % 7)") }
        func check(_ store: EventStore, _ label: String) throws {
            let events = try readEverything(store)
            #expect(events.count == 600, "\(label)")
            for event in events { #expect(event.tags == Self.tags(Int(event.position)), "\(label): position \(event.position)") }
            if compression == .lz4 { #expect(events.contains { $0.isStoredCompressed && !$0.tags.isEmpty }, "\(label)") }
            let payload = try events[7].payload
            #expect(String(decoding: payload, as: UTF8.self).hasPrefix(#"{"n":7,"#), "\(label): the body after the tags")
        }
        try check(store, "written")
        try await store.close()
        let reopened = try EventStore.open(at: path, options: options)
        try check(reopened, "reopened")
        let checkpoint = try #require(try Checkpoint.decode(Array(Data(contentsOf: URL(fileURLWithPath: path + "/checkpoint")))).get())
        #expect(checkpoint.minimumReaderVersion == Format.taggedRecordsVersion, "readers without tags are kept out")
        // Compaction copies records as they are: tags included.
        try await reopened.truncateStream("member-3", before: 1_000)
        _ = try await reopened.compact()
        let kept = try readEverything(reopened)
        #expect(!kept.isEmpty && kept.allSatisfy { $0.tags == Self.tags(Int($0.position)) })
        #expect(StoreVerifier.verify(at: path).isSound)
        try await reopened.close()
    }

    @Test func tagsBeyondTheirBoundsAreRefusedAndNothingIsWritten() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"))
        let cases: [([String], AppendError)] = [
            ([""], .invalidTag("", reason: "empty")),
            ([String(repeating: "x", count: 257)], .invalidTag(String(repeating: "x", count: 257), reason: "257 bytes; the maximum is 256")),
            ((0..<33).map { "t\($0)" }, .invalidTag("t32", reason: "an event has 33 tags; the maximum is 32")),
        ]
        for (tags, error) in cases {
            await #expect(throws: error) {
                _ = try await store.append([EventData(type: "T", payload: [1]), EventData(type: "T", payload: [2], tags: tags)], to: "s")
            }
        }
        #expect(store.endPosition == 0, "a refused append writes nothing")
        let fits = [String(repeating: "é", count: 128)] + (1..<32).map { "t\($0)" }
        _ = try await store.append([EventData(type: "T", payload: [], tags: fits)], to: "s")
        #expect(try readEverything(store).first?.tags == fits, "the limits themselves are accepted")
        try await store.close()
    }

    /// The checkpoint names version 6 before the first tagged record or group is written: a
    /// crash right after it leaves no store that older readers would take for corrupt.
    @Test func theCheckpointNamesVersion6BeforeTheFirstTaggedRecordOrGroup() async throws {
        for grouped in [false, true] {
            let directory = TemporaryDirectory()
            let path = directory.sub("store")
            var store: EventStore? = try EventStore.open(at: path)
            _ = try await store!.append([EventData(type: "T", payload: [1])], to: "s")
            if grouped {
                _ = try await store!.append([StreamAppend(stream: "a", events: [EventData(type: "T", payload: [2])]),
                                             StreamAppend(stream: "b", events: [EventData(type: "T", payload: [3])])])
            } else {
                _ = try await store!.append([EventData(type: "T", payload: [2], tags: ["t"])], to: "s")
            }
            store = nil // a crash: no clean close writes a checkpoint
            let checkpoint = try #require(try Checkpoint.decode(Array(Data(contentsOf: URL(fileURLWithPath: path + "/checkpoint")))).get())
            #expect(checkpoint.minimumReaderVersion == Format.taggedRecordsVersion, "grouped: \(grouped)")
        }
    }

    @Test func aStoreWithoutTagsStaysReadableByOlderReaders() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path)
        _ = try await store.append([EventData(type: "T", payload: [1])], to: "s")
        try await store.close()
        let checkpoint = try #require(try Checkpoint.decode(Array(Data(contentsOf: URL(fileURLWithPath: path + "/checkpoint")))).get())
        #expect(checkpoint.minimumReaderVersion == Format.appendSegmentVersion)
    }
}
