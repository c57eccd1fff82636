import AnnalsTestSupport
import Foundation
import Testing
@testable import AnnalsStorage

/// LZ4 compression of stored events: every event reads back byte for byte whether it was
/// stored compressed or raw, dictionaries follow segment rolls and reopens, and damaged
/// compressed bytes are reported, never decoded into wrong data or a crash.
@Suite struct CompressionTests {
    /// Realistic events (orders, payments, shipments, accounts), seeded.
    func realistic(_ count: Int, seed: UInt64 = 1) -> [(stream: String, event: EventData)] {
        var generator = RealisticEvents(seed: seed)
        return generator.events(count, streams: 50)
    }

    func append(_ events: [(stream: String, event: EventData)], to store: EventStore) async throws {
        for (stream, event) in events { _ = try await store.append([event], to: stream) }
    }

    func expectSameBodies(_ stored: [RecordedEvent], _ written: [EventData], _ comment: Comment? = nil) throws {
        #expect(stored.count == written.count, comment)
        for (event, want) in zip(stored, written) {
            #expect(try event.payload == want.payload, comment)
            #expect(try event.metadata == want.metadata, comment)
            #expect(event.type == want.type, comment)
        }
    }

    @Test func realisticEventsCompressAtLeastTwofoldAndReadBackExactly() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let events = realistic(3000)
        let store = try EventStore.open(at: path, options: StoreOptions(durability: .none, segmentSizeBytes: 256 * 1024))
        for chunk in stride(from: 0, to: events.count, by: 10) {
            let slice = events[chunk..<min(chunk + 10, events.count)]
            _ = try await store.append([StreamAppend](slice.map { StreamAppend(stream: $0.stream, events: [$0.event]) }))
        }
        let stored = try readEverything(store)
        try expectSameBodies(stored, events.map(\.event))
        try expectSameBodies(try readEverythingBackwards(store).reversed(), events.map(\.event))
        // The first events wait for a dictionary's worth of samples; after that, nearly all compress.
        #expect(stored.suffix(2000).filter(\.isStoredCompressed).count > 1900)
        try await store.close()

