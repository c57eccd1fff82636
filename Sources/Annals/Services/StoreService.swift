import Logging
import ServiceLifecycle

/// A store for the length of a swift-service-lifecycle `ServiceGroup`: it compacts the store
/// on a schedule when asked to, and closes it at graceful shutdown (every acknowledged append
/// durable, a clean checkpoint written, the writer lock released).
///
/// A `ServiceGroup` shuts its services down in reverse order: list the store first, so that
/// the projection runners and relays that use it stop (and write their checkpoints) before it
/// closes.
///
/// ```swift
/// let store = try EventStore.open(at: path)
/// let group = ServiceGroup(configuration: .init(
///     services: [StoreService(store: store, compactionInterval: .seconds(3600)), runner, relay],
///     gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
/// try await group.run()
/// ```
public struct StoreService: Service {
    /// The store it keeps.
    public let store: EventStore
    /// How often it compacts the store (nil: never).
    public let compactionInterval: Duration?
    /// What a scheduled compaction does.
    public let compactionOptions: CompactionOptions

    /// A service for `store`; compacts every `compactionInterval` when given.
    public init(store: EventStore, compactionInterval: Duration? = nil, compactionOptions: CompactionOptions = CompactionOptions()) {
        self.store = store
        self.compactionInterval = compactionInterval
        self.compactionOptions = compactionOptions
    }

    /// Runs until graceful shutdown or cancellation, then closes the store. A failed scheduled
    /// compaction is logged (`warning`) and tried again at the next interval.
    ///
    /// - Throws: what `EventStore/close()` throws.
    public func run() async throws {
        let logger = store.logger(with: "annals.service", "store")
        if let compactionInterval, !store.options.readOnly {
            while !Task.isCancelled, !Task.isShuttingDownGracefully {
                do {
                    try await cancelWhenGracefulShutdown { try await Task.sleep(for: compactionInterval) }
                } catch {
                    break
                }
                do { _ = try await store.compact(compactionOptions) } catch {
                    logger.warning("scheduled compaction failed", metadata: ["annals.error": "\(error)"])
                }
            }
        } else {
            try? await gracefulShutdown()
        }
        try await store.close()
        logger.debug("store closed at shutdown")
    }
}
