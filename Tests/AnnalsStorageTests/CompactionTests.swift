import Foundation
import Testing
@testable import AnnalsStorage

/// Compaction gives the space of dead events back and changes nothing a reader can see:
/// the same events at the same positions and revisions, in `$all` and stream reads, in both
/// directions, before and after a reopen; readers and writers carry on while it runs.
@Suite struct CompactionTests {
    struct Seen: Equatable, CustomStringConvertible {
        let position: UInt64
        let stream: String
        let revision: UInt64
        let id: UUID
        let payload: [UInt8]
        var description: String { "\(position) \(stream)@\(revision)" }
    }

    func seen(_ events: [RecordedEvent]) throws -> [Seen] {
        try events.map { Seen(position: $0.position, stream: $0.stream, revision: $0.revision, id: $0.id, payload: try $0.payload) }
    }

    func streamRead(_ store: EventStore, _ stream: String, backwards: Bool = false) throws -> [Seen] {
        var cursor = backwards ? store.readBackwards(stream).makeCursor() : store.read(stream).makeCursor()
        var events: [RecordedEvent] = []
        while let event = try cursor.next() { events.append(event) }
        return try seen(events)
    }

    /// 120 streams of 24 events (about 20 segments of 64 KiB), then retention of every kind
    /// and superseded snapshots.
    func populate(_ store: EventStore) async throws -> [String] {
        let streams = (0..<120).map { "account-\($0)" }
        for round in 0..<24 {
            for stream in streams {
                _ = try await store.append([checkableEvent(stream: stream, index: round, size: 90 + (round * 7) % 60)], to: stream)
            }
        }
        for (index, stream) in streams.enumerated() {
            switch index % 6 {
            case 0: try await store.deleteStream(stream)
            case 1: try await store.deleteStream(stream, hard: true)
            case 2: try await store.truncateStream(stream, before: 10)
            case 3: try await store.setRetention(StreamRetention(maxCount: 3), for: stream)
            default: break
            }
        }
        for stream in streams.prefix(24) where !stream.hasSuffix("1") {
            for revision in [5, 10, 20] as [UInt64] {
                try await store.saveSnapshot(of: stream, revision: revision, schemaVersion: 1, bytes: Array("state@\(revision)".utf8))
            }
        }
        return streams
    }

    /// What readers see of the application's streams. (System streams lose their superseded
    /// events: old snapshots, projection checkpoints and retention records.)
    func everything(_ store: EventStore, _ streams: [String]) throws -> (all: [Seen], backwards: [Seen], streams: [[Seen]]) {
        (try seen(readEverything(store)).filter { !$0.stream.hasPrefix("$") },
         try seen(readEverythingBackwards(store)).filter { !$0.stream.hasPrefix("$") },
         try streams.flatMap { [try streamRead(store, $0), try streamRead(store, $0, backwards: true)] })
    }

