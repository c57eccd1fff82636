import AnnalsStorage
import AnnalsTestSupport
import Foundation

/// Writes the seeded realistic events to a file, so that measurements outside Swift (the LZ4
/// scheme probe in `Tools/compression-probe`) see exactly the events the benchmarks use.
enum Corpus {
    static func write(to path: String, count: Int) throws {
        var generator = RealisticEvents(seed: 1)
        var bytes: [UInt8] = []
        func appendLength(_ value: Int) {
            withUnsafeBytes(of: UInt32(value).littleEndian) { bytes.append(contentsOf: $0) }
        }
        for _ in 0..<count {
            let event = generator.nextEvent().event
            appendLength(event.type.utf8.count)
            appendLength(event.metadata.count)
            appendLength(event.payload.count)
            bytes.append(contentsOf: event.type.utf8)
            bytes.append(contentsOf: event.metadata)
            bytes.append(contentsOf: event.payload)
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}
