// The examples in the library's doc comments, compiled: every line of each ```swift block in a
// `///` comment of AnnalsStorage, Annals and AnnalsKafka appears here in the same order (lines
// with `…` elide code and are skipped); DocExampleTests checks it. Functions here are compiled,
// not run (some open fixed paths).
import Annals
import AnnalsKafka
import Foundation
import Logging
import ServiceLifecycle

// MARK: AnnalsStorage

enum StorageDocs {
    static func handle(_ event: RecordedEvent) {}
    static func apply(_ event: RecordedEvent) {}

    static func query() {
        // Every loan and return of member 42, whatever the book.
        let memberLoans = EventQuery(types: ["BookLent", "BookReturned"], tags: ["member:42"])
        _ = memberLoans
    }

    static func appendExpectingNoStream(store: EventStore, placed: EventData) async throws {
        let result = try await store.append([placed], to: "order-123", expecting: .noStream)
        _ = result
    }

    static func follow(store: EventStore) async throws {
        var next = store.endPosition
        while !Task.isCancelled {
            for try await event in store.readAll(from: next) { handle(event); next = event.position + 1 }
            _ = await store.waitForCommit(beyond: next)
        }
    }

    static func readStream(store: EventStore) async throws {
        for try await event in store.read("order-123") { apply(event) }
    }

    static func openAppendReadClose(bytes: [UInt8]) async throws {
        let store = try EventStore.open(at: "/var/lib/app/orders.annals")
        let result = try await store.append([EventData(type: "OrderPlaced", payload: bytes)], to: "order-123")
        for try await event in store.readAll() { print(event.position, event.type) }
        try await store.close()
        _ = result
    }

