import AnnalsTestSupport
import Foundation
import Testing
@_spi(Testing) @testable import AnnalsStorage

/// Online backup and restore: a backup taken while appends go on is the durable prefix of the
/// log and opens, verifies and reads as it; a second backup copies only what is new; a backup
/// stopped at any moment leaves the destination the previous backup or the new one; a restore
/// puts a backup back and refuses to replace a store unless told, or a store a writer has open.
@Suite struct BackupTests {
    static func payload(_ index: Int) -> [UInt8] { (0..<200).map { UInt8(truncatingIfNeeded: $0 &+ index &* 7) } }

    /// Every event of `backup` is the event at the same position in `source`.
    static func expectPrefix(_ backup: String, of source: EventStore, events: UInt64, storage: (any Storage)? = nil) throws {
        var options = StoreOptions(readOnly: true)
        if let storage { options.storage = StorageChoice(storage: storage) }
        let copy = try EventStore.open(at: backup, options: options)
        #expect(copy.endPosition == events, "the backup ends where the durable log ended")
        var original = source.readAll(limit: Int(events)).makeCursor()
        var copied = copy.readAll().makeCursor()
        while let event = try copied.next() {
            let expected = try #require(try original.next())
            #expect(event.position == expected.position && event.id == expected.id && event.stream == expected.stream)
            #expect(try event.payload == expected.payload)
        }
        let report = storage.map { StoreVerifier.verify(at: backup, storage: $0) } ?? StoreVerifier.verify(at: backup)
        #expect(report.isSound, "\(report.problems)")
    }

    @Test func aBackupTakenWhileAppendsGoOnIsTheDurablePrefix() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: StoreOptions(segmentSizeBytes: 64 * 1024, compression: .none))
        for index in 0..<800 { _ = try await store.append([EventData(type: "T", payload: Self.payload(index))], to: "s-\(index % 7)") }
        let writer = Task {
            for index in 800..<2_000 { _ = try await store.append([EventData(type: "T", payload: Self.payload(index))], to: "s-\(index % 7)") }
        }
        let report = try await store.backup(to: directory.sub("backup"))
        try await writer.value
        #expect(report.events >= 800 && report.segmentsCopied > 1, "\(report)")
        try Self.expectPrefix(directory.sub("backup"), of: store, events: report.events)

        // More events, a second backup: the sealed segments already there are kept.
        for index in 2_000..<2_400 { _ = try await store.append([EventData(type: "T", payload: Self.payload(index))], to: "s-\(index % 7)") }
        let second = try await store.backup(to: directory.sub("backup"))
        #expect(second.segmentsKept == report.segmentsCopied - 1, "every sealed file of the first backup kept: \(second)")
        #expect(second.segmentsKept + second.segmentsCopied == (try store.statistics().segments), "\(second)")
        try Self.expectPrefix(directory.sub("backup"), of: store, events: second.events)

        // After a compaction of the source, the backup follows it.
        try await store.truncateStream("s-0", before: 10_000)
        _ = try await store.compact()
        let third = try await store.backup(to: directory.sub("backup"))
        try Self.expectPrefix(directory.sub("backup"), of: store, events: third.events)
        // The store itself, or a directory that is not a backup of it, is never a destination.
        await #expect(throws: BackupError.foreignDestination(path: directory.sub("store"), reason: "it is not a backup of \(directory.sub("store"))")) {
            _ = try await store.backup(to: directory.sub("store"))
        }
        try FileManager.default.createDirectory(atPath: directory.sub("photos"), withIntermediateDirectories: true)
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: directory.sub("photos") + "/cat.jpg"))
        await #expect(throws: BackupError.self) { _ = try await store.backup(to: directory.sub("photos")) }
        #expect(FileManager.default.fileExists(atPath: directory.sub("photos") + "/cat.jpg"), "nothing of it deleted")
        try await store.close()

        // Restore: refused over a store, done into a new directory or when told.
        await #expect(throws: OpenError.self) { try await EventStore.restore(backup: directory.sub("backup"), to: directory.sub("store")) }
        try await EventStore.restore(backup: directory.sub("backup"), to: directory.sub("restored"))
        let restored = try EventStore.open(at: directory.sub("restored"), options: StoreOptions(segmentSizeBytes: 64 * 1024))
        #expect(restored.endPosition == third.events)
        _ = try await restored.append([EventData(type: "After", payload: [1])], to: "s-1") // a writable store again
        try await restored.close()
        try await EventStore.restore(backup: directory.sub("backup"), to: directory.sub("restored"), overwrite: true)
        #expect(StoreVerifier.verify(at: directory.sub("restored")).isSound)
        #expect(try EventStore.open(at: directory.sub("restored"), options: StoreOptions(readOnly: true)).endPosition == third.events)
    }

    /// Crash images at every file operation of a first and of a second backup (after a
    /// compaction of the source): the destination is absent (before the first) or exactly the
    /// previous backup or the new one, and it opens and verifies.
    @Test func aBackupStoppedAtAnyMomentLeavesAStoreThatOpens() async throws {
        let storage = SimulatedStorage()
        var options = StoreOptions(segmentSizeBytes: 8192, compression: .none)
        options.storage = StorageChoice(storage: storage)
        let store = try EventStore.open(at: "/sim/store", options: options)
        for index in 0..<120 { _ = try await store.append([EventData(type: "T", payload: Self.payload(index))], to: "s-\(index % 3)") }
        await store.maintenance.drain()
        var previous: UInt64 = 0
        var checked = 0
        for round in 0..<2 {
            let start = storage.operationCount
            for operation in (start + 1)...(start + 400) { storage.crash(atOperation: operation, seed: UInt64(operation)) }
            let report = try await store.backup(to: "/sim/backup")
            let end = storage.operationCount
            for (operation, _, image) in storage.images where operation > start && operation <= end {
                guard try image.exists("/sim/backup") else {
                    #expect(round == 0, "a second backup never leaves the destination missing (operation \(operation))")
                    continue
                }
                var readOptions = StoreOptions(readOnly: true)
                readOptions.storage = StorageChoice(storage: image)
                let copy = try EventStore.open(at: "/sim/backup", options: readOptions)
                #expect(copy.endPosition == previous || copy.endPosition == report.events,
                        "the previous backup or the new one (operation \(operation))")
                #expect(StoreVerifier.verify(at: "/sim/backup", storage: image).isSound, "operation \(operation)")
                checked += 1
            }
            try Self.expectPrefix("/sim/backup", of: store, events: report.events, storage: storage)
            previous = report.events
            for index in 0..<60 { _ = try await store.append([EventData(type: "T", payload: Self.payload(index))], to: "s-\(index % 3)") }
            // A compaction between the backups: the next one holds compacted files.
            try await store.truncateStream("s-0", before: 1_000)
            _ = try await store.compact()
            await store.maintenance.drain()
        }
        print("backup crash images checked: \(checked)")
        #expect(checked >= 10, "crash images were taken during the backups")
        try await store.close()
    }
}
