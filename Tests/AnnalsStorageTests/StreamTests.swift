import AnnalsTestSupport
import Foundation
import Testing
@testable import AnnalsStorage

private func event(_ type: String = "E", id: UUID? = nil, _ text: String = "") -> EventData {
    EventData(id: id, type: type, payload: Array(text.utf8))
}

private func readStream(_ store: EventStore, _ stream: String, from revision: UInt64 = 0, limit: Int = .max) throws -> [RecordedEvent] {
    var cursor = store.read(stream, from: revision, limit: limit).makeCursor()
    var events: [RecordedEvent] = []
    while let event = try cursor.next() { events.append(event) }
    return events
}

private func readStreamBackwards(_ store: EventStore, _ stream: String, from revision: UInt64? = nil, limit: Int = .max) throws -> [RecordedEvent] {
    var cursor = store.readBackwards(stream, from: revision, limit: limit).makeCursor()
    var events: [RecordedEvent] = []
    while let event = try cursor.next() { events.append(event) }
    return events
}

@Suite struct ExpectedRevisionTests {
    /// Every expected-revision case: a satisfied check appends, a failed one throws the stream,
    /// what was expected and the actual revision, and writes nothing.
    @Test func eachExpectationPassesOrConflictsWithoutWriting() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: smallSegments)
        await #expect(throws: AppendError.wrongExpectedRevision(stream: "s", expected: .streamExists, actual: nil)) {
            _ = try await store.append([event()], to: "s", expecting: .streamExists)
        }
        await #expect(throws: AppendError.wrongExpectedRevision(stream: "s", expected: .exact(0), actual: nil)) {
            _ = try await store.append([event()], to: "s", expecting: .exact(0))
        }
        let first = try await store.append([event(), event()], to: "s", expecting: .noStream)
        #expect(first.firstRevision == 0 && first.lastRevision == 1)
        await #expect(throws: AppendError.wrongExpectedRevision(stream: "s", expected: .noStream, actual: 1)) {
            _ = try await store.append([event()], to: "s", expecting: .noStream)
        }
        await #expect(throws: AppendError.wrongExpectedRevision(stream: "s", expected: .exact(0), actual: 1)) {
            _ = try await store.append([event()], to: "s", expecting: .exact(0))
        }
        await #expect(throws: AppendError.wrongExpectedRevision(stream: "s", expected: .exact(5), actual: 1)) {
            _ = try await store.append([event()], to: "s", expecting: .exact(5))
        }
        #expect(try readEverything(store).count == 2, "failed checks wrote nothing")
        #expect(try await store.append([event()], to: "s", expecting: .exact(1)).firstRevision == 2)
        #expect(try await store.append([event()], to: "s", expecting: .streamExists).firstRevision == 3)
        #expect(try await store.append([event()], to: "s", expecting: .any).firstRevision == 4)
        #expect(store.lastRevision(of: "s") == 4)
        #expect(store.lastRevision(of: "other") == nil)
        #expect(store.streamExists("s") && !store.streamExists("other"))
        try await store.close()
    }

    /// Optimistic concurrency as callers write it: read the last revision, append expecting it,
    /// reload on a conflict. A conflict is reported only once what it conflicts with is visible,
    /// so the reload always sees at least the revision the error reports (no conflict storm from
    /// reloading a stale view), and every task gets its appends in.
    @Test func conflictIsReportedOnlyOnceItsCauseIsVisible() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: smallSegments)
        // Per task: conflicts met, and reloads that saw an older revision than the error said.
        let (conflicts, stale) = try await withThrowingTaskGroup(of: (Int, Int).self) { group in
            for task in 0..<8 {
                group.addTask {
                    var done = 0, attempts = 0, conflicts = 0, stale = 0
                    while done < 20 {
                        attempts += 1
                        precondition(attempts < 10_000, "task \(task) made no progress")
                        let expected: ExpectedRevision = store.lastRevision(of: "counter").map { .exact($0) } ?? .noStream
                        do {
                            _ = try await store.append([event("Incremented")], to: "counter", expecting: expected)
                            done += 1
                        } catch AppendError.wrongExpectedRevision(_, _, let actual) {
                            conflicts += 1
                            if let actual, (store.lastRevision(of: "counter") ?? 0) < actual { stale += 1 }
                        }
                    }
                    return (conflicts, stale)
                }
            }
            return try await group.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
        }
        #expect(stale == 0, "a reload after a conflict saw an older revision than the error reported")
        #expect(store.lastRevision(of: "counter") == 159)
        #expect(conflicts > 0, "the tasks never raced (the test checked nothing)")
        try await store.close()
    }

    /// The engine's own system streams are written only through the engine, which checks what
    /// goes into them: `appendToSystemStreams` refuses `$retention` and `$snapshot-…` (and `$all`
    /// and application names), and writes other `$` streams.
    @Test func engineSystemStreamsAreWrittenOnlyByTheEngine() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: smallSegments)
        for stream in ["$retention", "$snapshot-order-1", "$all", "order-1"] {
            await #expect(throws: AppendError.self, "\(stream)") {
                _ = try await store.appendToSystemStreams([StreamAppend(stream: stream, events: [event()])])
            }
        }
        #expect(try readEverything(store).isEmpty, "nothing was written")
        _ = try await store.append([event()], to: "order-1")
        _ = try await store.saveSnapshot(of: "order-1", revision: 0, schemaVersion: 1, bytes: [1])
        _ = try await store.appendToSystemStreams([StreamAppend(stream: "$projection-p", events: [event()])])
        #expect(try readEverything(store).map(\.stream) == ["order-1", "$snapshot-order-1", "$projection-p"])
        try await store.close()
    }

    /// In a multi-stream batch, a failing check anywhere means nothing from the batch is written;
    /// later appends to the same stream in the batch see the earlier ones.
    @Test func batchChecksAreAllOrNothing() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: smallSegments)
        await #expect(throws: AppendError.self) {
            _ = try await store.append([
                StreamAppend(stream: "a", events: [event()], expected: .noStream),
                StreamAppend(stream: "b", events: [event()], expected: .exact(3)),
            ])
        }
        #expect(try readEverything(store).isEmpty)
        let results = try await store.append([
            StreamAppend(stream: "a", events: [event()], expected: .noStream),
            StreamAppend(stream: "a", events: [event(), event()], expected: .exact(0)),
        ])
        #expect(results.map(\.firstRevision) == [0, 1])
        try await store.close()
    }
}

