import Annals
import AnnalsExamples
import Dispatch
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// The service example (a store, the orders view, the Kafka relay and an order desk in one
/// `ServiceGroup`) starts, serves (its metrics on a Prometheus endpoint), and on SIGTERM stops
/// cleanly: the view's and the relay's checkpoints are written and cover what was placed, and
/// the store was closed cleanly.
@Suite struct ServiceGroupTests {
    @Test func theServiceGroupStopsOnSIGTERMWithItsCheckpointsWritten() async throws {
        let scratch = ScratchStore()
        let executable = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            .deletingLastPathComponent().appendingPathComponent("annals-service-example")
        let process = Process()
        process.executableURL = executable
        process.arguments = [scratch.path, "--metrics-port", "0"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let reader = output.fileHandleForReading
        // Blocking reads and waits run on a dispatch thread, not on the tasks' pool (other tests
        // run beside this one).
        var text = await Self.offThePool {
            var text = ""
            while !text.contains("serving\n") {
                let chunk = reader.availableData
                guard !chunk.isEmpty else { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
            return text
        }
        #expect(text.contains("serving"))
        try await Task.sleep(for: .milliseconds(600)) // a few dozen orders
        let port = try #require(text.split(separator: "\n").first { $0.hasPrefix("metrics on port ") }?.split(separator: " ").last)
        let (body, _) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/metrics")!)
        let exposition = String(decoding: body, as: UTF8.self)
        #expect(exposition.contains("annals_appends_total"), "\(exposition.prefix(500))")
        #expect(exposition.contains("annals_commands_total"))
        process.terminate() // SIGTERM
        text += await Self.offThePool {
            process.waitUntilExit()
            return String(decoding: reader.readDataToEndOfFile(), as: UTF8.self)
        }
        #expect(process.terminationReason == .exit && process.terminationStatus == 0, "\(text)")
        #expect(text.contains("stopped"))

        let store = try scratch.open()
        #expect(store.recoveryReport.cleanShutdown, "the store was closed by the service group")
        #expect(store.endPosition > 5, "orders were placed")
        let lastOrder = try #require(try lastPosition(in: store, prefix: "order-"))
        try await store.waitUntilProjected(OrdersView.self, through: lastOrder, timeout: .zero)
        let relayCheckpoint = try #require(store.lastRevision(of: "$relay-desk").map { _ in true })
        #expect(relayCheckpoint)
        try await store.close()
    }

    /// Runs blocking `body` on a dispatch thread.
    static func offThePool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: body()) }
        }
    }

    /// The position of the last event of a stream starting with `prefix`.
    func lastPosition(in store: EventStore, prefix: String) throws -> UInt64? {
        var cursor = store.readAllBackwards().makeCursor()
        while let event = try cursor.next() {
            if event.stream.hasPrefix(prefix) { return event.position }
        }
        return nil
    }
}