        let report = StoreVerifier.verify(at: path)
        #expect(report.isSound, "\(report.problems)")
        #expect(report.dictionaries >= 2)
        let ratio = Double(report.bodyBytes) / Double(report.storedBodyBytes)
        #expect(ratio >= 2.0, "metadata+payload ratio \(ratio) on the seeded realistic corpus")
    }

    @Test func incompressibleEmptyAndLargeBodiesRoundTrip() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        var random = SeededGenerator(seed: 5)
        let noise = (0..<700).map { _ in UInt8.random(in: 0...255, using: &random) }
        let bigJSON = Array(("[" + (0..<400).map { #"{"sku":"item-\#($0 % 13)","qty":\#($0 % 5)}"# }.joined(separator: ",") + "]").utf8)
        let cases: [EventData] = [
            EventData(type: "Empty", payload: []),
            EventData(type: "OnlyMetadata", payload: [], metadata: Array(#"{"correlationId":"abc"}"#.utf8)),
            EventData(type: "Noise", payload: noise),
            EventData(type: "Big", payload: bigJSON), // compresses alone, before any dictionary exists
            EventData(type: "Tiny", payload: Array("{}".utf8)),
        ]
        let store = try EventStore.open(at: path, options: StoreOptions(segmentSizeBytes: 256 * 1024))
        _ = try await store.append(cases, to: "mixed-1")
        let prefix = realistic(400).map(\.event)
        _ = try await store.append(prefix, to: "warmup-1")
        _ = try await store.append(cases, to: "mixed-2") // now with a dictionary
        let all = try readEverything(store)
        try expectSameBodies(all, cases + prefix + cases)
        let byType = Dictionary(grouping: all, by: \.type)
        let compressedTypes = Set(all.filter(\.isStoredCompressed).map(\.type))
        #expect(byType["Big"]!.count == 2 && compressedTypes.contains("Big"))
        #expect(!compressedTypes.contains("Noise") && !compressedTypes.contains("Empty") && !compressedTypes.contains("OnlyMetadata"))
        try await store.close()
        #expect(StoreVerifier.verify(at: path).isSound)
    }

    @Test func bigFramesCompressedOnEveryCoreReadBackExactly() async throws {
        // Frames of 64+ events are compressed in parallel shares before they are written.
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: StoreOptions(durability: .none, segmentSizeBytes: 1 << 20))
        try await append(realistic(200, seed: 2), to: store) // fills the sampler: the next frames get a dictionary
        var random = SeededGenerator(seed: 8)
        var big = realistic(700, seed: 3).map(\.event)
        for index in stride(from: 0, to: big.count, by: 37) {
            big[index] = EventData(type: "Noise", payload: (0..<300).map { _ in UInt8.random(in: 0...255, using: &random) })
        }
        big[5] = EventData(type: "Empty", payload: [])
        _ = try await store.append(big, to: "big-frame")
        _ = try await store.append(Array(big.prefix(65)), to: "just-over-the-threshold")
        var cursor = store.read("big-frame").makeCursor()
        var read: [RecordedEvent] = []
        while let event = try cursor.next() { read.append(event) }
        try expectSameBodies(read, big)
        #expect(read.filter(\.isStoredCompressed).count > 600)
        #expect(read.filter { $0.type == "Noise" && $0.isStoredCompressed }.isEmpty)
        try await store.close()
        #expect(StoreVerifier.verify(at: path).isSound)
    }

    @Test func mixedStoresReadEveryEventWhicheverWayItWasWritten() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let events = realistic(900)
        var options = StoreOptions(segmentSizeBytes: 64 * 1024)
        for (round, compression) in [Compression.none, .lz4, .none, .lz4].enumerated() {
            options.compression = compression
            let store = try EventStore.open(at: path, options: options)
            try await append(Array(events[(round * 225)..<((round + 1) * 225)]), to: store)
            try expectSameBodies(try readEverything(store), Array(events.prefix((round + 1) * 225).map(\.event)), "round \(round)")
            try await store.close()
        }
        let store = try EventStore.open(at: path, options: StoreOptions(readOnly: true))
        let all = try readEverything(store)
        try expectSameBodies(all, events.map(\.event))
        let compressedInRound = { (range: Range<Int>) in all[range].filter(\.isStoredCompressed).count }
        #expect(compressedInRound(0..<225) == 0)
        #expect(compressedInRound(675..<900) > 100)
        for (stream, want) in Dictionary(grouping: events, by: \.stream) {
            var cursor = store.read(stream).makeCursor()
            var got: [RecordedEvent] = []
            while let event = try cursor.next() { got.append(event) }
            try expectSameBodies(got, want.map(\.event), "stream \(stream)")
        }
        try await store.close()
        #expect(StoreVerifier.verify(at: path).isSound)
    }

    @Test func segmentsRollWhileTheirDictionaryIsBeingBuilt() async throws {
        // 16 KiB segments take a 1 KiB dictionary: the sampler fills across rolls, every new
        // segment gets its own dictionary frame, and events in segments rolled before the
        // sampler was ready stay raw.
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let events = realistic(600, seed: 9)
        let store = try EventStore.open(at: path, options: StoreOptions(durability: .none, segmentSizeBytes: 16 * 1024))
        for chunk in stride(from: 0, to: events.count, by: 3) {
            let slice = events[chunk..<min(chunk + 3, events.count)]
            _ = try await store.append(slice.map(\.event), to: "batch-\(chunk % 7)")
        }
        try expectSameBodies(try readEverything(store), events.map(\.event))
        let statistics = try store.statistics()
        try await store.close()
        let report = StoreVerifier.verify(at: path)
        #expect(report.isSound, "\(report.problems)")
        #expect(statistics.segments > 10)
        #expect(report.dictionaries >= statistics.segments - 2)
        #expect(report.compressedEvents > 400)
        // Reopened, the store reads the same.
        let reopened = try EventStore.open(at: path, options: StoreOptions(segmentSizeBytes: 16 * 1024))
        try expectSameBodies(try readEverything(reopened), events.map(\.event))
        try await reopened.close()
    }

    @Test func reopenKeepsUsingTheOpenSegmentsDictionary() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let events = realistic(1000)
        let options = StoreOptions(segmentSizeBytes: 4 << 20)
        for round in 0..<4 {
            let store = try await openWhenReleased(path, options: options)
            try await append(Array(events[(round * 250)..<((round + 1) * 250)]), to: store)
            if round == 3 {
                // Crash: no close. The tail after the checkpoint is verified at the next open.
                continue
            }
            try await store.close()
        }
        let store = try await openWhenReleased(path, options: options)
        let all = try readEverything(store)
        try expectSameBodies(all, events.map(\.event))
        #expect(all.suffix(750).allSatisfy { $0.isStoredCompressed || $0.payloadCount + $0.metadataCount < 32 })
        try await store.close()
        let report = StoreVerifier.verify(at: path)
        #expect(report.isSound)
        #expect(report.dictionaries == 1, "a reopen must not write a second dictionary into the open segment")
    }

    @Test func damagedCompressedBytesAreReportedNeverReturned() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let events = realistic(400)
        let store = try EventStore.open(at: path, options: StoreOptions(segmentSizeBytes: 1 << 20))
        try await append(events, to: store)
        try await store.close()
        let segment = try segmentFiles(path)[0]
        let records = try compressedRecords(in: segment)
        try #require(records.count > 100)
        let pristine = [UInt8](try Data(contentsOf: URL(fileURLWithPath: segment)))
        var random = SeededGenerator(seed: 17)
        for trial in 0..<60 {
            let target = records[Int(random.next() % UInt64(records.count))]
            // Half the trials also fix up the frame checksum, as a writer bug or a checksum
            // collision would: then only the bounds-checked decoder stands between the damage
            // and the reader.
            let fixChecksum = trial % 2 == 1
            var damaged = pristine
            let at = target.block.lowerBound + Int(random.next() % UInt64(target.block.count))
            damaged[at] ^= UInt8(1 << (random.next() % 8))
            if trial % 3 == 0 { damaged.replaceSubrange(at..<target.block.upperBound, with: repeatElement(0xFF, count: target.block.upperBound - at)) }
            if fixChecksum {
                let checksum = CRC32C.checksum(Array(damaged[(target.frame + 4)..<(target.frame + target.frameLength)]))
                withUnsafeBytes(of: checksum.littleEndian) { for i in 0..<4 { damaged[target.frame + i] = $0[i] } }
            }
            try Data(damaged).write(to: URL(fileURLWithPath: segment))
            // Read-only: the damage is inside the checkpointed data, so open succeeds.
            let reader = try EventStore.open(at: path, options: StoreOptions(readOnly: true))
            var outcome: String
            do {
                let all = try readEverything(reader)
                var decodeFailed = false
                for (event, want) in zip(all, events.map(\.event)) {
                    do {
                        let payload = try event.payload
                        #expect(payload.count == want.payload.count, "trial \(trial): decoded size must match or throw")
                        if !fixChecksum { #expect(payload == want.payload, "trial \(trial)") }
                    } catch {
                        decodeFailed = true
                        #expect("\(error)".contains(segment), "trial \(trial): \(error)")
                    }
                }
                outcome = decodeFailed ? "decode refused" : "read"
            } catch {
                outcome = "frame refused"
                #expect("\(error)".contains(segment), "trial \(trial): \(error)")
            }
            if !fixChecksum { #expect(outcome == "frame refused", "trial \(trial): the frame checksum must catch it") }
            try await reader.close()
            let verification = StoreVerifier.verify(at: path)
            #expect(!verification.isSound || outcome == "read", "trial \(trial): verify must flag what reads refuse: \(verification)")
        }
        try Data(pristine).write(to: URL(fileURLWithPath: segment))
        #expect(StoreVerifier.verify(at: path).isSound)
    }

    @Test func damagedDictionaryFrameIsReported() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: StoreOptions(segmentSizeBytes: 1 << 20))
        try await append(realistic(400), to: store)
        try await store.close()
        let segment = try segmentFiles(path)[0]
        let records = try compressedRecords(in: segment)
        let dictionaryOffset = try #require(try Data(contentsOf: URL(fileURLWithPath: segment)).withUnsafeBytes { raw in
            records.first.map { Int(raw.u32($0.record + Format.eventHeaderBytes + Int(raw.u16($0.record + 4)))) }
        })
        try modifyFile(segment) { $0[dictionaryOffset + Format.frameHeaderBytes + 100] ^= 0x20 }
        let reader = try EventStore.open(at: path, options: StoreOptions(readOnly: true))
        #expect {
            _ = try readEverything(reader)
        } throws: { error in
            guard case ReadError.corrupt(let corruption) = error else { return false }
            return corruption.file == segment
        }
        try await reader.close()
        let report = StoreVerifier.verify(at: path)
        #expect(report.problems.contains { $0.offset == dictionaryOffset && $0.reason.contains("checksum") })
    }
}

