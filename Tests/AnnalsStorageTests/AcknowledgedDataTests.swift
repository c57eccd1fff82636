import Foundation
import Testing
@testable import AnnalsStorage

/// Recovery never throws away an acknowledged event: damage in acknowledged frames of the open
/// segment is corruption (reported with file and offset, the store refused for writing, readable
/// up to the damage, nothing zeroed), while bytes that were never acknowledged are still cut as
/// a torn tail. The durable marks (`format-spec.md` §3.8) tell the two apart.
@Suite struct AcknowledgedDataTests {
    /// The frames (offset and length) of one segment file, walked by header.
    private func frames(of bytes: [UInt8]) -> [(offset: Int, length: Int)] {
        var result: [(Int, Int)] = []
        var offset = Format.segmentHeaderBytes
        bytes.withUnsafeBytes { raw in
            while case .frame(let frame) = FrameDecoder.probe(raw, at: offset, limit: raw.count - Format.durableMarkAreaBytes),
                  frame.kind != .seal {
                result.append((offset, frame.length))
                offset = frame.end
            }
        }
        return result
    }

    /// A store whose writer is still open (a copy of it is what `kill -9` leaves), with `events`
    /// acknowledged single-event appends in its only segment. Returns the image's path.
    private func acknowledgedImage(in directory: TemporaryDirectory, events: Int, durability: Durability) async throws -> String {
        let live = directory.sub("live")
        let store = try EventStore.open(at: live, options: StoreOptions(durability: durability, segmentSizeBytes: 64 * 1024, compression: .none))
        for index in 0..<events {
            _ = try await store.append([checkableEvent(stream: "s-\(index % 3)", index: index, size: 90)], to: "s-\(index % 3)")
        }
        #expect(try segmentFiles(live).count == 1)
        let image = directory.sub("image")
        try copyDirectory(live, to: image)
        try await store.close()
        return image
    }

