import Annals
import AnnalsKafka
import ArgumentParser
import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `annals publish STORE --brokers …`: the Kafka relay, until interrupted.
struct PublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish the store's events to Kafka, then follow new commits, until interrupted.",
        discussion: """
            One message per event: key = stream name, value = payload, headers event-type, \
            event-id, position, revision, timestamp (and metadata). Topic: <prefix><category>, \
            the category being the stream name up to its first '-'. The checkpoint (stream \
            $relay-<name>) only passes events Kafka acknowledged: after a crash the relay \
            resumes there and nothing is lost; consumers drop the few duplicates by event-id. \
            SIGINT or SIGTERM stop it cleanly after the acknowledgements of what is in flight. \
            When another process has the store open for writing, it publishes beside it: it reads \
            the store read-only, opens it again to see new commits, and keeps its checkpoint in \
            readers/relay-<name>.checkpoint.
            """
    )

    @Argument(help: "Store directory.")
    var store: String

    @OptionGroup var keys: KeyFileOption

    @Option(help: "Kafka bootstrap servers, HOST:PORT[,HOST:PORT…].")
    var brokers: String

    @Option(help: "Prefix of every topic name.")
    var topicPrefix = ""

    @Option(help: "Publish only these events: prefix:STREAM-PREFIX or type:EVENT-TYPE (repeatable; prefixes and types combine).")
    var filter: [String] = []

    @Option(help: "Relay name: relays with different names keep separate checkpoints.")
    var name = "kafka"

    @Option(name: .customLong("property"), help: "A librdkafka producer property, NAME=VALUE (repeatable).")
    var properties: [String] = []

    @Option(help: "Most events handed to Kafka and not yet acknowledged.")
    var maxInFlight = 10_000

    @Option(help: "How often the checkpoint is written while events are delivered, in milliseconds.")
    var checkpointIntervalMs = 1000

    func validate() throws {
        for item in filter where !(item.hasPrefix("prefix:") || item.hasPrefix("type:")) {
            throw ValidationError("--filter takes prefix:STREAM-PREFIX or type:EVENT-TYPE, not \(item)")
        }
        for property in properties where !property.contains("=") {
            throw ValidationError("--property takes NAME=VALUE, not \(property)")
        }
    }

    func run() async throws {
        let prefixes = filter.filter { $0.hasPrefix("prefix:") }.map { String($0.dropFirst(7)) }
        let types = Set(filter.filter { $0.hasPrefix("type:") }.map { String($0.dropFirst(5)) })
        var producerProperties: [String: String] = [:]
        for property in properties {
            let parts = property.split(separator: "=", maxSplits: 1)
            producerProperties[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        let configuration = KafkaRelayConfiguration(
            brokers: brokers, name: name, topicPrefix: topicPrefix,
            filter: SubscriptionFilter(streamPrefixes: prefixes.isEmpty ? nil : prefixes, eventTypes: types.isEmpty ? nil : types),
            maxInFlight: maxInFlight, checkpointInterval: .milliseconds(checkpointIntervalMs), producerProperties: producerProperties)
        let store: EventStore
        // Beside a writer in another process, the relay reads the store read-only and keeps its
        // checkpoint in a reader file (`readers/relay-<name>.checkpoint`).
        do {
            store = try EventStore.open(at: self.store, options: keys.applied(to: writableOptions(self.store)))
        } catch OpenError.storeLocked {
            do { store = try EventStore.open(at: self.store, options: keys.applied(to: StoreOptions(readOnly: true))) } catch { throw fail(error) }
        } catch {
            throw fail(error)
        }
        let relay = KafkaRelay(store: store, configuration: configuration)
        var signalSources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { relay.stop() }
            source.resume()
            signalSources.append(source)
        }
        defer { signalSources.forEach { $0.cancel() } }
        let progress = Mutex(Progress())
        let final: RelayStatus
        do {
            final = try await relay.run { status in
                progress.withLock {
                    $0.update("published \(status.published), delivered \(status.delivered), in flight \(status.inFlight), "
                        + "lag \(status.lagEvents) events / \(status.lagSeconds.rounded(toPlaces: 1)) s")
                }
            }
            try await store.close()
        } catch {
            progress.withLock { $0.finish() }
            try? await store.close()
            throw fail(error)
        }
        progress.withLock { $0.finish() }
        print("published \(final.published), delivered \(final.delivered), retries \(final.retries); checkpoint \(final.savedCheckpoint)")
    }
}
