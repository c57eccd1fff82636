import AnnalsStorage
import AnnalsTestSupport
import Foundation

/// The headline workloads run on SQLite and LMDB with the same events, batches and durability
/// as on Annals (see `Workloads`). Stream revisions are tracked in memory for them, as an app
/// would with expected revisions (no read per append: the peers' best case).
struct PeerWorkloads {
    let directory: String
    let pool: [(stream: String, event: EventData)]
    let averageEventBytes: Int

    /// Appends `total` events in `batch`-event transactions to a fresh store; when `replay`,
    /// also replays it afterwards (page cache warm, best of three after a warm-up).
    func appendBatches<Peer: PeerStore>(
        _ open: (String, Bool) -> Peer, total: Int, batch: Int, durable: Bool, replay: Bool = false
    ) -> [Measurement] {
        let store = open(directory + "/\(Peer.system)-batch\(batch)-\(durable)", durable)
        defer { store.close() }
        var revisions: [String: UInt64] = [:]
        let batches = total / batch
        let prepared: [[EventData]] = (0..<min(batches, 200)).map { index in
            (0..<batch).map { pool[(index * batch + $0) % pool.count].event }
        }
        var latencies: [Double] = []
        let seconds = Stopwatch.time {
            for index in 0..<batches {
                let stream = "order-\(index % 10_000)"
                var revision = revisions[stream, default: 0]
                let events = prepared[index % prepared.count].map { event -> (stream: String, revision: UInt64, event: EventData) in
                    defer { revision += 1 }
                    return (stream, revision, event)
                }
                revisions[stream] = revision
                let started = ContinuousClock.now
                store.append(events)
                latencies.append(Self.seconds(ContinuousClock.now - started))
            }
        }
        let events = batches * batch
        var results = [Measurement(
            workload: "append-batch\(batch)-\(durable ? "fsync" : "nosync")", system: Peer.system, events: events,
            eventBytes: averageEventBytes, eventsPerSecond: Double(events) / seconds,
            megabytesPerSecond: Double(events * averageEventBytes) / seconds / 1e6,
            p50Microseconds: Stopwatch.percentile(latencies, 0.5) * 1e6, p99Microseconds: Stopwatch.percentile(latencies, 0.99) * 1e6)]
        if replay {
            var best = Double.infinity
            var replayed = (events: 0, bytes: 0)
            for run in 0..<4 {
                let time = Stopwatch.time { replayed = store.replay() }
                if run > 0 { best = min(best, time) }
            }
            precondition(replayed.events == events, "\(Peer.system) replay saw \(replayed.events) of \(events)")
            results.append(Measurement(workload: "replay-all", system: Peer.system, events: events,
                                       eventBytes: replayed.bytes / max(events, 1), eventsPerSecond: Double(events) / best,
                                       megabytesPerSecond: Double(replayed.bytes) / best / 1e6))
        }
        return results
    }

    /// `count` single-event transactions, one after another.
    func singles<Peer: PeerStore>(_ open: (String, Bool) -> Peer, count: Int) -> Measurement {
        let store = open(directory + "/\(Peer.system)-singles", true)
        defer { store.close() }
        var latencies: [Double] = []
        let seconds = Stopwatch.time {
            for index in 0..<count {
                let started = ContinuousClock.now
                store.append([("writer-0", UInt64(index), pool[index % pool.count].event)])
                latencies.append(Self.seconds(ContinuousClock.now - started))
            }
        }
        return Measurement(workload: "append-single-fsync-1writer", system: Peer.system, events: count, eventBytes: averageEventBytes,
                           eventsPerSecond: Double(count) / seconds, megabytesPerSecond: Double(count * averageEventBytes) / seconds / 1e6,
                           p50Microseconds: Stopwatch.percentile(latencies, 0.5) * 1e6,
                           p99Microseconds: Stopwatch.percentile(latencies, 0.99) * 1e6)
    }

    /// Reads of whole 100-event streams (`StreamReads.layout`), random order, after a warm-up.
    func streamReads<Peer: PeerStore>(_ open: (String, Bool) -> Peer) -> Measurement {
        let store = open(directory + "/\(Peer.system)-streams", false)
        defer { store.close() }
        var revisions: [String: UInt64] = [:]
        for (stream, events) in StreamReads.batches(pool: pool) {
            var revision = revisions[stream, default: 0]
            store.append(events.map { event in
                defer { revision += 1 }
                return (stream, revision, event)
            })
            revisions[stream] = revision
        }
        let latencies = StreamReads.time { stream in
            let count = store.readStream(stream)
            precondition(count == StreamReads.eventsPerStream, "\(Peer.system) read \(count) events of \(stream)")
        }
        return StreamReads.measurement(system: Peer.system, latencies: latencies, eventBytes: averageEventBytes)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// The stream-read workload shared by every system: 1,000 streams of 100 events, written in 10
/// rounds of 10 events per stream (so each stream is spread over the whole log), then 2,000
/// whole-stream reads in random order after 500 warm-up reads.
enum StreamReads {
    static let streams = 1000
    static let eventsPerStream = 100
    static let reads = 2000

    /// The appends that build the store: (stream, 10 events), in order.
    static func batches(pool: [(stream: String, event: EventData)]) -> [(String, [EventData])] {
        var next = 0
        var result: [(String, [EventData])] = []
        for _ in 0..<10 {
            for stream in 0..<streams {
                result.append(("acct-\(stream)", (0..<10).map { _ in
                    defer { next += 1 }
                    return pool[next % pool.count].event
                }))
            }
        }
        return result
    }

    static func time(_ read: (String) -> Void) -> [Double] {
        var random = SeededGenerator(seed: 11)
        let order = (0..<(reads + 500)).map { _ in "acct-\(Int(random.next() % UInt64(streams)))" }
        var latencies: [Double] = []
        for (index, stream) in order.enumerated() {
            let started = ContinuousClock.now
            read(stream)
            if index >= 500 { latencies.append(PeerWorkloads.seconds(ContinuousClock.now - started)) }
        }
        return latencies
    }

    static func measurement(system: String, latencies: [Double], eventBytes: Int) -> Measurement {
        let total = latencies.reduce(0, +)
        let events = latencies.count * eventsPerStream
        return Measurement(workload: "read-stream-100", system: system, events: events, eventBytes: eventBytes,
                           eventsPerSecond: Double(events) / total, megabytesPerSecond: Double(events * eventBytes) / total / 1e6,
                           p50Microseconds: Stopwatch.percentile(latencies, 0.5) * 1e6,
                           p99Microseconds: Stopwatch.percentile(latencies, 0.99) * 1e6)
    }
}
