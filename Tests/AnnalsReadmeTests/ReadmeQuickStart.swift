// The README's "Event sourcing with `import Annals`" example, compiled: every line of the
// README's block appears here in the same order (ReadmeTests checks it), and the test runs it.
import Annals
import Foundation

// Events: a stable wire name and a schema version; one closed family per aggregate. Old
// versions and old names are upgraded on read by the type's own upcasters, wherever it is read.
struct Opened: DomainEvent, Equatable { static let eventType = "Opened"; var owner: String }
struct Deposited: DomainEvent, Equatable {
    static let eventType = "Deposited"
    static let schemaVersion = 2
    static let upcasters = Upcasters()
        .renaming("MoneyDeposited", to: "Deposited")                          // an old wire name
        .upcasting("Deposited", from: 1) { json in json["currency"] = "EUR" }  // v1 → v2
    var amount: Decimal
    var currency = "EUR"
}
struct Withdrawn: DomainEvent, Equatable { static let eventType = "Withdrawn"; var amount: Decimal }
enum AccountEvent: EventFamily, Equatable {
    case opened(Opened), deposited(Deposited), withdrawn(Withdrawn)
    static let members: [EventMember<AccountEvent>] = [
        .member(Opened.self, AccountEvent.opened), .member(Deposited.self, AccountEvent.deposited),
        .member(Withdrawn.self, AccountEvent.withdrawn)]
    var event: any DomainEvent { switch self { case .opened(let e): e; case .deposited(let e): e; case .withdrawn(let e): e } }
}
enum AccountCommand { case open(owner: String), deposit(Decimal), withdraw(Decimal) }
enum AccountRejection: Error { case notOpen, insufficientFunds }

// Aggregates are pure deciders: test them without a store.
struct Account: Aggregate {
    static let category = "account"                 // aggregate 42 lives in stream "account-42"
    static let initial = Account()
    var owner: String?
    var balance: Decimal = 0
    func evolve(_ event: AccountEvent) -> Account {
        var next = self
        switch event {
        case .opened(let opened): next.owner = opened.owner
        case .deposited(let deposit): next.balance += deposit.amount
        case .withdrawn(let withdrawal): next.balance -= withdrawal.amount
        }
        return next
    }
    func decide(_ command: AccountCommand) throws(AccountRejection) -> [AccountEvent] {
        switch command {
        case .open(let owner): return [.opened(Opened(owner: owner))]
        case .deposit(let amount):
            guard owner != nil else { throw .notOpen }
            return [.deposited(Deposited(amount: amount))]
        case .withdraw(let amount):
            guard owner != nil else { throw .notOpen }
            guard amount <= balance else { throw .insufficientFunds }
            return [.withdrawn(Withdrawn(amount: amount))]
        }
    }
}

// Projections: a read model folded from the events, its state kept in the store.
struct Balances: Projection {
    typealias Event = AccountEvent
    static let name = "balances"
    static let version = 1
    static let initialState: [String: Decimal] = [:]
    static func apply(_ event: AccountEvent, recorded: RecordedEvent, to state: inout [String: Decimal]) {
        switch event {
        case .opened: state[recorded.stream] = 0
        case .deposited(let deposit): state[recorded.stream, default: 0] += deposit.amount
        case .withdrawn(let withdrawal): state[recorded.stream, default: 0] -= withdrawal.amount
        }
    }
}

/// The statements of the README example, run against `store`.
func readmeQuickStart(store: EventStore) async throws -> (balance: Decimal, then: Decimal, view: [String: Decimal]) {
    try Scenario<Account>.given(.opened(Opened(owner: "Ann")), .deposited(Deposited(amount: 500)))
        .when(.withdraw(200)).then(.withdrawn(Withdrawn(amount: 200)))

    // Repositories load, decide and append with the expected revision; a conflict catches up
    // and decides again, so concurrent commands never lose an update. A command id makes a
    // command idempotent; its context is recorded in every event's metadata.
    let accounts = Repository<Account>(store)
    try await accounts.execute(.open(owner: "Ann"), on: "42")
    let result = try await accounts.execute(.deposit(500), on: "42", context: CommandContext(commandID: UUID(), user: "ann"))
    let then = try accounts.load("42", atRevision: 0).state            // time travel

    // Projections: state and checkpoint committed together in the store (exactly once), by a
    // policy (every 1,000 events, and within 50 ms once live); waits end with a typed error.
    let runner = ProjectionRunner<Balances>(store: store)
    let projection = Task { try await runner.run() }
    if let position = result.lastPosition {
        try await store.waitUntilProjected(Balances.self, through: position)  // read your writes
    }
    await runner.stop()                                                 // commits, then run() returns
    try await projection.value

    // Subscriptions: catch up, .caughtUp once, then live (woken by commits, no polling).
    for try await message in store.subscribe(from: .start, filter: .streamPrefix("account-")) {
        if case .caughtUp = message { break }
    }
    return (try accounts.load("42").state.balance, then.balance, await runner.state)
}
