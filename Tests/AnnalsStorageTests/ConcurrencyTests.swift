import Foundation
import Testing
@_spi(Testing) @testable import AnnalsStorage

@Suite struct ConcurrencyTests {
    /// Readers running while a writer appends multi-event frames only ever see whole frames:
    /// positions are gapless, every append's events are all there or none, payloads intact.
    @Test(arguments: [Durability.fsyncBeforeAck, .none])
    func readersDuringAppendsNeverSeePartialFrames(durability: Durability) async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"),
                                        options: StoreOptions(durability: durability, segmentSizeBytes: 256 * 1024))
        let appends = 300
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for batch in 0..<appends {
                    let size = batch % 5 + 1
                    let events = (0..<size).map { index in
                        var event = checkableEvent(stream: "b\(batch)", index: index, size: 64 + batch % 200)
                        event.metadata = Array("\(batch)/\(size)".utf8)
                        return event
                    }
                    _ = try await store.append(events, to: "b\(batch)")
                }
            }
            for _ in 0..<4 {
                group.addTask {
                    var sawEverything = false
                    var rounds = 0
                    while !sawEverything && rounds < 10_000 {
                        rounds += 1
                        let events = try readEverything(store)
                        var counts: [String: (seen: Int, size: Int)] = [:]
                        for (index, event) in events.enumerated() {
                            #expect(event.position == UInt64(index))
                            let parts = String(decoding: try event.metadata, as: UTF8.self).split(separator: "/")
                            let size = Int(parts[1]) ?? -1
                            counts[event.stream, default: (0, size)].seen += 1
                            #expect(try event.payload == checkableEvent(stream: event.stream, index: Int(event.revision),
                                                                    size: event.payloadCount).payload)
                        }
                        for (stream, count) in counts where count.seen != count.size {
                            Issue.record("\(stream): saw \(count.seen) of \(count.size) events")
                        }
                        sawEverything = counts.count == appends
                        await Task.yield()
                    }
                }
            }
            try await group.waitForAll()
        }
        try await store.close()
    }

    /// With `.fsyncBeforeAck`, concurrent single-event appends share flushes (group commit).
    @Test func concurrentFsyncAppendsShareFlushes() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"))
        try await withThrowingTaskGroup(of: AppendResult.self) { group in
            for writer in 0..<64 {
                group.addTask {
                    var last: AppendResult?
                    for index in 0..<10 {
                        last = try await store.append([checkableEvent(stream: "w\(writer)", index: index, size: 350)],
                                                      to: "w\(writer)")
                    }
                    return last!
                }
            }
            for try await result in group { #expect(result.lastRevision == 9) }
        }
        let counters = store.commitCounters
        #expect(counters.appends == 640)
        #expect(counters.flushes < counters.appends, "flushes \(counters.flushes) for \(counters.appends) appends")
        let events = try readEverything(store)
        #expect(events.count == 640)
        #expect(zip(events, events.dropFirst()).allSatisfy { $0.timestamp <= $1.timestamp }, "timestamps follow positions")
        try await store.close()
    }

    /// Every durability mode acknowledges appends, and everything is there after reopen.
    @Test(arguments: [Durability.fsyncBeforeAck, .periodic(.milliseconds(5)), .none])
    func everyDurabilityModeAcknowledgesAndPersists(durability: Durability) async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: StoreOptions(durability: durability, segmentSizeBytes: 64 * 1024))
        for index in 0..<200 {
            _ = try await store.append([checkableEvent(stream: "s", index: index, size: 500)], to: "s")
        }
        if case .periodic = durability {
            try await Task.sleep(for: .milliseconds(50))
            #expect(store.commitCounters.flushes > 0, "the periodic flush ran")
        }
        try await store.close()
        let reopened = try EventStore.open(at: path, options: smallSegments)
        #expect(try readEverything(reopened).count == 200)
        try await reopened.close()
    }

    /// Under `.fsyncBeforeAck`, a reader never sees an event before it is durable.
    @Test func fsyncModeShowsOnlyDurableEvents() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"))
        _ = try await store.append([EventData(type: "A", payload: [1])], to: "s")
        let (visible, durable) = (store.endPosition, store.durability.withLock { $0.durablePosition })
        #expect(visible <= durable)
        #expect(store.endPosition == 1)
        try await store.close()
    }
}

@Suite struct LockingTests {
    @Test func secondWriterInTheSameProcessGetsStoreLocked() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let first = try EventStore.open(at: path)
        #expect(throws: OpenError.storeLocked(path: path)) { _ = try EventStore.open(at: path) }
        // A read-only open is allowed while the writer runs.
        let reader = try EventStore.open(at: path, options: StoreOptions(readOnly: true))
        await #expect(throws: AppendError.readOnly) { _ = try await reader.append([EventData(type: "A", payload: [])], to: "s") }
        try await first.close()
        let second = try EventStore.open(at: path)
        try await second.close()
    }
}

@Suite struct AppendValidationTests {
    /// Each bad input gets its typed error and leaves the store exactly as it was.
    @Test func badInputIsRejectedAndWritesNothing() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: smallSegments)
        _ = try await store.append([EventData(type: "A", payload: [1])], to: "s")
        let segmentBefore = try Data(contentsOf: URL(fileURLWithPath: try segmentFiles(path)[0]))
        let tooLong = String(repeating: "x", count: StoreLimits.maximumStreamNameBytes + 1)
        await #expect(throws: AppendError.self) { _ = try await store.append([EventData(type: "A", payload: [])], to: "") }
        await #expect(throws: AppendError.self) { _ = try await store.append([EventData(type: "A", payload: [])], to: tooLong) }
        await #expect(throws: AppendError.self) { _ = try await store.append([EventData(type: "A", payload: [])], to: "$system") }
        await #expect(throws: AppendError.emptyAppend(stream: "s")) { _ = try await store.append([], to: "s") }
        await #expect(throws: AppendError.self) { _ = try await store.append([EventData(type: "", payload: [])], to: "s") }
        await #expect {
            _ = try await store.append([EventData(type: "Big", payload: [UInt8](repeating: 1, count: 64 * 1024))], to: "s")
        } throws: { error in
            guard case AppendError.tooLarge(let stream, let bytes, let limit) = error else { return false }
            return stream == "s" && bytes > limit && limit == 64 * 1024 - 96 - 128
        }
        // One bad element of a batch rejects the whole batch.
        await #expect(throws: AppendError.self) {
            _ = try await store.append([StreamAppend(stream: "ok", events: [EventData(type: "A", payload: [])]),
                                        StreamAppend(stream: "", events: [EventData(type: "A", payload: [])])])
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: try segmentFiles(path)[0])) == segmentBefore)
        #expect(try readEverything(store).count == 1)
        // The largest event that fits is accepted.
        let limit = 64 * 1024 - 96 - 128
        let fits = limit - 32 - 8 - 40 - 3
        let result = try await store.append([EventData(type: "Big", payload: [UInt8](repeating: 2, count: fits))], to: "s")
        #expect(result.firstPosition == 1)
        try await store.close()
        await #expect(throws: AppendError.storeClosed) { _ = try await store.append([EventData(type: "A", payload: [])], to: "s") }
    }
}
