import AnnalsTestSupport
import Foundation
import Testing
@testable import AnnalsStorage

/// A thread decodes a run of compressed records against a copy of their dictionary kept right
/// before its output: the bytes are exactly those decoded against the mapping, whichever store,
/// segment or dictionary the thread decoded before, and a body read while another body is being
/// read on the same thread is decoded elsewhere, both right.
@Suite struct LZ4PrefixDecoderTests {
    /// A store of realistic events in one segment each way (LZ4 and raw), with its events.
    static func store(_ path: String, seed: UInt64) async throws -> (EventStore, [EventData]) {
        var generator = RealisticEvents(seed: seed)
        let events = generator.events(400, streams: 5)
        let store = try EventStore.open(at: path, options: StoreOptions(durability: .none, segmentSizeBytes: 1 << 20))
        for (stream, event) in events { _ = try await store.append([event], to: stream) }
        return (store, events.map(\.event))
    }

    @Test func runsAgainstOneDictionaryDecodeExactlyWhicheverStoreCameBefore() async throws {
        let directory = TemporaryDirectory()
        let (first, firstEvents) = try await Self.store(directory.sub("a"), seed: 1)
        let (second, secondEvents) = try await Self.store(directory.sub("b"), seed: 2)
        let firstRead = try readEverything(first), secondRead = try readEverything(second)
        let compressed = firstRead.filter(\.isStoredCompressed).count + secondRead.filter(\.isStoredCompressed).count
        #expect(compressed > 400, "most events are stored compressed")
        // Alternate between the stores in runs longer and shorter than the decoder needs to
        // load a dictionary.
        for run in [3, LZ4PrefixDecoder.blocksBeforeLoading + 5, 1, 40] {
            for start in stride(from: 0, to: 400, by: run) {
                for index in start..<min(start + run, 400) {
                    #expect(try firstRead[index].payload == firstEvents[index].payload)
                    #expect(try firstRead[index].metadata == firstEvents[index].metadata)
                }
                for index in start..<min(start + run, 400) {
                    #expect(try secondRead[index].payload == secondEvents[index].payload)
                }
            }
        }
        try await first.close()
        try await second.close()
    }

    @Test func aBodyReadWhileAnotherIsBeingReadIsRightToo() async throws {
        let directory = TemporaryDirectory()
        let (store, events) = try await Self.store(directory.sub("a"), seed: 3)
        let read = try readEverything(store)
        for index in 0..<(read.count - 1) {
            // The inner read first, then the outer bytes copied: an inner decode into the same
            // buffer would show in them.
            let (outer, inner) = try read[index].withPayloadBytes { outer -> ([UInt8], [UInt8]?) in
                let inner = try? read[index + 1].payload
                return (Array(outer), inner)
            }
            #expect(outer == events[index].payload && inner == events[index + 1].payload)
        }
        try await store.close()
    }

    @Test func dictionariesAtTheSameOffsetOfDifferentSegmentsAreToldApart() throws {
        // Two dictionaries with the same offset in two segments (keys differ by segment serial
        // only), blocks decoded alternately in runs long enough to load each.
        let dictionaries = [[UInt8]](repeating: [], count: 2).enumerated().map { index, _ in
            (0..<4096).map { UInt8(truncatingIfNeeded: $0 &* (index + 3) &+ index) }
        }
        let message = (0..<600).map { UInt8(truncatingIfNeeded: $0 &* 3) }
        let blocks = dictionaries.map { dictionary in
            dictionary.withUnsafeBytes { dictionaryBytes in
                message.withUnsafeBytes { LZ4.compress($0, dictionary: dictionaryBytes)! }
            }
        }
        let decoder = LZ4PrefixDecoder.current
        for round in 0..<4 {
            for which in 0..<2 {
                // Serials no segment of this process reaches (they count up from 1).
                let key = LZ4PrefixDecoder.DictionaryKey(segment: UInt64.max - UInt64(which), offset: 64)
                for block in 0..<(LZ4PrefixDecoder.blocksBeforeLoading + 2) {
                    var decoded: [UInt8]?
                    let outcome = blocks[which].withUnsafeBytes { bytes in
                        dictionaries[which].withUnsafeBytes { dictionary in
                            decoder.decode(bytes, decodedCount: message.count, dictionary: dictionary, key: key) { decoded = Array($0) }
                        }
                    }
                    if outcome != nil { #expect(outcome == true && decoded == message, "round \(round), dictionary \(which)") }
                    if block >= LZ4PrefixDecoder.blocksBeforeLoading - 1 { #expect(outcome != nil, "loaded after a run") }
                }
            }
        }
    }
}
