import AnnalsTestSupport
import Foundation
@testable import AnnalsStorage

/// A fresh directory under the system temp dir, removed when the value is deinitialized.
final class TemporaryDirectory: @unchecked Sendable {
    let path: String

    init(_ label: String = "annals-test") {
        let base = FileManager.default.temporaryDirectory.path
        path = "\(base)/\(label)-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    func sub(_ name: String) -> String { path + "/" + name }
}

/// An event whose payload can be checked from its stream and index alone.
func checkableEvent(stream: String, index: Int, size: Int, type: String = "Checked") -> EventData {
    var payload = [UInt8](repeating: 0, count: size)
    var seed: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in stream.utf8 { seed = (seed ^ UInt64(byte)) &* 0x100_0000_01B3 }
    seed ^= UInt64(index) &* 0x9E37_79B9
    for i in 0..<size {
        seed = seed &* 6364136223846793005 &+ 1442695040888963407
        payload[i] = UInt8(truncatingIfNeeded: seed >> 56)
    }
    return EventData(type: type, payload: payload, metadata: Array("{\"i\":\(index)}".utf8))
}

func readEverything(_ store: EventStore) throws -> [RecordedEvent] {
    var cursor = store.readAll().makeCursor()
    var events: [RecordedEvent] = []
    while let event = try cursor.next() { events.append(event) }
    return events
}

func readEverythingBackwards(_ store: EventStore) throws -> [RecordedEvent] {
    var cursor = store.readAllBackwards().makeCursor()
    var events: [RecordedEvent] = []
    while let event = try cursor.next() { events.append(event) }
    return events
}

func copyDirectory(_ from: String, to: String) throws {
    try? FileManager.default.removeItem(atPath: to)
    try FileManager.default.copyItem(atPath: from, toPath: to)
}

func segmentFiles(_ store: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: store + "/segments").filter { $0.hasSuffix(".seg") }.sorted()
        .map { store + "/segments/" + $0 }
}

func modifyFile(_ path: String, _ body: (inout [UInt8]) -> Void) throws {
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    body(&bytes)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

let smallSegments = StoreOptions(segmentSizeBytes: 64 * 1024)

/// A store of `count` seeded realistic events over `streams` streams in 64 KiB segments, appended
/// `perAppend` streams at a time (one frame each); left open. Returns the events written.
func writeRealisticStore(
    at path: String, seed: UInt64, count: Int, streams: Int, perAppend: Int, tagged: Bool = false
) async throws -> (store: EventStore, events: [(stream: String, event: EventData)]) {
    var generator = RealisticEvents(seed: seed)
    var events = generator.events(count, streams: streams)
    if tagged {
        // Tags for queries: a member on most events, a second tag on some.
        for index in events.indices where index % 5 != 0 {
            events[index].event.tags = ["member:\(index % 7)"] + (index % 10 == 3 ? ["vip"] : [])
        }
    }
    let store = try EventStore.open(at: path, options: smallSegments)
    for chunk in stride(from: 0, to: events.count, by: perAppend) {
        let slice = events[chunk..<min(chunk + perAppend, events.count)]
        _ = try await store.append(slice.map { StreamAppend(stream: $0.stream, events: [$0.event]) })
    }
    return (store, events)
}

/// Opens `path` once a previous instance dropped without `close()` (a simulated crash) has let
/// go of the writer lock: its last references go away asynchronously (flush queue). Also for a
/// reopen right after `close()` while other tests spawn processes: a child between its fork
/// and its exec shares the lock file's open description, and so the `flock`, for that moment.
func openWhenReleased(_ path: String, options: StoreOptions) async throws -> EventStore {
    for _ in 0..<300 {
        do { return try EventStore.open(at: path, options: options) } catch OpenError.storeLocked {
            try await Task.sleep(for: .milliseconds(10))
        }
    }
    return try EventStore.open(at: path, options: options)
}

/// The durable-mark area (the last 128 bytes) of a segment file as it is now.
func durableMarkArea(of segment: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: segment)).suffix(Format.durableMarkAreaBytes))
}

/// A wall clock that moves only when told to: time-based behaviour (max-age retention,
/// timestamps) tested without sleeping.
final class ManualClock: StoreClock, @unchecked Sendable {
    private let lock = NSLock()
    private var nanoseconds: Int64

    init(start: Int64 = 1_800_000_000 * 1_000_000_000) { nanoseconds = start }

    func nowNanoseconds() -> Int64 { lock.withLock { nanoseconds } }

    func advance(by duration: Duration) {
        let (seconds, attoseconds) = duration.components
        lock.withLock { nanoseconds += seconds * 1_000_000_000 + attoseconds / 1_000_000_000 }
    }
}

/// Finds the compressed records of a segment file: (record offset, block range).
func compressedRecords(in segmentPath: String) throws -> [(record: Int, block: Range<Int>, frame: Int, frameLength: Int)] {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: segmentPath)))
    return bytes.withUnsafeBytes { raw in
        var found: [(Int, Range<Int>, Int, Int)] = []
        var offset = Format.segmentHeaderBytes
        while case .frame(let frame) = FrameDecoder.probe(raw, at: offset), frame.kind != .seal {
            if frame.kind == .events {
                var cursor = frame.recordsOffset
                for _ in 0..<frame.eventCount {
                    let layout = FrameDecoder.record(at: cursor, in: raw)
                    if layout.isCompressed {
                        found.append((cursor, layout.blockOffset..<(layout.blockOffset + layout.blockBytes), frame.offset, frame.length))
                    }
                    cursor = layout.end
                }
            }
            offset = frame.end
        }
        return found
    }
}

/// Runs `body` on a thread of its own and waits for it without holding a thread of the
/// width-limited pool that runs Swift tasks: a test that reads millions of bytes synchronously
/// would otherwise keep that pool's threads for seconds, and other suites' tasks (projection
/// runners with a deadline) would not run meanwhile.
func offTheTaskPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue(label: "annals-test-work").async { continuation.resume(with: Result { try body() }) }
    }
}
