import Annals
import AnnalsExamples
import Foundation
import Testing

/// Decisions across streams (the Dynamic Consistency Boundary): the lending desk's rule — a
/// book has one holder, a member holds at most three books — holds in the log whatever 8
/// concurrent tasks request; conflicting decisions are decided again; subscriptions and
/// projections that filter by a query see exactly the matching events.
@Suite struct DecisionTests {
    /// Replays the log and checks the rule at every event.
    static func expectRuleHeld(_ store: EventStore) throws -> (loans: Int, returns: Int) {
        var holder: [String: String] = [:]
        var held: [String: Set<String>] = [:]
        var loans = 0, returns = 0
        var cursor = store.readAll().makeCursor()
        while let event = try cursor.next() {
            guard let payload = try? JSONDecoder().decode([String: String].self, from: Data(event.payload)),
                  let book = payload["book"], let member = payload["member"] else { continue }
            #expect(event.tags == ["book:\(book)", "member:\(member)"])
            if event.type == BookLoaned.eventType {
                #expect(holder[book] == nil, "book \(book) lent twice at position \(event.position)")
                holder[book] = member
                held[member, default: []].insert(book)
                #expect(held[member]!.count <= LendingDesk.loanLimit, "member \(member) holds \(held[member]!.count) at position \(event.position)")
                loans += 1
            } else {
                #expect(holder[book] == member, "book \(book) given back by \(member), who does not hold it")
                holder[book] = nil
                held[member]?.remove(book)
                returns += 1
            }
        }
        return (loans, returns)
    }

    @Test func eightConcurrentTasksNeverBreakTheLendingRule() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open(.fsyncBeforeAck)
        let desk = LendingDesk(store: store)
        let outcomes = await withTaskGroup(of: (lent: Int, refused: Int).self) { group in
            for task in 0..<8 {
                group.addTask {
                    var random = SystemRandomNumberGenerator()
                    var lent = 0, refused = 0
                    for _ in 0..<60 {
                        let member = "m\(Int.random(in: 0..<4, using: &random))"
                        let book = "b\(Int.random(in: 0..<16, using: &random))"
                        do {
                            if Bool.random(using: &random) || task % 2 == 0 {
                                try await desk.lend(book: book, to: member)
                                lent += 1
                            } else {
                                try await desk.giveBack(book: book, by: member)
                            }
                        } catch is LendingRejection {
                            refused += 1
                        } catch {
                            Issue.record("\(error)")
                        }
                    }
                    return (lent, refused)
                }
            }
            var total = (lent: 0, refused: 0)
            for await outcome in group { total = (total.lent + outcome.lent, total.refused + outcome.refused) }
            return total
        }
        let (loans, returns) = try Self.expectRuleHeld(store)
        #expect(loans == outcomes.lent && loans > 10 && outcomes.refused > 10, "\(outcomes), \(returns) returns")
        print("lending desk: \(loans) loans, \(returns) returns, \(outcomes.refused) requests refused by the rule")
        try await store.close()
    }

    /// With one attempt, concurrent deciders meet each other's events: some fail with
    /// `tooManyConflicts`, and still none breaks the rule.
    @Test func conflictsAreDetectedAndNeverWritten() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open(.fsyncBeforeAck)
        let desk = LendingDesk(store: store, maximumAttempts: 1)
        let conflicts = await withTaskGroup(of: Int.self) { group in
            for task in 0..<8 {
                group.addTask {
                    var conflicts = 0
                    for round in 0..<20 {
                        do {
                            try await desk.lend(book: "b\((task + round) % 5)", to: "m\(round % 2)")
                        } catch DecisionError.tooManyConflicts {
                            conflicts += 1
                        } catch {}
                    }
                    return conflicts
                }
            }
            var total = 0
            for await count in group { total += count }
            return total
        }
        #expect(conflicts > 0, "the deciders raced")
        _ = try Self.expectRuleHeld(store)
        try await store.close()
    }

    /// A subscription filtered by a query delivers exactly the matching events, in order, and
    /// then follows new ones.
    @Test func aQuerySubscriptionDeliversTheMatchingEventsThenFollows() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        let desk = LendingDesk(store: store)
        for index in 0..<10 { try await desk.lend(book: "b\(index)", to: "m\(index % 5)") }
        for index in 0..<10 { _ = try await store.append([EventData(type: "Noise", payload: [UInt8(index)])], to: "noise") }
        let query = EventQuery(types: [BookLoaned.eventType], tags: ["member:m2"])
        var iterator = store.subscribe(from: .start, filter: .matching(query)).makeAsyncIterator()
        var seen: [UInt64] = []
        while case .event(let event)? = try await iterator.next() { seen.append(event.position) }
        #expect(seen == [2, 7])
        try await desk.lend(book: "b99", to: "m2")
        try await desk.lend(book: "b98", to: "m3")
        let next = try await iterator.next()
        guard case .event(let live)? = next else { Issue.record("expected the live event, got \(String(describing: next))"); return }
        #expect(live.position == 20 && live.tags.contains("member:m2"))
        try await store.close()
    }

    /// Loans per member, from a query: the runner reads through the query index.
    struct LoansPerMember: Projection {
        struct State: Codable, Sendable, Equatable { var loans: [String: Int] = [:]; var positions: [UInt64] = [] }
        typealias Event = LendingEvent
        static let name = "loans-per-member"
        static let version = 1
        static let filter = SubscriptionFilter.matching(EventQuery(types: [BookLoaned.eventType], tags: ["member:m1"]))
        static let initialState = State()
        static func apply(_ event: LendingEvent, recorded: RecordedEvent, to state: inout State) {
            guard case .loaned(let loan) = event else { return }
            state.loans[loan.member, default: 0] += 1
            state.positions.append(recorded.position)
        }
    }

    @Test func aProjectionFilteredByAQueryAppliesExactlyTheMatchingEvents() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        let desk = LendingDesk(store: store)
        for index in 0..<12 { try await desk.lend(book: "b\(index)", to: "m\(index % 4)") }
        for index in 0..<50 { _ = try await store.append([EventData(type: "Noise", payload: [UInt8(index)])], to: "noise") }
        let runner = ProjectionRunner<LoansPerMember>(store: store)
        let task = Task { try await runner.run() }
        try await store.waitUntilProjected(LoansPerMember.name, through: store.endPosition - 1)
        #expect(await runner.state == LoansPerMember.State(loans: ["m1": 3], positions: [1, 5, 9]))
        #expect(await runner.position == store.endPosition, "the read covered the log past the last matching event")
        try await desk.lend(book: "b20", to: "m9")
        let at = store.endPosition
        try await desk.giveBack(book: "b1", by: "m1")
        try await desk.lend(book: "b21", to: "m1")
        try await store.waitUntilProjected(LoansPerMember.name, through: store.endPosition - 1)
        #expect(await runner.state.positions == [1, 5, 9, at + 1])
        task.cancel()
        try await task.value
        try await store.close()
    }
}
