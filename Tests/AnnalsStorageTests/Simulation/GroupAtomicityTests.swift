import AnnalsTestSupport
import Foundation
import Testing
@testable import AnnalsStorage

/// An append of several streams is all or nothing on disk: crash images taken at every durable
/// operation of a workload of multi-stream appends of tagged events (every write since the last
/// sync kept, dropped or torn) hold each append whole or not at all, acknowledged ones whole,
/// and answer queries by type and tag exactly; a group never spans two segments; and one
/// larger than a segment is refused with nothing written.
@Suite struct GroupAtomicityTests {
    /// A batch's event: which batch, which event of how many.
    static func event(batch: Int, index: Int, of count: Int, padding: Int) -> EventData {
        EventData(type: index == 0 ? "First" : "Step", payload: Array("b\(batch):\(index)/\(count):".utf8) + Array(repeating: UInt8(ascii: "p"), count: padding),
                  tags: ["batch:\(batch % 9)"] + (padding % 3 == 0 ? ["third"] : []))
    }

    /// Queries after recovery return exactly what a filter of `$all` returns: the query index
    /// rebuilt or kept at open matches the log that survived.
    static func expectQueriesMatch(_ store: EventStore, _ label: String) throws {
        let all = try readEverything(store)
        for query in [EventQuery(types: ["First"]), EventQuery(tags: ["batch:4"]), EventQuery(types: ["Step"], tags: ["third", "batch:2"])] {
            var cursor = store.read(matching: query).makeCursor()
            var got: [UInt64] = []
            while let event = try cursor.next() { got.append(event.position) }
            #expect(got == all.filter { query.matches(type: $0.type, tags: $0.tags) }.map(\.position), "\(label): \(query)")
        }
    }

    /// Batches present in `events`, with how many of their events are there and how many they had.
    static func batches(_ events: [RecordedEvent]) throws -> [Int: (seen: Int, count: Int)] {
        var result: [Int: (seen: Int, count: Int)] = [:]
        for event in events {
            let text = String(decoding: try event.payload.prefix { $0 != UInt8(ascii: "p") }, as: UTF8.self)
            let parts = text.dropFirst().split(separator: ":")
            guard parts.count >= 2, let batch = Int(parts[0]), let count = Int(parts[1].split(separator: "/")[1]) else { continue }
            result[batch, default: (0, count)].seen += 1
        }
        return result
    }

    @Test(arguments: [Durability.fsyncBeforeAck, .none])
    func multiStreamAppendsSurviveCrashesWholeOrNotAtAll(durability: Durability) async throws {
        let storage = SimulatedStorage()
        var options = StoreOptions(durability: durability, segmentSizeBytes: 16_384)
        options.storage = StorageChoice(storage: storage)
        let store = try EventStore.open(at: "/sim/store", options: options)
        for operation in 1...600 { storage.crash(atOperation: operation, seed: UInt64(operation) &* 31) }
        var random = SeededGenerator(seed: durability == .none ? 2 : 1)
        var acknowledged: [(batch: Int, after: Int)] = []
        for batch in 0..<150 {
            let streams = Int(2 + random.next() % 3)
            var appends: [StreamAppend] = []
            var total = 0
            let counts = (0..<streams).map { _ in Int(1 + random.next() % 3) }
            let count = counts.reduce(0, +)
            for (slot, events) in counts.enumerated() {
                appends.append(StreamAppend(stream: "s-\((batch + slot) % 7)", events: (0..<events).map { index in
                    defer { total += 1 }
                    return Self.event(batch: batch, index: total, of: count, padding: Int(random.next() % 600))
                }))
            }
            let results = try await store.append(appends)
            // A group is written into one segment.
            let first = store.view.withLock { view in view.snapshot.slot(for: results[0].firstPosition) }
            let last = store.view.withLock { view in view.snapshot.slot(for: results[results.count - 1].lastPosition) }
            #expect(first == last, "batch \(batch) spans segments")
            if durability == .fsyncBeforeAck { acknowledged.append((batch, storage.operationCount)) }
        }
        try await store.close()
        var checked = 0, torn = 0
        for (operation, seed, image) in storage.images {
            var readOptions = StoreOptions(readOnly: true)
            readOptions.storage = StorageChoice(storage: image)
            let copy = try EventStore.open(at: "/sim/store", options: readOptions)
            let seen = try Self.batches(readEverything(copy))
            for (batch, state) in seen {
                #expect(state.seen == state.count, "operation \(operation) (image seed \(seed)): batch \(batch) has \(state.seen) of \(state.count) events")
            }
            for (batch, after) in acknowledged where after < operation {
                #expect(seen[batch] != nil, "operation \(operation): acknowledged batch \(batch) lost")
            }
            if copy.recoveryReport.truncation != nil { torn += 1 }
            try Self.expectQueriesMatch(copy, "operation \(operation), read-only")
            // A writer's open cuts what the reader ignored; the log goes on at the next position.
            var writeOptions = options
            writeOptions.storage = StorageChoice(storage: image)
            writeOptions.createIfMissing = false
            let writer = try EventStore.open(at: "/sim/store", options: writeOptions)
            #expect(try Self.batches(readEverything(writer)).mapValues(\.seen) == seen.mapValues(\.seen), "operation \(operation)")
            try Self.expectQueriesMatch(writer, "operation \(operation), writable")
            let end = writer.endPosition
            let next = try await writer.append([StreamAppend(stream: "after", events: [EventData(type: "T", payload: [1])]),
                                                StreamAppend(stream: "after-2", events: [EventData(type: "T", payload: [2])])])
            #expect(next[0].firstPosition == end)
            try await writer.close()
            #expect(StoreVerifier.verify(at: "/sim/store", storage: image).isSound, "operation \(operation)")
            checked += 1
        }
        print("group atomicity (\(durability)): \(checked) crash images, \(torn) with a torn tail")
        #expect(checked >= 20)
    }

    @Test func aGroupLargerThanASegmentIsRefusedWithNothingWritten() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: StoreOptions(segmentSizeBytes: 16_384, compression: .none))
        let big = (0..<4).map { StreamAppend(stream: "s-\($0)", events: [EventData(type: "T", payload: Array(repeating: 1, count: 5_000))]) }
        await #expect(throws: AppendError.self) { _ = try await store.append(big) }
        #expect(store.endPosition == 0)
        // One that fits an empty segment but not what is left of the open one starts a new segment.
        _ = try await store.append([EventData(type: "T", payload: Array(repeating: 2, count: 9_000))], to: "filler")
        let fits = Array(big.prefix(2))
        let results = try await store.append(fits)
        let slots = store.view.withLock { view in (view.snapshot.slot(for: results[0].firstPosition), view.snapshot.slot(for: results[1].lastPosition)) }
        #expect(slots.0 == slots.1 && slots.0 == 1, "\(slots)")
        try await store.close()
    }
}
