import Annals
import AnnalsStorage

// Lending without aggregates: a rule spanning streams, kept by the Dynamic Consistency Boundary.
// Each book's loans go to its own stream, and a member may hold at most three books: the rule
// reads the book's events and the member's, across every book stream, and every loan is
// appended on condition that none of those changed since they were read.

/// A lending event: one book, one member, tagged with both.
public protocol LoanEvent: DomainEvent, Equatable {
    var book: String { get }
    var member: String { get }
}

extension LoanEvent {
    public var tags: [String] { ["book:\(book)", "member:\(member)"] }
}

public struct BookLoaned: LoanEvent {
    public static let eventType = "BookLoaned"
    public var book: String
    public var member: String
    public init(book: String, member: String) { (self.book, self.member) = (book, member) }
}

public struct BookGivenBack: LoanEvent {
    public static let eventType = "BookGivenBack"
    public var book: String
    public var member: String
    public init(book: String, member: String) { (self.book, self.member) = (book, member) }
}

public enum LendingEvent: EventFamily, Equatable {
    case loaned(BookLoaned), givenBack(BookGivenBack)
    public static let members: [EventMember<LendingEvent>] = [
        .member(BookLoaned.self, LendingEvent.loaned), .member(BookGivenBack.self, LendingEvent.givenBack),
    ]
    public var event: any DomainEvent {
        switch self {
        case .loaned(let event): event
        case .givenBack(let event): event
        }
    }
}

public enum LendingRejection: Error, Equatable, Sendable {
    case alreadyLent(to: String)
    case loanLimitReached(limit: Int)
    case notHolding(book: String)
}

/// Lends and takes back books, one decision per request, from any number of tasks at once.
public struct LendingDesk: Sendable {
    /// A member holds at most this many books.
    public static let loanLimit = 3

    /// What a loan decision knows: who holds the book, and which books the member holds.
    public struct State: Sendable, Equatable {
        public var holder: String?
        public var memberBooks: Set<String> = []
    }

    let decisions: Decisions<LendingEvent>

    /// A desk on `store`; a request meeting concurrent writers is decided again up to
    /// `maximumAttempts` times.
    public init(store: EventStore, maximumAttempts: Int = 20) { decisions = Decisions(store: store, maximumAttempts: maximumAttempts) }

    /// The book's loans and the member's loans, whatever the book: the decision's boundary.
    static func model(book: String, member: String) -> DecisionModel<LendingEvent, State> {
        let types = [BookLoaned.eventType, BookGivenBack.eventType]
        return DecisionModel(
            query: EventQuery([EventQuery.Item(types: types, tags: ["book:\(book)"]), EventQuery.Item(types: types, tags: ["member:\(member)"])]),
            initialState: State()
        ) { state, event in
            var next = state
            switch event {
            case .loaned(let loan):
                if loan.book == book { next.holder = loan.member }
                if loan.member == member { next.memberBooks.insert(loan.book) }
            case .givenBack(let back):
                if back.book == book { next.holder = nil }
                if back.member == member { next.memberBooks.remove(back.book) }
            }
            return next
        }
    }

    /// Lends `book` to `member`: refused when someone holds it or the member holds
    /// ``loanLimit`` books.
    @discardableResult
    public func lend(book: String, to member: String) async throws -> [AppendResult] {
        try await decisions.execute(Self.model(book: book, member: member)) { state in
            if let holder = state.holder { throw LendingRejection.alreadyLent(to: holder) }
            guard state.memberBooks.count < Self.loanLimit else { throw LendingRejection.loanLimitReached(limit: Self.loanLimit) }
            return [DecidedEvent(.loaned(BookLoaned(book: book, member: member)), to: "book-\(book)")]
        }
    }

    /// Takes `book` back from `member`: refused when the member does not hold it.
    @discardableResult
    public func giveBack(book: String, by member: String) async throws -> [AppendResult] {
        try await decisions.execute(Self.model(book: book, member: member)) { state in
            guard state.holder == member else { throw LendingRejection.notHolding(book: book) }
            return [DecidedEvent(.givenBack(BookGivenBack(book: book, member: member)), to: "book-\(book)")]
        }
    }
}