@Suite struct IdempotencyTests {
    /// A retry with the same event ids at the same place returns the original result and writes
    /// nothing, in this process and after a reopen; a partial match is refused.
    @Test(arguments: [ExpectedRevision.noStream, .any])
    func retryReturnsTheOriginalResultBeforeAndAfterReopen(expected: ExpectedRevision) async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let ids = [UUID(), UUID(), UUID()]
        let batch = ids.map { event(id: $0) }
        var store = try EventStore.open(at: path, options: smallSegments)
        _ = try await store.append([event()], to: "noise")
        let original = try await store.append(batch, to: "order-1", expecting: expected)
        let retry = try await store.append(batch, to: "order-1", expecting: expected)
        #expect(retry == original)
        #expect(try readEverything(store).count == 4)
        try await store.close()

        store = try EventStore.open(at: path, options: smallSegments)
        let afterReopen = try await store.append(batch, to: "order-1", expecting: expected)
        #expect(afterReopen == original)
        #expect(try readEverything(store).count == 4)
        try await store.close()
    }

    @Test func retryAtAnExactRevisionAndPartialOverlaps() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: smallSegments)
        _ = try await store.append([event(), event()], to: "s")
        let ids = [UUID(), UUID()]
        let original = try await store.append(ids.map { event(id: $0) }, to: "s", expecting: .exact(1))
        _ = try await store.append([event()], to: "s") // the stream moves on
        #expect(try await store.append(ids.map { event(id: $0) }, to: "s", expecting: .exact(1)) == original)
        // Same place, only the first id matches.
        await #expect {
            _ = try await store.append([event(id: ids[0]), event(id: UUID())], to: "s", expecting: .exact(1))
        } throws: { error in
            guard case AppendError.idempotencyMismatch(let stream, let revision, _) = error else { return false }
            return stream == "s" && revision == 2
        }
        // More events than the stream holds at that place, the existing ones matching.
        let tail = UUID()
        let last = try await store.append([event(id: tail)], to: "s", expecting: .exact(4))
        #expect(last.firstRevision == 5)
        await #expect(throws: AppendError.self) {
            _ = try await store.append([event(id: tail), event(id: UUID())], to: "s", expecting: .exact(4))
        }
        // Different ids at an occupied place: an ordinary conflict.
        await #expect(throws: AppendError.wrongExpectedRevision(stream: "s", expected: .exact(1), actual: 5)) {
            _ = try await store.append([event(id: UUID())], to: "s", expecting: .exact(1))
        }
        #expect(try readStream(store, "s").count == 6)
        try await store.close()
    }
}