    /// Flips `bit` of byte `offset` of the image's segment in a fresh copy, then checks that the
    /// damaged frame at `frameOffset` is reported everywhere and nothing is lost or zeroed.
    private func expectCorruption(
        image: String, trial: String, offset: Int, frameOffset: Int, framesBefore: Int, bit: UInt8 = 0x10
    ) throws {
        try copyDirectory(image, to: trial)
        let segment = try segmentFiles(trial)[0]
        try modifyFile(segment) { $0[offset] ^= bit }
        let damaged = try Data(contentsOf: URL(fileURLWithPath: segment))

        // A writer refuses the store, names the frame, and changes nothing.
        do {
            _ = try EventStore.open(at: trial, options: smallSegments)
            Issue.record("flip at \(offset): a writer opened a store whose acknowledged frame is damaged")
        } catch {
            guard case .corrupt(let corruption) = error else { Issue.record("flip at \(offset): \(error)"); return }
            #expect(corruption.file == segment && corruption.offset == frameOffset, "flip at \(offset): \(corruption)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: segment)) == damaged, "flip at \(offset): the refused open wrote")

        // A reader reads everything before the damage and says where it is.
        let reader = try EventStore.open(at: trial, options: StoreOptions(readOnly: true))
        #expect(try readEverything(reader).count == framesBefore, "flip at \(offset)")
        #expect(reader.recoveryReport.damage?.offset == frameOffset, "flip at \(offset)")
        #expect(reader.recoveryReport.truncatedBytes == 0)

        let verification = StoreVerifier.verify(at: trial)
        #expect(verification.problems.first?.offset == frameOffset, "flip at \(offset): \(verification.problems)")
    }

    /// A bit flip in every frame of the open segment of a store with fsync-acknowledged events,
    /// and at every byte of its last two frames (every field), is corruption, never a torn tail.
    @Test(arguments: [Durability.fsyncBeforeAck, .periodic(.seconds(3600)), .none])
    func flipInAnyAcknowledgedFrameIsCorruptionNeverCut(durability: Durability) async throws {
        let directory = TemporaryDirectory()
        let image = try await acknowledgedImage(in: directory, events: 40, durability: durability)
        let pristine = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try segmentFiles(image)[0])))
        let all = frames(of: pristine)
        #expect(all.count == 40)
        let trial = directory.sub("trial")
        for (index, frame) in all.enumerated() {
            try expectCorruption(image: image, trial: trial, offset: frame.offset + frame.length / 2, frameOffset: frame.offset,
                                 framesBefore: index)
        }
        for (index, frame) in all.enumerated().suffix(2) {
            for offset in frame.offset..<frame.offset + frame.length {
                try expectCorruption(image: image, trial: trial, offset: offset, frameOffset: frame.offset, framesBefore: index,
                                     bit: UInt8(1) << UInt8(offset % 8))
            }
        }
    }

    /// Zero bytes where acknowledged frames must be (a lost write) are corruption too.
    @Test func zeroedAcknowledgedFramesAreCorruption() async throws {
        let directory = TemporaryDirectory()
        let image = try await acknowledgedImage(in: directory, events: 10, durability: .fsyncBeforeAck)
        let segment = try segmentFiles(image)[0]
        let all = frames(of: [UInt8](try Data(contentsOf: URL(fileURLWithPath: segment))))
        let last = try #require(all.last)
        try modifyFile(segment) { bytes in
            for index in last.offset..<last.offset + last.length { bytes[index] = 0 }
        }
        #expect {
            _ = try EventStore.open(at: image, options: smallSegments)
        } throws: { error in
            guard case OpenError.corrupt(let corruption) = error else { return false }
            return corruption.offset == last.offset && corruption.reason.contains("acknowledged data missing")
        }
        #expect(!StoreVerifier.verify(at: image).isSound)
    }

    /// After a power loss (another boot) only what was durable is vouched for: under `.none`
    /// acknowledged appends that were never synced may be lost, so damage there is a torn tail,
    /// while damage in frames synced before the mark is still corruption.
    @Test func afterAnotherBootOnlySyncedFramesAreVouchedFor() async throws {
        let directory = TemporaryDirectory()
        let live = directory.sub("live")
        let store = try EventStore.open(at: live, options: StoreOptions(durability: .none, segmentSizeBytes: 64 * 1024, compression: .none))
        for index in 0..<10 { _ = try await store.append([checkableEvent(stream: "s", index: index, size: 90)], to: "s") }
        try await store.flush()
        for index in 10..<20 { _ = try await store.append([checkableEvent(stream: "s", index: index, size: 90)], to: "s") }
        let image = directory.sub("image")
        try copyDirectory(live, to: image)
        try await store.close()
        // The marks as another boot finds them.
        let segment = try segmentFiles(image)[0]
        try modifyFile(segment) { bytes in
            bytes.withUnsafeMutableBytes { raw in
                guard var mark = DurableMark.latest(in: UnsafeRawBufferPointer(raw), segmentIndex: 0) else { return }
                mark.bootID = UUID()
                mark.write(into: raw)
                mark.sequence += 1
                mark.write(into: raw)
            }
        }
        let all = frames(of: [UInt8](try Data(contentsOf: URL(fileURLWithPath: segment))))
        #expect(all.count == 20)
        let trial = directory.sub("trial")
        // Synced before the mark: corruption.
        try expectCorruption(image: image, trial: trial, offset: all[5].offset + 40, frameOffset: all[5].offset, framesBefore: 5)
        // Acknowledged but never synced: a torn tail, cut.
        try copyDirectory(image, to: trial)
        try modifyFile(try segmentFiles(trial)[0]) { $0[all[15].offset + 40] ^= 1 }
        let reopened = try EventStore.open(at: trial, options: smallSegments)
        #expect(try readEverything(reopened).count == 15)
        #expect(reopened.recoveryReport.truncation?.offset == all[15].offset)
        try await reopened.close()
    }

    /// A frame whose checksum matches but whose fields are wrong cannot be a torn write: it is
    /// corruption even where a torn tail would be cut (after every acknowledged frame).
    @Test func checksummedFrameWithBadFieldsIsCorruptionNotTornTail() async throws {
        let directory = TemporaryDirectory()
        let image = try await acknowledgedImage(in: directory, events: 5, durability: .fsyncBeforeAck)
        let segment = try segmentFiles(image)[0]
        let all = frames(of: [UInt8](try Data(contentsOf: URL(fileURLWithPath: segment))))
        let last = try #require(all.last)
        // Forget that the last frame was acknowledged (a kill before its sync returned)...
        try modifyFile(segment) { bytes in
            for index in bytes.count - Format.durableMarkAreaBytes..<bytes.count { bytes[index] = 0 }
        }
        let checkpointed = directory.sub("checkpointed")
        try copyDirectory(image, to: checkpointed)
        // ...then give it an unknown frame flag and a matching checksum.
        try modifyFile(segment) { bytes in
            bytes[last.offset + 9] = 2
            bytes.withUnsafeMutableBytes { raw in
                raw.storeU32(CRC32C.checksum(UnsafeRawBufferPointer(raw).slice(last.offset + 4, last.length - 4)), at: last.offset)
            }
        }
        #expect {
            _ = try EventStore.open(at: image, options: smallSegments)
        } throws: { error in
            guard case OpenError.corrupt(let corruption) = error else { return false }
            return corruption.offset == last.offset && corruption.reason.contains("frame flags")
        }
        // Without the flag, the same unacknowledged frame with a bad checksum is a torn tail.
        try modifyFile(try segmentFiles(checkpointed)[0]) { $0[last.offset + 40] ^= 1 }
        let reopened = try EventStore.open(at: checkpointed, options: smallSegments)
        #expect(try readEverything(reopened).count == 4)
        #expect(reopened.recoveryReport.truncation?.offset == last.offset)
        try await reopened.close()
    }

    /// The checkpoint's clean-shutdown flag is cleared before a writer's first append changes the
    /// log, so after `kill -9` nobody is told the store was closed cleanly; a clean close sets it.
    @Test func cleanShutdownFlagIsClearOnceAWriterHasAppended() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        func checkpoint() throws -> Checkpoint {
            try Checkpoint.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: path + "/checkpoint")))).get()
        }
        let store = try EventStore.open(at: path, options: smallSegments)
        _ = try await store.append([EventData(type: "A", payload: [1])], to: "s")
        #expect(try !checkpoint().cleanShutdown)
        try await store.close()
        #expect(try checkpoint().cleanShutdown)
        // Opened and left without an append: the log is exactly as the clean checkpoint says.
        let idle = try EventStore.open(at: path, options: smallSegments)
        #expect(try checkpoint().cleanShutdown)
        try await idle.close()
        let store2 = try EventStore.open(at: path, options: smallSegments)
        #expect(try checkpoint().cleanShutdown)
        _ = try await store2.append([EventData(type: "B", payload: [2])], to: "s")
        #expect(try !checkpoint().cleanShutdown)
        let image = directory.sub("image")
        try copyDirectory(path, to: image)
        try await store2.close()
        #expect(try checkpoint().cleanShutdown)
        let reopened = try EventStore.open(at: image, options: StoreOptions(readOnly: true))
        #expect(!reopened.recoveryReport.cleanShutdown)
    }

    /// Frames the spec forbids are refused as corruption: a dictionary frame with flags, and
    /// dictionary frames or compressed records in a segment whose header says version 1.
    @Test func forbiddenFramesAreRefused() async throws {
        let directory = TemporaryDirectory()
        let live = directory.sub("live")
        let store = try EventStore.open(at: live, options: StoreOptions(segmentSizeBytes: 64 * 1024, compression: .lz4))
        for index in 0..<200 {
            _ = try await store.append([checkableEvent(stream: "s-\(index % 5)", index: index, size: 200)], to: "s-\(index % 5)")
        }
        let image = directory.sub("image")
        try copyDirectory(live, to: image)
        try await store.close()
        let segments = try segmentFiles(image)
        // The first segment that has a dictionary frame.
        var target: (segment: String, dictionary: Int)?
        for segment in segments {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: segment)))
            if let frame = frames(of: bytes).first(where: { bytes[$0.offset + 8] == Format.FrameKind.dictionary.rawValue }) {
                target = (segment, frame.offset)
                break
            }
        }
        let (segment, dictionary) = try #require(target)
        let relative = String(segment.dropFirst(image.count))

        let flagged = directory.sub("flagged")
        try copyDirectory(image, to: flagged)
        try modifyFile(flagged + relative) { bytes in
            bytes[dictionary + 9] = 1
            bytes.withUnsafeMutableBytes { raw in
                let length = Int(UnsafeRawBufferPointer(raw).u32(dictionary + 4))
                raw.storeU32(CRC32C.checksum(UnsafeRawBufferPointer(raw).slice(dictionary + 4, length - 4)), at: dictionary)
            }
        }
        let flaggedReport = StoreVerifier.verify(at: flagged)
        #expect(flaggedReport.problems.contains { $0.offset == dictionary && $0.reason.contains("frame flags") })

        let versionOne = directory.sub("version-one")
        try copyDirectory(image, to: versionOne)
        try modifyFile(versionOne + relative) { bytes in
            bytes.withUnsafeMutableBytes { raw in
                raw.storeU16(1, at: 8)
                raw.storeU32(CRC32C.checksum(UnsafeRawBufferPointer(raw).slice(0, 60)), at: 60)
            }
        }
        let versionOneReport = StoreVerifier.verify(at: versionOne)
        #expect(versionOneReport.problems.contains { $0.offset == dictionary && $0.reason.contains("version-1") })
        // Read-only: the damage is reported at open in the open segment, by the read in a sealed one.
        let reader = try EventStore.open(at: versionOne, options: StoreOptions(readOnly: true))
        if segment == segments.last {
            #expect(reader.recoveryReport.damage?.offset == dictionary)
        } else {
            #expect(throws: ReadError.self) { _ = try readEverything(reader) }
        }

        // Compressed records without a dictionary (large bodies in a segment too small for one)
        // in a version-1 segment.
        let small = directory.sub("small")
        let smallStore = try EventStore.open(at: small, options: StoreOptions(segmentSizeBytes: 8192, compression: .lz4))
        let body = Array(String(repeating: #"{"key":"value","n":1}"#, count: 60).utf8)
        _ = try await smallStore.append([EventData(type: "Big", payload: body)], to: "s")
        let smallImage = directory.sub("small-image")
        try copyDirectory(small, to: smallImage)
        try await smallStore.close()
        let smallSegment = try segmentFiles(smallImage)[0]
        let record = try #require(frames(of: [UInt8](try Data(contentsOf: URL(fileURLWithPath: smallSegment)))).first)
        try modifyFile(smallSegment) { bytes in
            bytes.withUnsafeMutableBytes { raw in
                #expect(UnsafeRawBufferPointer(raw).u16(record.offset + 32 + 8 + 6) & Format.recordCompressedFlag != 0, "the record is stored compressed")
                raw.storeU16(1, at: 8)
                raw.storeU32(CRC32C.checksum(UnsafeRawBufferPointer(raw).slice(0, 60)), at: 60)
            }
        }
        #expect {
            _ = try EventStore.open(at: smallImage, options: StoreOptions(segmentSizeBytes: 8192))
        } throws: { error in
            guard case OpenError.corrupt(let corruption) = error else { return false }
            return corruption.reason.contains("version-1")
        }
    }

    /// A flipped bit in the stream name of a sealed, indexed frame fails the stream read at that
    /// frame (it is verified before it could be taken for another stream's), and the stream's
    /// numbering does not go back over it: never a shorter stream.
    @Test func nameFlipInAnIndexedFrameFailsTheStreamRead() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let options = StoreOptions(segmentSizeBytes: 16 * 1024, compression: .none)
        let store = try EventStore.open(at: path, options: options)
        for round in 0..<9 {
            _ = try await store.append([checkableEvent(stream: "victim", index: round, size: 50)], to: "victim")
            for filler in 0..<20 {
                _ = try await store.append([checkableEvent(stream: "filler-\(filler)", index: round, size: 200)], to: "filler-\(filler)")
            }
        }
        for filler in 0..<80 {
            _ = try await store.append([checkableEvent(stream: "filler-\(filler % 20)", index: 9 + filler / 20, size: 200)],
                                       to: "filler-\(filler % 20)")
        }
        try await store.close()
        // The victim's last frame (revision 8), in a sealed segment.
        let segments = try segmentFiles(path)
        var target: (segment: String, offset: Int)?
        for segment in segments.dropLast() {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: segment)))
            for frame in frames(of: bytes) where bytes[frame.offset + 32] == UInt8(ascii: "v") {
                if bytes.withUnsafeBytes({ $0.u64(frame.offset + 24) }) == 8 { target = (segment, frame.offset) }
            }
        }
        let (segment, offset) = try #require(target, "revision 8 of the victim is in a sealed segment")
        try modifyFile(segment) { $0[offset + 32 + 2] ^= 0x01 } // "victim" → "vibtim"

        let reopened = try EventStore.open(at: path, options: options)
        var cursor = reopened.read("victim").makeCursor()
        var revisions: [UInt64] = []
        #expect {
            while let event = try cursor.next() { revisions.append(event.revision) }
        } throws: { error in
            guard case ReadError.corrupt(let corruption) = error else { return false }
            return corruption.file == segment && corruption.offset == offset
        }
        #expect(revisions == Array(0..<8))
        #expect(reopened.lastRevision(of: "victim") == 8)
        await #expect(throws: AppendError.wrongExpectedRevision(stream: "victim", expected: .exact(7), actual: 8)) {
            _ = try await reopened.append([EventData(type: "Late", payload: [])], to: "victim", expecting: .exact(7))
        }
        var backwards = reopened.readBackwards("victim").makeCursor()
        #expect(throws: ReadError.self) { while try backwards.next() != nil {} }
        try await reopened.close()
        #expect(StoreVerifier.verify(at: path).problems.contains { $0.file == segment && $0.offset == offset })
    }

    /// Damage before the checkpoint of the last segment (a flipped length sends the header walk
    /// astray): a writer refuses the store, a reader reads every frame before the damage.
    @Test func damageBeforeTheCheckpointIsReadUpToByAReader() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: StoreOptions(segmentSizeBytes: 64 * 1024, compression: .none))
        for index in 0..<10 { _ = try await store.append([checkableEvent(stream: "s", index: index, size: 90)], to: "s") }
        try await store.close() // the checkpoint now covers every frame
        let segment = try segmentFiles(path)[0]
        let third = frames(of: [UInt8](try Data(contentsOf: URL(fileURLWithPath: segment))))[2]
        try modifyFile(segment) { $0[third.offset + 5] ^= 0x02 } // length + 512
        #expect {
            _ = try EventStore.open(at: path, options: smallSegments)
        } throws: { error in
            guard case OpenError.corrupt(let corruption) = error else { return false }
            return corruption.offset == third.offset
        }
        let reader = try EventStore.open(at: path, options: StoreOptions(readOnly: true))
        #expect(try readEverything(reader).count == 2)
        #expect(reader.recoveryReport.damage?.offset == third.offset)
        #expect(StoreVerifier.verify(at: path).problems.first?.offset == third.offset)
    }

    /// After a crash, a page of unacknowledged frames may reach the disk while an earlier one
    /// did not: the log ends at the lost frame, and the stale frames after it are zeroed so
    /// that none can reappear behind new appends.
    @Test func staleFramesPastALostOneAreZeroed() async throws {
        let directory = TemporaryDirectory()
        let image = try await acknowledgedImage(in: directory, events: 10, durability: .fsyncBeforeAck)
        let segment = try segmentFiles(image)[0]
        let all = frames(of: [UInt8](try Data(contentsOf: URL(fileURLWithPath: segment))))
        try modifyFile(segment) { bytes in
            // Frames 6 to 9 were never acknowledged (their sync never returned), and frame 6
            // never reached the disk.
            bytes.withUnsafeMutableBytes { raw in
                guard var mark = DurableMark.latest(in: UnsafeRawBufferPointer(raw), segmentIndex: 0) else { return }
                raw.zero(raw.count - Format.durableMarkAreaBytes, Format.durableMarkAreaBytes)
                mark.acknowledgedOffset = all[6].offset
                mark.durableOffset = all[6].offset
                mark.acknowledgedPosition = 6
                mark.durablePosition = 6
                mark.write(into: raw)
            }
            for index in all[6].offset..<all[6].offset + all[6].length { bytes[index] = 0 }
        }
        let store = try EventStore.open(at: image, options: smallSegments)
        #expect(store.recoveryReport.truncation?.offset == all[6].offset)
        #expect(store.recoveryReport.truncatedBytes > 0)
        #expect(try readEverything(store).count == 6)
        // An append of the same size lands where frame 6 was, so the next frame would start
        // where the old frame 7 did, with the position it has: it must not be there.
        let again = try await store.append([checkableEvent(stream: "s-0", index: 7, size: 90)], to: "s-0")
        #expect(again.firstPosition == 6)
        try await store.close()
        let reopened = try EventStore.open(at: image, options: smallSegments)
        #expect(try readEverything(reopened).count == 7)
        #expect(StoreVerifier.verify(at: image).isSound)
        try await reopened.close()
    }

    /// A repeat of a recovered append is acknowledged without a sync of its own, and compaction
    /// moves the checkpoint back to the start of the open segment: the durable mark written at
    /// open still vouches for every frame recovery kept, so damage there is corruption.
    @Test func framesKeptByRecoveryStayProtectedAfterCompaction() async throws {
        let directory = TemporaryDirectory()
        let image = try await acknowledgedImage(in: directory, events: 12, durability: .fsyncBeforeAck)
        let options = StoreOptions(segmentSizeBytes: 64 * 1024, compression: .none)
        // Forget every mark, as if the first process never got to write one that reached the
        // disk: only the checkpoint at the segment start and the frames' checksums remain.
        let segment = try segmentFiles(image)[0]
        try modifyFile(segment) { bytes in
            for index in bytes.count - Format.durableMarkAreaBytes..<bytes.count { bytes[index] = 0 }
        }
        let reopened = try EventStore.open(at: image, options: options)
        #expect(try readEverything(reopened).count == 12)
        _ = try await reopened.compact(CompactionOptions(sealOpenSegment: false))
        let afterCompaction = directory.sub("after-compaction")
        try copyDirectory(image, to: afterCompaction)
        try await reopened.close()
        let checkpoint = try Checkpoint.decode([UInt8](try Data(contentsOf: URL(fileURLWithPath: afterCompaction + "/checkpoint")))).get()
        #expect(checkpoint.segmentOffset == UInt64(Format.segmentHeaderBytes), "compaction moved the checkpoint back")
        let all = frames(of: [UInt8](try Data(contentsOf: URL(fileURLWithPath: try segmentFiles(afterCompaction)[0]))))
        try expectCorruption(image: afterCompaction, trial: directory.sub("trial"), offset: all[7].offset + 40,
                             frameOffset: all[7].offset, framesBefore: 7)
    }
}
