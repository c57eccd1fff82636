import AnnalsTestSupport
import Foundation
import Testing
@testable import AnnalsStorage

/// Queries by type and tag return exactly what a filter of `$all` returns, forwards and
/// backwards, from any position, with limits: on random workloads across segment rolls, index
/// merges, compaction and reopen; and a damaged index file is rebuilt, never trusted.
@Suite struct QueryTests {
    static let types = ["Registered", "BookLent", "BookReturned", "FineCharged", "Rare"]

    static func randomEvent(_ random: inout SeededGenerator) -> EventData {
        let type = random.next() % 50 == 0 ? "Rare" : types[Int(random.next() % 4)]
        var tags: [String] = []
        if random.next() % 4 != 0 { tags.append("member:\(random.next() % 9)") }
        if random.next() % 3 == 0 { tags.append("book:\(random.next() % 13)") }
        if random.next() % 20 == 0 { tags.append("vip") }
        return EventData(type: type, payload: Array(#"{"pad":"\#(String(repeating: "x", count: Int(random.next() % 200)))"}"#.utf8), tags: tags)
    }

    static func randomQuery(_ random: inout SeededGenerator) -> EventQuery {
        var items: [EventQuery.Item] = []
        for _ in 0..<Int(1 + random.next() % 3) {
            var types: [String] = []
            let typeCount = Int(random.next() % 3)
            for _ in 0..<typeCount { types.append(Self.types[Int(random.next() % UInt64(Self.types.count))]) }
            var tags: [String] = []
            if random.next() % 2 == 0 { tags.append("member:\(random.next() % 9)") }
            if random.next() % 4 == 0 { tags.append("book:\(random.next() % 13)") }
            if random.next() % 10 == 0 { tags.append("vip") }
            if types.isEmpty && tags.isEmpty && random.next() % 4 != 0 { tags.append("member:1") }
            items.append(EventQuery.Item(types: types, tags: tags))
        }
        return EventQuery(items)
    }

    /// Every query path against the brute-force filter of `$all`.
    static func expectSameAsFilter(_ store: EventStore, _ random: inout SeededGenerator, queries: Int, _ label: String) throws {
        let all = try readEverything(store)
        let end = all.last.map { $0.position + 1 } ?? 0
        for _ in 0..<queries {
            let query = randomQuery(&random)
            let expected = all.filter { query.matches(type: $0.type, tags: $0.tags) }.map(\.position)
            let from = end == 0 ? 0 : random.next() % (end + 2)
            let limit = random.next() % 3 == 0 ? Int(random.next() % 7) : Int.max
            func positions<C: EventCursor>(_ cursor: C) throws -> [UInt64] {
                var cursor = cursor
                var result: [UInt64] = []
                while let event = try cursor.next() { result.append(event.position) }
                return result
            }
            #expect(try positions(store.read(matching: query).makeCursor()) == expected, "\(label): \(query)")
            #expect(try positions(store.read(matching: query, from: from, limit: limit).makeCursor())
                == Array(expected.filter { $0 >= from }.prefix(limit)), "\(label): \(query) from \(from) limit \(limit)")
            #expect(try positions(store.readBackwards(matching: query, from: from, limit: limit).makeCursor())
                == Array(expected.filter { $0 <= from }.reversed().prefix(limit)), "\(label): \(query) backwards from \(from) limit \(limit)")
        }
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func queriesMatchAFilterOfAllAcrossRollsMergesCompactionAndReopen(seed: UInt64) async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        var random = SeededGenerator(seed: seed)
        let options = StoreOptions(durability: .none, segmentSizeBytes: 16_384, compression: seed == 2 ? .none : .lz4)
        var store = try EventStore.open(at: path, options: options)
        for round in 0..<6 {
            for _ in 0..<150 {
                let stream = "s-\(random.next() % 12)"
                let events = (0..<Int(1 + random.next() % 4)).map { _ in Self.randomEvent(&random) }
                _ = try await store.append(events, to: stream)
            }
            try Self.expectSameAsFilter(store, &random, queries: 25, "seed \(seed), round \(round) (live)")
            await store.maintenance.drain()
            try Self.expectSameAsFilter(store, &random, queries: 15, "seed \(seed), round \(round) (indexed)")
            if round == 3 {
                try await store.truncateStream("s-3", before: 40)
                try await store.deleteStream("s-4")
                _ = try await store.compact()
                try Self.expectSameAsFilter(store, &random, queries: 25, "seed \(seed), after compaction")
            }
            if round % 2 == 1 {
                try await store.close()
                store = try EventStore.open(at: path, options: options)
                try Self.expectSameAsFilter(store, &random, queries: 25, "seed \(seed), round \(round) (reopened)")
            }
        }
        let tables = store.view.withLock { $0.tables }
        #expect(tables.contains { $0.span > 1 }, "index files were merged")
        #expect(tables.allSatisfy { $0.keyEntryCount > 0 })
        try await store.close()
        // Read-only, as another process sees it.
        let reader = try EventStore.open(at: path, options: StoreOptions(readOnly: true))
        try Self.expectSameAsFilter(reader, &random, queries: 25, "seed \(seed), read-only")
    }

