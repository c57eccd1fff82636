import AnnalsTestSupport
import Dispatch
import Foundation
import Synchronization
import Testing
@testable import AnnalsStorage

/// Single compressed records decode against a copy of their segment's dictionary that every
/// thread shares: each thread gets exactly its own record's bytes however many decode at once,
/// a block that does not decode is refused, and what the copy cannot take (a body too large,
/// the area in use) is decoded elsewhere.
@Suite struct LZ4DictionaryCopyTests {
    @Test func threadsHoppingBetweenSegmentsEachGetTheirOwnRecords() async throws {
        let directory = TemporaryDirectory()
        var generator = RealisticEvents(seed: 11)
        let events = generator.events(1200, streams: 6)
        let store = try EventStore.open(at: directory.sub("store"), options: StoreOptions(durability: .none, segmentSizeBytes: 64 << 10))
        for (stream, event) in events { _ = try await store.append([event], to: stream) }
        let read = try readEverything(store)
        let compressed = read.indices.filter { read[$0].isStoredCompressed }
        #expect(compressed.count > 1000, "most records are compressed against their segment's dictionary")
        #expect(Set(read.map(\.segment.index)).count >= 4, "the events span several segments")
        let budgetFree = LZ4DictionaryCopy.bytesInUse < LZ4DictionaryCopy.budgetBytes / 2
        let expected = events.map(\.event.payload)
        // Three threads read every compressed record, each in its own order and each hopping to
        // another segment at almost every read, so that no thread's own decoder takes a
        // dictionary over and they all decode in the segments' shared areas, at the same
        // moments: a decode that overlapped another would return the other's bytes or a mix.
        // (Few rounds: the threads compete for the cores with every other suite of the run.)
        let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
            for thread in 0..<3 {
                group.addTask {
                    try await offTheTaskPool {
                        let stride = [389, 401, 409][thread] // primes: every record once per round
                        var mismatches = 0
                        for round in 0..<4 {
                            for step in 0..<compressed.count {
                                let index = compressed[(step * stride + round * 7) % compressed.count]
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
        if budgetFree {
            let copied = Set(compressed.filter { read[$0].segment.dictionaryCopy.load(ordering: .acquiring) != nil }.map { read[$0].segment.index })
            #expect(copied.count >= 4, "the reads went through the segments' shared copies")
        }
        try await store.close()
    }

    /// A dictionary, and three messages that reach into it, compressed against it.
    static func blocks() -> (dictionary: [UInt8], messages: [[UInt8]], blocks: [[UInt8]]) {
        let dictionary = (0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 5) }
        let messages = (0..<3).map { which in
            Array(dictionary[(100 * which)..<(100 * which + 600)]) + (0..<300).map { UInt8(truncatingIfNeeded: $0 &* (13 + which)) }
        }
        let blocks = messages.map { message in
            dictionary.withUnsafeBytes { dictionaryBytes in message.withUnsafeBytes { LZ4.compress($0, dictionary: dictionaryBytes)! } }
        }
        return (dictionary, messages, blocks)
    }

    @Test func threadsDecodingIntoOneCopyAtOnceEachGetTheirOwnBytes() async throws {
        let (dictionary, messages, blocks) = Self.blocks()
        let copy = try #require(dictionary.withUnsafeBytes { LZ4DictionaryCopy.make(dictionary: $0, at: 64, budget: .max) })
        let arrived = Atomic<Int>(0)
        let decodedHere = Atomic<Int>(0)
        let mismatches = Atomic<Int>(0)
        // Threads of their own, held until every one is there, so that their decodes overlap
        // (a width-limited pool might run them one after another); joined off the task pool.
        try await offTheTaskPool {
            let done = DispatchGroup()
            for thread in 0..<3 {
                done.enter()
                Thread {
                    defer { done.leave() }
                    arrived.add(1, ordering: .relaxed)
                    while arrived.load(ordering: .relaxed) < 3 { sched_yield() }
                    for _ in 0..<20_000 {
                        let outcome = blocks[thread].withUnsafeBytes { block in
                            messages[thread].withUnsafeBytes { message in
                                copy.decode(block, decodedCount: message.count) { decoded in
                                    if memcmp(decoded.baseAddress!, message.baseAddress!, message.count) != 0 {
                                        mismatches.add(1, ordering: .relaxed)
                                    }
                                }
                            }
                        }
                        if outcome == true { decodedHere.add(1, ordering: .relaxed) }
                        if outcome == false { mismatches.add(1, ordering: .relaxed) }
                    }
                }.start()
            }
            done.wait()
        }
        #expect(mismatches.load(ordering: .relaxed) == 0)
        #expect(decodedHere.load(ordering: .relaxed) > 0)
    }

    @Test func theCopyDecodesExactlyOrRefuses() throws {
        let (dictionary, messages, blocks) = Self.blocks()
        let (message, block) = (messages[0], blocks[0])
        let copy = try #require(dictionary.withUnsafeBytes { LZ4DictionaryCopy.make(dictionary: $0, at: 64, budget: .max) })
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
        // Free again afterwards; a budget too small for the copy makes none.
        #expect(decode(block, count: message.count) { decoded = Array($0) } == true && decoded == message)
        #expect(dictionary.withUnsafeBytes { LZ4DictionaryCopy.make(dictionary: $0, at: 64, budget: 1000) } == nil)
    }
}