/// Stores written by format version 1 (no dictionary frames, no compressed records) keep
/// reading; a writer seals their open segment and continues in a version-2 segment.
@Suite struct FormatVersionTests {
    /// Rewrites a store's version fields to 1, as a version-1 writer left them.
    func downgradeToVersion1(_ path: String) throws {
        for segment in try segmentFiles(path) {
            try modifyFile(segment) { bytes in
                bytes[8] = 1
                let checksum = CRC32C.checksum(Array(bytes[0..<60]))
                withUnsafeBytes(of: checksum.littleEndian) { for i in 0..<4 { bytes[60 + i] = $0[i] } }
            }
        }
        try modifyFile(path + "/checkpoint") { bytes in
            bytes[8] = 1
            bytes[10] = 1
            let checksum = CRC32C.checksum(Array(bytes[0..<60]))
            withUnsafeBytes(of: checksum.littleEndian) { for i in 0..<4 { bytes[60 + i] = $0[i] } }
        }
    }

    @Test func version1StoresReadAndContinueInANewSegment() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        var generator = RealisticEvents(seed: 4)
        let events = generator.events(600, streams: 20)
        let old = try EventStore.open(at: path, options: StoreOptions(segmentSizeBytes: 64 * 1024, compression: .none))
        for (stream, event) in events.prefix(300) { _ = try await old.append([event], to: stream) }
        try await old.close()
        try downgradeToVersion1(path)
        let before = try segmentFiles(path).count

        let store = try EventStore.open(at: path, options: StoreOptions(segmentSizeBytes: 64 * 1024))
        #expect(try segmentFiles(path).count == before + 1, "the version-1 open segment is sealed at open")
        for (stream, event) in events.suffix(300) { _ = try await store.append([event], to: stream) }
        let all = try readEverything(store)
        #expect(all.count == 600)
        for (event, want) in zip(all, events) { #expect(try event.payload == want.event.payload) }
        let compressedCount = all.suffix(200).filter(\.isStoredCompressed).count
        #expect(compressedCount > 100)
        try await store.close()
        let report = StoreVerifier.verify(at: path)
        #expect(report.isSound, "\(report.problems)")
        let checkpoint = try Data(contentsOf: URL(fileURLWithPath: path + "/checkpoint"))
        #expect(checkpoint[10] == UInt8(Format.appendSegmentVersion), "a version-1 reader must refuse the store now")
    }
}