    /// A query naming a rare type reads only the frames holding it, not the log.
    @Test func aRareTypeIsFoundWithoutWalkingTheLog() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: StoreOptions(durability: .none, segmentSizeBytes: 65_536))
        for index in 0..<5_000 {
            let type = index % 1_000 == 999 ? "Rare" : "Common"
            _ = try await store.append([EventData(type: type, payload: Array(repeating: 7, count: 100), tags: ["n:\(index % 10)"])],
                                       to: "s-\(index % 50)")
        }
        await store.maintenance.drain()
        let (snapshot, planner) = store.view.withLock { view in
            (view.snapshot, QueryPlanner(tables: view.tables, memory: view.sealedUnindexed + [view.openFrames], hasher: store.options.streamHasher))
        }
        #expect(planner.candidates(for: EventQuery(types: ["Rare"]))?.count == 5, "five frames, one per rare event")
        #expect(snapshot.segments.count > 5)
        #expect(try readAllMatching(store, EventQuery(types: ["Rare"])) == [999, 1_999, 2_999, 3_999, 4_999])
        #expect(try readAllMatching(store, EventQuery(types: ["Rare"], tags: ["n:9"])).count == 5)
        #expect(try readAllMatching(store, EventQuery(types: ["Rare"], tags: ["n:8"])).isEmpty)
        try await store.close()
    }

    func readAllMatching(_ store: EventStore, _ query: EventQuery) throws -> [UInt64] {
        var cursor = store.read(matching: query).makeCursor()
        var positions: [UInt64] = []
        while let event = try cursor.next() { positions.append(event.position) }
        return positions
    }

    /// Names are compared byte for byte: the two Unicode spellings of "é" are two tags, in
    /// memory and in index files alike (a query never finds the other's events, nor loses its own).
    @Test func unicodeSpellingsAreDistinctNamesBeforeAndAfterIndexing() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: StoreOptions(durability: .none, segmentSizeBytes: 16_384))
        let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
        #expect(composed == decomposed, "Swift calls them equal")
        _ = try await store.append([EventData(type: "T", payload: [1], tags: [composed])], to: "a")
        _ = try await store.append([EventData(type: "T", payload: [2], tags: [decomposed])], to: "b")
        func positions(_ tag: String) throws -> [UInt64] { try readAllMatching(store, EventQuery(tags: [tag])) }
        #expect(try positions(composed) == [0] && positions(decomposed) == [1], "in memory")
        for index in 0..<200 { _ = try await store.append([EventData(type: "Filler", payload: Array(repeating: 1, count: 200))], to: "f-\(index % 5)") }
        await store.maintenance.drain()
        #expect(store.view.withLock { $0.tables.first?.segments.contains(0) } == true, "the first segment is indexed on disk")
        #expect(try positions(composed) == [0] && positions(decomposed) == [1], "through the index files")
        try await store.close()
    }

    /// A query index section that fails its checks makes the file unusable: the open rebuilds
    /// it from the log and queries answer as before.
    @Test func aDamagedQueryIndexIsRebuiltNeverTrusted() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        var random = SeededGenerator(seed: 9)
        let options = StoreOptions(segmentSizeBytes: 16_384)
        let store = try EventStore.open(at: path, options: options)
        for _ in 0..<600 { _ = try await store.append([Self.randomEvent(&random)], to: "s-\(random.next() % 5)") }
        let before = try readAllMatching(store, EventQuery(types: ["BookLent"], tags: ["member:3"]))
        try await store.close()
        let indexFiles = try FileManager.default.contentsOfDirectory(atPath: path + "/segments").filter { $0.hasSuffix(".idx") }.sorted()
        let victim = path + "/segments/" + (try #require(indexFiles.first))
        try modifyFile(victim) { bytes in bytes[bytes.count - 3] ^= 0x20 } // inside the last query entry
        let reopened = try EventStore.open(at: path, options: options)
        #expect(reopened.recoveryReport.rebuiltIndexes.contains(victim) || reopened.recoveryReport.warnings.contains { $0.contains("query entries checksum") },
                "\(reopened.recoveryReport)")
        #expect(try readAllMatching(reopened, EventQuery(types: ["BookLent"], tags: ["member:3"])) == before)
        try await reopened.close()
    }
}
