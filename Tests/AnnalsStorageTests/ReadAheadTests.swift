import AnnalsTestSupport
import Foundation
import Testing
@testable import AnnalsStorage

/// A long forward read verifies frames and decodes their bodies ahead on another core: it
/// returns exactly what a read that does all of it itself returns (from any start position,
/// under retention rules, through copies of the cursor), and damage anywhere (a frame that
/// fails its checksum, a compressed body that does not decode although its frame's checksum
/// matches) is reported with the same file and offset, never skipped and never returned.
@Suite(.serialized) struct ReadAheadTests {
    static let events = 24_000

    /// Events in batches, a frame per stream of each batch (about 100 events, over 8 KiB: worth
    /// decoding ahead): realistic (compressible) ones, or the given ones.
    static func fill(_ path: String, compression: Compression, events given: [(stream: String, event: EventData)]? = nil,
                     batch: Int = 700) async throws -> StoreOptions {
        let options = StoreOptions(durability: .none, segmentSizeBytes: 1 << 20, compression: compression)
        let store = try EventStore.open(at: path, options: options)
        let all: [(stream: String, event: EventData)]
        if let given { all = given } else { all = try await realistic() }
        for start in stride(from: 0, to: all.count, by: batch) {
            let events = all[start..<min(start + batch, all.count)]
            let streams = Dictionary(grouping: events, by: \.stream)
            _ = try await store.append(streams.keys.sorted().map { stream in
                StreamAppend(stream: stream, events: streams[stream]!.map(\.event))
            })
        }
        try await store.close()
        return options
    }

    /// The realistic events of `fill`, made off the task pool (seconds of work in a debug build:
    /// done on the pool, it would keep one of its two threads from every other suite).
    static func realistic() async throws -> [(stream: String, event: EventData)] {
        try await offTheTaskPool {
            var generator = RealisticEvents(seed: 7)
            return generator.events(events, streams: 7)
        }
    }

    static func openReadOnly(_ path: String, _ options: StoreOptions) throws -> EventStore {
        var readOnly = options
        readOnly.readOnly = true
        return try EventStore.open(at: path, options: readOnly)
    }

    /// Each event of a read, with its payload or the error reading it; and how many bodies came
    /// decoded from the other core. `limit` below the threshold does all the work in the reader.
    /// `paced`: the reader pauses 2 ms every 700 events, so that the other core (in a debug
    /// build, on a loaded machine) is ahead of it and decodes most frames.
    static func outcomes(_ store: EventStore, from position: UInt64 = 0, limit: Int, paced: Bool = false) async throws
        -> (events: [String], decodedAhead: Int) {
        try await offTheTaskPool { try outcomesHere(store, from: position, limit: limit, paced: paced) }
    }

    static func outcomesHere(_ store: EventStore, from position: UInt64, limit: Int, paced: Bool) throws -> (events: [String], decodedAhead: Int) {
        var cursor = store.readAll(from: position, limit: limit).makeCursor()
        var seen: [String] = []
        var decodedAhead = 0
        while let event = try cursor.next() {
            if paced, seen.count % 700 == 0 { usleep(2000) }
            if event.decodedFrame?.body(ofRecordAt: event.record) != nil { decodedAhead += 1 }
            do { seen.append("\(event.position) \(event.stream)@\(event.revision) \(try event.payload)") } catch {
                seen.append("\(event.position) \(error)")
            }
        }
        return (seen, decodedAhead)
    }

    static let alone = ForwardCursor.readAheadEvents - 1

