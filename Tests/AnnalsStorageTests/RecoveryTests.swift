import Foundation
import Testing
@testable import AnnalsStorage

/// What survives a crash: a store copied while its writer is still open looks exactly like the
/// files a `kill -9` leaves behind (the checkpoint is stale, the tail unverified).
@Suite struct RecoveryTests {
    /// Writes `frames` single-stream appends (the last one `lastPayloadBytes` long) and returns
    /// a crash image of the store plus the offset range of the last frame in its only segment.
    /// The image is what a `kill -9` leaves while the last append was being written, before its
    /// sync returned: the segment's durable marks are those from before that append, so the
    /// last frame was never acknowledged.
    private func crashImage(in directory: TemporaryDirectory, frames: Int, lastPayloadBytes: Int) async throws
        -> (image: String, lastFrame: Range<Int>, segment: String)
    {
        let live = directory.sub("live")
        let store = try EventStore.open(at: live, options: smallSegments)
        for index in 0..<frames - 1 {
            _ = try await store.append([checkableEvent(stream: "s-\(index % 3)", index: index, size: 100)], to: "s-\(index % 3)")
        }
        let before = store.writer.withLock { $0.writeOffset }
        let marksBefore = try durableMarkArea(of: try segmentFiles(live)[0])
        _ = try await store.append([checkableEvent(stream: "last", index: 0, size: lastPayloadBytes),
                                    checkableEvent(stream: "last", index: 1, size: 3)], to: "last")
        let after = store.writer.withLock { $0.writeOffset }
        let image = directory.sub("image")
        try copyDirectory(live, to: image)
        try await store.close()
        let segment = try segmentFiles(image)[0]
        try modifyFile(segment) { $0.replaceSubrange($0.count - marksBefore.count..<$0.count, with: marksBefore) }
        return (image, before..<after, segment)
    }

    /// A cleanly closed store of single-event frames of stream "s", rolled over several segments.
    private func writeClosedStore(at path: String, events: Int) async throws {
        let store = try EventStore.open(at: path, options: smallSegments)
        for index in 0..<events {
            _ = try await store.append([checkableEvent(stream: "s", index: index, size: 300)], to: "s")
        }
        try await store.close()
    }

    /// The last frame cut at every byte offset (the bytes after the cut never reached the disk):
    /// reopen keeps exactly the frames before it, reports the cut, and appends continue at the
    /// next gapless position.
    @Test func tornLastFrameIsCutAtEveryByteOffset() async throws {
        let directory = TemporaryDirectory()
        let (image, lastFrame, segmentName) = try await crashImage(in: directory, frames: 6, lastPayloadBytes: 150)
        let relativeSegment = String(segmentName.dropFirst(image.count))
        let pristine = [UInt8](try Data(contentsOf: URL(fileURLWithPath: segmentName)))
        let trial = directory.sub("trial")
        let frameLength = Int(pristine.withUnsafeBytes { $0.u32(lastFrame.lowerBound + 4) })
        #expect(frameLength > 200 && lastFrame.lowerBound + frameLength <= lastFrame.upperBound)
        for cut in lastFrame.lowerBound..<lastFrame.lowerBound + frameLength {
            try copyDirectory(image, to: trial)
            var bytes = pristine
            for index in cut..<lastFrame.lowerBound + frameLength { bytes[index] = 0 }
            try Data(bytes).write(to: URL(fileURLWithPath: trial + relativeSegment))
            let store = try EventStore.open(at: trial, options: smallSegments)
            let events = try readEverything(store)
            #expect(events.count == 5, "cut at \(cut)")
            #expect(events.map(\.position) == Array(0..<5))
            let frameHasBytes = bytes[lastFrame.lowerBound..<cut].contains { $0 != 0 }
            #expect((store.recoveryReport.truncatedBytes > 0) == frameHasBytes, "cut at \(cut)")
            if frameHasBytes {
                #expect(store.recoveryReport.truncation?.offset == lastFrame.lowerBound)
            }
            let result = try await store.append([EventData(type: "Next", payload: [9])], to: "last")
            #expect(result.firstPosition == 5)
            #expect(result.firstRevision == 0, "the torn append never happened")
            try await store.close()
            let reopened = try EventStore.open(at: trial, options: smallSegments)
            #expect(try readEverything(reopened).map(\.type).last == "Next")
            try await reopened.close()
        }
    }

