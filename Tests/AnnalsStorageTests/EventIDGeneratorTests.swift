import Foundation
import Testing
@testable import AnnalsStorage

/// Generated event ids are version-4 UUIDs, never repeat — across threads drawing from the
/// shared pool at once, across refills of the pool, and for batches too large for it — and
/// ids the caller gave are kept as they are.
@Suite struct EventIDGeneratorTests {
    static func isVersion4(_ id: UUID) -> Bool {
        withUnsafeBytes(of: id.uuid) { $0[6] >> 4 == 4 && $0[8] >> 6 == 2 }
    }

    @Test func idsNeverRepeatAcrossThreadsRefillsAndLargeBatches() async throws {
        let single = [EventData(type: "T", payload: [])]
        let perThread = 3_000 // about 12 refills of the pool per thread
        let ids = try await offTheTaskPool { () -> [UUID] in
            let collected = Locked<[UUID]>([])
            let done = DispatchGroup()
            for _ in 0..<4 {
                done.enter()
                Thread.detachNewThread {
                    var mine: [UUID] = []
                    mine.reserveCapacity(perThread)
                    for _ in 0..<perThread { mine += EventIDGenerator.fill(single) }
                    collected.withLock { $0 += mine }
                    done.leave()
                }
            }
            done.wait()
            return collected.withLock { $0 }
        }
        let large = EventIDGenerator.fill(Array(repeating: EventData(type: "T", payload: []), count: 1_000))
        let all = ids + large
        #expect(all.count == 4 * perThread + 1_000)
        #expect(Set(all).count == all.count, "no id repeats")
        #expect(all.allSatisfy(Self.isVersion4))
        let given = UUID()
        let mixed = EventIDGenerator.fill([EventData(type: "T", payload: []), EventData(id: given, type: "T", payload: [])])
        #expect(mixed[1] == given && mixed[0] != given && Self.isVersion4(mixed[0]))
    }

    /// The pool hands each of its bytes out once, refilling when it runs short.
    @Test func thePoolHandsOutEachByteOnce() {
        var pool = EventIDGenerator.RandomPool()
        var chunks: [[UInt8]] = []
        for _ in 0..<(3 * EventIDGenerator.RandomPool.capacity / 48) {
            var chunk = [UInt8](repeating: 0, count: 48)
            chunk.withUnsafeMutableBytes { pool.take(into: $0) }
            chunks.append(chunk)
        }
        // 48-byte chunks of random bytes repeat only if bytes are handed out twice.
        let pieces = chunks.flatMap { chunk in stride(from: 0, to: 48, by: 16).map { Array(chunk[$0..<$0 + 16]) } }
        #expect(Set(pieces).count == pieces.count)
        #expect(!pieces.contains([UInt8](repeating: 0, count: 16)))
    }
}
