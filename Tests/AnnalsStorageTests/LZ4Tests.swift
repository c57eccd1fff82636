import AnnalsTestSupport
import Testing
@testable import AnnalsStorage

/// The system liblz4 is linked and its block format round-trips, with and without a dictionary;
/// corrupt blocks are refused, never decoded into wrong bytes. (Compression of stored events
/// builds on this in a later change.)
@Suite struct LZ4Tests {
    let sample = Array((0..<40).map { #"{"orderId":"ord_\#($0)","status":"placed","total":\#($0 * 7)}"# }.joined().utf8)
    let dictionary = Array(#"{"orderId":"ord_","status":"placed","total":}"#.utf8)

    @Test func blocksRoundTripWithAndWithoutDictionary() throws {
        let plain = try #require(sample.withUnsafeBytes { LZ4.compress($0) })
        #expect(plain.count < sample.count)
        #expect(plain.withUnsafeBytes { LZ4.decompress($0, decodedCount: sample.count) } == sample)
        let withDictionary = try #require(sample.withUnsafeBytes { source in
            dictionary.withUnsafeBytes { LZ4.compress(source, dictionary: $0) }
        })
        let decoded = withDictionary.withUnsafeBytes { source in
            dictionary.withUnsafeBytes { LZ4.decompress(source, decodedCount: sample.count, dictionary: $0) }
        }
        #expect(decoded == sample)
        #expect(!LZ4.libraryVersion.isEmpty)
    }

    @Test func incompressibleInputIsLeftRaw() {
        var generator = SeededGenerator(seed: 3)
        let noise = (0..<256).map { _ in UInt8.random(in: 0...255, using: &generator) }
        #expect(noise.withUnsafeBytes { LZ4.compress($0) } == nil)
    }

    @Test func corruptBlocksAreRefusedNotDecoded() throws {
        let block = try #require(sample.withUnsafeBytes { LZ4.compress($0) })
        var generator = SeededGenerator(seed: 11)
        for _ in 0..<500 {
            var damaged = block
            let index = Int.random(in: 0..<damaged.count, using: &generator)
            damaged[index] ^= UInt8.random(in: 1...255, using: &generator)
            let decoded = damaged.withUnsafeBytes { LZ4.decompress($0, decodedCount: sample.count) }
            // Either refused, or (when the flip lands in literal bytes) a same-sized output:
            // the frame checksum is what catches those; the decoder's job is never to overrun.
            if let decoded { #expect(decoded.count == sample.count) }
        }
        #expect(block.withUnsafeBytes { LZ4.decompress($0, decodedCount: sample.count + 1) } == nil)
        #expect(block.withUnsafeBytes { LZ4.decompress(UnsafeRawBufferPointer(rebasing: $0.prefix(5)), decodedCount: sample.count) } == nil)
    }
}