    static func eventData(store: EventStore) async throws {
        let placed = EventData(type: "OrderPlaced", payload: Array(#"{"total":42}"#.utf8))
        try await store.append([placed], to: "order-123")
    }

    static func subscribe(store: EventStore) async throws {
        for try await message in store.subscribe(from: .start, filter: .streamPrefix("order-")) {
            switch message {
            case .event(let event): handle(event)
            case .caughtUp: print("live")
            }
        }
    }

    static func metadata(recorded: RecordedEvent) throws {
        let metadata = try recorded.eventMetadata()
        print(metadata.correlationID ?? "-", metadata.user ?? "anonymous", metadata.fields["channel"] ?? "")
    }
}

// MARK: Accounts (Aggregate, Repository, Scenario, CommandContext, EventFamily)

enum AccountDocs {
    struct AccountOpened: DomainEvent, Equatable { static let eventType = "AccountOpened"; var owner: String }
    struct Deposited: DomainEvent, Equatable { static let eventType = "Deposited"; var amount: Decimal }
    struct Withdrawn: DomainEvent, Equatable { static let eventType = "Withdrawn"; var amount: Decimal }
    enum AccountCommand { case deposit(Decimal), withdraw(Decimal) }
    enum AccountRejection: Error { case insufficientFunds }

    enum AccountEvent: EventFamily {
        case opened(AccountOpened), deposited(Deposited), withdrawn(Withdrawn)
        static let members: [EventMember<AccountEvent>] = [
            .member(AccountOpened.self, AccountEvent.opened),
            .member(Deposited.self, AccountEvent.deposited),
            .member(Withdrawn.self, AccountEvent.withdrawn),
        ]
        var event: any DomainEvent {
            switch self { case .opened(let e): e; case .deposited(let e): e; case .withdrawn(let e): e }
        }
    }

    struct Account: Aggregate {
        static let category = "account"
        static let initial = Account(balance: 0)
        var balance: Decimal
        func evolve(_ event: AccountEvent) -> Account {
            switch event {
            case .opened: self
            case .deposited(let deposit): Account(balance: balance + deposit.amount)
            case .withdrawn(let withdrawal): Account(balance: balance - withdrawal.amount)
            }
        }
        func decide(_ command: AccountCommand) throws(AccountRejection) -> [AccountEvent] {
            switch command {
            case .deposit(let amount): return [.deposited(Deposited(amount: amount))]
            case .withdraw(let amount):
                guard amount <= balance else { throw .insufficientFunds }
                return [.withdrawn(Withdrawn(amount: amount))]
            }
        }
    }

    struct Request { let id = UUID(); let traceID = "trace-1" }

    static func repository(store: EventStore) async throws {
        let accounts = Repository<Account>(store)
        try await accounts.execute(.deposit(500), on: "42")
        let account = try accounts.load("42").state
        _ = account
    }

    static func context(store: EventStore, request: Request) async throws {
        let accounts = Repository<Account>(store)
        let context = CommandContext(commandID: request.id, correlationID: request.traceID, user: "ann")
        try await accounts.execute(.deposit(500), on: "42", context: context)
    }

    static func scenario() throws {
        try Scenario<Account>
            .given(.opened(AccountOpened(owner: "Ann")), .deposited(Deposited(amount: 500)))
            .when(.withdraw(200))
            .then(.withdrawn(Withdrawn(amount: 200)))
        try Scenario<Account>.given().when(.withdraw(1)).thenRejects()
    }
}

// MARK: Schema evolution (DomainEvent, Upcasters)

enum EvolutionDocs {
    struct Deposited: DomainEvent {
        static let eventType = "Deposited"
        static let schemaVersion = 2
        static let upcasters = Upcasters()
            .renaming("MoneyDeposited", to: "Deposited")
            .upcasting("Deposited", from: 1) { json in json["currency"] = "EUR" }   // v1 → v2
        var amount: Decimal
        var currency: String
    }

    struct DepositedUpcasters {
        static let upcasters = Upcasters()
            .renaming("MoneyDeposited", to: "Deposited")
            .upcasting("Deposited", from: 1) { payload in payload["currency"] = "EUR" }   // v1 → v2
    }
}

// MARK: A library (EitherFamily, CommandFailing)

enum LibraryDocs {
    struct BookBorrowed: DomainEvent { static let eventType = "BookBorrowed"; var book: String; var member: String }
    struct MemberJoined: DomainEvent { static let eventType = "MemberJoined"; var member: String }
    struct LoanRecorded: DomainEvent { static let eventType = "LoanRecorded"; var book: String }
    enum BookEvent: EventFamily {
        case borrowed(BookBorrowed)
        static let members: [EventMember<BookEvent>] = [.member(BookBorrowed.self, BookEvent.borrowed)]
        var event: any DomainEvent { switch self { case .borrowed(let e): e } }
    }
    enum MemberEvent: EventFamily {
        case joined(MemberJoined), recorded(LoanRecorded)
        static let members: [EventMember<MemberEvent>] = [
            .member(MemberJoined.self, MemberEvent.joined), .member(LoanRecorded.self, MemberEvent.recorded),
        ]
        var event: any DomainEvent { switch self { case .joined(let e): e; case .recorded(let e): e } }
    }
    enum BookCommand { case borrow(member: String) }
    enum MemberCommand { case recordLoan(book: String) }
    struct Book: Aggregate {
        static let category = "book"
        static let initial = Book()
        var lentTo: String?
        func evolve(_ event: BookEvent) -> Book { Book(lentTo: { if case .borrowed(let e) = event { e.member } else { nil } }()) }
        func decide(_ command: BookCommand) throws(CancellationError) -> [BookEvent] {
            guard case .borrow(let member) = command, lentTo == nil else { throw CancellationError() }
            return [.borrowed(BookBorrowed(book: "b", member: member))]
        }
    }
    struct Member: Aggregate {
        static let category = "member"
        static let initial = Member()
        func evolve(_ event: MemberEvent) -> Member { self }
        func decide(_ command: MemberCommand) throws(CancellationError) -> [MemberEvent] {
            guard case .recordLoan(let book) = command else { throw CancellationError() }
            return [.recorded(LoanRecorded(book: book))]
        }
    }

    struct LoansView: Projection {
        struct State: Codable, Sendable { var loans: [String: String] = [:]; var members: Set<String> = [] }
        static let name = "loans"
        static let version = 1
        static let initialState = State()
        typealias Event = EitherFamily<BookEvent, MemberEvent>
        static func apply(_ event: Event, recorded: RecordedEvent, to state: inout State) {
            switch event {
            case .first(.borrowed(let borrowed)): state.loans[borrowed.book] = borrowed.member
            case .second(.joined(let joined)): state.members.insert(joined.member)
            default: break
            }
        }
    }

    static func failures(store: EventStore) async throws {
        let books = Repository<Book>(store)
        let members = Repository<Member>(store)
        do {
            try await books.execute(.borrow(member: "m1"), on: "b1")
            try await members.execute(.recordLoan(book: "b1"), on: "m1")
        } catch let error as any CommandFailing {
            switch error.failure {
            case .rejected(let rejection): print("refused: \(rejection)")
            case .tooManyConflicts, .append, .read, .decoding, .encoding: throw error
            }
        }
    }
}

// MARK: Orders (Projection, ProjectionRunner, StoreService)

enum OrderDocs {
    struct Placed: DomainEvent { static let eventType = "Placed"; var customer: String }
    struct Shipped: DomainEvent { static let eventType = "Shipped"; var carrier: String }
    enum OrderEvent: EventFamily {
        case placed(Placed), shipped(Shipped)
        static let members: [EventMember<OrderEvent>] = [.member(Placed.self, OrderEvent.placed), .member(Shipped.self, OrderEvent.shipped)]
        var event: any DomainEvent { switch self { case .placed(let e): e; case .shipped(let e): e } }
    }
    struct OrderSummary: Codable, Sendable { var customer = ""; var shipped = false }
    struct OrderDraft { var customer: String }
    enum OrderCommand { case place(OrderDraft), ship(carrier: String, trackingNumber: String) }
    struct Order: Aggregate {
        static let category = "order"
        static let initial = Order()
        func evolve(_ event: OrderEvent) -> Order { self }
        func decide(_ command: OrderCommand) throws(CancellationError) -> [OrderEvent] {
            switch command {
            case .place(let draft): [.placed(Placed(customer: draft.customer))]
            case .ship(let carrier, _): [.shipped(Shipped(carrier: carrier))]
            }
        }
    }

    struct OrdersView: Projection {
        typealias Event = OrderEvent
        static let name = "orders-view"
        static let version = 1
        static let initialState: [String: OrderSummary] = [:]
        static func apply(_ event: OrderEvent, recorded: RecordedEvent, to state: inout [String: OrderSummary]) {
            switch event {
            case .placed(let placed): state[recorded.stream] = OrderSummary(customer: placed.customer)
            case .shipped: state[recorded.stream]?.shipped = true
            }
        }
    }

    static func readYourWrites(store: EventStore) async throws {
        let orders = Repository<Order>(store)
        let runner = ProjectionRunner<OrdersView>(store: store)
        let task = Task { try await runner.run() }
        let result = try await orders.execute(.ship(carrier: "UPS", trackingNumber: "1Z"), on: "3")
        if let position = result.lastPosition { try await store.waitUntilProjected(OrdersView.self, through: position) }
        task.cancel()
    }

    static func readYourWritesByName(store: EventStore, order: OrderDraft) async throws {
        let orders = Repository<Order>(store)
        let result = try await orders.execute(.place(order), on: "123")
        if let position = result.lastPosition { try await store.waitUntilProjected("orders-view", through: position) }
    }

    static func serviceGroup(path: String, logger: Logger, brokers: String) async throws {
        let runner = ProjectionRunner<OrdersView>(store: try EventStore.open(at: path + "-view"))
        let relay = KafkaRelay(store: try EventStore.open(at: path + "-relay"), configuration: KafkaRelayConfiguration(brokers: brokers))
        let store = try EventStore.open(at: path)
        let group = ServiceGroup(configuration: .init(
            services: [StoreService(store: store, compactionInterval: .seconds(3600)), runner, relay],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

// Scenario compares events.
extension AccountDocs.AccountEvent: Equatable {}

// MARK: Decisions

enum LendingDocs {
    struct BookLoaned: DomainEvent {
        static let eventType = "BookLoaned"
        var book: String
        var member: String
        var tags: [String] { ["book:\(book)", "member:\(member)"] }
    }

    struct BookGivenBack: DomainEvent {
        static let eventType = "BookGivenBack"
        var book: String
        var member: String
    }

    enum LendingEvent: EventFamily {
        case loaned(BookLoaned), givenBack(BookGivenBack)
        static let members: [EventMember<LendingEvent>] = [
            .member(BookLoaned.self, LendingEvent.loaned), .member(BookGivenBack.self, LendingEvent.givenBack),
        ]
        var event: any DomainEvent {
            switch self {
            case .loaned(let event): event
            case .givenBack(let event): event
            }
        }
    }

    enum LendingRejection: Error { case loanLimitReached }

    static func decide(store: EventStore) async throws {
        // "A member holds at most 3 books": the member's loans and returns, whatever the book.
        let loans = DecisionModel<LendingEvent, Set<String>>(
            query: EventQuery(types: ["BookLoaned", "BookGivenBack"], tags: ["member:42"]),
            initialState: []
        ) { books, event in
            switch event {
            case .loaned(let loan): books.union([loan.book])
            case .givenBack(let back): books.subtracting([back.book])
            }
        }
        let decisions = Decisions<LendingEvent>(store: store)
        try await decisions.execute(loans) { books in
            guard books.count < 3 else { throw LendingRejection.loanLimitReached }
            return [DecidedEvent(.loaned(BookLoaned(book: "b-7", member: "42")), to: "book-b-7")]
        }
    }
}

