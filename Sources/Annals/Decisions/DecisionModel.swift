/// What a decision reads: the events matching a query (across any number of streams), folded
/// into a state. The consistency boundary of the decision is the query itself (the Dynamic
/// Consistency Boundary model): two decisions conflict exactly when one stores an event the
/// other's query matches.
///
/// ```swift
/// // "A member holds at most 3 books": the member's loans and returns, whatever the book.
/// let loans = DecisionModel<LendingEvent, Set<String>>(
///     query: EventQuery(types: ["BookLoaned", "BookGivenBack"], tags: ["member:42"]),
///     initialState: []
/// ) { books, event in
///     switch event {
///     case .loaned(let loan): books.union([loan.book])
///     case .givenBack(let back): books.subtracting([back.book])
///     }
/// }
/// ```
public struct DecisionModel<Family: EventFamily, State: Sendable>: Sendable {
    /// The events the decision depends on.
    public var query: EventQuery
    /// The state before any of them.
    public var initialState: State
    /// Folds one event into the state.
    public var evolve: @Sendable (State, Family) -> State

    /// A model reading `query`, folding its events from `initialState` with `evolve`.
    public init(query: EventQuery, initialState: State, evolve: @escaping @Sendable (State, Family) -> State) {
        self.query = query
        self.initialState = initialState
        self.evolve = evolve
    }
}

/// An event a decision appends, and the stream it goes to.
public struct DecidedEvent<Family: EventFamily>: Sendable {
    /// The stream the event is appended to.
    public var stream: String
    /// The event.
    public var event: Family

    /// `event`, to append to `stream`.
    public init(_ event: Family, to stream: String) {
        self.stream = stream
        self.event = event
    }
}

/// Why ``Decisions/execute(_:metadata:decide:)`` stopped without appending.
public enum DecisionError: Error, Sendable, CustomStringConvertible {
    /// Every attempt met an event another writer stored meanwhile that the query matches.
    case tooManyConflicts(attempts: Int)
    /// An event the query matches is of a type (or schema version) this code does not know:
    /// deciding without it could break the rule, so nothing is decided.
    case unknownEvent(UnknownEvent)
    /// An event the query matches could not be decoded.
    case decoding(EventDecodingError)
    /// The store refused the append (other than a condition conflict) or a read failed.
    case store(any Error)

    public var description: String {
        switch self {
        case .tooManyConflicts(let attempts): "the decision conflicted with concurrent writers \(attempts) times"
        case .unknownEvent(let event): "an event the decision reads is unknown to this code: \(event.eventType) at position \(event.position)"
        case .decoding(let error): "\(error)"
        case .store(let error): "\(error)"
        }
    }
}
