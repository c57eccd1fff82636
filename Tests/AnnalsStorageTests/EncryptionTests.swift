import AnnalsTestSupport
import Crypto
import Foundation
import Testing
@testable import AnnalsStorage

/// A key-encryption key held in memory, for tests.
struct FixedKeyProvider: KeyEncryptionKeyProvider {
    let key: KeyEncryptionKey
    func keyEncryptionKey() throws(OpenError) -> KeyEncryptionKey { key }

    static let one = FixedKeyProvider(key: try! KeyEncryptionKey(bytes: Array(0..<32)))
    static let two = FixedKeyProvider(key: try! KeyEncryptionKey(bytes: Array(100..<132)))
}

/// Every file under `path` (recursively), with its bytes.
func filesUnder(_ path: String) throws -> [(path: String, bytes: [UInt8])] {
    var result: [(String, [UInt8])] = []
    let enumerator = FileManager.default.enumerator(atPath: path)
    while let name = enumerator?.nextObject() as? String {
        var isDirectory: ObjCBool = false
        let full = path + "/" + name
        guard FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
        result.append((full, [UInt8](try Data(contentsOf: URL(fileURLWithPath: full)))))
    }
    return result
}

/// True when `needle` occurs in `haystack`.
func occurs(_ needle: [UInt8], in haystack: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    let first = needle[0]
    var index = 0
    while index <= haystack.count - needle.count {
        if haystack[index] == first, haystack[index..<(index + needle.count)].elementsEqual(needle) { return true }
        index += 1
    }
    return false
}

/// Encryption at rest and crypto-shredding (`format-spec.md` §1B, §3.9): bodies of events that
/// name a subject (or all of them) are stored only encrypted, read back exactly, are never
/// returned when a bit of them or of what binds them to their record changed, and read as
/// erased — with no trace of their key in any file — once their subject is forgotten.
@Suite struct EncryptionTests {
    static let marker = "PLAINTEXT-MARKER-7f3a"

    static func options(_ provider: FixedKeyProvider = .one, everything: Bool = false, compression: Compression = .lz4) -> StoreOptions {
        var options = StoreOptions(segmentSizeBytes: 16_384, compression: compression)
        options.encryption = EncryptionOptions(keyProvider: provider, encryptEverything: everything)
        return options
    }

