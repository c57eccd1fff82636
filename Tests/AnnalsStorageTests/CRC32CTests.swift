import AnnalsTestSupport
import Testing
@_spi(Testing) @testable import AnnalsStorage

@Suite struct CRC32CTests {
    @Test func standardCheckValueMatches() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.portableChecksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    @Test func hardwareAndPortablePathsAgreeOnEveryLengthAndAlignment() {
        var generator = SeededGenerator(seed: 7)
        let data = (0..<200_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        // Lengths around the 3 x 256 and 3 x 8192 interleaving thresholds of the hardware path.
        for start in 0..<9 {
            for length in [0, 1, 7, 8, 9, 63, 64, 65, 100, 767, 768, 769, 1000, 4000, 24_575, 24_576, 24_583, 100_000, 199_000]
            where start + length <= data.count {
                let slice = Array(data[start..<start + length])
                #expect(CRC32C.checksum(slice) == CRC32C.portableChecksum(slice), "start \(start) length \(length)")
            }
        }
    }
}
