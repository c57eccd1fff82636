import CRdKafka

/// librdkafka's in-process mock cluster — a real Kafka protocol peer on localhost ports, no
/// JVM, no containers — and a plain librdkafka consumer that reads its topics back. For testing
/// a relay setup (this package's tests and benchmarks use it); not for production.
///
/// Thread safety: the cluster may be used from any thread; a ``Consumer`` from one at a time.
public final class KafkaMockCluster: @unchecked Sendable {
    private let host: OpaquePointer
    private let cluster: OpaquePointer
    /// `bootstrap.servers` for producers and consumers of this cluster.
    public let bootstrap: String

    /// A consumed message, with the relay's headers decoded.
    public struct Message: Sendable {
        /// Where it was read: topic, partition and offset.
        public let topic: String
        /// The partition of ``topic``.
        public let partition: Int32
        /// The offset in ``partition``.
        public let offset: Int64
        /// The message key (the relay's: the stream name).
        public let key: String
        /// The message value (the relay's: the payload).
        public let value: [UInt8]
        /// The message headers, as text.
        public let headers: [String: String]
        /// When the consumer received it.
        public let receivedAt: ContinuousClock.Instant

        /// The `position` header (`UInt64.max` when absent).
        public var position: UInt64 { UInt64(headers["position"] ?? "") ?? .max }
        /// The `revision` header (`UInt64.max` when absent).
        public var revision: UInt64 { UInt64(headers["revision"] ?? "") ?? .max }
    }

    /// Starts a cluster of `brokers` brokers with `topics`, each of `partitions` partitions.
    ///
    /// - Throws: ``RelayError/configuration(_:)`` when librdkafka refuses.
    public init(brokers: Int32 = 3, topics: [String], partitions: Int32 = 3) throws(RelayError) {
        let configuration = rd_kafka_conf_new()
        var error = [CChar](repeating: 0, count: 512)
        guard let host = rd_kafka_new(RD_KAFKA_PRODUCER, configuration, &error, error.count) else {
            throw .configuration("rd_kafka_new: \(Self.text(error))")
        }
        self.host = host
        guard let cluster = rd_kafka_mock_cluster_new(host, brokers) else {
            rd_kafka_destroy(host)
            throw .configuration("rd_kafka_mock_cluster_new failed")
        }
        self.cluster = cluster
        bootstrap = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        for topic in topics {
            let result = rd_kafka_mock_topic_create(cluster, topic, partitions, min(brokers, 3))
            guard result == RD_KAFKA_RESP_ERR_NO_ERROR else { throw .configuration("topic \(topic): \(Self.text(result))") }
        }
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(host)
    }

    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func text(_ error: rd_kafka_resp_err_t) -> String { String(cString: rd_kafka_err2str(error)) }

    /// Errors the mock cluster can inject into Produce responses.
    public enum ProduceError: Sendable {
        /// Retriable: librdkafka retries it itself.
        case notLeaderForPartition
        /// Not retriable: the messages of the request fail their delivery.
        case topicAuthorizationFailed

        var code: rd_kafka_resp_err_t {
            switch self {
            case .notLeaderForPartition: return RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION
            case .topicAuthorizationFailed: return RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED
            }
        }
    }

    /// Answers the next `count` Produce requests with `error`.
    public func failProduceRequests(_ count: Int, with error: ProduceError) {
        annals_kafka_mock_push_errors(cluster, Int16(ANNALS_KAFKA_API_PRODUCE), count, error.code)
    }

    /// Takes broker `id` (1-based) down or brings it back up.
    public func setBroker(_ id: Int32, up: Bool) {
        _ = up ? rd_kafka_mock_broker_set_up(cluster, id) : rd_kafka_mock_broker_set_down(cluster, id)
    }

    /// A consumer assigned to every partition of `topics` from the beginning.
    public func consumer(topics: [String], partitions: Int32 = 3) throws(RelayError) -> Consumer {
        try Consumer(cluster: self, topics: topics, partitions: partitions)
    }

    /// A librdkafka consumer reading whole topics from their first offset.
    public final class Consumer: @unchecked Sendable {
        private let handle: OpaquePointer
        /// The cluster outlives its consumers.
        private let cluster: KafkaMockCluster

        init(cluster: KafkaMockCluster, topics: [String], partitions: Int32) throws(RelayError) {
            self.cluster = cluster
            let bootstrap = cluster.bootstrap
            let configuration = rd_kafka_conf_new()
            var error = [CChar](repeating: 0, count: 512)
            for (name, value) in [("bootstrap.servers", bootstrap), ("group.id", "annals-mock-\(UInt64.random(in: 0...UInt64.max))"),
                                  ("enable.auto.commit", "false"), ("enable.partition.eof", "false"),
                                  ("fetch.wait.max.ms", "5")] {
                guard rd_kafka_conf_set(configuration, name, value, &error, error.count) == RD_KAFKA_CONF_OK else {
                    rd_kafka_conf_destroy(configuration)
                    throw .configuration("\(name): \(KafkaMockCluster.text(error))")
                }
            }
            guard let handle = rd_kafka_new(RD_KAFKA_CONSUMER, configuration, &error, error.count) else {
                rd_kafka_conf_destroy(configuration)
                throw .configuration("consumer: \(KafkaMockCluster.text(error))")
            }
            self.handle = handle
            let list = rd_kafka_topic_partition_list_new(Int32(topics.count) * partitions)
            for topic in topics {
                for partition in 0..<partitions {
                    rd_kafka_topic_partition_list_add(list, topic, partition).pointee.offset = Int64(RD_KAFKA_OFFSET_BEGINNING)
                }
            }
            let result = rd_kafka_assign(handle, list)
            rd_kafka_topic_partition_list_destroy(list)
            guard result == RD_KAFKA_RESP_ERR_NO_ERROR else { throw .configuration("assign: \(KafkaMockCluster.text(result))") }
        }

        deinit {
            rd_kafka_consumer_close(handle)
            rd_kafka_destroy(handle)
        }

        /// Appends polled messages to `messages` until it holds `count` or `timeout` passed.
        public func poll(until count: Int, timeout: Duration, into messages: inout [Message]) {
            let deadline = ContinuousClock.now + timeout
            while messages.count < count, ContinuousClock.now < deadline {
                guard let raw = rd_kafka_consumer_poll(handle, 50) else { continue }
                defer { rd_kafka_message_destroy(raw) }
                let message = raw.pointee
                guard message.err == RD_KAFKA_RESP_ERR_NO_ERROR else { continue }
                let topic = String(cString: rd_kafka_topic_name(message.rkt))
                let key = message.key.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: message.key_len), as: UTF8.self) } ?? ""
                let value = message.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: message.len)) } ?? []
                var headers: [String: String] = [:]
                var list: OpaquePointer?
                if rd_kafka_message_headers(raw, &list) == RD_KAFKA_RESP_ERR_NO_ERROR, let list {
                    var index = 0
                    var name: UnsafePointer<CChar>?
                    var pointer: UnsafeRawPointer?
                    var size = 0
                    while rd_kafka_header_get_all(list, index, &name, &pointer, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                        if let name, let pointer {
                            headers[String(cString: name)] = String(decoding: UnsafeRawBufferPointer(start: pointer, count: size), as: UTF8.self)
                        }
                        index += 1
                    }
                }
                messages.append(Message(topic: topic, partition: message.partition, offset: message.offset, key: key,
                                        value: value, headers: headers, receivedAt: .now))
            }
        }
    }
}
