import Annals
import AnnalsExamples
import Testing

/// The lending library under 8 concurrent tasks: every invariant holds at the end (a member
/// holds at most three books, books and members agree on every loan, the loans view over both
/// families agrees with them, old events are upcast), duplicates are recognised, and the view
/// commits a small fraction of what it covers. Prints commands/s (a debug build: the figure
/// to quote comes from `swift run -c release annals-example library`).
@Suite struct LibraryTrialTests {
    @Test func eightTasksOfLendingKeepEveryInvariant() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open(.fsyncBeforeAck)
        let report = try await LibraryTrial().run(on: store)
        print("library trial: \(report)")
        #expect(report.violations.isEmpty, "\(report.violations)")
        #expect(report.commands >= 6_000 && report.rejected > 0 && report.repeats > 0, "\(report)")
        #expect(report.viewCheckpoints * 20 <= UInt64(report.commands), "\(report)")
        try await store.close()
    }
}
