/// An aggregate as a pure decider: state folded from its events, commands decided against
/// that state. No I/O: ``Repository`` loads and saves, ``Scenario`` tests.
///
/// ```swift
/// struct Account: Aggregate {
///     static let category = "account"
///     static let initial = Account(balance: 0)
///     var balance: Decimal
///     func evolve(_ event: AccountEvent) -> Account { … }
///     func decide(_ command: AccountCommand) throws(AccountRejection) -> [AccountEvent] { … }
/// }
/// ```
public protocol Aggregate: Sendable {
    /// The aggregate's events.
    associatedtype Event: EventFamily
    /// What callers ask of it.
    associatedtype Command: Sendable
    /// Why it refuses a command.
    associatedtype Rejection: Error

    /// The stream category: aggregate `id` lives in stream `"\(category)-\(id)"`.
    static var category: String { get }
    /// The state before any event.
    static var initial: Self { get }
    /// The state after `event`.
    func evolve(_ event: Event) -> Self
    /// The state after an event this code does not know (default: unchanged). Never a crash.
    func evolve(unknown event: UnknownEvent) -> Self
    /// The events that carry out `command`, or a rejection. Must not depend on anything but
    /// the state and the command: it may run again after a concurrent change.
    func decide(_ command: Command) throws(Rejection) -> [Event]
}

extension Aggregate {
    /// Ignores events this code does not know: the state stays as it was.
    public func evolve(unknown event: UnknownEvent) -> Self { self }

    /// The state after `events`, from ``initial``.
    public static func fold<Events: Sequence>(_ events: Events) -> Self where Events.Element == Event {
        events.reduce(initial) { $0.evolve($1) }
    }

    /// The stream that holds aggregate `id`.
    public static func stream(for id: String) -> String { "\(category)-\(id)" }
}
