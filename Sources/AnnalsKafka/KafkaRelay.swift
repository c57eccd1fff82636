import CoreMetrics
import Logging
import ServiceLifecycle
import Tracing
import Annals
import Synchronization

/// How a ``KafkaRelay`` publishes.
public struct KafkaRelayConfiguration: Sendable {
    /// `bootstrap.servers`: `host:port[,host:port…]`.
    public var brokers: String
    /// Names the relay's checkpoint stream, `$relay-<name>`: relays with different names keep
    /// separate checkpoints.
    public var name: String
    /// The topic of each event (default: one topic per stream category, ``TopicMapping/category(prefix:)``).
    public var topics: TopicMapping
    /// Which events are published (default: every application event; system streams never).
    public var filter: SubscriptionFilter
    /// At most this many events are handed to Kafka and not yet acknowledged; the relay stops
    /// reading until acknowledgements come back (default 10,000).
    public var maxInFlight: Int
    /// How often the checkpoint is written to the store while events are being delivered.
    public var checkpointInterval: Duration
    /// The wait before publishing again from the checkpoint after a failed delivery; doubled
    /// after each failure up to `maximumRetryBackoff`, reset by a successful delivery.
    public var retryBackoff: Duration
    /// The longest wait between retries.
    public var maximumRetryBackoff: Duration
    /// Extra librdkafka producer properties (e.g. `security.protocol`, `sasl.mechanisms`,
    /// `compression.type`). Idempotence stays on.
    public var producerProperties: [String: String]

    /// A configuration for the cluster at `brokers`.
    public init(
        brokers: String, name: String = "kafka", topicPrefix: String = "", filter: SubscriptionFilter = .all,
        maxInFlight: Int = 10_000, checkpointInterval: Duration = .seconds(1),
        retryBackoff: Duration = .milliseconds(100), maximumRetryBackoff: Duration = .seconds(10),
        producerProperties: [String: String] = [:]
    ) {
        self.brokers = brokers
        self.name = name
        self.topics = .category(prefix: topicPrefix)
        self.filter = filter
        self.maxInFlight = maxInFlight
        self.checkpointInterval = checkpointInterval
        self.retryBackoff = retryBackoff
        self.maximumRetryBackoff = maximumRetryBackoff
        self.producerProperties = producerProperties
    }
}

/// Where a relay is.
public struct RelayStatus: Sendable, Hashable {
    /// Every event before this position has been delivered (or was filtered out).
    public var checkpoint: UInt64 = 0
    /// The checkpoint as last written to the store: a restart resumes here.
    public var savedCheckpoint: UInt64 = 0
    /// The next position the relay will read.
    public var readPosition: UInt64 = 0
    /// Messages handed to Kafka since the relay started.
    public var published: UInt64 = 0
    /// Messages Kafka acknowledged since the relay started.
    public var delivered: UInt64 = 0
    /// Handed to Kafka and not yet acknowledged.
    public var inFlight = 0
    /// Failed deliveries after which the relay published again from its checkpoint.
    public var retries = 0
    /// Events in the store after the checkpoint.
    public var lagEvents: UInt64 = 0
    /// How old the oldest event after the checkpoint is, in seconds.
    public var lagSeconds = 0.0
    /// Why the last retry happened.
    public var lastError: String?
}

/// Why a relay stopped.
public enum RelayError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A producer property was refused, or the producer could not be created.
    case configuration(String)
    /// The producer raised a fatal error (it can no longer deliver idempotently). The
    /// checkpoint stays where it was; a new relay resumes from it.
    case fatal(String)
    /// Reading the store failed.
    case read(ReadError)
    /// The checkpoint could not be written.
    case checkpoint(AppendError)

    /// One line for people: why the relay stopped.
    public var description: String {
        switch self {
        case .configuration(let message): return "Kafka configuration: \(message)"
        case .fatal(let message): return "fatal Kafka producer error: \(message)"
        case .read(let error): return "\(error)"
        case .checkpoint(let error): return "writing the relay checkpoint: \(error)"
        }
    }
}

