import Annals
import Foundation

/// The lending library under load: tasks borrow and return books at random, as members of a
/// library would, each command with an id (and one in twenty sent twice, as a duplicate
/// message), while the loans view follows live. Checks the invariants at the end and says
/// how many commands a second it ran.
public struct LibraryTrial: Sendable {
    /// What a run did.
    public struct Report: Sendable, CustomStringConvertible {
        /// Repository commands executed (duplicates included).
        public var commands = 0
        /// Commands the aggregates refused (a book already lent, a member at the limit).
        public var rejected = 0
        /// Duplicate commands recognised as repeats.
        public var repeats = 0
        /// Books lent at the end.
        public var loans = 0
        /// Checkpoints the loans view committed.
        public var viewCheckpoints: UInt64 = 0
        public var seconds = 0.0
        /// Invariants that did not hold (empty: all held).
        public var violations: [String] = []

        public var commandsPerSecond: Double { Double(commands) / max(seconds, 1e-9) }

        public var description: String {
            "\(commands) commands (\(rejected) refused, \(repeats) duplicates recognised) from the tasks in "
                + String(format: "%.2f s: %.0f commands/s; ", seconds, commandsPerSecond)
                + "\(loans) loans at the end, \(viewCheckpoints) view checkpoints; "
                + (violations.isEmpty ? "every invariant held" : "VIOLATED: \(violations.joined(separator: "; "))")
        }
    }

    public let books: Int
    public let members: Int
    public let operations: Int
    public let tasks: Int
    public let seed: UInt64

    /// A trial of `operations` borrow-or-return operations (one to three commands each) from
    /// `tasks` tasks over `books` books and `members` members.
    public init(books: Int = 600, members: Int = 200, operations: Int = 6_000, tasks: Int = 8, seed: UInt64 = 1) {
        self.books = books
        self.members = members
        self.operations = operations
        self.tasks = tasks
        self.seed = seed
    }

