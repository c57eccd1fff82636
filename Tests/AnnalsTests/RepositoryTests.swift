import Annals
import AnnalsExamples
import Foundation
import Testing

/// Repositories: state survives the store, time travel, no lost update under concurrent
/// commands, schema evolution on read, unknown event types.
@Suite struct RepositoryTests {
    @Test func stateIsLoadedFromTheStoreAndTimeTravels() async throws {
        let scratch = ScratchStore()
        var store = try scratch.open(.fsyncBeforeAck)
        let accounts = Repository<Account>(store)
        try await accounts.execute(.open(owner: "Ann", initialBalance: 0), on: "1")
        try await accounts.execute(.deposit(500), on: "1")
        try await accounts.execute(.deposit(700), on: "1")
        let last = try await accounts.execute(.withdraw(200), on: "1")
        #expect(last.state.balance == 1000)
        #expect(last.append?.lastRevision == 3)
        try await store.close()

        store = try scratch.open()
        let reopened = Repository<Account>(store)
        #expect(try reopened.load("1").state.balance == 1000)
        #expect(try reopened.load("1").revision == 3)
        #expect(try reopened.load("1", atRevision: 1).state.balance == 500)
        #expect(try reopened.load("never").revision == nil)
        await #expect(throws: RepositoryError<AccountRejection>.self) { try await reopened.execute(.withdraw(1001), on: "1") }
        #expect(try reopened.load("1").revision == 3, "a rejected command writes nothing")
        try await store.close()
    }

