import AnnalsTestSupport
import Dispatch
import Foundation
import Testing
@testable import AnnalsStorage

/// Single compressed records decode against a copy of their segment's dictionary that every
/// thread shares: each thread gets exactly its own record's bytes however many decode at once,
/// a block that does not decode is refused, and what the copy cannot take (a body too large,
/// the area in use) is decoded elsewhere.
@Suite struct LZ4DictionaryCopyTests {
    @Test func threadsReadingOneSegmentAtOnceEachGetTheirOwnRecords() async throws {
        let directory = TemporaryDirectory()
        var generator = RealisticEvents(seed: 11)
        let events = generator.events(600, streams: 6)
        let store = try EventStore.open(at: directory.sub("store"), options: StoreOptions(durability: .none, segmentSizeBytes: 1 << 20))
        for (stream, event) in events { _ = try await store.append([event], to: stream) }
        let read = try readEverything(store)
        #expect(read.filter(\.isStoredCompressed).count > 500, "most records are compressed against the segment's dictionary")
        let expected = events.map(\.event.payload)
        // Four threads read every record, each in its own order, so that they decode into the
        // shared area at the same moments; a decode that overlapped another's would return
        // the other's bytes or a mix.
        let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
            for thread in 0..<4 {
                group.addTask {
                    try await offTheTaskPool {
                        var mismatches = 0
                        for round in 0..<20 {
                            for step in 0..<read.count {
                                let index = (step * (2 * thread + 1) + round * 7) % read.count
                                if try read[index].payload != expected[index] { mismatches += 1 }
                            }
                        }
                        return mismatches
                    }
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(mismatches == 0)
        try await store.close()
    }

    @Test func theCopyDecodesExactlyOrRefuses() throws {
        let dictionary = (0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 5) }
        let message = Array(dictionary[100..<700]) + (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        let block = dictionary.withUnsafeBytes { dictionaryBytes in message.withUnsafeBytes { LZ4.compress($0, dictionary: dictionaryBytes)! } }
        let copy = try #require(dictionary.withUnsafeBytes { LZ4DictionaryCopy.make(dictionary: $0, at: 64) })
        func decode(_ block: [UInt8], count: Int, _ body: (UnsafeRawBufferPointer) -> Void = { _ in }) -> Bool? {
            block.withUnsafeBytes { copy.decode($0, decodedCount: count, body) }
        }
        var decoded: [UInt8] = []
        #expect(decode(block, count: message.count) { decoded = Array($0) } == true && decoded == message)
        // A block cut short, or one said to decode to another size: refused, never handed over.
        var handed = false
        #expect(decode(Array(block.dropLast(3)), count: message.count) { _ in handed = true } == false)
        #expect(decode(block, count: message.count - 1) { _ in handed = true } == false)
        #expect(!handed)
        // Too large for the area, or the area in use (a decode inside the body): not decoded here.
        #expect(decode(block, count: LZ4DictionaryCopy.outputCapacity + 1) == nil)
        var inner: Bool??
        #expect(decode(block, count: message.count) { _ in inner = decode(block, count: message.count) } == true)
        #expect(inner == .some(nil))
        // Free again afterwards.
        #expect(decode(block, count: message.count) { decoded = Array($0) } == true && decoded == message)
    }
}
