import AnnalsKafka
import AnnalsStorage
import AnnalsTestSupport
import Foundation

/// Issue 10's figures: relay throughput to librdkafka's mock cluster (3 brokers, in process),
/// and append-to-consume latency of live events, measured by a consumer of the same cluster.
struct KafkaWorkload {
    let directory: String
    let events: Int

    struct Figures {
        var events = 0
        var relayEventsPerSecond = 0.0
        var latencyP50Milliseconds = 0.0
        var latencyP99Milliseconds = 0.0
        var latencySamples = 0
    }

    static let topics = ["bench.order", "bench.account", "bench.shipment"]

    func run() async throws -> Figures {
        var figures = Figures()
        var generator = RealisticEvents(seed: 11)
        let pool = generator.events(10_000).map(\.event)
        let categories = ["order", "account", "shipment"]

        // Throughput: a backlog of `events`, published from the start.
        let backlog = try EventStore.open(at: directory + "/kafka-backlog", options: StoreOptions(durability: .none))
        var written = 0
        while written < events {
            var batch: [StreamAppend] = []
            for index in written..<min(events, written + 1000) {
                batch.append(StreamAppend(stream: "\(categories[index % 3])-\(index % 3000)", events: [pool[index % pool.count]]))
            }
            written += try await backlog.append(batch).count
        }
        let cluster = try KafkaMockCluster(topics: Self.topics)
        let relay = KafkaRelay(store: backlog, configuration: KafkaRelayConfiguration(brokers: cluster.bootstrap, topicPrefix: "bench."))
        let end = backlog.endPosition
        let clock = ContinuousClock()
        let started = clock.now
        let running = Task { try await relay.run(progress: nil) }
        while relay.status.checkpoint < end { try await Task.sleep(for: .milliseconds(5)) }
        let elapsed = clock.now - started
        relay.stop()
        _ = try await running.value
        figures.events = events
        figures.relayEventsPerSecond = Double(events) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        try await backlog.close()

        // Latency: a caught-up relay on a store with fsync before ack; one event every 5 ms.
        let liveCluster = try KafkaMockCluster(topics: Self.topics)
        let live = try EventStore.open(at: directory + "/kafka-live", options: StoreOptions(durability: ProcessInfo.processInfo.environment["KAFKA_BENCH_NOSYNC"] != nil ? .none : .fsyncBeforeAck))
        let follower = KafkaRelay(store: live, configuration: KafkaRelayConfiguration(brokers: liveCluster.bootstrap, topicPrefix: "bench."))
        let following = Task { try await follower.run() }
        let consumer = try liveCluster.consumer(topics: Self.topics)
        let samples = 1000, warmup = 300
        let consuming = Task.detached {
            var messages: [KafkaMockCluster.Message] = []
            consumer.poll(until: warmup + samples, timeout: .seconds(120), into: &messages)
            return messages
        }
        // Warm-up (connections, metadata, the consumer's first fetches), not measured.
        // Every partition of every topic gets messages before the measured ones.
        for index in 0..<warmup { _ = try await live.append([pool[index]], to: "\(categories[index % 3])-warmup-\(index)") }
        try await Task.sleep(for: .seconds(3))
        var appendedAt: [UInt64: ContinuousClock.Instant] = [:]
        for index in 0..<samples {
            let before = clock.now
            let result = try await live.append([pool[index % pool.count]], to: "\(categories[index % 3])-\(index % 50)")
            appendedAt[result.firstPosition] = before
            try await Task.sleep(for: .milliseconds(5))
        }
        let messages = await consuming.value
        follower.stop()
        _ = try await following.value
        try await live.close()
        let latencies = messages.compactMap { message in appendedAt[message.position].map { message.receivedAt - $0 } }
            .map { Double($0.components.seconds) * 1000 + Double($0.components.attoseconds) / 1e15 }.sorted()
        figures.latencySamples = latencies.count
        if ProcessInfo.processInfo.environment["KAFKA_BENCH_DEBUG"] != nil {
            for message in messages {
                guard let at = appendedAt[message.position] else { continue }
                let ms = Double((message.receivedAt - at).components.attoseconds) / 1e15 + Double((message.receivedAt - at).components.seconds) * 1000
                if ms > 100 { Swift.print("slow: \(message.topic)/\(message.partition) position \(message.position) \(ms) ms") }
            }
        }
        if !latencies.isEmpty {
            figures.latencyP50Milliseconds = latencies[latencies.count / 2]
            figures.latencyP99Milliseconds = latencies[min(latencies.count - 1, latencies.count * 99 / 100)]
        }
        return figures
    }

    static func print(_ f: Figures) {
        Swift.print("""
            relay to librdkafka's mock cluster (3 brokers, idempotent producer, acks=all)
              backlog of \(f.events) events published at   \(String(format: "%.0f", f.relayEventsPerSecond)) events/s
              append-to-consume latency (fsync store, one event every 5 ms, \(f.latencySamples) samples)
                                                p50 \(String(format: "%.1f", f.latencyP50Milliseconds)) ms, p99 \(String(format: "%.1f", f.latencyP99Milliseconds)) ms
            """)
    }
}
