import Annals
import Foundation
import Testing

/// Subscriptions: catch up, one caught-up marker, then live delivery of concurrent appends
/// with no gap and no duplicate; filters; cancellation ends them.
@Suite struct SubscriptionTests {
    func event(_ type: String, _ index: Int) -> EventData { EventData(type: type, payload: Array(#"{"i":\#(index)}"#.utf8)) }

    @Test(arguments: [Durability.fsyncBeforeAck, .none])
    func catchUpThenLiveWithConcurrentAppendsHasNoGapsOrDuplicates(durability: Durability) async throws {
        let scratch = ScratchStore()
        let store = try scratch.open(durability)
        for index in 0..<300 { _ = try await store.append([event("Before", index)], to: "s-\(index % 7)") }
        let total = 300 + 40 * 25
        let collector = Task {
            var positions: [UInt64] = []
            var caughtUpAt: [Int] = []
            for try await message in store.subscribe(from: .start, batchSize: 64) {
                switch message {
                case .event(let event): positions.append(event.position)
                case .caughtUp: caughtUpAt.append(positions.count)
                }
                if positions.count == total { break }
            }
            return (positions, caughtUpAt)
        }
        // Writers race the subscriber: 40 tasks × 25 appends of 1–3 events, counted below.
        let written = try await withThrowingTaskGroup(of: Int.self) { group in
            for writer in 0..<40 {
                group.addTask {
                    var count = 0
                    for step in 0..<25 {
                        _ = try await store.append([event("Live", step)], to: "w-\(writer)")
                        count += 1
                    }
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(written == 1000)
        let (positions, caughtUpAt) = try await collector.value
        #expect(positions == (0..<UInt64(total)).map { $0 }, "every position once, in order")
        // Caught up at most once, after the events that were there first (a subscriber slower
        // than the writers may only catch up after the last of them: then no marker here).
        #expect(caughtUpAt.count <= 1 && caughtUpAt.allSatisfy { $0 >= 300 })
        try await store.close()
    }

    @Test func filtersSelectCategoriesAndTypesAndSkipSystemStreams() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        _ = try await store.append([event("OrderPlaced", 0)], to: "order-1")
        _ = try await store.append([event("PaymentTaken", 1)], to: "payment-1")
        _ = try await store.append([event("OrderShipped", 2)], to: "order-2")
        _ = try await store.appendToSystemStreams([StreamAppend(stream: "$projection-x", events: [event("ProjectionCheckpoint", 3)])])
        func collect(_ filter: SubscriptionFilter) async throws -> [String] {
            var streams: [String] = []
            for try await message in store.subscribe(filter: filter) {
                guard case .event(let event) = message else { break }
                streams.append(event.stream + ":" + event.type)
            }
            return streams
        }
        #expect(try await collect(.all) == ["order-1:OrderPlaced", "payment-1:PaymentTaken", "order-2:OrderShipped"])
        #expect(try await collect(.streamPrefix("order-")) == ["order-1:OrderPlaced", "order-2:OrderShipped"])
        #expect(try await collect(.eventTypes(["PaymentTaken"])) == ["payment-1:PaymentTaken"])
        #expect(try await collect(SubscriptionFilter(includeSystemStreams: true)).count == 4)
        try await store.close()
    }

    @Test func cancellationAndCloseEndALiveSubscription() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        let waiting = Task {
            var messages = 0
            for try await _ in store.subscribe(from: .end) { messages += 1 }
            return messages
        }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        #expect(try await waiting.value == 1, "only the caught-up marker, then the end")
        let closing = Task {
            var messages = 0
            for try await _ in store.subscribe(from: .end) { messages += 1 }
            return messages
        }
        try await Task.sleep(for: .milliseconds(50))
        try await store.close()
        #expect(try await closing.value == 1)
    }

    @Test func slowConsumerFallsBehindWithoutDroppingOrBuffering() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        for index in 0..<2000 { _ = try await store.append([event("E", index)], to: "s") }
        var iterator = store.subscribe(from: .start, batchSize: 50).makeAsyncIterator()
        var seen = 0
        while seen < 100, case .event = try await iterator.next() { seen += 1 }
        // At most one batch read ahead of the consumer; the rest waits in the log.
        #expect(iterator.lag >= 1900 - 50 && iterator.lag <= 1900)
        try await store.close()
    }
}
