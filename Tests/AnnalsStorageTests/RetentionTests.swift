import Foundation
import Testing
@testable import AnnalsStorage

/// Retention: soft and hard deletion, truncation, max count and max age take effect at once in
/// stream reads (both directions) and in `$all`, survive reopens and crashes, and a tombstone
/// refuses every later append.
@Suite struct RetentionTests {
    func fill(_ store: EventStore, _ stream: String, _ count: Int, from first: Int = 0) async throws {
        for index in first..<(first + count) {
            _ = try await store.append([checkableEvent(stream: stream, index: index, size: 30)], to: stream)
        }
    }

    func revisions(_ store: EventStore, _ stream: String, backwards: Bool = false) throws -> [UInt64] {
        var cursor = backwards ? store.readBackwards(stream).makeCursor() : store.read(stream).makeCursor()
        var result: [UInt64] = []
        while let event = try cursor.next() { result.append(event.revision) }
        return result
    }

    func allOf(_ store: EventStore, _ stream: String, backwards: Bool = false) throws -> [UInt64] {
        try (backwards ? readEverythingBackwards(store) : readEverything(store)).filter { $0.stream == stream }.map(\.revision)
    }

    @Test func softDeleteEmptiesTheStreamAndAppendsContinue() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: smallSegments)
        try await fill(store, "cart-1", 5)
        try await fill(store, "cart-2", 2)
        try await store.deleteStream("cart-1")
        #expect(try revisions(store, "cart-1").isEmpty)
        #expect(try revisions(store, "cart-1", backwards: true).isEmpty)
        #expect(try allOf(store, "cart-1").isEmpty && allOf(store, "cart-1", backwards: true).isEmpty)
        #expect(try allOf(store, "cart-2") == [0, 1], "other streams untouched")
        try await fill(store, "cart-1", 2, from: 5)
        #expect(try revisions(store, "cart-1") == [5, 6])
        #expect(try revisions(store, "cart-1", backwards: true) == [6, 5])
        #expect(try allOf(store, "cart-1") == [5, 6])
        #expect(store.lastRevision(of: "cart-1") == 6)
        try await store.close()
    }

    @Test func hardDeleteIsATombstoneAcrossReopens() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        var store = try EventStore.open(at: path, options: smallSegments)
        try await fill(store, "account-9", 3)
        try await store.deleteStream("account-9", hard: true)
        #expect(try revisions(store, "account-9").isEmpty)
        await #expect(throws: AppendError.streamDeleted(stream: "account-9")) { try await fill(store, "account-9", 1) }
        await #expect(throws: AppendError.streamDeleted(stream: "account-9")) {
            try await store.setRetention(.keepEverything, for: "account-9")
        }
        // In a batch, a tombstoned stream refuses the whole batch.
        await #expect(throws: AppendError.streamDeleted(stream: "account-9")) {
            _ = try await store.append([StreamAppend(stream: "other", events: [checkableEvent(stream: "other", index: 0, size: 8)]),
                                        StreamAppend(stream: "account-9", events: [checkableEvent(stream: "x", index: 0, size: 8)])])
        }
        #expect(store.lastRevision(of: "other") == nil)
        try await store.close()
        store = try EventStore.open(at: path, options: smallSegments)
        #expect(store.retention(of: "account-9").isDeleted)
        #expect(try allOf(store, "account-9").isEmpty)
        await #expect(throws: AppendError.streamDeleted(stream: "account-9")) { try await fill(store, "account-9", 1) }
        try await store.close()
    }

    @Test func truncateAndMaxCountKeepTheNewestEvents() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        var store = try EventStore.open(at: path, options: smallSegments)
        try await fill(store, "log-1", 10)
        try await fill(store, "log-2", 10)
        try await store.truncateStream("log-1", before: 4)
        #expect(try revisions(store, "log-1") == Array(4...9))
        #expect(try revisions(store, "log-1", backwards: true) == Array((4...9).reversed()))
        #expect(try allOf(store, "log-1") == Array(4...9))
        var cursor = store.read("log-1", from: 2, limit: 3).makeCursor()
        var limited: [UInt64] = []
        while let event = try cursor.next() { limited.append(event.revision) }
        #expect(limited == [4, 5, 6])
        try await store.setRetention(StreamRetention(maxCount: 3), for: "log-2")
        #expect(try revisions(store, "log-2") == [7, 8, 9])
        try await fill(store, "log-2", 2, from: 10)
        #expect(try revisions(store, "log-2") == [9, 10, 11])
        #expect(try allOf(store, "log-2", backwards: true) == [11, 10, 9])
        try await store.close()
        // Crash (no close) right after a change: the settings are in the log.
        var crashed: EventStore? = try EventStore.open(at: path, options: smallSegments)
        try await crashed?.truncateStream("log-1", before: 8)
        crashed = nil
        store = try await openWhenReleased(path, options: smallSegments)
        #expect(try revisions(store, "log-1") == [8, 9])
        #expect(try revisions(store, "log-2") == [9, 10, 11])
        try await store.close()
    }

    /// Max age removes events older than the age from reads as time passes (a clock moved by
    /// hand: no sleeping), stream reads both ways and `$all` alike; commit timestamps come from
    /// the same clock.
    @Test func maxAgeRemovesOldEvents() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualClock()
        var options = smallSegments
        options.clock = ClockChoice(clock: clock)
        let store = try EventStore.open(at: directory.sub("store"), options: options)
        try await fill(store, "sensor-1", 4)
        clock.advance(by: .seconds(10))
        try await fill(store, "sensor-1", 3, from: 4)
        var cursor = store.read("sensor-1").makeCursor()
        #expect(try cursor.next()?.timestamp.nanosecondsSinceEpoch == ManualClock().nowNanoseconds())
        clock.advance(by: .seconds(2))
        try await store.setRetention(StreamRetention(maxAge: .seconds(5)), for: "sensor-1")
        #expect(try revisions(store, "sensor-1") == [4, 5, 6])
        #expect(try revisions(store, "sensor-1", backwards: true) == [6, 5, 4])
        #expect(try allOf(store, "sensor-1") == [4, 5, 6])
        clock.advance(by: .seconds(4))
        #expect(try revisions(store, "sensor-1").isEmpty, "every event is older than 5 s now")
        #expect(try allOf(store, "sensor-1").isEmpty)
        try await store.close()
    }

    @Test func retentionRecordsAreValidated() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: smallSegments)
        await #expect(throws: AppendError.self) { try await store.setRetention(.keepEverything, for: "$retention") }
        let settings = StreamRetention(truncateBefore: 7, maxCount: 100, maxAge: .seconds(3600), isDeleted: false)
        let decoded = settings.encoded(for: "Zürich-€").withUnsafeBytes { StreamRetention.decode($0) }
        #expect(decoded?.stream == "Zürich-€" && decoded?.retention == settings)
        #expect([UInt8](repeating: 0, count: 40).withUnsafeBytes { StreamRetention.decode($0) } == nil)
        try await store.close()
    }
}