/// Publishes what the store commits to Kafka: reads `$all` from its durable checkpoint, catches
/// up, then follows live commits.
///
/// - Each event becomes one message: key = stream name (so a stream's events stay ordered within
///   one partition), value = payload, headers `event-type`, `event-id`, `position`, `revision`
///   and `timestamp` (decimal nanoseconds since the epoch), and `metadata` when the event has any.
/// - Delivery: an idempotent producer (`acks=all`). The checkpoint (the system stream
///   `$relay-<name>`) only moves past events whose delivery Kafka acknowledged. After a crash or
///   a restart nothing is lost; the only duplicates are events published after the last
///   checkpoint, which consumers drop by the `event-id` header.
/// - A failed delivery makes the relay wait for what is in flight, back off, and publish again
///   from the checkpoint; a fatal producer error stops it with ``RelayError/fatal(_:)``.
/// - Backpressure: at most ``KafkaRelayConfiguration/maxInFlight`` unacknowledged events.
///
/// A swift-service-lifecycle `Service` (``run()``): a graceful shutdown stops it like ``stop()``.
/// Logs through the store's logger (`annals.relay` set) and records `annals_relay_lag_events`,
/// `annals_relay_delivered_total` and `annals_relay_delivery_failures_total` (dimension `relay`)
/// with the store's metrics factory.
///
/// Thread safety: ``run(progress:)`` runs once; ``stop()`` and ``status`` may be called from any task.
public final class KafkaRelay: Sendable, Service {
    /// The store it publishes from.
    public let store: EventStore
    /// How it publishes.
    public let configuration: KafkaRelayConfiguration
    private let stopRequested = Atomic<Bool>(false)
    private let current = Mutex(RelayStatus())
    private let logger: Logger
    private let lagGauge: Gauge
    private let deliveredCounter: Counter
    private let failureCounter: Counter

    /// A relay from `store` with `configuration`. Nothing happens until ``run(progress:)``.
    public init(store: EventStore, configuration: KafkaRelayConfiguration) {
        self.store = store
        self.configuration = configuration
        // Only the newest checkpoint counts: compaction may remove the older ones.
        store.declareNewestOnlySystemStreams(prefix: Self.checkpointStreamPrefix)
        logger = store.logger(with: "annals.relay", configuration.name)
        let factory = store.metricsFactory
        let dimensions = [("relay", configuration.name)]
        lagGauge = Gauge(label: "annals_relay_lag_events", dimensions: dimensions, factory: factory)
        deliveredCounter = Counter(label: "annals_relay_delivered_total", dimensions: dimensions, factory: factory)
        failureCounter = Counter(label: "annals_relay_delivery_failures_total", dimensions: dimensions, factory: factory)
    }

