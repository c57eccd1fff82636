import Annals
import AnnalsExamples
import AnnalsKafka
import Foundation
import Logging
import Prometheus
import ServiceLifecycle

// `annals-service-example STORE [--metrics-port PORT]`: a store, the orders view, a Kafka relay
// (to an in-process mock cluster) and an order desk that places an order every 20 ms, in one
// `ServiceGroup`; with --metrics-port, the store's metrics on http://127.0.0.1:PORT/metrics
// through swift-prometheus (0: a free port, printed as "metrics on port N").
// SIGTERM or SIGINT shuts them down in reverse order: the desk stops, the relay and the view
// write their checkpoints, then the store closes. Prints "serving" when up and "stopped" at
// the end (the tests drive it in a child process).

/// Places an order every 20 ms until graceful shutdown.
struct OrderDesk: Service {
    let store: EventStore
    func run() async throws {
        let orders = Repository<Order>(store)
        var number = store.endPosition
        let items = [OrderItem(sku: "espresso-beans-1kg", quantity: 1, unitPrice: Decimal(string: "18.90")!)]
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            try await orders.execute(.place(customer: "c\(number % 7)", items: items, at: Date()), on: "desk-\(number)",
                                     context: CommandContext(commandID: UUID()))
            number += 1
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(20)) }
        }
    }
}

var logger = Logger(label: "annals-service-example")
logger.logLevel = .notice
guard let path = CommandLine.arguments.dropFirst().first else {
    FileHandle.standardError.write(Data("usage: annals-service-example STORE\n".utf8))
    exit(2)
}
var options = StoreOptions()
options.logger = logger
if let flag = CommandLine.arguments.firstIndex(of: "--metrics-port"), flag + 1 < CommandLine.arguments.count,
   let port = UInt16(CommandLine.arguments[flag + 1]) {
    let registry = PrometheusCollectorRegistry()
    options.metricsFactory = PrometheusMetricsFactory(registry: registry)
    let endpoint = try MetricsEndpoint(registry: registry, port: port)
    endpoint.start()
    FileHandle.standardOutput.write(Data("metrics on port \(endpoint.port)\n".utf8))
}
let store = try EventStore.open(at: path, options: options)
let cluster = try KafkaMockCluster(brokers: 1, topics: ["desk"], partitions: 1)
let relay = KafkaRelay(store: store, configuration: KafkaRelayConfiguration(brokers: cluster.bootstrap, name: "desk",
                                                                            filter: .streamPrefix("order-")))
let group = ServiceGroup(configuration: ServiceGroupConfiguration(
    services: [StoreService(store: store), ProjectionRunner<OrdersView>(store: store), relay, OrderDesk(store: store)],
    gracefulShutdownSignals: [.sigterm, .sigint],
    logger: logger))
FileHandle.standardOutput.write(Data("serving\n".utf8))
try await group.run()
FileHandle.standardOutput.write(Data("stopped\n".utf8))
