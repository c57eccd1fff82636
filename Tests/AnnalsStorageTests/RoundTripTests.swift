import AnnalsTestSupport
import Foundation
import Testing
@testable import AnnalsStorage

@Suite struct RoundTripTests {
    /// Many events of varied sizes and batch sizes across several segment rolls come back
    /// exactly, forwards and backwards, before and after reopening.
    @Test func eventsRoundTripAcrossSegmentRollsAndReopen() async throws {
        let directory = TemporaryDirectory()
        let storePath = directory.sub("store")
        var generator = SeededGenerator(seed: 42)
        var expected: [(stream: String, revision: UInt64, event: EventData)] = []
        var revisions: [String: UInt64] = [:]
        do {
            let store = try EventStore.open(at: storePath, options: smallSegments)
            for batch in 0..<150 {
                let stream = "stream-\(Int.random(in: 0..<7, using: &generator))"
                let count = [1, 1, 2, 5, 17][Int.random(in: 0..<5, using: &generator)]
                let events = (0..<count).map { index in
                    checkableEvent(stream: stream, index: batch * 100 + index,
                                   size: [0, 1, 7, 350, 2000, 9000][Int.random(in: 0..<6, using: &generator)],
                                   type: "Type\(index % 3)")
                }
                let result = try await store.append(events, to: stream)
                #expect(result.firstPosition == UInt64(expected.count))
                #expect(result.firstRevision == revisions[stream, default: 0])
                for event in events {
                    expected.append((stream, revisions[stream, default: 0], event))
                    revisions[stream, default: 0] += 1
                }
            }
            #expect(try segmentFiles(storePath).count >= 4, "the test must roll segments")
            try check(store, expected)
            try await store.close()
        }
        let reopened = try EventStore.open(at: storePath, options: smallSegments)
        #expect(reopened.recoveryReport.cleanShutdown)
        #expect(reopened.recoveryReport.truncatedBytes == 0)
        try check(reopened, expected)
        let next = try await reopened.append([EventData(type: "After", payload: [1])], to: "stream-0")
        #expect(next.firstPosition == UInt64(expected.count))
        #expect(next.firstRevision == revisions["stream-0", default: 0])
        try await reopened.close()
    }

    private func check(_ store: EventStore, _ expected: [(stream: String, revision: UInt64, event: EventData)]) throws {
        let forwards = try readEverything(store)
        #expect(forwards.count == expected.count)
        for (index, event) in forwards.enumerated() where index < expected.count {
            let want = expected[index]
            #expect(event.position == UInt64(index))
            #expect(event.stream == want.stream)
            #expect(event.revision == want.revision)
            #expect(event.type == want.event.type)
            #expect(try event.payload == want.event.payload)
            #expect(try event.metadata == want.event.metadata)
        }
        let backwards = try readEverythingBackwards(store)
        #expect(backwards.map(\.position) == forwards.map(\.position).reversed())
        #expect(backwards.map(\.id) == forwards.map(\.id).reversed())
        // Reads from the middle, both ways.
        let middle = UInt64(expected.count / 2)
        var cursor = store.readAll(from: middle, limit: 10).makeCursor()
        var positions: [UInt64] = []
        while let event = try cursor.next() { positions.append(event.position) }
        #expect(positions == Array(middle..<middle + 10))
        var back = store.readAllBackwards(from: middle, limit: 10).makeCursor()
        positions = []
        while let event = try back.next() { positions.append(event.position) }
        #expect(positions == Array((middle - 9...middle).reversed()))
    }

    /// Reads in batches from arbitrary positions (which start from where an earlier batch
    /// stopped in the same segment) return exactly the events of one full read, while appends
    /// go on and across segment rolls.
    @Test func batchedReadsFromAnyPositionMatchAFullRead() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: smallSegments)
        var generator = SeededGenerator(seed: 77)
        for round in 0..<400 {
            let count = Int(generator.next() % 4) + 1
            _ = try await store.append((0..<count).map { checkableEvent(stream: "s-\(round % 9)", index: round * 10 + $0, size: 40) },
                                       to: "s-\(round % 9)")
            if round % 50 == 49 {
                let full = try readEverything(store).map(\.position)
                for _ in 0..<20 {
                    var position = generator.next() % UInt64(full.count)
                    var seen: [UInt64] = []
                    while position < UInt64(full.count) {
                        let batch = Int(generator.next() % 30) + 1
                        var cursor = store.readAll(from: position, limit: batch).makeCursor()
                        var read = 0
                        while let event = try cursor.next() {
                            seen.append(event.position)
                            read += 1
                        }
                        #expect(read == min(batch, full.count - Int(position)))
                        position += UInt64(read)
                    }
                    #expect(seen == Array(full.drop { $0 < seen.first ?? 0 }))
                }
            }
        }
        try await store.close()
    }

    @Test func eventIdsAreKeptOrGeneratedAndTimestampsAreSet() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: smallSegments)
        let given = UUID()
        let before = Timestamp.now()
        _ = try await store.append([EventData(id: given, type: "A", payload: []), EventData(type: "B", payload: [])], to: "s")
        let events = try readEverything(store)
        #expect(events[0].id == given)
        #expect(events[1].id != given)
        #expect(events[1].id.uuidString.dropFirst(14).first == "4", "generated ids are version 4")
        #expect(events[0].timestamp >= before && events[0].timestamp <= Timestamp.now())
        try await store.close()
    }

    @Test func timestampFormatsAsISO8601WithNanoseconds() {
        #expect(Timestamp(nanosecondsSinceEpoch: 0).iso8601 == "1970-01-01T00:00:00.000000000Z")
        #expect(Timestamp(nanosecondsSinceEpoch: 1_795_751_474_123_456_789).iso8601 == "2026-11-27T03:51:14.123456789Z")
        #expect(Timestamp(nanosecondsSinceEpoch: -1).iso8601 == "1969-12-31T23:59:59.999999999Z")
        #expect(Timestamp(nanosecondsSinceEpoch: 951_782_400_000_000_000).iso8601 == "2000-02-29T00:00:00.000000000Z")
    }
}
