import AnnalsTestSupport
import Foundation
import Testing
@testable import AnnalsStorage

/// Conditional appends: an append fails, writing nothing, when an event matching its query was
/// stored after its position (anywhere, without one), counting appends accepted but not yet
/// durable; a retry of an append that succeeded returns its result; and many concurrent tasks
/// deciding from queries never admit two events the condition should have excluded.
@Suite struct ConditionalAppendTests {
    static func lent(member: Int, book: Int) -> EventData {
        EventData(type: "BookLent", payload: Array(#"{"member":\#(member),"book":\#(book)}"#.utf8), tags: ["member:\(member)", "book:\(book)"])
    }

    @Test func aConditionFailsOnAMatchAfterItsPositionAndWritesNothing() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"))
        let memberQuery = EventQuery(types: ["BookLent"], tags: ["member:1"])
        // Uniqueness: nothing may match at all.
        let first = try await store.append([Self.lent(member: 1, book: 1)], to: "book-1",
                                           condition: AppendCondition(failIfEventsMatch: memberQuery))
        #expect(first.firstPosition == 0)
        await #expect(throws: AppendError.appendConditionFailed(position: 0)) {
            _ = try await store.append([Self.lent(member: 1, book: 2)], to: "book-2", condition: AppendCondition(failIfEventsMatch: memberQuery))
        }
        // After the position read, other members' events do not count; the member's do.
        _ = try await store.append([Self.lent(member: 2, book: 3)], to: "book-3")
        _ = try await store.append([Self.lent(member: 1, book: 2)], to: "book-2", condition: AppendCondition(failIfEventsMatch: memberQuery, after: 0))
        #expect(store.endPosition == 3)
        await #expect(throws: AppendError.appendConditionFailed(position: 2)) {
            _ = try await store.append([Self.lent(member: 1, book: 4)], to: "book-4",
                                       condition: AppendCondition(failIfEventsMatch: memberQuery, after: 1))
        }
        #expect(store.endPosition == 3, "a failed condition writes nothing")
        // An item matching everything: any event after the position.
        await #expect(throws: AppendError.appendConditionFailed(position: 2)) {
            _ = try await store.append([Self.lent(member: 5, book: 5)], to: "book-5", condition: AppendCondition(failIfEventsMatch: .all, after: 1))
        }
        _ = try await store.append([Self.lent(member: 5, book: 5)], to: "book-5", condition: AppendCondition(failIfEventsMatch: .all, after: 2))
        // With a stream expectation too: both must hold.
        await #expect(throws: AppendError.wrongExpectedRevision(stream: "book-5", expected: .noStream, actual: 0)) {
            _ = try await store.append([Self.lent(member: 6, book: 5)], to: "book-5", expecting: .noStream,
                                       condition: AppendCondition(failIfEventsMatch: EventQuery(tags: ["member:6"])))
        }
        try await store.close()
    }

    @Test func aRetryOfAConditionalAppendThatSucceededReturnsItsResult() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"))
        var event = Self.lent(member: 3, book: 9)
        event.id = UUID()
        let condition = AppendCondition(failIfEventsMatch: EventQuery(types: ["BookLent"], tags: ["book:9"]))
        let original = try await store.append([event], to: "book-9", expecting: .noStream, condition: condition)
        let retried = try await store.append([event], to: "book-9", expecting: .noStream, condition: condition)
        #expect(retried == original)
        #expect(store.endPosition == 1)
        try await store.close()
    }

    /// Conditions see appends accepted before them that are not durable yet: two appenders
    /// racing under group commit cannot both pass a uniqueness guard.
    @Test func aConditionSeesAppendsNotYetDurable() async throws {
        let directory = TemporaryDirectory()
        let store = try EventStore.open(at: directory.sub("store"))
        let results = await withTaskGroup(of: Bool.self) { group in
            for task in 0..<16 {
                group.addTask {
                    let claim = EventData(type: "UsernameClaimed", payload: Array(#"{"task":\#(task)}"#.utf8), tags: ["username:ada"])
                    do {
                        _ = try await store.append([claim], to: "user-\(task)",
                                                   condition: AppendCondition(failIfEventsMatch: EventQuery(tags: ["username:ada"])))
                        return true
                    } catch {
                        return false
                    }
                }
            }
            var successes = 0
            for await success in group where success { successes += 1 }
            return successes
        }
        #expect(results == 1, "exactly one claim of a username")
        #expect(try readEverything(store).count == 1)
        try await store.close()
    }

    /// The model check: 8 tasks lend and return books at random, each deciding from a query
    /// (the member's loans and returns) and appending with that position; the rule "a member
    /// holds at most 3 books" is never broken in the log, across rolls and reopen.
    @Test func concurrentDecisionsNeverBreakTheCrossStreamRule() async throws {
        let directory = TemporaryDirectory()
        let path = directory.sub("store")
        let options = StoreOptions(segmentSizeBytes: 16_384)
        let store = try EventStore.open(at: path, options: options)
        let members = 4, books = 40, limit = 3
        let conflicts = await withTaskGroup(of: Int.self) { group in
            for task in 0..<8 {
                group.addTask {
                    var random = SeededGenerator(seed: UInt64(task + 1))
                    var conflicts = 0
                    for _ in 0..<60 {
                        let member = Int(random.next() % UInt64(members))
                        let query = EventQuery(types: ["BookLent", "BookReturned"], tags: ["member:\(member)"])
                        // Decide: the member's books now, and the last position read.
                        var held = Set<String>()
                        var last: UInt64?
                        var cursor = store.read(matching: query).makeCursor()
                        while let event = try? cursor.next() {
                            let book = event.tags.first { $0.hasPrefix("book:") } ?? ""
                            if event.type == "BookLent" { held.insert(book) } else { held.remove(book) }
                            last = event.position
                        }
                        let event: EventData
                        if held.count < limit, random.next() % 3 != 0 {
                            event = ConditionalAppendTests.lent(member: member, book: Int(random.next() % UInt64(books)))
                        } else if let book = held.first {
                            event = EventData(type: "BookReturned", payload: [], tags: ["member:\(member)", book])
                        } else {
                            continue
                        }
                        do {
                            _ = try await store.append([event], to: "member-\(member)-log-\(task)",
                                                       condition: AppendCondition(failIfEventsMatch: query, after: last))
                        } catch AppendError.appendConditionFailed {
                            conflicts += 1
                        } catch {
                            Issue.record("\(error)")
                        }
                    }
                    return conflicts
                }
            }
            var total = 0
            for await conflicts in group { total += conflicts }
            return total
        }
        func checkRule(_ store: EventStore) throws {
            var held: [String: Set<String>] = [:]
            for event in try readEverything(store) {
                let member = event.tags.first { $0.hasPrefix("member:") } ?? ""
                let book = event.tags.first { $0.hasPrefix("book:") } ?? ""
                if event.type == "BookLent" { held[member, default: []].insert(book) } else { held[member]?.remove(book) }
                #expect((held[member]?.count ?? 0) <= limit, "\(member) holds \(held[member]?.count ?? 0) books at position \(event.position)")
            }
        }
        try checkRule(store)
        print("conditional appends: \(conflicts) conflicts detected and refused, \(store.endPosition) events written")
        #expect(conflicts > 0, "the tasks raced")
        try await store.close()
        try checkRule(try EventStore.open(at: path, options: StoreOptions(readOnly: true)))
    }
}