    /// Runs the trial on `store` (an empty one).
    public func run(on store: EventStore) async throws -> Report {
        let bookRepository = Repository<Book>(store)
        let memberRepository = Repository<Member>(store, snapshots: .every(20))
        // The first tenth of the catalogue was written by the app's first version.
        for index in 0..<books {
            if index < books / 10 {
                let payload = Array(#"{"title":"Old title \#(index)"}"#.utf8)
                _ = try await store.append([EventData(type: "TitleCatalogued", payload: payload,
                                                      metadata: Array(#"{"schemaVersion":1}"#.utf8))], to: Book.stream(for: "b\(index)"))
            } else {
                try await bookRepository.execute(.add(title: "Title \(index)", author: "Author \(index % 37)"), on: "b\(index)")
            }
        }
        for index in 0..<members { try await memberRepository.execute(.join(name: "Member \(index)"), on: "m\(index)") }
        let runner = ProjectionRunner<LoansView>(store: store)
        let view = Task { try await runner.run() }

        let started = ContinuousClock.now
        let totals = try await withThrowingTaskGroup(of: Report.self) { group in
            for task in 0..<tasks {
                group.addTask {
                    var random = SplitMix(seed: seed &+ UInt64(task) &* 0x9E37_79B9)
                    var report = Report()
                    for _ in 0..<(operations / tasks) {
                        let member = "m\(random.next(below: members))"
                        let book = "b\(random.next(below: books))"
                        let duplicate = random.next(below: 20) == 0
                        if random.next(below: 2) == 0 {
                            // A member returns one of the books they hold (when they hold any).
                            let holding = try memberRepository.load(member).state.holding.sorted()
                            guard !holding.isEmpty else { continue }
                            try await giveBack(holding[random.next(below: holding.count)], by: member, books: bookRepository,
                                               members: memberRepository, report: &report, duplicate: duplicate)
                        } else {
                            try await borrow(book, for: member, books: bookRepository, members: memberRepository, report: &report,
                                             duplicate: duplicate)
                        }
                    }
                    return report
                }
            }
            var totals = Report()
            for try await report in group {
                totals.commands += report.commands
                totals.rejected += report.rejected
                totals.repeats += report.repeats
            }
            return totals
        }
        var report = totals
        let elapsed = ContinuousClock.now - started
        report.seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        try await store.waitUntilProjected(LoansView.self, through: store.endPosition - 1)
        await runner.stop()
        try await view.value
        report.viewCheckpoints = (store.lastRevision(of: LoansView.checkpointStream) ?? 0) + 1
        report.violations = try check(store, view: await runner.state, books: bookRepository, members: memberRepository)
        report.loans = await runner.state.lentTo.count
        return report
    }

    /// Member first (the limit of three), then the book. When the book is lent to someone
    /// else, the loan this call started is undone; a loan it did not start (the member already
    /// held the book, or another task of the same member started it) is left alone.
    private func borrow(
        _ book: String, for member: String, books: Repository<Book>, members: Repository<Member>, report: inout Report, duplicate: Bool
    ) async throws {
        let loan = CommandContext(commandID: UUID(), user: member)
        guard case .done(let started) = try await execute(.startLoan(book: book), on: member, in: members, context: loan,
                                                            report: &report, duplicate: duplicate)
        else { return }
        let lend = CommandContext(commandID: UUID(), correlationID: loan.commandID?.uuidString, user: member)
        let lent = try await execute(.lend(to: member), on: book, in: books, context: lend, report: &report, duplicate: duplicate)
        guard case .refused(let rejection) = lent, !started.events.isEmpty,
              rejection as? BookRejection != .alreadyLent(to: member) else { return }
        let undo = CommandContext(commandID: UUID(), correlationID: loan.commandID?.uuidString, user: member)
        _ = try await execute(.endLoan(book: book), on: member, in: members, context: undo, report: &report, duplicate: false)
    }

    /// The book first, then the member's loan.
    private func giveBack(
        _ book: String, by member: String, books: Repository<Book>, members: Repository<Member>, report: inout Report, duplicate: Bool
    ) async throws {
        let giveBack = CommandContext(commandID: UUID(), user: member)
        guard case .done = try await execute(.giveBack(by: member), on: book, in: books, context: giveBack, report: &report,
                                             duplicate: duplicate)
        else { return }
        let end = CommandContext(commandID: UUID(), correlationID: giveBack.commandID?.uuidString, user: member)
        _ = try await execute(.endLoan(book: book), on: member, in: members, context: end, report: &report, duplicate: duplicate)
    }

    private enum Outcome<A: Aggregate> {
        case done(Executed<A>)
        case refused(any Error)
    }

    /// Executes (twice when `duplicate`). Errors other than a refusal end the trial.
    private func execute<A: Aggregate>(
        _ command: A.Command, on id: String, in repository: Repository<A>, context: CommandContext, report: inout Report,
        duplicate: Bool
    ) async throws -> Outcome<A> {
        do {
            report.commands += 1
            let first = try await repository.execute(command, on: id, context: context)
            if duplicate {
                report.commands += 1
                let again = try await repository.execute(command, on: id, context: context)
                if again.isRepeat || again.events.isEmpty { report.repeats += 1 }
                if again.append != first.append, !again.events.isEmpty { throw TrialFailure("a duplicate of a command was written twice") }
            }
            return .done(first)
        } catch let error as any CommandFailing {
            guard case .rejected(let rejection) = error.failure else { throw error }
            report.rejected += 1
            return .refused(rejection)
        }
    }

    private func check(
        _ store: EventStore, view: LoansView.State, books: Repository<Book>, members: Repository<Member>
    ) throws -> [String] {
        var violations: [String] = []
        var lent: [String: String] = [:]
        for index in 0..<self.books {
            let book = try books.load("b\(index)").state
            if book.title == nil { violations.append("b\(index) lost its title") }
            if index < self.books / 10, book.author != "unknown" { violations.append("b\(index) was not upcast") }
            if let member = book.lentTo { lent["b\(index)"] = member }
        }
        var held: [String: String] = [:]
        for index in 0..<self.members {
            let member = try members.load("m\(index)").state
            if member.holding.count > Member.loanLimit { violations.append("m\(index) holds \(member.holding.count) books") }
            for book in member.holding {
                if let other = held[book] { violations.append("\(book) held by m\(index) and \(other)") }
                held[book] = "m\(index)"
            }
        }
        if held != lent { violations.append("members' loans and books' loans differ") }
        if view.lentTo != lent { violations.append("the loans view differs from the books") }
        if view.titles.count != self.books || view.members.count != self.members { violations.append("the loans view misses books or members") }
        return violations
    }
}

struct TrialFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A small seeded generator (SplitMix64), so a trial can be run again exactly.
struct SplitMix {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }
    mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
