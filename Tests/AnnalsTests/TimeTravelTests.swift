import Annals
import AnnalsExamples
import Foundation
import Testing

/// Any past state: an aggregate and a projection as of a global position and as of a time.
@Suite struct TimeTravelTests {
    typealias Ledger = ProjectionTests.Ledger

    @Test func aggregatesAndProjectionsAsOfAPositionAndATime() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        let accounts = Repository<Account>(store)
        let translator = EventTranslator<ProjectionTests.CountedEvents>()
        var positions: [UInt64] = []
        var times: [Timestamp] = []
        try await accounts.execute(.open(owner: "Ann", initialBalance: 0), on: "1")
        for amount in [100, 200, 300] {
            try await Task.sleep(for: .milliseconds(2)) // distinct commit times
            let deposit = try await accounts.execute(.deposit(Decimal(amount)), on: "1")
            let counted = try await store.append([try translator.encode(.counted(ProjectionTests.Counted(value: amount)))],
                                                 to: "count-0")
            positions.append(try #require(deposit.lastPosition))
            var cursor = store.readAll(from: counted.lastPosition, limit: 1).makeCursor()
            times.append(try #require(try cursor.next()).timestamp)
        }
        // As of the second deposit's position: 100 + 200.
        #expect(try accounts.load("1", atPosition: positions[1]).state.balance == 300)
        #expect(try accounts.load("1", atPosition: positions[1]).revision == 2)
        #expect(try Ledger.state(in: store, atPosition: positions[1]).sum == 100, "the second count comes after it")
        // As of the second count's commit time: both deposits and both counts before it.
        #expect(try accounts.load("1", asOf: times[1]).state.balance == 300)
        #expect(try Ledger.state(in: store, asOf: times[1]).sum == 300)
        // Before anything, and now.
        #expect(try accounts.load("1", asOf: Timestamp(nanosecondsSinceEpoch: 0)).revision == nil)
        #expect(try Ledger.state(in: store, atPosition: store.endPosition).sum == 600)
        try await store.close()
    }
}