    @Test func concurrentCommandsOnOneAggregateLoseNoUpdate() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open(.fsyncBeforeAck)
        let accounts = Repository<Account>(store, maximumConflictRetries: 200)
        try await accounts.execute(.open(owner: "Ann", initialBalance: 100), on: "shared")
        // 16 tasks × 25 commands: deposits of 10 and withdrawals of 30, racing on one stream.
        let outcomes = try await withThrowingTaskGroup(of: (deposited: Decimal, withdrawn: Decimal).self) { group in
            for worker in 0..<16 {
                group.addTask {
                    var deposited: Decimal = 0, withdrawn: Decimal = 0
                    for step in 0..<25 {
                        if (worker + step) % 3 == 0 {
                            if try await Self.withdraw(30, from: "shared", in: accounts) { withdrawn += 30 }
                        } else {
                            try await accounts.execute(.deposit(10), on: "shared")
                            deposited += 10
                        }
                    }
                    return (deposited, withdrawn)
                }
            }
            var totals: (deposited: Decimal, withdrawn: Decimal) = (0, 0)
            for try await outcome in group {
                totals.deposited += outcome.deposited
                totals.withdrawn += outcome.withdrawn
            }
            return totals
        }
        let final = try accounts.load("shared")
        #expect(final.state.balance == 100 + outcomes.deposited - outcomes.withdrawn, "every acknowledged command counted once")
        // Replaying the stream: the balance never went negative.
        var account = Account.initial
        for case .known(let event, _) in try accounts.history("shared") {
            account = account.evolve(event)
            #expect(account.balance >= 0)
        }
        try await store.close()
    }

    /// True when the withdrawal happened, false when refused for lack of funds.
    static func withdraw(_ amount: Decimal, from id: String, in accounts: Repository<Account>) async throws -> Bool {
        do {
            try await accounts.execute(.withdraw(amount), on: id)
            return true
        } catch {
            if case .rejected(.insufficientFunds) = error { return false }
            throw error
        }
    }

    // Version 3 of a type whose history had two earlier shapes and an earlier name.
    struct FundsAdded: DomainEvent, Equatable {
        static let eventType = "FundsAdded"
        static let schemaVersion = 3
        var amount: Decimal
        var currency: String
        var channel: String
    }

    enum Ledger: EventFamily, Equatable {
        case added(FundsAdded)
        static let members: [EventMember<Ledger>] = [.member(FundsAdded.self, Ledger.added)]
        var event: any DomainEvent { switch self { case .added(let event): event } }
    }

    @Test func upcastersChainOldVersionsAndRenamedTypes() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        func raw(_ type: String, _ version: Int, _ json: String) -> EventData {
            EventData(type: type, payload: Array(json.utf8), metadata: Array(#"{"schemaVersion":\#(version)}"#.utf8))
        }
        _ = try await store.append([
            raw("MoneyIn", 1, #"{"value":12.30}"#),                                  // old name, v1
            raw("FundsAdded", 2, #"{"amount":5,"currency":"USD"}"#),                    // v2
            EventData(type: "FundsAdded", payload: Array(#"{"value":0.1}"#.utf8)),    // no metadata: v1
            raw("FundsAdded", 3, #"{"amount":7,"currency":"GBP","channel":"app"}"#),    // current
            raw("FundsAdded", 4, #"{"amount":1}"#),                                    // from a newer app
            raw("SomethingElse", 1, "{}"),
        ], to: "ledger-1")
        let upcasters = Upcasters()
            .renaming("MoneyIn", to: "FundsAdded")
            .upcasting("FundsAdded", from: 1) { json in
                json["amount"] = json["value"]
                json["value"] = nil
                json["currency"] = "EUR"
            }
            .upcasting("FundsAdded", from: 2) { json in json["channel"] = "unknown" }
        let translator = EventTranslator<Ledger>(upcasters: upcasters)
        var decoded: [TypedEvent<Ledger>] = []
        for try await event in store.read("ledger-1") { decoded.append(try translator.decode(event)) }
        let known = decoded.compactMap { if case .known(let event, _) = $0 { event } else { nil } }
        #expect(known == [
            .added(FundsAdded(amount: Decimal(string: "12.30")!, currency: "EUR", channel: "unknown")),
            .added(FundsAdded(amount: 5, currency: "USD", channel: "unknown")),
            .added(FundsAdded(amount: Decimal(string: "0.1")!, currency: "EUR", channel: "unknown")),
            .added(FundsAdded(amount: 7, currency: "GBP", channel: "app")),
        ])
        let unknown = decoded.compactMap { if case .unknown(let event) = $0 { event } else { nil } }
        #expect(unknown.map(\.reason) == [.newerSchemaVersion(known: 3), .unknownType])
        #expect(unknown.map(\.eventType) == ["FundsAdded", "SomethingElse"])

        // Without the v1 upcaster, a v1 event is an error, not a silent skip.
        let partial = EventTranslator<Ledger>(upcasters: Upcasters().upcasting("FundsAdded", from: 2) { _ in })
        var cursor = store.read("ledger-1", from: 2, limit: 1).makeCursor()
        let v1 = try #require(try cursor.next())
        #expect(throws: EventDecodingError.missingUpcaster(eventType: "FundsAdded", fromVersion: 1)) { try partial.decode(v1) }
        try await store.close()
    }

    /// A type that declares its upcasters once is read the same by every component built for
    /// a family that holds it, with nothing passed to any of them.
    struct Credited: DomainEvent, Equatable {
        static let eventType = "Credited"
        static let schemaVersion = 2
        static let upcasters = Upcasters()
            .renaming("OldCredited", to: "Credited")
            .upcasting("Credited", from: 1) { json in json["source"] = "legacy" }
        var amount: Int
        var source: String
    }

    enum Credits: EventFamily, Equatable {
        case credited(Credited)
        static let members: [EventMember<Credits>] = [.member(Credited.self, Credits.credited)]
        var event: any DomainEvent { switch self { case .credited(let event): event } }
    }

    struct CreditTotal: Projection {
        typealias Event = Credits
        static let name = "credit-total"
        static let version = 1
        static let initialState = [String]()
        static func apply(_ event: Credits, recorded: RecordedEvent, to state: inout [String]) {
            if case .credited(let credited) = event { state.append("\(credited.amount) \(credited.source)") }
        }
    }

    /// The same wire name in another family, whose Swift type forgot the rename.
    struct CreditedWithoutRename: DomainEvent {
        static let eventType = "Credited"
        static let schemaVersion = 2
        static let upcasters = Upcasters().upcasting("Credited", from: 1) { json in json["source"] = "legacy" }
        var amount: Int
    }

    enum CreditsWithoutRename: EventFamily {
        case credited(CreditedWithoutRename)
        static let members: [EventMember<CreditsWithoutRename>] = [.member(CreditedWithoutRename.self, CreditsWithoutRename.credited)]
        var event: any DomainEvent { switch self { case .credited(let event): event } }
    }

    @Test func upcastersDeclaredOnTheTypeApplyEverywhereAndAMissingRenameIsAnError() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        _ = try await store.append([
            EventData(type: "OldCredited", payload: Array(#"{"amount":3}"#.utf8), metadata: Array(#"{"schemaVersion":1}"#.utf8)),
            EventData(type: "Credited", payload: Array(#"{"amount":4}"#.utf8)),
            try EventTranslator<Credits>().encode(.credited(Credited(amount: 5, source: "app"))),
        ], to: "credit-1")
        var decoded: [Credits] = []
        for try await event in store.read("credit-1") {
            if case .known(let credit, _) = try EventTranslator<Credits>().decode(event) { decoded.append(credit) }
        }
        #expect(decoded == [.credited(Credited(amount: 3, source: "legacy")), .credited(Credited(amount: 4, source: "legacy")),
                            .credited(Credited(amount: 5, source: "app"))])
        let runner = ProjectionRunner<CreditTotal>(store: store)
        let task = Task { try await runner.run() }
        try await runner.waitUntilApplied(through: 2)
        #expect(await runner.state == ["3 legacy", "4 legacy", "5 app"])
        task.cancel()
        try await task.value
        // A family whose "Credited" lacks the rename is told, instead of skipping the event.
        var cursor = store.read("credit-1", limit: 1).makeCursor()
        let old = try #require(try cursor.next())
        #expect(throws: EventDecodingError.renameNotDeclared(eventType: "OldCredited", renamedTo: "Credited")) {
            try EventTranslator<CreditsWithoutRename>().decode(old)
        }
        try await store.close()
    }

    @Test func unknownEventTypesReachTheAggregateWithoutACrash() async throws {
        let scratch = ScratchStore()
        let store = try scratch.open()
        let accounts = Repository<Account>(store)
        try await accounts.execute(.open(owner: "Ann", initialBalance: 10), on: "7")
        _ = try await store.append([EventData(type: "AccountFrozen", payload: Array("{}".utf8))], to: Account.stream(for: "7"))
        try await accounts.execute(.deposit(5), on: "7")
        let loaded = try accounts.load("7")
        #expect(loaded.state.balance == 15)
        #expect(loaded.unknownEvents == 1)
        #expect(loaded.revision == 2)
        try await store.close()
    }
}