    /// A flipped byte anywhere in the last (unacknowledged-tail) frame is detected by its
    /// checksum and the frame is cut, never returned.
    @Test func flippedByteInLastFrameIsCutNotReturned() async throws {
        let directory = TemporaryDirectory()
        let (image, lastFrame, segmentName) = try await crashImage(in: directory, frames: 4, lastPayloadBytes: 60)
        let relativeSegment = String(segmentName.dropFirst(image.count))
        let pristine = [UInt8](try Data(contentsOf: URL(fileURLWithPath: segmentName)))
        let trial = directory.sub("trial")
        for offset in lastFrame {
            try copyDirectory(image, to: trial)
            var bytes = pristine
            bytes[offset] ^= 0x40
            try Data(bytes).write(to: URL(fileURLWithPath: trial + relativeSegment))
            let store = try EventStore.open(at: trial, options: smallSegments)
            let events = try readEverything(store)
            // A flip in the trailing padding is outside the frame and harmless.
            let insideFrame = offset < lastFrame.lowerBound + Int(pristine.withUnsafeBytes { $0.u32(lastFrame.lowerBound + 4) })
            #expect(events.count == (insideFrame ? 3 : 5), "flip at \(offset)")
            if insideFrame { #expect(store.recoveryReport.truncatedBytes > 0) }
            try await store.close()
        }
    }

    /// A flipped payload byte in a sealed, checkpointed frame is corruption: reads throw an
    /// error naming the segment and the frame's offset, and `verify` reports it.
    @Test func flippedByteInSealedFrameIsReportedByReadsAndVerify() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        try await writeClosedStore(at: path, events: 400)
        let first = try segmentFiles(path)[0]
        #expect(try segmentFiles(path).count > 1)
        let frameOffset = 64 + 8 * 50 // some frame well inside segment 0
        var target = 0
        try modifyFile(first) { bytes in
            // Walk frames to the one containing frameOffset and flip a payload byte in it.
            var offset = 64
            while true {
                let length = Int(bytes.withUnsafeBytes { $0.u32(offset + 4) })
                let next = offset + (length + 7) / 8 * 8
                if next > frameOffset { target = offset; bytes[offset + length - 10] ^= 0x01; break }
                offset = next
            }
        }
        let reopened = try EventStore.open(at: path, options: smallSegments)
        #expect(throws: ReadError.self) { try readEverything(reopened) }
        do {
            _ = try readEverything(reopened)
        } catch let error as ReadError {
            guard case .corrupt(let corruption) = error else { Issue.record("wrong error"); return }
            #expect(corruption.file == first)
            #expect(corruption.offset == target)
        }
        let report = StoreVerifier.verify(at: path)
        #expect(!report.isSound)
        #expect(report.problems.first?.file == first)
        #expect(report.problems.first?.offset == target)
        try await reopened.close()
    }

