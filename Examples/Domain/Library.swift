import Annals
import Foundation

// A lending library: books and members are aggregates of their own; a member holds at most
// three books; the loans view reads both families. Schema evolution: `BookAdded` gained an
// author in version 2.

public struct BookAdded: DomainEvent, Equatable {
    public static let eventType = "BookAdded"
    public static let schemaVersion = 2
    public static let upcasters = Upcasters()
        .renaming("TitleCatalogued", to: "BookAdded")
        .upcasting("BookAdded", from: 1) { json in json["author"] = "unknown" }
    public var title: String
    public var author: String
    public init(title: String, author: String) {
        self.title = title
        self.author = author
    }
}

public struct BookLent: DomainEvent, Equatable {
    public static let eventType = "BookLent"
    public var member: String
    public init(member: String) { self.member = member }
}

public struct BookReturned: DomainEvent, Equatable {
    public static let eventType = "BookReturned"
    public var member: String
    public init(member: String) { self.member = member }
}

public enum BookEvent: EventFamily, Equatable {
    case added(BookAdded), lent(BookLent), returned(BookReturned)
    public static let members: [EventMember<BookEvent>] = [
        .member(BookAdded.self, BookEvent.added), .member(BookLent.self, BookEvent.lent),
        .member(BookReturned.self, BookEvent.returned),
    ]
    public var event: any DomainEvent {
        switch self {
        case .added(let event): event
        case .lent(let event): event
        case .returned(let event): event
        }
    }
}

public enum BookCommand: Sendable {
    case add(title: String, author: String)
    case lend(to: String)
    case giveBack(by: String)
}

public enum BookRejection: Error, Equatable, Sendable {
    case alreadyInCatalog, notInCatalog
    case alreadyLent(to: String)
    case notLentTo(String)
}

public struct Book: Aggregate, Equatable {
    public static let category = "book"
    public static let initial = Book()
    public var title: String?
    public var author: String?
    public var lentTo: String?

    public func evolve(_ event: BookEvent) -> Book {
        var next = self
        switch event {
        case .added(let added):
            next.title = added.title
            next.author = added.author
        case .lent(let lent): next.lentTo = lent.member
        case .returned: next.lentTo = nil
        }
        return next
    }

    public func decide(_ command: BookCommand) throws(BookRejection) -> [BookEvent] {
        switch command {
        case .add(let title, let author):
            guard self.title == nil else { throw .alreadyInCatalog }
            return [.added(BookAdded(title: title, author: author))]
        case .lend(let member):
            guard title != nil else { throw .notInCatalog }
            if let lentTo { throw .alreadyLent(to: lentTo) }
            return [.lent(BookLent(member: member))]
        case .giveBack(let member):
            guard lentTo == member else { throw .notLentTo(member) }
            return [.returned(BookReturned(member: member))]
        }
    }
}

public struct MemberJoined: DomainEvent, Equatable {
    public static let eventType = "MemberJoined"
    public var name: String
    public init(name: String) { self.name = name }
}

public struct LoanStarted: DomainEvent, Equatable {
    public static let eventType = "LoanStarted"
    public var book: String
    public init(book: String) { self.book = book }
}

public struct LoanEnded: DomainEvent, Equatable {
    public static let eventType = "LoanEnded"
    public var book: String
    public init(book: String) { self.book = book }
}

public enum MemberEvent: EventFamily, Equatable {
    case joined(MemberJoined), loanStarted(LoanStarted), loanEnded(LoanEnded)
    public static let members: [EventMember<MemberEvent>] = [
        .member(MemberJoined.self, MemberEvent.joined), .member(LoanStarted.self, MemberEvent.loanStarted),
        .member(LoanEnded.self, MemberEvent.loanEnded),
    ]
    public var event: any DomainEvent {
        switch self {
        case .joined(let event): event
        case .loanStarted(let event): event
        case .loanEnded(let event): event
        }
    }
}

public enum MemberCommand: Sendable {
    case join(name: String)
    case startLoan(book: String)
    case endLoan(book: String)
}

public enum MemberRejection: Error, Equatable, Sendable {
    case alreadyMember, notAMember
    case loanLimitReached(limit: Int)
    case notHolding(String)
}

public struct Member: Aggregate, Equatable, Codable {
    public static let category = "member"
    public static let initial = Member()
    /// A member holds at most this many books.
    public static let loanLimit = 3
    public var name: String?
    public var holding: Set<String> = []

    public func evolve(_ event: MemberEvent) -> Member {
        var next = self
        switch event {
        case .joined(let joined): next.name = joined.name
        case .loanStarted(let loan): next.holding.insert(loan.book)
        case .loanEnded(let loan): next.holding.remove(loan.book)
        }
        return next
    }

    public func decide(_ command: MemberCommand) throws(MemberRejection) -> [MemberEvent] {
        switch command {
        case .join(let name):
            guard self.name == nil else { throw .alreadyMember }
            return [.joined(MemberJoined(name: name))]
        case .startLoan(let book):
            guard name != nil else { throw .notAMember }
            if holding.contains(book) { return [] }
            guard holding.count < Self.loanLimit else { throw .loanLimitReached(limit: Self.loanLimit) }
            return [.loanStarted(LoanStarted(book: book))]
        case .endLoan(let book):
            guard holding.contains(book) else { throw .notHolding(book) }
            return [.loanEnded(LoanEnded(book: book))]
        }
    }
}

extension Member: SnapshottingAggregate {
    public static let snapshotSchemaVersion = 1
}

/// Who holds which book, from both families.
public struct LoansView: Projection {
    public struct State: Codable, Sendable, Equatable {
        public var titles: [String: String] = [:]
        public var lentTo: [String: String] = [:]
        public var members: Set<String> = []
    }
    public typealias Event = EitherFamily<BookEvent, MemberEvent>
    public static let name = "loans-view"
    public static let version = 1
    public static let initialState = State()

    public static func apply(_ event: Event, recorded: RecordedEvent, to state: inout State) {
        let id = String(recorded.stream.drop(while: { $0 != "-" }).dropFirst())
        switch event {
        case .first(.added(let added)): state.titles[id] = added.title
        case .first(.lent(let lent)): state.lentTo[id] = lent.member
        case .first(.returned): state.lentTo[id] = nil
        case .second(.joined): state.members.insert(id)
        case .second: break
        }
    }
}
