import CRdKafka
import Synchronization

/// A librdkafka producer: the one file of AnnalsKafka that touches C pointers.
///
/// Idempotent (`enable.idempotence=true`, `acks=all`): librdkafka retries broker errors
/// itself without duplicating or reordering within a partition. Every message carries the
/// global position of its event; the delivery report of each one reaches ``DeliveryTracker``
/// from ``poll(timeoutMilliseconds:)``, on the polling thread.
final class KafkaProducer: @unchecked Sendable {
    private let handle: OpaquePointer
    let tracker: DeliveryTracker
    private let retainedTracker: Unmanaged<DeliveryTracker>

    /// Creates the producer. `properties` are librdkafka configuration properties applied
    /// after the defaults this relay needs (they may not turn idempotence off).
    init(brokers: String, properties: [String: String], tracker: DeliveryTracker) throws(RelayError) {
        self.tracker = tracker
        guard let configuration = rd_kafka_conf_new() else { throw .configuration("rd_kafka_conf_new failed") }
        var settings: [(String, String)] = [
            ("bootstrap.servers", brokers),
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "5"),
            ("message.timeout.ms", "30000"),
        ]
        settings += properties.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        for (name, value) in settings {
            if name == "enable.idempotence", value != "true" {
                rd_kafka_conf_destroy(configuration)
                throw .configuration("the relay needs enable.idempotence=true")
            }
            var message = [CChar](repeating: 0, count: 512)
            if rd_kafka_conf_set(configuration, name, value, &message, message.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(configuration)
                throw .configuration("\(name)=\(value): \(Self.text(message))")
            }
        }
        retainedTracker = Unmanaged.passRetained(tracker)
        rd_kafka_conf_set_opaque(configuration, retainedTracker.toOpaque())
        rd_kafka_conf_set_dr_msg_cb(configuration) { _, message, opaque in
            guard let message, let opaque else { return }
            let tracker = Unmanaged<DeliveryTracker>.fromOpaque(opaque).takeUnretainedValue()
            let position = UInt64(UInt(bitPattern: message.pointee._private)) &- 1
            let error = message.pointee.err
            tracker.delivered(position: position, error: error == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : String(cString: rd_kafka_err2str(error)))
        }
        var message = [CChar](repeating: 0, count: 512)
        guard let created = rd_kafka_new(RD_KAFKA_PRODUCER, configuration, &message, message.count) else {
            retainedTracker.release()
            // rd_kafka_new frees the configuration only on success.
            rd_kafka_conf_destroy(configuration)
            throw .configuration(Self.text(message))
        }
        handle = created
    }

    /// A C string buffer filled by librdkafka, as text.
    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit {
        rd_kafka_destroy(handle)
        retainedTracker.release()
    }

    enum ProduceResult {
        case queued
        /// librdkafka's queue is full: poll, then try again.
        case queueFull
        case failed(String)
    }

    /// Queues one message (key, value and headers are copied) for the event at `position`.
    func produce(topic: String, key: [UInt8], value: UnsafeRawBufferPointer, headers: [(String, [UInt8])], position: UInt64) -> ProduceResult {
        guard let list = rd_kafka_headers_new(headers.count) else { return .failed("rd_kafka_headers_new failed") }
        for (name, bytes) in headers {
            bytes.withUnsafeBytes { _ = rd_kafka_header_add(list, name, -1, $0.baseAddress, $0.count) }
        }
        let opaque = UnsafeMutableRawPointer(bitPattern: UInt(position + 1))
        let error = key.withUnsafeBytes { keyBytes in
            annals_kafka_produce(handle, topic, keyBytes.baseAddress, keyBytes.count, value.baseAddress, value.count, list, opaque)
        }
        switch error {
        case RD_KAFKA_RESP_ERR_NO_ERROR: return .queued
        case RD_KAFKA_RESP_ERR__QUEUE_FULL:
            rd_kafka_headers_destroy(list)
            return .queueFull
        default:
            rd_kafka_headers_destroy(list)
            return .failed(String(cString: rd_kafka_err2str(error)))
        }
    }

    /// Serves delivery reports (and errors) for up to `timeoutMilliseconds`.
    func poll(timeoutMilliseconds: Int32) {
        rd_kafka_poll(handle, timeoutMilliseconds)
    }

    /// Waits up to `timeoutMilliseconds` for every queued message's delivery report.
    func flush(timeoutMilliseconds: Int32) {
        _ = rd_kafka_flush(handle, timeoutMilliseconds)
    }

    /// The producer's fatal error, if one was raised: the producer can no longer guarantee
    /// idempotent delivery and must be abandoned.
    var fatalError: String? {
        var message = [CChar](repeating: 0, count: 512)
        let error = rd_kafka_fatal_error(handle, &message, message.count)
        return error == RD_KAFKA_RESP_ERR_NO_ERROR ? nil : Self.text(message)
    }
}