    /// Compares long lists by their first difference, so a failure stays readable.
    func expectSame(_ actual: [Seen], _ expected: [Seen], _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let mismatch = actual.indices.first { $0 >= expected.count || actual[$0] != expected[$0] }
        let detail = mismatch.map { "first difference at \($0): \(actual[$0]) vs \($0 < expected.count ? "\(expected[$0])" : "nothing")" } ?? ""
        #expect(actual.count == expected.count && mismatch == nil,
                "\(what): \(actual.count) vs \(expected.count) events; \(detail)", sourceLocation: sourceLocation)
    }

    func expectSame(
        _ actual: (all: [Seen], backwards: [Seen], streams: [[Seen]]), _ expected: (all: [Seen], backwards: [Seen], streams: [[Seen]]),
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        expectSame(actual.all, expected.all, "$all", sourceLocation: sourceLocation)
        expectSame(actual.backwards, expected.backwards, "$all backwards", sourceLocation: sourceLocation)
        expectSame(actual.streams.flatMap { $0 }, expected.streams.flatMap { $0 }, "stream reads", sourceLocation: sourceLocation)
    }

    /// Compaction removes the superseded events of a system stream only when the layer that
    /// owns it declared that its newest event supersedes the others; any other system stream
    /// is kept whole.
    @Test func onlyDeclaredSystemStreamsLoseTheirSupersededEvents() async throws {
        for declared in [false, true] {
            let directory = TemporaryDirectory()
            let store = try EventStore.open(at: directory.sub("store"), options: smallSegments)
            for index in 0..<3 {
                for stream in ["$checkpoints-a", "$other-b"] {
                    _ = try await store.appendToSystemStreams([StreamAppend(stream: stream, events: [EventData(type: "C", payload: [UInt8(index)])])])
                }
            }
            try await store.setRetention(StreamRetention(maxCount: 5), for: "x")
            try await store.setRetention(StreamRetention(maxCount: 6), for: "y")
            if declared { store.declareNewestOnlySystemStreams(prefix: "$checkpoints-") }
            // Declarations that would cover the store's own streams are ignored.
            for prefix in ["$re", "$retention", "$retention-more", "$snap", "$snapshot-x"] {
                store.declareNewestOnlySystemStreams(prefix: prefix)
            }
            _ = try await store.compact()
            #expect(try streamRead(store, "$checkpoints-a").map(\.revision) == (declared ? [2] : [0, 1, 2]))
            #expect(try streamRead(store, "$other-b").map(\.revision) == [0, 1, 2])
            try await store.close()
            let reopened = try EventStore.open(at: directory.sub("store"), options: smallSegments)
            #expect(reopened.retention(of: "x") == StreamRetention(maxCount: 5), "retention records survive")
            #expect(reopened.retention(of: "y") == StreamRetention(maxCount: 6))
            try await reopened.close()
        }
    }

    @Test func compactionKeepsEveryVisibleEventAndGivesSpaceBack() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        var store: EventStore? = try EventStore.open(at: path, options: smallSegments)
        let streams = try await populate(store!)
        let before = try everything(store!, streams)
        let report = try await store!.compact()
        #expect(report.segmentsRewritten > 0 && report.eventsRemoved > 0)
        #expect(report.allocatedBytesAfter < report.allocatedBytesBefore * 3 / 4, "\(report)")
        expectSame(try everything(store!, streams), before)
        #expect(store!.latestSnapshot(of: "account-4", schemaVersion: 1).snapshot?.revision == 20)
        #expect(try streamRead(store!, "$snapshot-account-4").map(\.revision) == [2], "superseded snapshots are gone")
        #expect(try streamRead(store!, "$snapshot-account-7").isEmpty, "snapshots of a hard-deleted stream are gone")
        #expect(store!.retention(of: "account-3") == StreamRetention(maxCount: 3))
        let verification = StoreVerifier.verify(at: path)
        #expect(verification.isSound, "\(verification.problems)")
        try await store!.close()
        store = nil

        let reopened = try EventStore.open(at: path, options: smallSegments)
        #expect(reopened.recoveryReport.rebuiltIndexes.isEmpty)
        expectSame(try everything(reopened, streams), before)
        #expect(reopened.retention(of: "account-1").isDeleted && reopened.retention(of: "account-2").truncateBefore == 10)
        // Numbering continues where it was, however much compaction removed.
        for stream in ["account-0", "account-2", "account-3", "account-4"] {
            let result = try await reopened.append([checkableEvent(stream: stream, index: 99, size: 10)], to: stream)
            #expect(result.firstRevision == 24, "\(stream)")
        }
        await #expect(throws: AppendError.streamDeleted(stream: "account-1")) {
            _ = try await reopened.append([checkableEvent(stream: "account-1", index: 0, size: 10)], to: "account-1")
        }
        #expect(try streamRead(reopened, "account-0").map(\.revision) == [24])
        #expect(try streamRead(reopened, "account-3").map(\.revision) == [22, 23, 24])
        try await reopened.close()
        #expect(StoreVerifier.verify(at: path).isSound)
    }

    @Test func compactingTwiceChangesNothingTheSecondTime() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: smallSegments)
        let streams = try await populate(store)
        try await store.compact()
        let between = try everything(store, streams)
        let segmentsBetween = try segmentFiles(directory.sub("store")).count
        let second = try await store.compact()
        #expect(second.segmentsRewritten == 0 && second.eventsRemoved == 0, "\(second)")
        #expect(try segmentFiles(directory.sub("store")).count == segmentsBetween)
        expectSame(try everything(store, streams), between)
        try await store.close()
    }

    @Test func smallResultsAreMergedIntoFewerFiles() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: smallSegments)
        let streams = (0..<40).map { "cart-\($0)" }
        for round in 0..<80 {
            for stream in streams { _ = try await store.append([checkableEvent(stream: stream, index: round, size: 100)], to: stream) }
        }
        for stream in streams.dropFirst(4) { try await store.deleteStream(stream, hard: true) }
        let filesBefore = try segmentFiles(path).count
        let expected = try streams.prefix(4).map { try streamRead(store, $0) }
        let report = try await store.compact()
        #expect(report.filesWritten < report.segmentsRewritten, "\(report)")
        let filesAfter = try segmentFiles(path).count
        // Runs merge within one index file's range (1, 4, 16, … segments), so 11 files become
        // 0-3, 4-7, 8, 9, 10 and the new open segment.
        #expect(filesAfter <= filesBefore / 2 + 1, "\(filesBefore) files before, \(filesAfter) after: \(report)")
        #expect(try streams.prefix(4).map { try streamRead(store, $0) } == expected)
        let usage = try store.spaceUsage()
        #expect(usage.contains { $0.isCompacted && $0.lastSegment > $0.firstSegment }, "a file stands for several segments")
        #expect(usage.allSatisfy { $0.deadEvents == 0 })
        try await store.close()
        let reopened = try EventStore.open(at: path, options: smallSegments)
        #expect(try streams.prefix(4).map { try streamRead(reopened, $0) } == expected)
        try await reopened.close()
        #expect(StoreVerifier.verify(at: path).isSound)
    }

    @Test func theOpenSegmentIsSealedWhenItHoldsDeadEvents() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: StoreOptions(segmentSizeBytes: 1024 * 1024))
        for index in 0..<200 { _ = try await store.append([checkableEvent(stream: "log", index: index, size: 200)], to: "log") }
        try await store.truncateStream("log", before: 190)
        #expect(try segmentFiles(path).count == 1)
        let report = try await store.compact()
        #expect(report.sealedOpenSegment && report.eventsRemoved == 190, "\(report)")
        #expect(try streamRead(store, "log").map(\.revision) == Array(190..<200))
        // The sealed-early segment is gone; the new open one has its full preallocation.
        #expect(report.allocatedBytesAfter < report.allocatedBytesBefore + 1024 * 1024 / 4, "\(report)")
        let next = try await store.append([checkableEvent(stream: "log", index: 200, size: 10)], to: "log")
        #expect(next.firstRevision == 200)
        try await store.close()
        #expect(StoreVerifier.verify(at: path).isSound)
    }

    @Test func readersAndWritersCarryOnDuringCompaction() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: smallSegments)
        let streams = try await populate(store)
        let before = try seen(readEverything(store)).filter { !$0.stream.hasPrefix("$") }
        // A reader part-way through `$all` when compaction replaces the files under it.
        var cursor = store.readAll().makeCursor()
        var early: [RecordedEvent] = []
        for _ in 0..<100 { if let event = try cursor.next() { early.append(event) } }
        let writer = Task {
            var written: [UInt64] = []
            for index in 0..<300 {
                let result = try await store.append([checkableEvent(stream: "live", index: index, size: 64)], to: "live")
                written.append(result.firstPosition)
            }
            return written
        }
        let report = try await store.compact()
        let positions = try await writer.value
        #expect(report.segmentsRewritten > 0)
        while let event = try cursor.next() { early.append(event) }
        expectSame(Array(try seen(early).filter { !$0.stream.hasPrefix("$") }.prefix(before.count)), before,
                   "a reader keeps its view of the replaced files")
        let after = try seen(readEverything(store))
        expectSame(after.filter { $0.stream != "live" && !$0.stream.hasPrefix("$") }, before, "after")
        #expect(after.filter { $0.stream == "live" }.map(\.position) == positions)
        #expect(try streamRead(store, "live").count == 300)
        _ = streams
        try await store.close()
        #expect(StoreVerifier.verify(at: path).isSound)
    }

    @Test func maxAgeKeepsOnlyTheNewestEventOnDisk() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: smallSegments)
        for index in 0..<600 { _ = try await store.append([checkableEvent(stream: "sensor", index: index, size: 120)], to: "sensor") }
        _ = try await store.append([checkableEvent(stream: "other", index: 0, size: 10)], to: "other")
        try await store.setRetention(StreamRetention(maxAge: .nanoseconds(1)), for: "sensor")
        let report = try await store.compact()
        #expect(report.eventsRemoved == 599, "\(report)")
        #expect(try streamRead(store, "sensor").isEmpty, "expired, and hidden by reads")
        #expect(store.lastRevision(of: "sensor") == 599)
        let next = try await store.append([checkableEvent(stream: "sensor", index: 600, size: 10)], to: "sensor",
                                          expecting: .exact(599))
        #expect(next.firstRevision == 600)
        try await store.close()
    }

    /// A soft-deleted stream written again: compaction removes all its older events (its newest
    /// is in the open segment), so the open segment's frames of it follow revisions that are gone.
    /// Recovery after a crash scans that segment and must accept the skip (found by the crash
    /// simulation: the store refused to open).
    @Test func aStreamWhoseOlderEventsWereCompactedAwayReopensAfterACrash() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        var store: EventStore? = try EventStore.open(at: path, options: smallSegments)
        for index in 0..<400 { _ = try await store!.append([checkableEvent(stream: "cart-\(index % 4)", index: index, size: 150)], to: "cart-\(index % 4)") }
        try await store!.deleteStream("cart-0")
        let again = try await store!.append([checkableEvent(stream: "cart-0", index: 1000, size: 10)], to: "cart-0")
        let report = try await store!.compact(CompactionOptions(sealOpenSegment: false))
        #expect(report.eventsRemoved > 0)
        _ = try await store!.append([checkableEvent(stream: "cart-0", index: 1001, size: 10)], to: "cart-0")
        store = nil // a crash: the next open scans the open segment
        let reopened = try await openWhenReleased(path, options: smallSegments)
        #expect(reopened.recoveryReport.scannedBytes > 0)
        #expect(try streamRead(reopened, "cart-0").map(\.revision) == [again.firstRevision, again.firstRevision + 1])
        try await reopened.close()
        #expect(StoreVerifier.verify(at: path).isSound)
    }

    @Test func aStaleIndexFileIsNeverTrusted() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: smallSegments)
        let streams = try await populate(store)
        try await store.close()
        // Keep the index files from before compaction, as a crash before their rewrite would.
        let saved = directory.sub("saved")
        try copyDirectory(path, to: saved)
        // Reopened as soon as closed: a child process another test spawns at that moment may
        // hold the lock file's description until its exec (see `openWhenReleased`).
        let compacting = try await openWhenReleased(path, options: smallSegments)
        let expected = try everything(compacting, streams)
        try await compacting.compact()
        try await compacting.close()
        for name in try FileManager.default.contentsOfDirectory(atPath: path + "/segments") where name.hasSuffix(".idx") {
            try FileManager.default.removeItem(atPath: path + "/segments/" + name)
        }
        for name in try FileManager.default.contentsOfDirectory(atPath: saved + "/segments") where name.hasSuffix(".idx") {
            try FileManager.default.copyItem(atPath: saved + "/segments/" + name, toPath: path + "/segments/" + name)
        }
        let reopened = try await openWhenReleased(path, options: smallSegments)
        #expect(!reopened.recoveryReport.rebuiltIndexes.isEmpty)
        #expect(reopened.recoveryReport.warnings.contains { $0.contains("before a compaction") })
        expectSame(try everything(reopened, streams), expected)
        try await reopened.close()
    }
}