    @Test(arguments: [Compression.lz4, .none])
    func aLongReadReturnsWhatAReadDoingEverythingItselfReturns(compression: Compression) async throws {
        let directory = TemporaryDirectory()
        let options = try await Self.fill(directory.sub("store"), compression: compression)
        let store = try Self.openReadOnly(directory.sub("store"), options)
        let snapshot = store.view.withLock { $0.snapshot }
        #expect(ReadAhead.start(snapshot: snapshot, slot: 0, from: nil, skippingBefore: 0).map { $0.stop() } != nil, "the store is long enough")
        let ahead = try await Self.outcomes(store, limit: .max, paced: true)
        let alone = try await Self.outcomes(store, limit: Self.alone)
        #expect(ahead.events.count == Self.events && ahead.events == alone.events)
        #expect(alone.decodedAhead == 0)
        if compression == .lz4 { #expect(ahead.decodedAhead > Self.events / 4, "bodies are decoded ahead on the other core") }
        // From positions inside segments and frames: the other core leaves the frames before
        // the start alone, the reader skips into the first frame.
        for start in [1, 4_321, 12_007, Self.events - 150] {
            let from = try await Self.outcomes(store, from: UInt64(start), limit: .max)
            #expect(from.events == Array(alone.events[start...]), "from \(start)")
        }
    }

    @Test func smallRecordsCloseTogetherEachFindTheirOwnDecodedBody() async throws {
        // Bodies of 200 bytes in runs compress to records of about 60 bytes: consecutive
        // records then start less than 64 bytes apart, and each must find its own slot.
        let events = try await offTheTaskPool {
            (0..<40_000).map { index in
                (stream: "s-\(index / 500 % 3)",
                 event: EventData(type: "T", payload: [UInt8](repeating: UInt8(index % 251), count: 100)
                     + [UInt8](repeating: UInt8(index / 251 % 251), count: 100)))
            }
        }
        let directory = TemporaryDirectory()
        let options = try await Self.fill(directory.sub("store"), compression: .lz4, events: events, batch: 500)
        let store = try Self.openReadOnly(directory.sub("store"), options)
        let ahead = try await Self.outcomes(store, limit: .max, paced: true)
        let alone = try await Self.outcomes(store, limit: Self.alone)
        #expect(ahead.events.count == events.count && ahead.events == alone.events)
        #expect(ahead.decodedAhead > events.count / 4, "bodies are decoded ahead on the other core")
        let records = try compressedRecords(in: try segmentFiles(directory.sub("store"))[1])
        let gaps = zip(records.dropFirst(), records).map { $0.record - $1.record }
        #expect(gaps.contains { $0 < 64 }, "records closer than 64 bytes: \(gaps.min() ?? 0)")
    }

    @Test func retentionRulesHideTheSameEventsWithAndWithoutIt() async throws {
        let directory = TemporaryDirectory()
        let options = try await Self.fill(directory.sub("store"), compression: .lz4)
        let writer = try EventStore.open(at: directory.sub("store"), options: options)
        let counts = Dictionary(grouping: try await Self.realistic(), by: \.stream).mapValues(\.count)
        let streams = counts.keys.sorted { counts[$0]! > counts[$1]! }
        let cut = counts[streams[0]]! / 2
        try await writer.truncateStream(streams[0], before: UInt64(cut))
        try await writer.deleteStream(streams[1])
        try await writer.close()
        let store = try Self.openReadOnly(directory.sub("store"), options)
        let ahead = try await Self.outcomes(store, limit: .max)
        let alone = try await Self.outcomes(store, limit: Self.alone)
        #expect(ahead.events == alone.events)
        #expect(!ahead.events.contains { $0.contains(" \(streams[1])@") } && !ahead.events.contains { $0.contains(" \(streams[0])@\(cut - 1) ") })
        #expect(ahead.events.contains { $0.contains(" \(streams[0])@\(cut) ") })
    }

    @Test(.timeLimit(.minutes(1)))
    func copiesOfALongReadEachReturnEverything() async throws {
        let directory = TemporaryDirectory()
        let options = try await Self.fill(directory.sub("store"), compression: .lz4)
        let store = try Self.openReadOnly(directory.sub("store"), options)
        let (fromFirst, fromSecond) = try await offTheTaskPool { () throws -> ([String], [String]) in
            var first = store.readAll().makeCursor()
            for _ in 0..<1000 { _ = try first.next() }
            // A copy taken mid-read; the two read in turns, 700 events at a time, while the
            // other core is still working ahead of them.
            var second = first
            var fromFirst: [String] = [], fromSecond: [String] = []
            var running = true
            while running {
                running = false
                for _ in 0..<700 {
                    guard let event = try first.next() else { break }
                    fromFirst.append("\(event.position) \(try event.payload)")
                    running = true
                }
                for _ in 0..<700 {
                    guard let event = try second.next() else { break }
                    fromSecond.append("\(event.position) \(try event.payload)")
                    running = true
                }
            }
            return (fromFirst, fromSecond)
        }
        #expect(fromFirst.count == Self.events - 1000 && fromFirst == fromSecond)
    }

    @Test(arguments: [Compression.lz4, .none])
    func aDamagedFrameIsReportedAtTheSameOffsetAsWithoutIt(compression: Compression) async throws {
        let directory = TemporaryDirectory()
        let options = try await Self.fill(directory.sub("store"), compression: compression)
        let segments = try segmentFiles(directory.sub("store"))
        #expect(segments.count >= 3)
        // A byte in the middle of the second segment's frames.
        try modifyFile(segments[1]) { bytes in bytes[bytes.count / 2] ^= 0x20 }
        let store = try Self.openReadOnly(directory.sub("store"), options)
        var errors: [ReadError] = []
        for limit in [Int.max, Self.alone] {
            do { _ = try await Self.outcomes(store, limit: limit); Issue.record("the damage was not reported (limit \(limit))") } catch {
                errors.append(try #require(error as? ReadError))
            }
        }
        #expect(errors.count == 2 && errors[0] == errors[1], "\(errors)")
        if case .corrupt(let corruption)? = errors.first { #expect(corruption.file == segments[1]) }
    }

    @Test func aCompressedBodyThatDoesNotDecodeIsReportedAsWithoutIt() async throws {
        let directory = TemporaryDirectory()
        let options = try await Self.fill(directory.sub("store"), compression: .lz4)
        let segments = try segmentFiles(directory.sub("store"))
        let records = try compressedRecords(in: segments[1])
        let target = try #require(records.dropFirst(records.count / 2).first)
        // The block overwritten with 0xFF (a literal run longer than the block: it cannot
        // decode) and the frame checksum recomputed, as a writer bug or a checksum collision
        // would leave it.
        try modifyFile(segments[1]) { bytes in
            for index in target.block { bytes[index] = 0xFF }
            let checksum = CRC32C.checksum(Array(bytes[(target.frame + 4)..<(target.frame + target.frameLength)]))
            withUnsafeBytes(of: checksum.littleEndian) { for i in 0..<4 { bytes[target.frame + i] = $0[i] } }
        }
        let store = try Self.openReadOnly(directory.sub("store"), options)
        let ahead = try await Self.outcomes(store, limit: .max)
        let alone = try await Self.outcomes(store, limit: Self.alone)
        #expect(ahead.events.count == Self.events && ahead.events == alone.events)
        let refused = ahead.events.filter { $0.contains("does not decode") }
        #expect(refused.count == 1 && refused.first?.contains(segments[1]) == true, "\(refused)")
    }
}
