import Foundation
import Testing
@testable import AnnalsStorage

/// The one frame walk: every verification level finds the same frames in a sound segment, in
/// position order, with the dictionary frames remembered; damage is reported where it starts,
/// by the level that can see it; a limit inside a frame is reported past the limit.
@Suite struct FrameWalkerTests {
    /// A closed store of `events` single-event appends over several streams, compressed so that
    /// the first segment has a dictionary frame; returns its first (sealed) segment.
    private func sealedSegment(in directory: TemporaryDirectory) async throws -> Segment {
        let path = directory.sub("store")
        let store = try EventStore.open(at: path, options: StoreOptions(segmentSizeBytes: 64 * 1024))
        for index in 0..<400 {
            _ = try await store.append([checkableEvent(stream: "s-\(index % 7)", index: index, size: 200, type: "T")],
                                       to: "s-\(index % 7)")
        }
        try await store.close()
        let path0 = try segmentFiles(path)[0]
        let file = try SystemFileMapping.open(path: path0, writable: false)
        return Segment(header: try SegmentHeader.decode(file.bytes, file: path0), file: file, keyRing: nil)
    }

    private func steps(_ walk: inout FrameWalker) -> (frames: [FrameHeader], end: FrameWalker.Step) {
        var frames: [FrameHeader] = []
        while true {
            let step = walk.next()
            switch step {
            case .events(let frame), .dictionary(let frame): frames.append(frame)
            default: return (frames, step)
            }
        }
    }

    @Test func everyLevelFindsTheSameFramesInASoundSegment() async throws {
        let directory = TemporaryDirectory()
        let segment = try await sealedSegment(in: directory)
        var results: [[Int]] = []
        for verification in [FrameWalker.Verification.headers, .checksums, .checksumsAndRecords] {
            var walk = segment.walk(verification: verification)
            let (frames, end) = steps(&walk)
            guard case .seal(let seal) = end else { Issue.record("\(verification): ended with \(end)"); return }
            #expect(seal.firstPosition == walk.expectedPosition)
            #expect(frames.contains { $0.kind == .dictionary } && walk.dictionaries.count == frames.filter { $0.kind == .dictionary }.count)
            let events = frames.filter { $0.kind == .events }
            #expect(zip(events, events.dropFirst()).allSatisfy { $0.nextPosition == $1.firstPosition }, "positions continue")
            results.append(frames.map(\.offset))
        }
        #expect(results[0] == results[1] && results[1] == results[2])
    }

    @Test func damageIsReportedWhereItStartsByTheLevelThatSeesIt() async throws {
        let directory = TemporaryDirectory()
        let segment = try await sealedSegment(in: directory)
        var clean = segment.walk(verification: .headers)
        let frames = steps(&clean).frames.filter { $0.kind == .events }
        let victim = frames[frames.count / 2]
        var bytes = [UInt8](segment.bytes)
        bytes[victim.recordsOffset + RecordLayout.timestamp] ^= 0x01 // covered by the checksum only
        try bytes.withUnsafeBytes { raw in
            var headers = FrameWalker(bytes: raw, frameAreaEnd: segment.frameAreaEnd, firstPosition: segment.firstPosition,
                                      isCompacted: false, allowsCompression: true, verification: .headers)
            guard case .seal = steps(&headers).end else { throw CorruptionError(file: "", offset: 0, reason: "headers walk did not reach the seal") }
            var checked = FrameWalker(bytes: raw, frameAreaEnd: segment.frameAreaEnd, firstPosition: segment.firstPosition,
                                      isCompacted: false, allowsCompression: true, verification: .checksums)
            let (before, end) = steps(&checked)
            guard case .notAFrame(let offset, let reason) = end else { throw CorruptionError(file: "", offset: 0, reason: "\(end)") }
            #expect(offset == victim.offset && reason.contains("checksum"))
            #expect(before.last?.end == victim.offset)
        }
    }

    @Test func aLimitInsideAFrameIsReportedPastTheLimit() async throws {
        let directory = TemporaryDirectory()
        let segment = try await sealedSegment(in: directory)
        var clean = segment.walk(verification: .headers)
        let frames = steps(&clean).frames
        let third = frames[2]
        var exact = segment.walk(verification: .checksums, limit: third.offset)
        guard case .limit(let atBoundary) = steps(&exact).end else { Issue.record("no limit step"); return }
        #expect(atBoundary == third.offset)
        var inside = segment.walk(verification: .headers, limit: third.offset + 8)
        guard case .limit(let past) = steps(&inside).end else { Issue.record("no limit step"); return }
        #expect(past == third.end && past > third.offset + 8)
    }

    /// A checksummed frame that is wrong — a position that does not continue, records that do
    /// not add up — is `.corrupt` at the frame (at the record for a record problem), at the
    /// levels that can see it, and never a torn-looking `.notAFrame`.
    @Test func checksummedButWrongFramesAreCorrupt() async throws {
        let directory = TemporaryDirectory()
        let segment = try await sealedSegment(in: directory)
        var clean = segment.walk(verification: .headers)
        let frames = steps(&clean).frames.filter { $0.kind == .events }
        let victim = frames[frames.count / 2]
        func walked(_ edit: (inout [UInt8]) -> Void, _ verification: FrameWalker.Verification) -> FrameWalker.Step {
            var bytes = [UInt8](segment.bytes)
            edit(&bytes)
            bytes.withUnsafeMutableBytes { raw in FrameEncoder.storeChecksum(ofFrameAt: victim.offset, length: victim.length, in: raw) }
            return bytes.withUnsafeBytes { raw in
                var walk = FrameWalker(bytes: raw, frameAreaEnd: segment.frameAreaEnd, firstPosition: segment.firstPosition,
                                       isCompacted: false, allowsCompression: true, verification: verification,
                                       isDictionary: { segment.hasDictionary(at: $0) })
                return steps(&walk).end
            }
        }
        // A position one ahead.
        let moved: (inout [UInt8]) -> Void = { bytes in
            bytes.withUnsafeMutableBytes { $0.storeU64(victim.firstPosition + 1, at: victim.offset + FrameLayout.firstPosition) }
        }
        for verification in [FrameWalker.Verification.headers, .checksums, .checksumsAndRecords] {
            guard case .corrupt(let offset, let reason) = walked(moved, verification) else { Issue.record("\(verification): not corrupt"); continue }
            #expect(offset == victim.offset && reason.contains("position"), "\(verification): \(reason)")
        }
        // The first record's metadata length one larger: the lengths no longer add up.
        let lengths: (inout [UInt8]) -> Void = { bytes in
            bytes.withUnsafeMutableBytes { raw in
                let at = victim.recordsOffset + RecordLayout.metadataLength
                raw.storeU32(UnsafeRawBufferPointer(raw).u32(at) + 1, at: at)
            }
        }
        guard case .corrupt(let offset, _) = walked(lengths, .checksumsAndRecords) else { Issue.record("records: not corrupt"); return }
        #expect(offset == victim.recordsOffset)
        guard case .seal = walked(lengths, .checksums) else { Issue.record("checksums alone should not look at records"); return }
    }
}
