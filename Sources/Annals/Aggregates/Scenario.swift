/// Given/when/then for deciders, without I/O or a test framework:
///
/// ```swift
/// try Scenario<Account>
///     .given(.opened(AccountOpened(owner: "Ann")), .deposited(Deposited(amount: 500)))
///     .when(.withdraw(200))
///     .then(.withdrawn(Withdrawn(amount: 200)))
/// try Scenario<Account>.given().when(.withdraw(1)).thenRejects()
/// ```
/// `then` and `thenRejects` throw ``ScenarioFailure`` describing the difference, which any test
/// framework reports as a failure.
public struct Scenario<A: Aggregate>: Sendable {
    let history: [A.Event]

    /// The events that happened before the command.
    public static func given(_ events: A.Event...) -> Scenario { Scenario(history: events) }
    /// The events that happened before the command.
    public static func given(_ events: [A.Event]) -> Scenario { Scenario(history: events) }

    /// The state those events fold to.
    public var state: A { A.fold(history) }

    /// The command under test.
    public func when(_ command: A.Command) -> Outcome { Outcome(state: state, command: command) }

    /// What deciding the command produced.
    public struct Outcome: Sendable {
        /// The state the given events fold to.
        public let state: A
        /// The command under test.
        public let command: A.Command

        /// The decided events (or the rejection, thrown as ``ScenarioFailure``).
        public func events() throws(ScenarioFailure) -> [A.Event] {
            do { return try state.decide(command) } catch {
                throw ScenarioFailure("expected events, but the command was rejected: \(error)")
            }
        }

        /// Checks that the command produces exactly `expected`, and returns the state after them.
        @discardableResult
        public func then(_ expected: A.Event...) throws(ScenarioFailure) -> A where A.Event: Equatable {
            let produced = try events()
            guard produced == expected else {
                throw ScenarioFailure("expected \(expected), got \(produced)")
            }
            return produced.reduce(state) { $0.evolve($1) }
        }

        /// Checks that the command is rejected, optionally with a rejection equal to `expected`.
        public func thenRejects(_ expected: A.Rejection? = nil) throws(ScenarioFailure) where A.Rejection: Equatable {
            do {
                let produced = try state.decide(command)
                throw ScenarioFailure("expected a rejection, got \(produced)")
            } catch let rejection as A.Rejection {
                if let expected, rejection != expected { throw ScenarioFailure("expected rejection \(expected), got \(rejection)") }
            } catch {
                throw error as? ScenarioFailure ?? ScenarioFailure("unexpected error \(error)")
            }
        }
    }
}

/// A given/when/then expectation that did not hold.
public struct ScenarioFailure: Error, CustomStringConvertible, Sendable {
    /// What was expected and what happened.
    public let description: String
    init(_ description: String) { self.description = description }
}
