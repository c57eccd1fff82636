import AnnalsTestSupport
import Foundation
import Testing
@testable import AnnalsStorage

/// A long forward read verifies frames ahead on another core: it returns exactly what a read
/// that verifies every frame itself returns, and a damaged frame anywhere is reported with the
/// same file and offset, never skipped and never returned.
@Suite struct VerificationAheadTests {
    static let events = 12_000

    static func fill(_ path: String, compression: Compression) async throws -> StoreOptions {
        let options = StoreOptions(durability: .none, segmentSizeBytes: 1 << 20, compression: compression)
        let store = try EventStore.open(at: path, options: options)
        for batch in 0..<(events / 100) {
            _ = try await store.append((0..<100).map { checkableEvent(stream: "s-\(batch % 7)", index: batch * 100 + $0, size: 300) },
                                       to: "s-\(batch % 7)")
        }
        try await store.close()
        return options
    }

    /// Positions and payloads of a whole read; `limit` below the threshold verifies every frame in the reader.
    static func read(_ store: EventStore, limit: Int) throws -> [(UInt64, [UInt8])] {
        var cursor = store.readAll(limit: limit).makeCursor()
        var seen: [(UInt64, [UInt8])] = []
        while let event = try cursor.next() { seen.append((event.position, try event.payload)) }
        return seen
    }

    @Test(arguments: [Compression.lz4, .none])
    func aLongReadReturnsWhatAReadVerifyingEveryFrameReturns(compression: Compression) async throws {
        let directory = TemporaryDirectory()
        let options = try await Self.fill(directory.sub("store"), compression: compression)
        var readOnly = options
        readOnly.readOnly = true
        let store = try EventStore.open(at: directory.sub("store"), options: readOnly)
        let snapshot = store.view.withLock { $0.snapshot }
        #expect(VerificationAhead.start(snapshot: snapshot, slot: 0, from: nil).map { $0.stop() } != nil, "the store is long enough")
        let ahead = try Self.read(store, limit: .max)
        let alone = try Self.read(store, limit: ForwardCursor.verificationAheadEvents - 1)
        #expect(ahead.count == Self.events && alone.count == Self.events)
        #expect(zip(ahead, alone).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 })
        // A read stopped early lets the other core go.
        var cursor = store.readAll().makeCursor()
        _ = try cursor.next()
    }

    @Test func aDamagedFrameIsReportedAtTheSameOffsetAsWithoutIt() async throws {
        let directory = TemporaryDirectory()
        let options = try await Self.fill(directory.sub("store"), compression: .none)
        let segments = try segmentFiles(directory.sub("store"))
        #expect(segments.count >= 3)
        // A byte in the middle of the second segment's frames.
        try modifyFile(segments[1]) { bytes in bytes[bytes.count / 2] ^= 0x20 }
        var readOnly = options
        readOnly.readOnly = true
        let store = try EventStore.open(at: directory.sub("store"), options: readOnly)
        var errors: [ReadError] = []
        for limit in [Int.max, ForwardCursor.verificationAheadEvents - 1] {
            do { _ = try Self.read(store, limit: limit); Issue.record("the damage was not reported (limit \(limit))") } catch {
                errors.append(try #require(error as? ReadError))
            }
        }
        #expect(errors.count == 2 && errors[0] == errors[1], "\(errors)")
        if case .corrupt(let corruption)? = errors.first { #expect(corruption.file == segments[1]) }
    }
}
