import AnnalsStorage
import ArgumentParser
import Foundation

/// `annals stats STORE`: counts and sizes.
struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Print segments, events, streams and bytes used and allocated."
    )

    @Argument(help: "Store directory.")
    var store: String

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func run() async throws {
        let statistics: StoreStatistics
        do {
            let opened = try EventStore.open(at: store, options: StoreOptions(readOnly: true))
            statistics = try opened.statistics()
        } catch {
            throw fail(error)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(statistics), as: UTF8.self))
        } else {
            print("""
                segments        \(statistics.segments)
                events          \(statistics.events)
                streams         \(statistics.streams)
                index frames    \(statistics.indexedFrames)
                index files     \(statistics.indexFileBytes) bytes
                index in memory \(statistics.indexMemoryBytes) bytes (open segment)
                used bytes      \(statistics.usedBytes)
                allocated bytes \(statistics.allocatedBytes)
                segment size    \(statistics.segmentSizeBytes)
                """)
        }
    }
}
