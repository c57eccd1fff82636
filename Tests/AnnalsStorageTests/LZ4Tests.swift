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

/// The writer's block compressor: many independent blocks against one loaded dictionary, each
/// decoding alone with the same dictionary bytes, the same whether the dictionary's tables are
/// shared (dictCtx) or copied per block.
@Suite struct BlockCompressorTests {
    @Test func independentBlocksDecodeAloneAgainstTheDictionary() throws {
        var generator = RealisticEvents(seed: 21)
        let bodies = generator.events(600).map { $0.event.metadata + $0.event.payload }
        let dictionary = Array(bodies.prefix(200).joined().suffix(16 * 1024))
        let ways = [true, false].filter { !$0 || LZ4.BlockCompressor.canAttach }
        for shareTables in ways {
            let compressor = dictionary.withUnsafeBytes { LZ4.BlockCompressor(dictionary: $0, shareTables: shareTables) }
            var stored = 0
            var raw = 0
            var blocks: [[UInt8]] = []
            for body in bodies.suffix(400) {
                var target = [UInt8](repeating: 0, count: body.count)
                let written = try #require(body.withUnsafeBytes { source in
                    target.withUnsafeMutableBytes { compressor.compress(source, into: $0) }
                })
                blocks.append(Array(target.prefix(written)))
                stored += written
                raw += body.count
            }
            // Decoded in reverse order: no block depends on the one compressed before it.
            for (block, body) in zip(blocks, bodies.suffix(400)).reversed() {
                let decoded = block.withUnsafeBytes { source in
                    dictionary.withUnsafeBytes { LZ4.decompress(source, decodedCount: body.count, dictionary: $0) }
                }
                #expect(decoded == body, "shareTables \(shareTables)")
            }
            #expect(Double(raw) / Double(stored) > 2.0, "shareTables \(shareTables): ratio \(Double(raw) / Double(stored))")
        }
    }
}