    /// A damaged frame header in a sealed segment is never mistaken for a torn tail: open does
    /// not read sealed segments (their index files stand for them), reads and `verify` report
    /// the frame; and when the segment's index must be rebuilt, the rebuild's verified scan
    /// fails the open.
    @Test func damagedFrameHeaderInASealedSegmentIsCorruptionNotATornTail() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        try await writeClosedStore(at: path, events: 400)
        let first = try segmentFiles(path)[0]
        try modifyFile(first) { bytes in bytes[64 + 4] ^= 0xFF } // length of the first frame
        let reopened = try EventStore.open(at: path, options: smallSegments)
        #expect(reopened.recoveryReport.truncatedBytes == 0)
        #expect {
            _ = try readEverything(reopened)
        } throws: { error in
            guard case ReadError.corrupt(let corruption) = error else { return false }
            return corruption.file == first && corruption.offset == 64
        }
        #expect(StoreVerifier.verify(at: path).problems.first?.file == first)
        try await reopened.close()

        try FileManager.default.removeItem(atPath: path + "/segments/0000000000000000.idx")
        #expect {
            _ = try EventStore.open(at: path, options: smallSegments)
        } throws: { error in
            guard case OpenError.corrupt(let corruption) = error else { return false }
            return corruption.file == first && corruption.offset == 64
        }
    }

    @Test func unreadableCheckpointFallsBackToFullScan() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        try await writeClosedStore(at: path, events: 300)
        try modifyFile(path + "/checkpoint") { $0[20] ^= 0xFF }
        let reopened = try EventStore.open(at: path, options: smallSegments)
        #expect(!reopened.recoveryReport.usedCheckpoint)
        #expect(reopened.recoveryReport.warnings.contains { $0.contains("checkpoint") })
        #expect(try readEverything(reopened).count == 300)
        try await reopened.close()
    }

    @Test func leftoverTemporaryFilesAreRemoved() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        try await EventStore.open(at: path, options: smallSegments).close()
        try #require(FileManager.default.createFile(atPath: path + "/segments/0000000000000001.seg.tmp", contents: Data([1, 2, 3])))
        let reopened = try EventStore.open(at: path, options: smallSegments)
        #expect(reopened.recoveryReport.removedTemporaryFiles.count == 1)
        #expect(!FileManager.default.fileExists(atPath: path + "/segments/0000000000000001.seg.tmp"))
        try await reopened.close()
    }

    @Test func newerFormatVersionIsRefused() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        try await EventStore.open(at: path, options: smallSegments).close()
        // A segment header claiming the next version, with a valid checksum.
        let newer = Int(Format.version) + 1
        try modifyFile(try segmentFiles(path)[0]) { bytes in
            bytes[8] = UInt8(newer)
            let checksum = CRC32C.checksum(Array(bytes[0..<60]))
            withUnsafeBytes(of: checksum.littleEndian) { for i in 0..<4 { bytes[60 + i] = $0[i] } }
        }
        #expect {
            _ = try EventStore.open(at: path, options: smallSegments)
        } throws: { error in
            guard case OpenError.unsupportedFormatVersion(_, let found, _) = error else { return false }
            return found == newer
        }
    }

    @Test func directoryThatIsNotAStoreIsRefused() throws {
        let directory = TemporaryDirectory()
        try #require(FileManager.default.createFile(atPath: directory.sub("notes.txt"), contents: Data("hello".utf8)))
        #expect {
            _ = try EventStore.open(at: directory.path)
        } throws: { error in
            if case OpenError.notAStore = error { return true }
            return false
        }
        #expect(FileManager.default.fileExists(atPath: directory.sub("notes.txt")))
    }

    /// A store whose creation was cut short after `segments/` appeared but before it held a
    /// file (nothing in it: no event can be lost) opens as a new store instead of being refused
    /// for ever; a `segments/` that holds anything is never touched.
    @Test func storeCutShortBeforeItsFirstSegmentOpensAsNew() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        try FileManager.default.createDirectory(atPath: path + "/segments", withIntermediateDirectories: true)
        try Data("stale".utf8).write(to: URL(fileURLWithPath: path + "/checkpoint"))
        #expect(throws: OpenError.self) { _ = try EventStore.open(at: path, options: StoreOptions(readOnly: true)) }
        let store = try EventStore.open(at: path, options: smallSegments)
        _ = try await store.append([EventData(type: "First", payload: [1])], to: "s")
        try await store.close()
        #expect(try readEverything(try EventStore.open(at: path, options: StoreOptions(readOnly: true))).count == 1)

        let other = directory.sub("other")
        try FileManager.default.createDirectory(atPath: other + "/segments", withIntermediateDirectories: true)
        try Data("not a segment".utf8).write(to: URL(fileURLWithPath: other + "/segments/notes.txt"))
        #expect(throws: OpenError.self) { _ = try EventStore.open(at: other, options: smallSegments) }
        #expect(FileManager.default.fileExists(atPath: other + "/segments/notes.txt"))
    }
}