@Suite struct StreamReadTests {
    /// Two names whose hashes collide share an index bucket but never each other's events.
    @Test func streamsWithCollidingHashesStayApart() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        var options = smallSegments
        options.streamHasher = StreamHasher(name: "constant", id: 0xFFFF_0001) { _ in 42 }
        var store = try EventStore.open(at: path, options: options)
        _ = try await store.append([event("A", "a0")], to: "alpha", expecting: .noStream)
        _ = try await store.append([event("B", "b0")], to: "beta", expecting: .noStream)
        _ = try await store.append([event("A", "a1")], to: "alpha", expecting: .exact(0))
        _ = try await store.append([event("C", "c0")], to: "gamma")
        #expect(store.view.withLock { $0.openFrames.streamCount } == 3)
        for _ in 0..<2 {
            #expect(try readStream(store, "alpha").map { String(decoding: try $0.payload, as: UTF8.self) } == ["a0", "a1"])
            #expect(try readStream(store, "beta").map { String(decoding: try $0.payload, as: UTF8.self) } == ["b0"])
            #expect(try readStream(store, "delta").isEmpty)
            #expect(store.lastRevision(of: "beta") == 0)
            #expect(store.lastRevision(of: "alpha") == 1)
            await #expect(throws: AppendError.self) { _ = try await store.append([event()], to: "beta", expecting: .noStream) }
            try await store.close()
            store = try EventStore.open(at: path, options: options)
        }
        try await store.close()
    }

    /// A stream spread over many segments reads the same forwards, backwards and from any
    /// revision, with limits.
    @Test func streamsSpanningManySegmentsReadBothWays() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: smallSegments)
        for index in 0..<600 {
            let stream = index % 3 == 0 ? "long" : "other-\(index % 7)"
            let count = index % 5 == 0 ? 3 : 1
            _ = try await store.append((0..<count).map { checkableEvent(stream: stream, index: index * 10 + $0, size: 600) }, to: stream)
        }
        #expect(try segmentFiles(directory.sub("store")).count > 5)
        let all = try readEverything(store).filter { $0.stream == "long" }
        let forwards = try readStream(store, "long")
        #expect(forwards.map(\.position) == all.map(\.position))
        #expect(forwards.map(\.revision) == Array(0..<UInt64(all.count)))
        #expect(try forwards.map { try $0.payload } == all.map { try $0.payload })
        #expect(try readStreamBackwards(store, "long").map(\.position) == all.map(\.position).reversed())
        #expect(try readStream(store, "long", from: 101, limit: 7).map(\.revision) == Array(101..<108))
        #expect(try readStreamBackwards(store, "long", from: 101, limit: 7).map(\.revision) == Array((95...101).reversed()))
        #expect(try readStream(store, "long", from: UInt64(all.count)).isEmpty)
        #expect(try readStreamBackwards(store, "long", from: 10_000, limit: 1).map(\.revision) == [UInt64(all.count - 1)])
        var asyncCount = 0
        for try await _ in store.read("long", from: 5) { asyncCount += 1 }
        #expect(asyncCount == all.count - 5)
        try await store.close()
    }

    /// Property: random appends (random streams, sizes, batch shapes and expectations) checked
    /// against an in-memory model after every reopen. Replays from the printed seed.
    @Test(arguments: [11, 12, 13] as [UInt64])
    func randomAppendsMatchAModelAcrossReopens(seed: UInt64) async throws {
        var generator = SeededGenerator(seed: seed)
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        var model: [String: [[UInt8]]] = [:]
        var order: [(String, UInt64)] = []
        for round in 0..<4 {
            let store = try EventStore.open(at: path, options: smallSegments)
            for _ in 0..<120 {
                let stream = "s-\(Int.random(in: 0..<12, using: &generator))"
                let count = Int.random(in: 1...4, using: &generator)
                let payloads = (0..<count).map { _ in
                    (0..<Int.random(in: 0...900, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                }
                let current = model[stream].map { UInt64($0.count - 1) }
                let honest = Bool.random(using: &generator)
                let expected: ExpectedRevision = honest ? (current.map { .exact($0) } ?? .noStream) : .exact(UInt64.random(in: 0...50, using: &generator))
                do {
                    let result = try await store.append(payloads.map { EventData(type: "T", payload: $0) }, to: stream, expecting: expected)
                    #expect(expected.isSatisfied(by: current), "seed \(seed)")
                    #expect(result.firstRevision == UInt64(model[stream, default: []].count), "seed \(seed)")
                    for (offset, payload) in payloads.enumerated() {
                        order.append((stream, result.firstRevision + UInt64(offset)))
                        model[stream, default: []].append(payload)
                    }
                } catch {
                    #expect(!expected.isSatisfied(by: current), "seed \(seed): \(error)")
                }
            }
            for (stream, payloads) in model {
                #expect(try readStream(store, stream).map { try $0.payload } == payloads, "seed \(seed) round \(round) \(stream)")
                #expect(try readStreamBackwards(store, stream).map { try $0.payload } == payloads.reversed(), "seed \(seed)")
                #expect(store.lastRevision(of: stream) == UInt64(payloads.count - 1))
            }
            let all = try readEverything(store)
            #expect(all.map { "\($0.stream)#\($0.revision)" } == order.map { "\($0.0)#\($0.1)" }, "seed \(seed)")
            try await store.close()
        }
    }
}