    /// Event `index`: customer `index % 5`'s personal data (a subject) for most, none for every
    /// fourth; long bodies every third so that some compress.
    static func event(_ index: Int) -> EventData {
        let long = index % 3 == 0 ? String(repeating: " lorem ipsum", count: 100) : ""
        let payload = Array(#"{"n":\#(index),"name":"\#(marker) customer \#(index % 5)\#(long)"}"#.utf8)
        return EventData(type: "CustomerChanged", payload: payload, metadata: Array(#"{"m":\#(index)}"#.utf8),
                         tags: ["customer:\(index % 5)"], subject: index % 4 == 3 ? nil : "customer-\(index % 5)")
    }

    static func expectIntact(_ events: [RecordedEvent], count: Int, erased: Set<String> = [], _ label: String) throws {
        #expect(events.count == count, "\(label)")
        for event in events {
            let source = Self.event(Int(event.position))
            #expect(event.tags == source.tags && event.type == source.type, "\(label): \(event.position)")
            if let subject = source.subject, erased.contains(subject) {
                #expect(event.isErased, "\(label): \(event.position) should be erased")
                #expect(throws: ReadError.bodyErased(position: event.position)) { _ = try event.payload }
            } else {
                #expect(!event.isErased, "\(label): \(event.position)")
                #expect(try event.payload == source.payload && event.metadata == source.metadata, "\(label): \(event.position)")
            }
        }
    }

    @Test(arguments: [Compression.lz4, .none])
    func subjectsBodiesRoundTripThroughRollsReopenCompactionAndVerify(compression: Compression) async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: Self.options(compression: compression))
        for index in 0..<300 { _ = try await store.append([Self.event(index)], to: "customer-\(index % 5)") }
        try Self.expectIntact(try readEverything(store), count: 300, "written")
        let events = try readEverything(store)
        let encryptedCount = events.filter { $0.isEncrypted }.count
        #expect(encryptedCount == 225 && events.count - encryptedCount == 75)
        if compression == .lz4 { #expect(events.contains { $0.isEncrypted && $0.isStoredCompressed }, "long encrypted bodies compress") }
        try await store.close()
        let reopened = try EventStore.open(at: path, options: Self.options(compression: compression))
        try Self.expectIntact(try readEverything(reopened), count: 300, "reopened")
        var backwards = reopened.readBackwards("customer-2").makeCursor()
        while let event = try backwards.next() { #expect(try event.payload == Self.event(Int(event.position)).payload) }
        let checkpoint = try #require(try Checkpoint.decode(Array(Data(contentsOf: URL(fileURLWithPath: path + "/checkpoint")))).get())
        #expect(checkpoint.minimumReaderVersion == Format.encryptedRecordsVersion, "readers without encryption are kept out")
        // Compaction copies encrypted records as they are; positions, and so their binding, stay.
        try await reopened.truncateStream("customer-1", before: 30)
        _ = try await reopened.compact()
        let kept = try readEverything(reopened).filter { !$0.stream.hasPrefix("$") }
        #expect(kept.count < 300)
        for event in kept { #expect(try event.payload == Self.event(Int(event.position)).payload) }
        let report = StoreVerifier.verify(at: path, encryption: Self.options().encryption)
        let keptEncrypted = UInt64(kept.filter { $0.isEncrypted }.count)
        // Every encrypted record on disk, the truncated ones compaction kept in the open segment too.
        #expect(report.isSound && report.authenticatedEvents == report.encryptedEvents && report.authenticatedEvents >= keptEncrypted,
                "\(report.authenticatedEvents) of \(report.encryptedEvents), \(keptEncrypted) read; \(report.problems)")
        let keyless = StoreVerifier.verify(at: path)
        #expect(keyless.isSound && keyless.authenticatedEvents == 0 && keyless.encryptedEvents > 0)
        try await reopened.close()
    }

    @Test func encryptingEverythingLeavesNoPlaintextInAnyFileAndStaysOn() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: Self.options(everything: true))
        for index in 0..<200 { _ = try await store.append([Self.event(index)], to: "customer-\(index % 5)") }
        try await store.saveSnapshot(of: "customer-1", revision: 3, schemaVersion: 1, bytes: Array("\(Self.marker) snapshot".utf8))
        try await store.close()
        for file in try filesUnder(path) {
            #expect(!occurs(Array(Self.marker.utf8), in: file.bytes), "\(file.path) holds plaintext")
        }
        // Without the option, the store still encrypts everything it appends.
        let reopened = try EventStore.open(at: path, options: Self.options(everything: false))
        #expect(reopened.encryptsEverything)
        _ = try await reopened.append([EventData(type: "Plain", payload: Array("\(Self.marker) later".utf8))], to: "other")
        try await reopened.close()
        for file in try filesUnder(path) { #expect(!occurs(Array(Self.marker.utf8), in: file.bytes), "\(file.path)") }
        let again = try EventStore.open(at: path, options: Self.options())
        let events = try readEverything(again)
        let allEncrypted = events.allSatisfy { $0.isEncrypted }
        #expect(allEncrypted)
        try Self.expectIntact(Array(events.filter { $0.stream.hasPrefix("customer-") }), count: 200, "everything")
        #expect(again.latestSnapshot(of: "customer-1", schemaVersion: 1).snapshot?.bytes == Array("\(Self.marker) snapshot".utf8))
    }

    @Test func theMarkerIsFoundInPlainStoresSoTheSearchCanFail() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        var options = Self.options()
        options.encryption = nil
        let store = try EventStore.open(at: path, options: options)
        _ = try await store.append([EventData(type: "T", payload: Array("\(Self.marker)".utf8))], to: "s")
        try await store.close()
        #expect(try filesUnder(path).contains { occurs(Array(Self.marker.utf8), in: $0.bytes) })
    }

