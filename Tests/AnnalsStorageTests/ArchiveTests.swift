import AnnalsTestSupport
import Foundation
import Testing
@_spi(Testing) @testable import AnnalsStorage

/// Archived segments: sealed segments moved to another directory read exactly as before
/// (every read path, after a reopen too), compaction, backup, restore and `verify` handle
/// both places, a store refuses an archive that is missing or not its own instead of reading
/// the log without it, and an archive run stopped at any moment leaves every event readable
/// from exactly one place.
@Suite struct ArchiveTests {
    static func payload(_ index: Int) -> [UInt8] { (0..<300).map { UInt8(truncatingIfNeeded: $0 &+ index &* 13) } }

    /// What every read path returns, to compare a store before and after archiving.
    struct Reads: Equatable {
        var all: [String]
        var backwards: [String]
        var streams: [String: [String]]
        var lastRevisions: [String: UInt64]

        init(_ store: EventStore, streams: [String]) throws {
            func line(_ event: RecordedEvent) throws -> String {
                "\(event.position) \(event.stream)@\(event.revision) \(event.type) \(event.id) \(try event.payload.hashValue) \(event.timestamp)"
            }
            all = try readEverything(store).map(line)
            backwards = try readEverythingBackwards(store).map(line)
            var byStream: [String: [String]] = [:]
            var last: [String: UInt64] = [:]
            for stream in streams {
                var cursor = store.read(stream).makeCursor()
                var lines: [String] = []
                while let event = try cursor.next() { lines.append(try line(event)) }
                byStream[stream] = lines
                last[stream] = store.lastRevision(of: stream)
            }
            self.streams = byStream
            lastRevisions = last
        }
    }

    static let streams = (0..<5).map { "s-\($0)" }

    static func fill(_ store: EventStore, _ range: Range<Int>) async throws {
        for index in range {
            _ = try await store.append([EventData(type: "T\(index % 3)", payload: payload(index))], to: streams[index % streams.count])
        }
    }

    static func options(clock: ManualClock, storage: (any Storage)? = nil) -> StoreOptions {
        var options = StoreOptions(durability: .none, segmentSizeBytes: 16_384)
        options.clock = ClockChoice(clock: clock)
        if let storage { options.storage = StorageChoice(storage: storage) }
        return options
    }

    /// 600 events, then three days later 300 more: the segments of the first ones are old.
    static func agedStore(at path: String, clock: ManualClock) async throws -> EventStore {
        let store = try EventStore.open(at: path, options: options(clock: clock))
        try await fill(store, 0..<600)
        clock.advance(by: .seconds(3 * 86_400))
        try await fill(store, 600..<900)
        return store
    }