    /// Publishes until ``stop()`` or a graceful shutdown of the service group it runs in.
    ///
    /// - Throws: ``RelayError``.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            _ = try await run(progress: nil)
        } onGracefulShutdown: { [self] in
            stop()
        }
    }

    private static let traceContextKey = Array(#""traceContext""#.utf8)

    /// The prefix of every relay checkpoint stream.
    public static let checkpointStreamPrefix = "$relay-"

    /// The system stream holding the checkpoint of relay `name`.
    public static func checkpointStream(_ name: String) -> String { checkpointStreamPrefix + name }

    /// Asks ``run(progress:)`` to finish: it stops reading, waits (up to 10 s) for the
    /// acknowledgements of what is in flight, writes the checkpoint and returns.
    public func stop() { stopRequested.store(true, ordering: .releasing) }

    /// The relay's state now.
    public var status: RelayStatus { current.withLock { $0 } }

    /// The position a relay named `name` resumes from (0 when it never checkpointed): the
    /// newer of its checkpoint stream (written when it ran beside no other writer) and its
    /// reader file (written when it ran read-only beside a writer in another process).
    public static func savedCheckpoint(of name: String, in store: EventStore) throws(ReadError) -> UInt64 {
        var cursor = store.readBackwards(checkpointStream(name), limit: 1).makeCursor()
        var position: UInt64 = 0
        if let event = try cursor.next() {
            position = try event.withPayloadBytes { bytes in
                bytes.count == 8 ? bytes.loadUnaligned(as: UInt64.self).littleEndian : 0
            }
        }
        if let file = try? store.readerFile(named: checkpointFileName(name)), let saved = decodeCheckpointFile(file) {
            position = max(position, saved)
        }
        return position
    }

    /// The reader file of relay `name`'s checkpoint: `readers/relay-<name>.checkpoint`.
    static func checkpointFileName(_ name: String) -> String { "relay-\(name).checkpoint" }

    /// 8 bytes of position (little-endian), then their CRC-32C (4 bytes, little-endian).
    static func encodeCheckpointFile(_ position: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 12)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: position.littleEndian, as: UInt64.self)
            raw.storeBytes(of: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<8])).littleEndian, toByteOffset: 8, as: UInt32.self)
        }
        return bytes
    }

    static func decodeCheckpointFile(_ bytes: [UInt8]) -> UInt64? {
        guard bytes.count == 12 else { return nil }
        return bytes.withUnsafeBytes { raw in
            let position = raw.loadUnaligned(as: UInt64.self).littleEndian
            let stored = raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self).littleEndian
            return CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<8])) == stored ? position : nil
        }
    }

    /// Publishes until ``stop()``, the task's cancellation (handled the same way) or a fatal
    /// error. `progress` is called about four times a second with the status.
    ///
    /// - Returns: the final status, after the checkpoint was written.
    /// - Throws: ``RelayError``; the checkpoint in the store is always one that is safe to
    ///   resume from.
    @discardableResult
    public func run(progress: (@Sendable (RelayStatus) -> Void)?) async throws(RelayError) -> RelayStatus {
        let tracker = DeliveryTracker()
        let producer = try KafkaProducer(brokers: configuration.brokers, properties: configuration.producerProperties,
                                         tracker: tracker)
        // A read-only store (another process writes) is opened again to see new commits, and
        // the checkpoint goes to a reader file instead of the store.
        var store = self.store
        let readOnly = store.options.readOnly
        var next: UInt64
        do { next = try Self.savedCheckpoint(of: configuration.name, in: store) } catch { throw .read(error) }
        var saved = next
        var ownCheckpointPosition: UInt64?
        var published: UInt64 = 0
        var retries = 0
        var lastError: String?
        var backoff = configuration.retryBackoff
        let clock = ContinuousClock()
        var lastSave = clock.now
        var lastReport = clock.now
        current.withLock { $0.savedCheckpoint = saved; $0.checkpoint = saved; $0.readPosition = next }

        func saveCheckpoint(force: Bool) async throws(RelayError) {
            let safe = tracker.safePosition(readUpTo: next)
            // Past the saved checkpoint there is only its own event: nothing new to record.
            if let own = ownCheckpointPosition, saved == own, safe == own + 1 { return }
            guard safe > saved, force || tracker.takeDeliveredSinceCheckpoint() else { return }
            if readOnly {
                do { try store.writeReaderFile(named: Self.checkpointFileName(configuration.name), bytes: Self.encodeCheckpointFile(safe)) } catch {
                    throw .checkpoint(.system(error))
                }
                saved = safe
                lastSave = clock.now
                return
            }
            var bytes = [UInt8](repeating: 0, count: 8)
            bytes.withUnsafeMutableBytes { $0.storeBytes(of: safe.littleEndian, as: UInt64.self) }
            let written: AppendResult
            do {
                written = try await store.appendToSystemStreams([StreamAppend(
                    stream: Self.checkpointStream(configuration.name), events: [EventData(type: "$relay-checkpoint", payload: bytes)])])[0]
            } catch {
                throw .checkpoint(error)
            }
            saved = safe
            ownCheckpointPosition = written.firstPosition
            // The checkpoint event itself is never published: step over it when it is next.
            if next == written.firstPosition { next += 1 }
            lastSave = clock.now
        }

        func report(force: Bool = false) {
            guard force || clock.now - lastReport >= .milliseconds(250) else { return }
            lastReport = clock.now
            let checkpoint = tracker.safePosition(readUpTo: next)
            let end = store.endPosition
            var lagSeconds = 0.0
            if checkpoint < end {
                var cursor = store.readAll(from: checkpoint, limit: 1).makeCursor()
                if let oldest = try? cursor.next() {
                    let nanoseconds = Timestamp.now().nanosecondsSinceEpoch - oldest.timestamp.nanosecondsSinceEpoch
                    lagSeconds = max(0, Double(nanoseconds) / 1e9)
                }
            }
            let status = RelayStatus(
                checkpoint: checkpoint, savedCheckpoint: saved, readPosition: next, published: published,
                delivered: tracker.deliveredCount, inFlight: tracker.inFlight, retries: retries,
                lagEvents: end > checkpoint ? end - checkpoint : 0, lagSeconds: lagSeconds, lastError: lastError)
            let newlyDelivered = current.withLock { previous in
                defer { previous = status }
                return status.delivered > previous.delivered ? status.delivered - previous.delivered : 0
            }
            deliveredCounter.increment(by: newlyDelivered)
            lagGauge.record(status.lagEvents)
            progress?(status)
        }

        while !stopRequested.load(ordering: .acquiring), !Task.isCancelled {
            producer.poll(timeoutMilliseconds: 0)
            if let fatal = producer.fatalError {
                try? await saveCheckpoint(force: true)
                report(force: true)
                logger.error("the Kafka producer failed for good: the relay stops", metadata: ["annals.error": "\(fatal)"])
                throw .fatal(fatal)
            }
            if let failure = tracker.failure {
                // Publish again from the oldest failed event, once nothing is in flight (so the
                // checkpoint cannot pass a failure): at-least-once, in order per stream.
                while tracker.inFlight > 0, !stopRequested.load(ordering: .acquiring), !Task.isCancelled {
                    producer.poll(timeoutMilliseconds: 0)
                    try? await Task.sleep(for: .milliseconds(2))
                    if let fatal = producer.fatalError { throw .fatal(fatal) }
                }
                try await saveCheckpoint(force: false)
                next = tracker.safePosition(readUpTo: next)
                tracker.clearFailure()
                retries += 1
                lastError = failure.reason
                failureCounter.increment()
                logger.warning("a delivery failed: publishing again from the checkpoint",
                               metadata: ["annals.error": "\(failure.reason)", "annals.position": "\(next)"])
                report(force: true)
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, configuration.maximumRetryBackoff)
                continue
            }
            let room = configuration.maxInFlight - tracker.inFlight
            if room <= 0 {
                try? await Task.sleep(for: .milliseconds(1))
                continue
            }
            var cursor = store.readAll(from: next, limit: min(room, 1000)).makeCursor()
            var read = 0
            // A span per batch handed to the producer (none when nothing was read).
            var span: (any Span)?
            let batchStart = published
            do {
                reading: while let event = try cursor.next() {
                    read += 1
                    if configuration.filter.matches(event) {
                        if span == nil {
                            span = store.tracer.startSpan("annals.relay.publish", ofKind: .producer)
                            span?.attributes["messaging.system"] = "kafka"
                            span?.attributes["annals.relay"] = configuration.name
                            span?.attributes["annals.position"] = Int(event.position)
                        }
                        switch try publish(event, with: producer, tracker: tracker) {
                        case .queued: published += 1
                        case .stop: break reading
                        }
                    }
                    next = event.position + 1
                }
            } catch {
                span?.recordError(error)
                span?.end()
                try? await saveCheckpoint(force: true)
                throw .read(error)
            }
            span?.attributes["messaging.batch.message_count"] = Int(published - batchStart)
            span?.end()
            if tracker.deliveredCount > 0, tracker.failure == nil { backoff = configuration.retryBackoff }
            if clock.now - lastSave >= configuration.checkpointInterval { try await saveCheckpoint(force: false) }
            report()
            if read == 0 {
                if readOnly {
                    // Caught up with the log as this open sees it: look again a little later.
                    if tracker.inFlight > 0 {
                        producer.poll(timeoutMilliseconds: 2)
                    } else {
                        try? await Task.sleep(for: .milliseconds(100))
                        if let newer = try? store.reopened() { store = newer }
                    }
                } else {
                    // Caught up: wait for a commit, waking often while acknowledgements are due.
                    await waitForCommit(beyond: next, atMost: tracker.inFlight > 0 ? .milliseconds(2) : .milliseconds(200))
                }
            }
        }
        // Stopping: the acknowledgements of what is in flight, then the checkpoint.
        let deadline = clock.now + .seconds(10)
        while tracker.inFlight > 0, clock.now < deadline {
            producer.poll(timeoutMilliseconds: 0)
            try? await Task.sleep(for: .milliseconds(2))
        }
        try await saveCheckpoint(force: true)
        report(force: true)
        return status
    }

    private enum Publish { case queued, stop }

    /// Hands one event to the producer, polling while librdkafka's queue is full. A refusal is
    /// recorded as a failed delivery at the event's position.
    private func publish(_ event: RecordedEvent, with producer: KafkaProducer, tracker: DeliveryTracker) throws(ReadError) -> Publish {
        var headers: [(String, [UInt8])] = [
            ("event-type", Array(event.type.utf8)),
            ("event-id", Array(event.id.uuidString.lowercased().utf8)),
            ("position", Array(String(event.position).utf8)),
            ("revision", Array(String(event.revision).utf8)),
            ("timestamp", Array(String(event.timestamp.nanosecondsSinceEpoch).utf8)),
        ]
        // An erased event (its data subject was forgotten) is published as erased: a header
        // says so, and it carries no metadata and an empty value, never stale plaintext.
        // An encrypted body is decrypted once, here: a forget that lands meanwhile makes the
        // whole event erased, never half of it.
        var erased = event.isErased
        var metadata: [UInt8] = []
        var decrypted: [UInt8]?
        if !erased {
            do {
                metadata = try event.metadata
                if event.isEncrypted { decrypted = try event.payload }
            } catch {
                guard case .bodyErased = error else { throw error }
                erased = true
                metadata = []
            }
        }
        if erased { headers.append(("erased", Array("true".utf8))) }
        if !metadata.isEmpty {
            headers.append(("metadata", metadata))
            // The trace the event was appended in continues in the consumer: `traceparent` and
            // `tracestate` as message headers (parsed only when the metadata carries them).
            if metadata.count > 14, metadata.firstRange(of: Self.traceContextKey) != nil,
               let trace = try? event.eventMetadata().traceContext {
                for (name, value) in trace.sorted(by: { $0.key < $1.key }) { headers.append((name, Array(value.utf8))) }
            }
        }
        let topic = configuration.topics.topic(for: event)
        let key = Array(event.stream.utf8)
        tracker.published(position: event.position)
        while true {
            let result: KafkaProducer.ProduceResult
            if erased {
                result = producer.produce(topic: topic, key: key, value: UnsafeRawBufferPointer(start: nil, count: 0), headers: headers,
                                          position: event.position)
            } else if let decrypted {
                result = decrypted.withUnsafeBytes { producer.produce(topic: topic, key: key, value: $0, headers: headers, position: event.position) }
            } else {
                result = try event.withPayloadBytes { payload in
                    producer.produce(topic: topic, key: key, value: payload, headers: headers, position: event.position)
                }
            }
            switch result {
            case .queued:
                return .queued
            case .queueFull:
                producer.poll(timeoutMilliseconds: 10)
                if stopRequested.load(ordering: .acquiring) {
                    tracker.delivered(position: event.position, error: "stopped")
                    return .stop
                }
            case .failed(let reason):
                tracker.delivered(position: event.position, error: reason)
                return .stop
            }
        }
    }

    private func waitForCommit(beyond position: UInt64, atMost timeout: Duration) async {
        let store = self.store
        await withTaskGroup(of: Void.self) { group in
            group.addTask { _ = await store.waitForCommit(beyond: position) }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
    }
}