    @Test func forgettingDestroysEveryCopyOfTheKeyAndErasesTheSubjectsEventsOnly() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: Self.options())
        for index in 0..<120 { _ = try await store.append([Self.event(index)], to: "customer-\(index % 5)") }
        try await store.saveSnapshot(of: "customer-2", revision: 5, schemaVersion: 1, bytes: Array("state".utf8), subject: "customer-2")
        // The data key of customer-2, in every form the store could hold it: raw and wrapped.
        let sample = try #require(try readEverything(store).first { Self.event(Int($0.position)).subject == "customer-2" })
        let keyID = sample.segment.keyID(of: sample.layout)
        guard case .key(let dataKey) = try #require(store.keyRing).lookup(keyID) else { Issue.record("no key"); return }
        let raw = dataKey.withUnsafeBytes { Array($0) }
        let keysFile = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path + "/keys")))
        let entry = keysFile[64...].chunks(of: 104).first { $0.dropFirst(4).prefix(4).elementsEqual(withUnsafeBytes(of: keyID.littleEndian) { Array($0) }) }
        let wrapped = Array(try #require(entry).dropFirst(52).prefix(48))
        #expect(try filesUnder(path).contains { occurs(wrapped, in: $0.bytes) }, "the wrapped key is there before")
        #expect(try store.forget(subject: "customer-2"))
        #expect(try !store.forget(subject: "customer-2"), "nothing left to forget")
        #expect(try !store.forget(subject: "nobody"))
        // In this process at once: erased, and the others intact.
        try Self.expectIntact(try readEverything(store).filter { $0.stream.hasPrefix("customer-") }, count: 120, erased: ["customer-2"], "forgotten")
        #expect(store.latestSnapshot(of: "customer-2", schemaVersion: 1).snapshot == nil, "its snapshot is erased too")
        try await store.close()
        for file in try filesUnder(path) {
            #expect(!occurs(raw, in: file.bytes), "\(file.path) holds the destroyed key")
            #expect(!occurs(wrapped, in: file.bytes), "\(file.path) holds the destroyed key wrapped")
        }
        #expect(!FileManager.default.fileExists(atPath: path + "/keys.old"))
        let reopened = try EventStore.open(at: path, options: Self.options())
        try Self.expectIntact(try readEverything(reopened).filter { $0.stream.hasPrefix("customer-") }, count: 120, erased: ["customer-2"], "reopened")
        // A later event of the same subject gets a new key, and reads.
        _ = try await reopened.append([EventData(type: "Back", payload: [1, 2, 3], subject: "customer-2")], to: "customer-2")
        var cursor = reopened.readBackwards("customer-2", limit: 1).makeCursor()
        #expect(try cursor.next()?.payload == [1, 2, 3])
        let report = StoreVerifier.verify(at: path, encryption: Self.options().encryption)
        let subjectEvents = (0..<120).filter { Self.event($0).subject == "customer-2" }.count
        #expect(report.isSound && report.erasedEvents == UInt64(subjectEvents + 1), "\(report.erasedEvents) \(report.problems)")
    }

    @Test func aFlippedBitOfAnEncryptedRecordIsNeverReturned() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: Self.options(compression: .none))
        _ = try await store.append([Self.event(0), Self.event(1)], to: "customer")
        let event = try #require(try readEverything(store).first)
        let layout = event.layout
        let recordOffset = layout.offset
        let segmentPath = event.segment.path
        let frameOffset = Format.segmentHeaderBytes
        try await store.close()
        let pristine = [UInt8](try Data(contentsOf: URL(fileURLWithPath: segmentPath)))
        // Bytes the authentication covers: nonce, ciphertext, tag, and the associated data kept
        // in the record (type, timestamp, id, flags' neighbours, key number).
        var offsets = Array((layout.bodyOffset + EncryptedBodyLayout.nonce)..<(layout.offset + layout.length))
        offsets += [recordOffset + RecordLayout.type, recordOffset + RecordLayout.timestamp + 3, recordOffset + RecordLayout.eventId + 5,
                    layout.keyIDField, recordOffset + RecordLayout.type + layout.typeBytes + 3]
        var checked = 0
        for offset in offsets {
            var bytes = pristine
            bytes[offset] ^= 0x10
            // The frame checksum is made to match: only the authentication tag can tell.
            bytes.withUnsafeMutableBytes { buffer in
                let length = Int(UnsafeRawBufferPointer(buffer).u32(frameOffset + FrameLayout.length))
                FrameEncoder.storeChecksum(ofFrameAt: frameOffset, length: length, in: buffer)
            }
            try Data(bytes).write(to: URL(fileURLWithPath: segmentPath))
            var readOptions = Self.options()
            readOptions.readOnly = true
            let copy = try EventStore.open(at: path, options: readOptions)
            // Refused when the record is read (a tag block that no longer adds up) or when its
            // body is: never returned.
            #expect(throws: ReadError.self, "offset \(offset)") { _ = try readEverything(copy).first?.payload }
            #expect(!StoreVerifier.verify(at: path, encryption: Self.options().encryption).isSound, "offset \(offset)")
            checked += 1
        }
        #expect(checked > 300)
        // The event's position and revision are bound too: the body read as another event's fails.
        try Data(pristine).write(to: URL(fileURLWithPath: segmentPath))
        let reopened = try EventStore.open(at: path, options: Self.options())
        let events = try readEverything(reopened)
        let moved = RecordedEvent(position: 1, stream: "customer", revision: 1, segment: events[0].segment, layout: events[0].layout)
        #expect(throws: ReadError.self) { _ = try moved.payload }
        #expect(try events[0].payload == Self.event(0).payload)
    }

    @Test func aWrongOrMissingKeyIsRefusedAtOpenAndNothingIsWritten() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: Self.options())
        _ = try await store.append([Self.event(0)], to: "customer-0")
        try await store.close()
        let before = try filesUnder(path).map { ($0.path, $0.bytes) }
        #expect(throws: OpenError.wrongKeyEncryptionKey(path: path)) { _ = try EventStore.open(at: path, options: Self.options(.two)) }
        var keyless = Self.options()
        keyless.encryption = nil
        #expect(throws: OpenError.keyEncryptionKeyRequired(path: path)) { _ = try EventStore.open(at: path, options: keyless) }
        keyless.readOnly = true
        #expect(throws: OpenError.keyEncryptionKeyRequired(path: path)) { _ = try EventStore.open(at: path, options: keyless) }
        var missingFile = Self.options()
        missingFile.encryption = EncryptionOptions(keyProvider: KeyFileProvider(path: directory.sub("no-such.kek")))
        #expect(throws: OpenError.self) { _ = try EventStore.open(at: path, options: missingFile) }
        let after = try filesUnder(path).map { ($0.path, $0.bytes) }
        #expect(before.map(\.0) == after.map(\.0) && zip(before, after).allSatisfy { $0.1 == $1.1 }, "nothing changed")
    }

    @Test func aSubjectWithoutEncryptionOrOutOfBoundsIsRefusedWithNothingWritten() async throws {
        let directory = TemporaryDirectory()
        var plain = Self.options()
        plain.encryption = nil
        let store = try EventStore.open(at: directory.sub("plain"), options: plain)
        await #expect(throws: AppendError.self) {
            _ = try await store.append([EventData(type: "T", payload: [1]), EventData(type: "T", payload: [2], subject: "c-1")], to: "s")
        }
        #expect(store.endPosition == 0)
        #expect(throws: AppendError.self) { _ = try store.forget(subject: "c-1") }
        let encrypted = try EventStore.open(at: directory.sub("encrypted"), options: Self.options())
        await #expect(throws: AppendError.invalidSubject("", reason: "empty")) {
            _ = try await encrypted.append([EventData(type: "T", payload: [1], subject: "")], to: "s")
        }
        #expect(encrypted.endPosition == 0)
    }

    @Test func aTornLastKeyEntryIsCutAndADamagedOneIsCorruption() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: Self.options())
        for index in 0..<10 { _ = try await store.append([Self.event(index)], to: "c") }
        try await store.close()
        let keys = path + "/keys"
        let pristine = [UInt8](try Data(contentsOf: URL(fileURLWithPath: keys)))
        try Data(pristine + Array(pristine[64..<120])).write(to: URL(fileURLWithPath: keys)) // half an entry more
        let reopened = try EventStore.open(at: path, options: Self.options())
        try Self.expectIntact(try readEverything(reopened), count: 10, "torn key entry")
        try await reopened.close()
        #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: keys))) == pristine, "the torn entry was cut")
        var damaged = pristine
        damaged[64 + 10] ^= 1 // the first of several entries
        try Data(damaged).write(to: URL(fileURLWithPath: keys))
        #expect(throws: OpenError.self) { _ = try EventStore.open(at: path, options: Self.options()) }
        #expect(!StoreVerifier.verify(at: path, encryption: Self.options().encryption).isSound)
    }

    @Test func keyedTagsAreStablePerKeyAndHideTheValue() throws {
        let directory = TemporaryDirectory()
        let one = try EventStore.open(at: directory.sub("one"), options: Self.options(.one))
        let two = try EventStore.open(at: directory.sub("two"), options: Self.options(.two))
        let tag = try #require(one.keyedTag("alice@example.com"))
        #expect(tag.hasPrefix("h:") && tag.count == 34 && !tag.contains("alice"))
        #expect(one.keyedTag("alice@example.com") == tag && one.keyedTag("bob@example.com") != tag)
        #expect(two.keyedTag("alice@example.com") != tag, "another key gives another tag")
    }

    @Test func backupsCarryTheKeysAndRestoreWithThem() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: Self.options())
        for index in 0..<40 { _ = try await store.append([Self.event(index)], to: "c-\(index % 3)") }
        _ = try await store.backup(to: directory.sub("backup"))
        try await store.close()
        try await EventStore.restore(backup: directory.sub("backup"), to: directory.sub("restored"), encryption: Self.options().encryption)
        let restored = try EventStore.open(at: directory.sub("restored"), options: Self.options())
        try Self.expectIntact(try readEverything(restored), count: 40, "restored")
    }

    /// A forget whose rename happened but whose directory sync failed forgets in this process
    /// at once: a later event of the subject gets a new key, so it still reads after a reopen
    /// (it is never sealed under the key the disk no longer holds).
    @Test func aForgetThatFailsAfterItsRenameNeverLosesLaterEvents() async throws {
        let storage = SimulatedStorage()
        var options = Self.options()
        options.storage = StorageChoice(storage: storage)
        let store = try EventStore.open(at: "/sim/store", options: options)
        _ = try await store.append([EventData(type: "T", payload: [1], subject: "c-1")], to: "c-1")
        storage.fail(.syncDirectory, errno: EIO)
        #expect(throws: AppendError.self) { _ = try store.forget(subject: "c-1") }
        storage.cancelPlannedFailures()
        _ = try await store.append([EventData(type: "T", payload: [2], subject: "c-1")], to: "c-1")
        try await store.close()
        let reopened = try EventStore.open(at: "/sim/store", options: options)
        let events = try readEverything(reopened)
        #expect(events.count == 2 && events[0].isErased, "the forget took effect")
        #expect(try events[1].payload == [2], "the later event reads")
        #expect(try reopened.forget(subject: "c-1"), "its new key can be forgotten in turn")
    }

    /// A read-only ring meets a key that a writer created after the ring read the file (a
    /// reader opened beside a writer): it reads the file again instead of reporting corruption.
    @Test func aReaderMeetingANewerKeyReadsTheKeysFileAgain() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let writer = try EventStore.open(at: path, options: Self.options())
        _ = try await writer.append([EventData(type: "T", payload: [1], subject: "c-1")], to: "c-1")
        var readOnly = Self.options()
        readOnly.readOnly = true
        let ring = try #require(try KeyRing.open(layout: StoreLayout(root: path), options: readOnly, checkpointVersion: 0))
        _ = try await writer.append([EventData(type: "T", payload: [2], subject: "c-2")], to: "c-2")
        let newer = try #require(try readEverything(writer).last)
        guard case .key = ring.lookup(newer.segment.keyID(of: newer.layout)) else { Issue.record("the new key was not found"); return }
        guard case .unknown = ring.lookup(999) else { Issue.record("an unknown key must stay unknown"); return }
        try await writer.close()
    }

    @Test func verifyReportsEncryptedRecordsWithoutTheirKeysFile() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: Self.options())
        _ = try await store.append([Self.event(0)], to: "c")
        try await store.close()
        #expect(StoreVerifier.verify(at: path).isSound)
        try FileManager.default.removeItem(atPath: path + "/keys")
        #expect(!StoreVerifier.verify(at: path).isSound, "without a key")
        #expect(!StoreVerifier.verify(at: path, encryption: Self.options().encryption).isSound, "with a key")
        #expect(throws: OpenError.self) { _ = try EventStore.open(at: path, options: Self.options()) }
    }

    @Test func aPlainStoreOpenedWithAKeyIsNotBoundToIt() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: Self.options())
        _ = try await store.append([EventData(type: "T", payload: [1])], to: "s")
        try await store.close()
        #expect(!FileManager.default.fileExists(atPath: path + "/keys"), "no keys file before the first encrypted event")
        var plain = Self.options()
        plain.encryption = nil
        let reopened = try EventStore.open(at: path, options: plain)
        #expect(try readEverything(reopened).count == 1)
        try await reopened.close()
    }

    /// A backup replaced by a newer one after a forget leaves no copy of the forgotten key: the
    /// old backup's `keys` file is overwritten with zeros before it is deleted (seen through a
    /// second name given to it beforehand).
    @Test func aReplacedBackupKeepsNoForgottenKey() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"), options: Self.options())
        _ = try await store.append([EventData(type: "T", payload: [1], subject: "c-1")], to: "c-1")
        _ = try await store.backup(to: directory.sub("backup"))
        try FileManager.default.linkItem(atPath: directory.sub("backup") + "/keys", toPath: directory.sub("old-backup-keys"))
        #expect(try store.forget(subject: "c-1"))
        _ = try await store.backup(to: directory.sub("backup"))
        let old = [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory.sub("old-backup-keys"))))
        #expect(!old.isEmpty && old.allSatisfy { $0 == 0 }, "the replaced backup's keys were zeroed")
        try await store.close()
    }

    /// `forget` under the crash simulation: at every durable operation it performs, the image
    /// holds the subject's key whole (every event of the subject reads) or not at all (every
    /// one reads as erased, and no file holds the key); the other subjects always read.
    @Test func forgettingIsAtomicUnderCrashes() async throws {
        let storage = SimulatedStorage()
        var options = Self.options()
        options.storage = StorageChoice(storage: storage)
        let store = try EventStore.open(at: "/sim/store", options: options)
        for index in 0..<60 { _ = try await store.append([Self.event(index)], to: "customer-\(index % 5)") }
        try await store.flush()
        let sample = try #require(try readEverything(store).first { Self.event(Int($0.position)).subject == "customer-1" })
        let keyID = sample.segment.keyID(of: sample.layout)
        let keysFile = try #require(try storage.readFile("/sim/store/keys", maximumBytes: 1 << 20))
        let entry = keysFile[64...].chunks(of: 104).first { $0.dropFirst(4).prefix(4).elementsEqual(withUnsafeBytes(of: keyID.littleEndian) { Array($0) }) }
        let wrapped = Array(try #require(entry).dropFirst(52).prefix(48))
        let start = storage.operationCount
        for operation in (start + 1)...(start + 20) { storage.crash(atOperation: operation, seed: UInt64(operation)) }
        #expect(try store.forget(subject: "customer-1"))
        let end = storage.operationCount
        try await store.close()
        var kept = 0, gone = 0
        for (operation, seed, image) in storage.images where operation <= end {
            var imageOptions = Self.options()
            imageOptions.storage = StorageChoice(storage: image)
            let copy = try EventStore.open(at: "/sim/store", options: imageOptions)
            let events = try readEverything(copy).filter { $0.stream.hasPrefix("customer-") }
            let subjects = events.filter { Self.event(Int($0.position)).subject == "customer-1" }
            let erased = subjects.filter(\.isErased).count
            #expect(erased == 0 || erased == subjects.count, "operation \(operation) seed \(seed): \(erased) of \(subjects.count) erased")
            if erased == 0 {
                kept += 1
                try Self.expectIntact(events, count: 60, "operation \(operation)")
            } else {
                gone += 1
                try Self.expectIntact(events, count: 60, erased: ["customer-1"], "operation \(operation)")
                for name in try image.directoryEntries("/sim/store") ?? [] {
                    let bytes = try image.readFile("/sim/store/" + name, maximumBytes: 1 << 20) ?? []
                    #expect(!occurs(wrapped, in: bytes), "operation \(operation): \(name) holds the key")
                }
            }
            try await copy.close()
        }
        #expect(kept > 0 && gone > 0, "kept \(kept), gone \(gone)")
    }
}

extension Collection {
    /// Consecutive slices of `size` elements (the last may be shorter).
    func chunks(of size: Int) -> [SubSequence] {
        var result: [SubSequence] = []
        var start = startIndex
        while start != endIndex {
            let end = index(start, offsetBy: size, limitedBy: endIndex) ?? endIndex
            result.append(self[start..<end])
            start = end
        }
        return result
    }
}