    static func files(_ directory: String, suffix: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(suffix) }.sorted()
    }

    @Test func archivedSegmentsReadExactlyAsBeforeAndTheLogGoesOn() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualClock()
        let path = directory.sub("store"), archivePath = directory.sub("cold")
        let store = try await Self.agedStore(at: path, clock: clock)
        await store.maintenance.drain()
        let before = try Reads(store, streams: Self.streams)
        let segmentsBefore = Self.files(path + "/segments", suffix: ".seg")

        // Only segments whose newest event is over a day old move: the first 600 events' ones.
        let report = try await store.archiveSegments(olderThan: .seconds(86_400), to: archivePath)
        #expect(report.segmentsMoved > 2 && report.firstLocalSegment == UInt64(report.segmentsMoved), "\(report)")
        #expect(report.directory == archivePath)
        let archived = Self.files(archivePath, suffix: ".seg")
        #expect(archived == Array(segmentsBefore.prefix(report.segmentsMoved)), "the oldest segments, moved")
        #expect(Self.files(path + "/segments", suffix: ".seg") == Array(segmentsBefore.dropFirst(report.segmentsMoved)),
                "and gone from the store directory")
        #expect(try Reads(store, streams: Self.streams) == before, "every read path returns what it returned before")
        #expect(store.archiveDirectory == archivePath)
        #expect(StoreVerifier.verify(at: path).isSound)

        // A later run moves nothing new until the rest is old enough; the log goes on.
        #expect(try await store.archiveSegments(olderThan: .seconds(86_400), to: archivePath).segmentsMoved == 0)
        try await Self.fill(store, 900..<1_000)
        clock.advance(by: .seconds(3 * 86_400))
        try await Self.fill(store, 1_000..<1_100)
        let second = try await store.archiveSegments(olderThan: .seconds(86_400), to: archivePath + "/")
        #expect(second.segmentsMoved > 0 && second.firstLocalSegment > report.firstLocalSegment, "\(second)")
        let all = try Reads(store, streams: Self.streams)
        #expect(all.all.count == 1_100)
        try await store.close()

        // Reopened: the same reads; the checkpoint keeps readers that do not know archives out.
        let reopened = try EventStore.open(at: path, options: Self.options(clock: clock))
        #expect(try Reads(reopened, streams: Self.streams) == all)
        let checkpoint = try #require(try Checkpoint.decode(Array(Data(contentsOf: URL(fileURLWithPath: path + "/checkpoint")))).get())
        #expect(checkpoint.minimumReaderVersion == Format.archiveVersion)
        _ = try await reopened.append([EventData(type: "After", payload: [1])], to: "s-0")
        try await reopened.close()
        let readOnly = try EventStore.open(at: path, options: StoreOptions(readOnly: true))
        #expect(readOnly.endPosition == 1_101)
        #expect(StoreVerifier.verify(at: path).isSound)
    }

    @Test func compactionBackupAndRestoreHandleBothPlaces() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualClock()
        let path = directory.sub("store"), archivePath = directory.sub("cold")
        let store = try await Self.agedStore(at: path, clock: clock)
        let moved = try await store.archiveSegments(olderThan: .seconds(86_400), to: archivePath).segmentsMoved
        #expect(moved > 2)

        // Compaction: archived groups are rewritten in the archive, local ones locally.
        try await store.truncateStream("s-1", before: 150)
        try await store.truncateStream("s-2", before: 170)
        let compaction = try await store.compact()
        #expect(compaction.segmentsRewritten > 0, "\(compaction)")
        let archivedFiles = Self.files(archivePath, suffix: ".seg")
        let localFiles = Self.files(path + "/segments", suffix: ".seg")
        #expect(!archivedFiles.isEmpty && Set(archivedFiles).isDisjoint(with: localFiles))
        #expect(archivedFiles.allSatisfy { (UInt64($0.dropLast(4)) ?? .max) < UInt64(moved) }, "\(archivedFiles)")
        let compactedInArchive = try archivedFiles.filter { name in
            let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: archivePath + "/" + name)))
            return try bytes.withUnsafeBytes { try SegmentHeader.decode($0, file: name) }.isCompacted
        }
        #expect(!compactedInArchive.isEmpty, "archived segments were compacted where they are: \(archivedFiles)")
        let after = try Reads(store, streams: Self.streams)
        #expect(after.streams["s-1"]?.count == 180 - 150 && after.streams["s-2"]?.count == 180 - 170)
        #expect(StoreVerifier.verify(at: path).isSound)

        // A backup is self-contained: it opens with the archive gone.
        let backup = try await store.backup(to: directory.sub("backup"))
        #expect(backup.segmentsCopied == localFiles.count + archivedFiles.count, "\(backup)")
        try await store.close()
        try FileManager.default.moveItem(atPath: archivePath, toPath: directory.sub("cold-unmounted"))
        let copy = try EventStore.open(at: directory.sub("backup"), options: StoreOptions(readOnly: true))
        #expect(try Reads(copy, streams: Self.streams) == after)
        #expect(throws: OpenError.self) { _ = try EventStore.open(at: path, options: StoreOptions(readOnly: true)) }
        try FileManager.default.moveItem(atPath: directory.sub("cold-unmounted"), toPath: archivePath)

        // A restore from the archived store itself brings every segment home.
        try await EventStore.restore(backup: path, to: directory.sub("restored"))
        #expect(!FileManager.default.fileExists(atPath: directory.sub("restored") + "/archive"))
        #expect(Self.files(directory.sub("restored") + "/segments", suffix: ".seg") == (archivedFiles + localFiles).sorted())
        let restored = try EventStore.open(at: directory.sub("restored"), options: StoreOptions(readOnly: true))
        #expect(try Reads(restored, streams: Self.streams) == after)
    }

    @Test func aStoreRefusesAnArchiveThatIsMissingOrNotItsOwn() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualClock()
        let path = directory.sub("store"), archivePath = directory.sub("cold")
        let store = try EventStore.open(at: path, options: Self.options(clock: clock))
        try await Self.fill(store, 0..<400)
        clock.advance(by: .seconds(3_600))
        try await Self.fill(store, 400..<500)
        #expect(try await store.archiveSegments(olderThan: .seconds(60), to: archivePath).segmentsMoved > 0)
        // One archive per store; a directory with other files in it is never taken.
        await #expect(throws: ArchiveError.otherDirectory(current: archivePath, requested: directory.sub("elsewhere"))) {
            _ = try await store.archiveSegments(olderThan: .seconds(60), to: directory.sub("elsewhere"))
        }
        try await store.close()
        let other = try EventStore.open(at: directory.sub("other"), options: Self.options(clock: clock))
        try await Self.fill(other, 0..<200)
        clock.advance(by: .seconds(3_600))
        try await Self.fill(other, 200..<300)
        await #expect(throws: ArchiveError.foreignDirectory(path: archivePath, reason: "it is the archive of another store")) {
            _ = try await other.archiveSegments(olderThan: .seconds(60), to: archivePath)
        }
        try FileManager.default.createDirectory(atPath: directory.sub("photos"), withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: directory.sub("photos") + "/cat.jpg", contents: Data("keep".utf8))
        await #expect(throws: ArchiveError.foreignDirectory(path: directory.sub("photos"), reason: "it is not empty")) {
            _ = try await other.archiveSegments(olderThan: .seconds(60), to: directory.sub("photos"))
        }
        #expect(try Self.files(directory.sub("photos"), suffix: "") == ["cat.jpg"], "nothing written there")
        #expect(Self.files(directory.sub("other") + "/segments", suffix: ".seg").first == "0000000000000000.seg", "nothing moved")
        // With nothing archived yet, the store may still pick another directory.
        #expect(try await other.archiveSegments(olderThan: .seconds(60), to: directory.sub("other-cold")).segmentsMoved > 0)
        try await other.close()

        // The archive unmounted (an empty mount point), or another store's: refused, nothing changed.
        try FileManager.default.moveItem(atPath: archivePath, toPath: directory.sub("cold-away"))
        try FileManager.default.createDirectory(atPath: archivePath, withIntermediateDirectories: false)
        for readOnly in [false, true] {
            #expect(throws: OpenError.archiveUnavailable(
                directory: archivePath, reason: "it has no annals-archive file (is the right file system mounted there?)")) {
                _ = try EventStore.open(at: path, options: StoreOptions(readOnly: readOnly))
            }
        }
        #expect(!StoreVerifier.verify(at: path).isSound)
        try FileManager.default.removeItem(atPath: archivePath)
        let marker = try Data(contentsOf: URL(fileURLWithPath: directory.sub("cold-away") + "/annals-archive"))
        let foreign = ArchiveMarker.encoded(archiveID: [UInt8](repeating: 7, count: 16)) // another archive's id
        try Data(foreign).write(to: URL(fileURLWithPath: directory.sub("cold-away") + "/annals-archive"))
        try FileManager.default.moveItem(atPath: directory.sub("cold-away"), toPath: archivePath)
        #expect(throws: OpenError.archiveUnavailable(directory: archivePath, reason: "it is the archive of another store")) {
            _ = try EventStore.open(at: path, options: StoreOptions(readOnly: true))
        }
        try marker.write(to: URL(fileURLWithPath: archivePath + "/annals-archive"))

        // A damaged `archive` file is corruption; a lost one leaves the log without its start.
        let manifest = try Data(contentsOf: URL(fileURLWithPath: path + "/archive"))
        try modifyFile(path + "/archive") { $0[17] ^= 0x01 }
        #expect(throws: OpenError.corrupt(CorruptionError(file: path + "/archive", offset: manifest.count - 4, reason: "archive file checksum mismatch"))) {
            _ = try EventStore.open(at: path, options: StoreOptions(readOnly: true))
        }
        try FileManager.default.removeItem(atPath: path + "/archive")
        #expect(throws: OpenError.corrupt(CorruptionError(file: path + "/segments/0000000000000000.seg", offset: 0, reason: "segment file missing"))) {
            _ = try EventStore.open(at: path, options: StoreOptions(readOnly: true))
        }
        #expect(!StoreVerifier.verify(at: path).isSound)
        try manifest.write(to: URL(fileURLWithPath: path + "/archive"))
        #expect(try EventStore.open(at: path, options: StoreOptions(readOnly: true)).endPosition == 500)
        #expect(StoreVerifier.verify(at: path).isSound)
    }

    @Test func aDamagedSegmentIsNeverArchived() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualClock()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: Self.options(clock: clock))
        try await Self.fill(store, 0..<300)
        clock.advance(by: .seconds(3_600))
        try await Self.fill(store, 300..<400)
        await store.maintenance.drain()
        let first = store.view.withLock { $0.segments[0] }
        // A flipped bit in the first segment's first frame body, written through a file of its own.
        let mapping = try SystemStorage.shared.openMappedFile(path: first.path, writable: true)
        let offset = Format.segmentHeaderBytes + 100
        func flip() throws {
            let byte = mapping.bytes[offset] ^ 0x04
            try withUnsafeBytes(of: byte) { try mapping.write($0, at: offset) }
        }
        try flip()
        await #expect(throws: ArchiveError.self) { _ = try await store.archiveSegments(olderThan: .seconds(60), to: directory.sub("cold")) }
        #expect(FileManager.default.fileExists(atPath: first.path), "the damaged segment stays where it is")
        #expect(Self.files(directory.sub("cold"), suffix: ".seg").isEmpty)
        try flip()
        try await store.close()
    }

    @Test func theArchivePolicyMovesAgedSegmentsInTheBackground() async throws {
        let directory = TemporaryDirectory()
        let clock = ManualClock()
        let path = directory.sub("store")
        var options = Self.options(clock: clock)
        options.archive = ArchivePolicy(directory: "../cold", olderThan: .seconds(600))
        let store = try EventStore.open(at: path, options: options)
        try await Self.fill(store, 0..<300)
        await store.maintenance.drain()
        #expect(Self.files(directory.sub("cold"), suffix: ".seg").isEmpty, "nothing is old enough yet")
        clock.advance(by: .seconds(3_600))
        try await Self.fill(store, 300..<500) // rolls schedule the archive job
        await store.maintenance.drain()
        let archived = Self.files(directory.sub("cold"), suffix: ".seg")
        #expect(archived.count >= 2, "\(archived)")
        #expect(store.archiveDirectory == path + "/../cold")
        #expect(store.maintenanceStatus.failures == 0, "\(store.maintenanceStatus)")
        #expect(try readEverything(store).count == 500)
        try await store.close()
        // The `archive` file holds the directory as given: relative to the store directory.
        let manifest = try ArchiveManifest.decode(Array(Data(contentsOf: URL(fileURLWithPath: path + "/archive"))), file: "archive").get()
        #expect(manifest.directory == "../cold")
    }

    /// Crash images at every file operation of archive runs (and of a compaction of archived
    /// segments): each image opens, holds every event, verifies, and its writable open
    /// leaves exactly one file per segment.
    @Test func anArchiveRunStoppedAtAnyMomentLosesNothing() async throws {
        let storage = SimulatedStorage()
        let clock = ManualClock()
        let store = try EventStore.open(at: "/sim/store", options: Self.options(clock: clock, storage: storage))
        try await Self.fill(store, 0..<300)
        clock.advance(by: .seconds(3_600))
        try await Self.fill(store, 300..<350)
        try await store.flush()
        await store.maintenance.drain()
        var checked = 0
        for round in 0..<3 {
            if round == 2 {
                try await store.truncateStream("s-3", before: 40)
                try await store.flush()
            }
            let start = storage.operationCount
            for operation in (start + 1)...(start + 300) { storage.crash(atOperation: operation, seed: UInt64(operation)) }
            if round == 2 {
                _ = try await store.compact()
            } else {
                _ = try await store.archiveSegments(olderThan: .seconds(60), to: "/sim/cold")
            }
            let end = storage.operationCount
            let expected = try readEverything(store).count
            for (operation, _, image) in storage.images where operation > start && operation <= end {
                var readOptions = StoreOptions(readOnly: true)
                readOptions.storage = StorageChoice(storage: image)
                let copy = try EventStore.open(at: "/sim/store", options: readOptions)
                let events = try readEverything(copy)
                #expect(events.count == expected, "operation \(operation): \(events.count) events")
                #expect(StoreVerifier.verify(at: "/sim/store", storage: image).isSound, "operation \(operation)")
                var writeOptions = Self.options(clock: clock, storage: image)
                writeOptions.createIfMissing = false
                let writable = try EventStore.open(at: "/sim/store", options: writeOptions)
                #expect(try readEverything(writable).count == events.count, "operation \(operation)")
                // The writable open left each archived segment in the archive only.
                let boundary = writable.archive.withLock { $0?.firstLocalSegment } ?? 0
                let localNumbers = try (image.directoryEntries("/sim/store/segments") ?? []).compactMap(StoreLayout.segmentIndex(fileName:))
                #expect(localNumbers.allSatisfy { $0 >= boundary }, "operation \(operation): local files of archived segments")
                // And the next run completes the move.
                _ = try await writable.archiveSegments(olderThan: .seconds(60), to: "/sim/cold")
                #expect(try readEverything(writable).count == events.count, "operation \(operation)")
                try await writable.close()
                let local = Set(try image.directoryEntries("/sim/store/segments") ?? []).filter { $0.hasSuffix(".seg") || $0.hasSuffix(".tmp") }
                let cold = Set(try image.directoryEntries("/sim/cold") ?? []).filter { $0.hasSuffix(".seg") || $0.hasSuffix(".tmp") }
                #expect(local.isDisjoint(with: cold) && !cold.contains { $0.hasSuffix(".tmp") } && local.count == 1,
                        "one copy of each segment, only the open one local (operation \(operation))")
                checked += 1
            }
            try await Self.fill(store, 350 + round * 50..<400 + round * 50)
            clock.advance(by: .seconds(3_600))
            try await Self.fill(store, 400 + round * 50..<400 + round * 50 + 1)
            try await store.flush()
            await store.maintenance.drain()
        }
        print("archive crash images checked: \(checked)")
        #expect(checked >= 20, "crash images were taken during the archive runs")
        try await store.close()
    }
}
