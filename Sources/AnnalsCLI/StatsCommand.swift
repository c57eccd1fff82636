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

    @OptionGroup var keys: KeyFileOption

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Flag(help: "Also list live, dead and reclaimable bytes of every segment.")
    var segments = false

    @Flag(help: "Skip the space analysis (it reads every frame).")
    var quick = false

    struct Output: Encodable {
        let statistics: StoreStatistics
        let space: [SegmentSpace]?
        let compression: Compression?
    }

    /// How much smaller compression makes the store.
    struct Compression: Encodable {
        /// Metadata and payload bytes as appended ÷ as stored.
        let bodyRatio: Double
        /// Used bytes if every body were stored raw ÷ used bytes.
        let logRatio: Double
        /// Bodies as appended, and as stored.
        let bodyBytes: UInt64
        let storedBodyBytes: UInt64

        init?(_ space: [SegmentSpace], usedBytes: Int) {
            let body = space.reduce(0) { $0 + $1.bodyBytes }, stored = space.reduce(0) { $0 + $1.storedBodyBytes }
            guard stored > 0, usedBytes > 0 else { return nil }
            bodyBytes = body
            storedBodyBytes = stored
            bodyRatio = Double(body) / Double(stored)
            logRatio = Double(Int64(usedBytes) + Int64(body) - Int64(stored)) / Double(usedBytes)
        }
    }

    func run() async throws {
        let statistics: StoreStatistics
        var space: [SegmentSpace]?
        do {
            let opened = try EventStore.open(at: store, options: keys.applied(to: StoreOptions(readOnly: true)))
            statistics = try opened.statistics()
            if !quick {
                // The counts above stand even when a frame fails its checks; `verify` says more.
                do { space = try opened.spaceUsage() } catch { printError("space analysis stopped: \(error)") }
            }
        } catch {
            throw fail(error)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let compression = space.flatMap { Compression($0, usedBytes: statistics.usedBytes) }
            print(String(decoding: try encoder.encode(Output(statistics: statistics, space: space, compression: compression)),
                         as: UTF8.self))
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
            if let space {
                if let compression = Compression(space, usedBytes: statistics.usedBytes) {
                    print(String(format: "compression     metadata+payload %.2f× (%llu bytes stored as %llu); whole log %.2f×",
                                 compression.bodyRatio, compression.bodyBytes, compression.storedBodyBytes, compression.logRatio))
                }
                printSpace(space)
            }
        }
    }

    func printSpace(_ space: [SegmentSpace]) {
        let live = space.reduce(0) { $0 + $1.liveBytes }, dead = space.reduce(0) { $0 + $1.deadBytes }
        let reclaimable = space.reduce(0) { $0 + $1.reclaimableBytes }
        let allocated = space.reduce(0) { $0 + $1.allocatedBytes }
        print("""
            live bytes      \(live) (\(space.reduce(0) { $0 + $1.liveEvents }) events)
            dead bytes      \(dead) (\(space.reduce(0) { $0 + $1.deadEvents }) events)
            reclaimable     \(reclaimable) bytes: about \(allocated - reclaimable) allocated after `annals compact`
            """)
        guard segments else { return }
        print("segment                            file      allocated      live       dead  reclaimable")
        for segment in space {
            let name = segment.firstSegment == segment.lastSegment ? "\(segment.firstSegment)" : "\(segment.firstSegment)-\(segment.lastSegment)"
            let kind = segment.isOpen ? " (open)" : segment.isCompacted ? " (compacted)" : ""
            print((name + kind).padding(24) + "\(segment.fileBytes)".leftPadding(14) + "\(segment.allocatedBytes)".leftPadding(15)
                + "\(segment.liveBytes)".leftPadding(10) + "\(segment.deadBytes)".leftPadding(11) + "\(segment.reclaimableBytes)".leftPadding(13))
        }
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self + " " : self + String(repeating: " ", count: width - count) }
    func leftPadding(_ width: Int) -> String { count >= width ? " " + self : String(repeating: " ", count: width - count) + self }
}
