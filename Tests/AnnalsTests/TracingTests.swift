import Annals
import AnnalsExamples
import Foundation
import InMemoryTracing
import Testing
import Tracing

/// With a tracer (passed in the store's options, as an app's bootstrapped one would be used),
/// a command is a span whose child is the store's append span, its events carry the trace
/// context in their metadata, and a projection's work is a span too.
@Suite struct TracingTests {
    @Test func commandsAppendsAndProjectionsAreSpansAndEventsCarryTheTrace() async throws {
        let scratch = ScratchStore()
        let tracer = InMemoryTracer()
        var options = StoreOptions(durability: .none, segmentSizeBytes: 256 * 1024)
        options.tracer = tracer
        let store = try EventStore.open(at: scratch.path, options: options)
        let accounts = Repository<Account>(store)
        try await accounts.execute(.open(owner: "Ann", initialBalance: 10), on: "1")
        let runner = ProjectionRunner<ProjectionTests.Ledger>(store: store)
        let task = Task { try await runner.run() }
        _ = try await store.append([try EventTranslator<ProjectionTests.CountedEvents>()
            .encode(.counted(ProjectionTests.Counted(value: 1)))], to: "count-1")
        try await runner.waitUntilApplied(through: store.endPosition - 1)
        await runner.stop()
        try await task.value

        let spans = tracer.finishedSpans
        let command = try #require(spans.first { $0.operationName == "annals.command" })
        #expect(command.attributes["annals.aggregate"]?.toSpanAttribute() == "account")
        let appends = spans.filter { $0.operationName == "annals.append" }
        let commandAppend = try #require(appends.first { $0.traceID == command.traceID })
        #expect(commandAppend.attributes["db.system.name"]?.toSpanAttribute() == "annals")
        #expect(commandAppend.attributes["db.collection.name"]?.toSpanAttribute() == "account-1")
        #expect(spans.contains { $0.operationName == "annals.projection.apply" })

        var cursor = store.read(Account.stream(for: "1")).makeCursor()
        let event = try #require(try cursor.next())
        let trace = try event.eventMetadata().traceContext
        #expect(trace[InMemoryTracer.traceIDKey] == command.traceID, "the event names the command's trace")
        try await store.close()
    }
}
