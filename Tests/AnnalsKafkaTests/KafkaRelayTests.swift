@testable import AnnalsKafka
import AnnalsStorage
import AnnalsTestSupport
import Foundation
import InMemoryTracing
import Testing

/// The relay against librdkafka's mock cluster (the Kafka protocol, in process), read back by a
/// librdkafka consumer: every event arrives, once per run, in order per stream key, with its
/// headers; stopping, killing and broker failures lose nothing, and the only duplicates are
/// events after the checkpoint the relay resumed from.
@Suite(.serialized) struct KafkaRelayTests {
    static let topics = ["test.order", "test.account", "test.shipment"]

    final class Directory: @unchecked Sendable {
        let path = FileManager.default.temporaryDirectory.path + "/annals-kafka-\(UUID().uuidString)"
        init() { try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        var store: String { path + "/store" }
    }

    struct Appended {
        let position: UInt64
        let stream: String
        let revision: UInt64
        let type: String
        let id: UUID
        let payload: [UInt8]
    }

    /// `count` events over 30 streams of three categories, in batches of one to five.
    func fill(_ store: EventStore, count: Int, seed: UInt64 = 1) async throws -> [Appended] {
        var generator = SeededGenerator(seed: seed)
        var appended: [Appended] = []
        let categories = ["order", "account", "shipment"]
        while appended.count < count {
            let stream = "\(categories[Int(generator.next() % 3)])-\(generator.next() % 10)"
            let size = min(count - appended.count, Int(generator.next() % 5) + 1)
            let events = (0..<size).map { index in
                EventData(type: ["Placed", "Paid", "Shipped"][index % 3],
                          payload: Array(#"{"n":\#(appended.count + index),"stream":"\#(stream)"}"#.utf8),
                          metadata: index == 0 ? Array(#"{"source":"test"}"#.utf8) : [])
            }
            let result = try await store.append(events, to: stream)
            var cursor = store.read(stream, from: result.firstRevision).makeCursor()
            while let event = try cursor.next() {
                appended.append(Appended(position: event.position, stream: stream, revision: event.revision, type: event.type,
                                         id: event.id, payload: try event.payload))
            }
        }
        return appended
    }

    func waitUntil(_ timeout: Duration = .seconds(60), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            guard ContinuousClock.now < deadline else { throw WaitError.timedOut }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    enum WaitError: Error { case timedOut }

    func configuration(_ kafka: KafkaMockCluster) -> KafkaRelayConfiguration {
        KafkaRelayConfiguration(brokers: kafka.bootstrap, topicPrefix: "test.", retryBackoff: .milliseconds(50))
    }

    /// Runs a relay until everything committed so far is checkpointed, then stops it.
    func relayToEnd(_ store: EventStore, _ kafka: KafkaMockCluster) async throws -> RelayStatus {
        let relay = KafkaRelay(store: store, configuration: configuration(kafka))
        let running = Task { try await relay.run(progress: nil) }
        try await waitUntil { relay.status.checkpoint >= store.endPosition }
        relay.stop()
        return try await running.value
    }

    /// The built `annals` executable (next to the test bundle) with `arguments`, not started.
    func annals(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            .deletingLastPathComponent().appendingPathComponent("annals")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        return process
    }

    /// Reads every topic until `count` messages (then a little longer, to catch duplicates).
    func consume(_ kafka: KafkaMockCluster, count: Int) throws -> [KafkaMockCluster.Message] {
        let consumer = try kafka.consumer(topics: Self.topics)
        var messages: [KafkaMockCluster.Message] = []
        consumer.poll(until: count, timeout: .seconds(60), into: &messages)
        consumer.poll(until: Int.max, timeout: .milliseconds(500), into: &messages)
        return messages
    }

    /// Every appended event is there (at least once); each stream's messages are in revision
    /// order within its partition; positions seen twice are all at or after `duplicatesFrom`.
    func expectComplete(_ messages: [KafkaMockCluster.Message], _ appended: [Appended], duplicatesFrom: UInt64 = .max,
                        sourceLocation: SourceLocation = #_sourceLocation) {
        let byPosition = Dictionary(grouping: messages, by: \.position)
        let missing = appended.filter { byPosition[$0.position] == nil }
        #expect(missing.isEmpty, "\(missing.count) events never arrived, first at \(missing.first.map { "\($0.position)" } ?? "-")",
                sourceLocation: sourceLocation)
        let duplicated = byPosition.filter { $0.value.count > 1 }.keys.sorted()
        #expect(duplicated.allSatisfy { $0 >= duplicatesFrom },
                "duplicates before the checkpoint \(duplicatesFrom): \(duplicated.prefix(5))", sourceLocation: sourceLocation)
        for (key, stream) in Dictionary(grouping: messages, by: \.key) {
            let partitions = Set(stream.map(\.partition))
            #expect(partitions.count == 1, "\(key) spread over partitions \(partitions)", sourceLocation: sourceLocation)
            // What the relay published again after its checkpoint repeats; each event's last
            // copy is in revision order (the order a consumer applying by revision ends with).
            let lastCopy = Dictionary(stream.map { ($0.position, $0.offset) }, uniquingKeysWith: max)
            let revisions = stream.sorted { $0.offset < $1.offset }.filter { lastCopy[$0.position] == $0.offset }.map(\.revision)
            #expect(zip(revisions, revisions.dropFirst()).allSatisfy { $0 < $1 }, "\(key): \(revisions.prefix(20))",
                    sourceLocation: sourceLocation)
        }
    }

    @Test func everyEventArrivesOnceInOrderPerStreamWithItsHeaders() async throws {
        let kafka = try KafkaMockCluster(topics: Self.topics)
        let directory = Directory()
        let store = try EventStore.open(at: directory.store)
        let appended = try await fill(store, count: 1500)
        try await store.saveSnapshot(of: "order-1", revision: 0, schemaVersion: 1, bytes: [1]) // a system stream: not published
        let end = store.endPosition
        let final = try await relayToEnd(store, kafka)
        let messages = try consume(kafka, count: appended.count)
        #expect(messages.count == appended.count, "exactly once")
        expectComplete(messages, appended)
        for (key, stream) in Dictionary(grouping: messages, by: \.key) {
            let revisions = stream.sorted { $0.offset < $1.offset }.map(\.revision)
            #expect(revisions == Array(0..<UInt64(revisions.count)), "\(key): in order, without gaps")
        }
        let expected = Dictionary(uniqueKeysWithValues: appended.map { ($0.position, $0) })
        for message in messages {
            guard let event = expected[message.position] else { continue }
            #expect(message.key == event.stream && message.revision == event.revision && message.value == event.payload)
            #expect(message.topic == "test." + event.stream.split(separator: "-")[0])
            #expect(message.headers["event-type"] == event.type && message.headers["event-id"] == event.id.uuidString.lowercased())
            #expect(UInt64(message.headers["timestamp"] ?? "") != nil)
            #expect((message.headers["metadata"] != nil) == (event.revision == 0 || message.headers["metadata"] == #"{"source":"test"}"#))
        }
        // Everything appended is behind the saved checkpoint (which may also have passed the
        // relay's own earlier checkpoint events, never anything it did not deliver).
        #expect(final.savedCheckpoint >= end && final.savedCheckpoint <= store.endPosition, "\(final)")
        #expect(final.inFlight == 0 && final.lagEvents == 0, "\(final)")
        #expect(try KafkaRelay.savedCheckpoint(of: "kafka", in: store) == final.savedCheckpoint)
        try await store.close()
    }

    /// Events whose data subject was forgotten are published as erased (a header, an empty
    /// value, no metadata), never with their old plaintext; the others as ever, decrypted.
    @Test func erasedEventsArePublishedAsErased() async throws {
        let kafka = try KafkaMockCluster(topics: Self.topics)
        let directory = Directory()
        var options = StoreOptions()
        options.encryption = EncryptionOptions(keyProvider: FixedKey())
        let store = try EventStore.open(at: directory.store, options: options)
        for index in 0..<40 {
            _ = try await store.append([EventData(type: "Placed", payload: Array(#"{"n":\#(index),"who":"customer-\#(index % 4)"}"#.utf8),
                                                  metadata: Array(#"{"ip":"10.0.0.\#(index)"}"#.utf8), subject: "customer-\(index % 4)")],
                                       to: "order-\(index % 4)")
        }
        #expect(try store.forget(subject: "customer-1"))
        _ = try await relayToEnd(store, kafka)
        let messages = try consume(kafka, count: 40)
        #expect(messages.count == 40)
        for message in messages {
            if message.key == "order-1" {
                #expect(message.headers["erased"] == "true" && message.value.isEmpty && message.headers["metadata"] == nil)
            } else {
                #expect(message.headers["erased"] == nil && String(decoding: message.value, as: UTF8.self).contains("customer-"))
            }
        }
        try await store.close()
    }

    struct FixedKey: KeyEncryptionKeyProvider {
        func keyEncryptionKey() throws(OpenError) -> KeyEncryptionKey { try KeyEncryptionKey(bytes: Array(repeating: 7, count: 32)) }
    }

    /// A relay reading the store read-only beside its writer follows the writer's new commits
    /// (opening the store again), keeps its checkpoint in a reader file, and a relay started
    /// again resumes from that file.
    @Test func aReadOnlyRelayBesideTheWriterFollowsItAndResumesFromItsReaderFile() async throws {
        let kafka = try KafkaMockCluster(topics: Self.topics)
        let directory = Directory()
        let writer = try EventStore.open(at: directory.store)
        var appended = try await fill(writer, count: 300, seed: 5)
        let reader = try EventStore.open(at: directory.store, options: StoreOptions(readOnly: true))
        let relay = KafkaRelay(store: reader, configuration: configuration(kafka))
        let running = Task { try await relay.run(progress: nil) }
        appended += try await fill(writer, count: 300, seed: 6) // committed after the relay opened
        try await waitUntil { relay.status.checkpoint >= writer.endPosition }
        relay.stop()
        let first = try await running.value
        #expect(first.savedCheckpoint == writer.endPosition, "\(first)")
        let file = try #require(try writer.readerFile(named: "relay-kafka.checkpoint"))
        #expect(KafkaRelay.decodeCheckpointFile(file) == writer.endPosition)
        #expect(writer.lastRevision(of: KafkaRelay.checkpointStream("kafka")) == nil, "a read-only relay writes nothing into the log")
        // More events, a new read-only relay: it resumes from the file.
        appended += try await fill(writer, count: 200, seed: 7)
        let again = KafkaRelay(store: try reader.reopened(), configuration: configuration(kafka))
        let resumed = Task { try await again.run(progress: nil) }
        try await waitUntil { again.status.checkpoint >= writer.endPosition }
        again.stop()
        _ = try await resumed.value
        let messages = try consume(kafka, count: appended.count)
        expectComplete(messages, appended, duplicatesFrom: first.savedCheckpoint)
        #expect(messages.count == appended.count, "a clean stop leaves no duplicates")
        try await writer.close()
    }

    /// `annals publish` in another process beside this process's writer, killed with SIGKILL
    /// at random moments while the writer appends: after a last run to the end, every event
    /// arrived, in order per stream (the last copy of each), republished ones included.
    @Test func aRelayProcessBesideAWriterIsKilledAndLosesNothing() async throws {
        let kafka = try KafkaMockCluster(topics: Self.topics)
        let directory = Directory()
        let writer = try EventStore.open(at: directory.store)
        var appended = try await fill(writer, count: 400, seed: 8)
        let arguments = ["publish", directory.store, "--brokers", kafka.bootstrap, "--topic-prefix", "test.",
                         "--checkpoint-interval-ms", "20"]
        var random = SystemRandomNumberGenerator()
        for round in 0..<4 {
            let relay = try annals(arguments)
            try relay.run()
            appended += try await fill(writer, count: 150, seed: UInt64(20 + round))
            try await Task.sleep(for: .milliseconds(Int.random(in: 50...400, using: &random)))
            kill(relay.processIdentifier, SIGKILL)
            relay.waitUntilExit()
        }
        let last = try annals(arguments)
        try last.run()
        let end = writer.endPosition
        try await waitUntil {
            (try? writer.readerFile(named: "relay-kafka.checkpoint")).flatMap { $0.flatMap(KafkaRelay.decodeCheckpointFile) } ?? 0 >= end
        }
        last.terminate()
        last.waitUntilExit()
        let messages = try consume(kafka, count: appended.count)
        // Killed relays publish again from their last checkpoint: duplicates are expected there.
        expectComplete(messages, appended, duplicatesFrom: 0)
        try await writer.close()
    }

    /// The trace an event was appended in reaches the consumer: the `traceContext` of its
    /// metadata becomes `traceparent`/`tracestate` message headers; each published batch is a span.
    @Test func theTraceContextOfAnEventBecomesMessageHeaders() async throws {
        let kafka = try KafkaMockCluster(topics: Self.topics)
        let directory = Directory()
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let metadata = #"{"schemaVersion":1,"traceContext":{"traceparent":"\#(traceparent)","tracestate":"annals=1"}}"#
        let tracer = InMemoryTracer()
        var options = StoreOptions()
        options.tracer = tracer
        let store = try EventStore.open(at: directory.store, options: options)
        _ = try await store.append([EventData(type: "Placed", payload: Array("{}".utf8), metadata: Array(metadata.utf8))],
                                   to: "order-1")
        _ = try await store.append([EventData(type: "Placed", payload: Array("{}".utf8))], to: "order-2")
        _ = try await relayToEnd(store, kafka)
        let messages = try consume(kafka, count: 2).sorted { $0.position < $1.position }
        #expect(messages[0].headers["traceparent"] == traceparent)
        #expect(messages[0].headers["tracestate"] == "annals=1")
        #expect(messages[1].headers["traceparent"] == nil, "no trace, no header")
        #expect(tracer.finishedSpans.contains { $0.operationName == "annals.relay.publish" }, "the relay's batches are spans")
        try await store.close()
    }

    /// Cancelling the relay's task stops it like stop(): it returns, with its checkpoint written.
    @Test func aCancelledRelayStopsAndCheckpoints() async throws {
        let kafka = try KafkaMockCluster(topics: Self.topics)
        let directory = Directory()
        let store = try EventStore.open(at: directory.store)
        _ = try await fill(store, count: 200, seed: 4)
        let relay = KafkaRelay(store: store, configuration: configuration(kafka))
        let running = Task { try await relay.run(progress: nil) }
        try await waitUntil { relay.status.delivered >= 200 }
        running.cancel()
        let status = try await running.value
        #expect(status.savedCheckpoint >= 200, "\(status)")
        try await store.close()
    }

    @Test func aStoppedRelayResumesFromItsCheckpoint() async throws {
        let kafka = try KafkaMockCluster(topics: Self.topics)
        let directory = Directory()
        let store = try EventStore.open(at: directory.store)
        let appended = try await fill(store, count: 3000, seed: 2)
        let first = KafkaRelay(store: store, configuration: configuration(kafka))
        let running = Task { try await first.run(progress: nil) }
        try await waitUntil { first.status.delivered >= 300 }
        first.stop()
        let stopped = try await running.value
        #expect(stopped.savedCheckpoint > 0 && stopped.savedCheckpoint < store.endPosition, "\(stopped)")
        // More events while it is down, then a new relay with the same name.
        let more = try await fill(store, count: 200, seed: 3)
        _ = try await relayToEnd(store, kafka)
        let all = appended + more
        let messages = try consume(kafka, count: all.count)
        expectComplete(messages, all, duplicatesFrom: stopped.savedCheckpoint)
        #expect(messages.count == all.count, "a clean stop flushes and checkpoints everything it delivered: no duplicates")
        try await store.close()
    }

    @Test func aKilledPublishProcessLosesNothing() async throws {
        let kafka = try KafkaMockCluster(topics: Self.topics)
        let directory = Directory()
        var store = try EventStore.open(at: directory.store)
        let appended = try await fill(store, count: 20_000, seed: 4)
        try await store.close()
        let process = try annals(["publish", directory.store, "--brokers", kafka.bootstrap, "--topic-prefix", "test.",
                                   "--checkpoint-interval-ms", "20"])
        try process.run()
        // Kill it while it publishes: as soon as its first checkpoint is in the store (seen
        // through read-only opens, which take no lock), a few milliseconds later.
        try await waitUntil {
            guard let view = try? EventStore.open(at: directory.store, options: StoreOptions(readOnly: true)) else { return false }
            return ((try? KafkaRelay.savedCheckpoint(of: "kafka", in: view)) ?? 0) > 0
        }
        try await Task.sleep(for: .milliseconds(5))
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        store = try EventStore.open(at: directory.store)
        let resumeFrom = try KafkaRelay.savedCheckpoint(of: "kafka", in: store)
        #expect(resumeFrom > 0 && resumeFrom <= appended[appended.count - 1].position, "killed mid-way: resumes from \(resumeFrom)")
        _ = try await relayToEnd(store, kafka)
        let messages = try consume(kafka, count: appended.count)
        expectComplete(messages, appended, duplicatesFrom: resumeFrom)
        print("killed publish process: resumed from \(resumeFrom), \(messages.count - appended.count) duplicates after it")
        try await store.close()
    }

    @Test func sigtermStopsThePublishCommandCleanly() async throws {
        let kafka = try KafkaMockCluster(topics: Self.topics)
        let directory = Directory()
        var store = try EventStore.open(at: directory.store)
        let appended = try await fill(store, count: 500, seed: 6)
        let end = store.endPosition
        try await store.close()
        let process = try annals(["publish", directory.store, "--brokers", kafka.bootstrap, "--topic-prefix", "test."])
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let consumer = try kafka.consumer(topics: Self.topics)
        var messages: [KafkaMockCluster.Message] = []
        consumer.poll(until: appended.count, timeout: .seconds(60), into: &messages)
        kill(process.processIdentifier, SIGTERM)
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(printed)")
        // Everything appended is behind the checkpoint, which may also have passed the relay's
        // own earlier checkpoint event (when a periodic one was written before the SIGTERM).
        let checkpoint = printed.split(separator: " ").last.flatMap { UInt64($0.filter(\.isNumber)) }
        expectComplete(messages, appended)
        store = try EventStore.open(at: directory.store, options: StoreOptions(readOnly: true))
        #expect(checkpoint.map { $0 >= end && $0 <= store.endPosition } == true, "\(printed)")
        #expect(try KafkaRelay.savedCheckpoint(of: "kafka", in: store) == checkpoint)
    }

    @Test func brokerErrorsAndOutagesAreRetriedWithoutLoss() async throws {
        let kafka = try KafkaMockCluster(topics: Self.topics)
        let directory = Directory()
        let store = try EventStore.open(at: directory.store)
        let appended = try await fill(store, count: 4000, seed: 5)
        // Retriable errors (librdkafka retries them) and errors that fail a delivery (the relay
        // publishes again from its checkpoint).
        kafka.failProduceRequests(10, with: .notLeaderForPartition)
        kafka.failProduceRequests(3, with: .topicAuthorizationFailed)
        let relay = KafkaRelay(store: store, configuration: configuration(kafka))
        let running = Task { try await relay.run(progress: nil) }
        try await waitUntil { relay.status.delivered >= 500 }
        kafka.setBroker(1, up: false)
        try await Task.sleep(for: .milliseconds(800))
        kafka.setBroker(1, up: true)
        try await waitUntil { relay.status.checkpoint >= store.endPosition }
        relay.stop()
        let final = try await running.value
        let messages = try consume(kafka, count: appended.count)
        expectComplete(messages, appended, duplicatesFrom: 0)
        #expect(final.retries >= 1, "a failed delivery made the relay publish again: \(final)")
        try await store.close()
    }

    @Test func liveEventsArriveWhileTheRelayFollowsTheStore() async throws {
        let kafka = try KafkaMockCluster(topics: Self.topics)
        let directory = Directory()
        let store = try EventStore.open(at: directory.store)
        let relay = KafkaRelay(store: store, configuration: configuration(kafka))
        let running = Task { try await relay.run(progress: nil) }
        let consumer = try kafka.consumer(topics: Self.topics)
        var appendedAt: [UInt64: ContinuousClock.Instant] = [:]
        var appended: [Appended] = []
        for index in 0..<40 {
            let before = ContinuousClock.now
            let batch = try await fill(store, count: 1, seed: 100 + UInt64(index))
            appended += batch
            for event in batch { appendedAt[event.position] = before }
            try await Task.sleep(for: .milliseconds(10))
        }
        var messages: [KafkaMockCluster.Message] = []
        consumer.poll(until: appended.count, timeout: .seconds(60), into: &messages)
        relay.stop()
        _ = try await running.value
        expectComplete(messages, appended)
        let latencies = messages.compactMap { message in appendedAt[message.position].map { message.receivedAt - $0 } }.sorted()
        #expect(latencies.count == appended.count)
        // Bounded, with a wide margin for a loaded machine (figures: the benchmark runner).
        #expect(latencies.last.map { $0 < .seconds(10) } ?? false, "slowest append-to-consume: \(latencies.last.map { "\($0)" } ?? "-")")
        try await store.close()
    }
}
