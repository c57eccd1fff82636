import AnnalsTestSupport
import Foundation
import Testing
@testable import AnnalsStorage

/// Seeded mutation fuzzing of what the decoders read, past the checksums: bytes of frames
/// (headers, lengths, flags, dictionary references, LZ4 blocks) and of index files are mutated
/// and their CRC-32Cs recomputed, as a bug or a checksum collision would leave them. Opening,
/// reading and verifying such a store must never crash or read out of bounds (`make fuzz` runs
/// many more iterations under AddressSanitizer), and a damaged index must never make a stream
/// read return another stream's events. `ANNALS_FUZZ_ITERATIONS` sets the count.
@Suite struct StructuredFuzzTests {
    static let iterations = Int(ProcessInfo.processInfo.environment["ANNALS_FUZZ_ITERATIONS"] ?? "") ?? 120

    @Test func mutatedFramesAndIndexesWithValidChecksumsNeverCrash() async throws {
        let directory = TemporaryDirectory()
        let pristine = directory.sub("pristine")
        let (store, events) = try await writeRealisticStore(at: pristine, seed: 77, count: 500, streams: 9, perAppend: 5)
        try await store.close()
        let streams = Set(events.map(\.stream))
        var expectedByStream: [String: [UInt64: [UInt8]]] = [:]
        let reference = try EventStore.open(at: pristine, options: StoreOptions(readOnly: true))
        for event in try readEverything(reference) { expectedByStream[event.stream, default: [:]][event.position] = try event.payload }
        try await reference.close()

        let files = try FileManager.default.contentsOfDirectory(atPath: pristine + "/segments").sorted()
        let segments = files.filter { $0.hasSuffix(".seg") }, indexes = files.filter { $0.hasSuffix(".idx") }
        var random = SeededGenerator(seed: 4242)
        var outcomes: [String: Int] = [:]
        for iteration in 0..<Self.iterations {
            let trial = directory.sub("trial")
            try copyDirectory(pristine, to: trial)
            let mutateIndex = !indexes.isEmpty && random.next() % 3 == 0
            let file = trial + "/segments/" + (mutateIndex ? indexes[Int(random.next() % UInt64(indexes.count))]
                                                           : segments[Int(random.next() % UInt64(segments.count))])
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
            let what = mutateIndex ? Self.mutateIndex(&bytes, &random) : Self.mutateFrame(&bytes, &random)
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            let context = "iteration \(iteration): \(what) in \(file)"
            // Read-only and writable opens; any typed error is fine, a crash is not.
            for writable in [false, true] {
                guard let opened = try? EventStore.open(at: trial, options: StoreOptions(segmentSizeBytes: 64 * 1024, readOnly: !writable))
                else { outcomes["open refused", default: 0] += 1; continue }
                var touched = 0
                if let all = try? readEverything(opened) {
                    for event in all { touched &+= (try? event.withBodyBytes { $0.count + $1.count }) ?? 0 }
                }
                for stream in streams {
                    var cursor = opened.read(stream).makeCursor()
                    while let event = try? cursor.next() {
                        // Index damage must never hand out another stream's events.
                        #expect(event.stream == stream, "\(context)")
                        if mutateIndex, let want = expectedByStream[stream]?[event.position] {
                            #expect((try? event.payload) == want, "\(context): stream \(stream) position \(event.position)")
                        }
                    }
                }
                _ = StoreVerifier.verify(at: trial)
                try? await opened.close()
                outcomes[touched > 0 ? "read" : "nothing read", default: 0] += 1
            }
        }
        print("structured fuzz, \(Self.iterations) iterations: \(outcomes.sorted { $0.key < $1.key })")
    }

    /// Mutates 1–4 bytes of one frame (not its checksum field) and recomputes the checksum.
    static func mutateFrame(_ bytes: inout [UInt8], _ random: inout SeededGenerator) -> String {
        var frames: [(offset: Int, length: Int)] = []
        bytes.withUnsafeBytes { raw in
            var offset = Format.segmentHeaderBytes
            while case .frame(let frame) = FrameDecoder.probe(raw, at: offset) {
                frames.append((offset, frame.length))
                if frame.kind == .seal { break }
                offset = frame.end
            }
        }
        guard let frame = frames.isEmpty ? nil : frames[Int(random.next() % UInt64(frames.count))] else { return "nothing" }
        let count = 1 + Int(random.next() % 4)
        for _ in 0..<count {
            let at = frame.offset + 4 + Int(random.next() % UInt64(frame.length - 4))
            switch random.next() % 3 {
            case 0: bytes[at] ^= UInt8(1 << (random.next() % 8))
            case 1: bytes[at] = UInt8(truncatingIfNeeded: random.next())
            default: bytes[at] = [0, 0xFF, 0x7F, 0x80][Int(random.next() % 4)]
            }
        }
        let length = Int(bytes.withUnsafeBytes { $0.u32(frame.offset + 4) })
        if length >= 8, frame.offset + length <= bytes.count {
            let checksum = CRC32C.checksum(Array(bytes[(frame.offset + 4)..<(frame.offset + length)]))
            withUnsafeBytes(of: checksum.littleEndian) { for i in 0..<4 { bytes[frame.offset + i] = $0[i] } }
        }
        return "\(count) byte(s) of the frame at \(frame.offset)"
    }

    /// Mutates 1–3 bytes of an index file and recomputes all three of its checksums.
    static func mutateIndex(_ bytes: inout [UInt8], _ random: inout SeededGenerator) -> String {
        guard bytes.count > IndexFile.headerBytes else { return "nothing" }
        let count = 1 + Int(random.next() % 3)
        for _ in 0..<count {
            var at = Int(random.next() % UInt64(bytes.count))
            if (IndexHeaderLayout.entriesChecksum..<IndexHeaderLayout.segmentsFingerprint).contains(at)
                || (IndexHeaderLayout.headerChecksum..<IndexFile.headerBytes).contains(at) { at = IndexHeaderLayout.firstSegment }
            bytes[at] ^= UInt8(truncatingIfNeeded: random.next() | 1)
        }
        FuzzTargets.fixIndexChecksums(&bytes)
        return "\(count) byte(s) of the index"
    }
}
