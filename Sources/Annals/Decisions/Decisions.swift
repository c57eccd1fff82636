import AnnalsStorage

/// Makes decisions that span streams, under the Dynamic Consistency Boundary: reads the events
/// a ``DecisionModel``'s query matches, folds them, lets `decide` choose the new events, and
/// appends them on condition that no event the query matches was stored after the last one
/// read. When another writer got there first, it reads again and decides again.
///
/// So a rule over several streams ("a member holds at most 3 books", "a username is unique")
/// holds however many tasks decide at once (in the one process that writes the store), without
/// a stream that every decision must go through. Thread-safe; cheap to copy.
///
/// ```swift
/// let decisions = Decisions<LendingEvent>(store: store)
/// try await decisions.execute(loans) { books in
///     guard books.count < 3 else { throw LendingRejection.loanLimitReached }
///     return [DecidedEvent(.loaned(BookLoaned(book: "b-7", member: "42")), to: "book-b-7")]
/// }
/// ```
public struct Decisions<Family: EventFamily>: Sendable {
    /// The store decided on.
    public let store: EventStore
    /// Encodes the decided events and decodes the ones read.
    public let translator: EventTranslator<Family>
    /// How many times a decision is tried when concurrent writers keep conflicting with it.
    public var maximumAttempts: Int

    /// Decisions on `store`, with `translator`, trying each up to `maximumAttempts` times.
    public init(store: EventStore, translator: EventTranslator<Family> = EventTranslator(), maximumAttempts: Int = 20) {
        self.store = store
        self.translator = translator
        self.maximumAttempts = max(1, maximumAttempts)
    }

    /// The state the model's events fold into now, and the position of the last one read (nil
    /// when none matches).
    ///
    /// - Throws: ``DecisionError``: an unknown or undecodable event the query matches, or a
    ///   read failure.
    public func load<State>(_ model: DecisionModel<Family, State>) throws(DecisionError) -> (state: State, position: UInt64?) {
        var state = model.initialState
        var last: UInt64?
        var cursor = store.read(matching: model.query).makeCursor()
        while true {
            let next: RecordedEvent?
            do { next = try cursor.next() } catch { throw .store(error) }
            guard let recorded = next else { break }
            last = recorded.position
            let typed: TypedEvent<Family>
            do { typed = try translator.decode(recorded) } catch { throw .decoding(error) }
            switch typed {
            case .known(let event, _): state = model.evolve(state, event)
            // An erased event (its data subject was forgotten) no longer counts, as in projections.
            case .unknown(let unknown) where unknown.reason == .erased: continue
            case .unknown(let unknown): throw .unknownEvent(unknown)
            }
        }
        return (state, last)
    }

    /// Decides and appends: loads the model's state, calls `decide` with it, and appends what
    /// it returns (every event to its stream, atomically) under the condition that nothing the
    /// query matches was stored since the load. On a conflict, loads and decides again.
    ///
    /// - Parameters:
    ///   - model: what the decision reads.
    ///   - metadata: metadata recorded with each decided event.
    ///   - decide: the decision; it may run more than once (keep it free of side effects). An
    ///     empty result appends nothing. Its errors (a rejection) propagate as they are.
    /// - Returns: where the events landed (empty when `decide` returned none).
    /// - Throws: what `decide` throws; ``DecisionError`` when the attempts run out, an event the
    ///   query matches is unknown, or the store fails.
    @discardableResult
    public func execute<State>(
        _ model: DecisionModel<Family, State>, metadata: EventMetadata = EventMetadata(),
        decide: (State) throws -> [DecidedEvent<Family>]
    ) async throws -> [AppendResult] {
        for _ in 0..<maximumAttempts {
            let (state, position) = try load(model)
            let decided = try decide(state)
            guard !decided.isEmpty else { return [] }
            var appends: [StreamAppend] = []
            for item in decided {
                let data = try translator.encode(item.event, metadata: metadata)
                if let last = appends.last, last.stream == item.stream {
                    appends[appends.count - 1].events.append(data)
                } else {
                    appends.append(StreamAppend(stream: item.stream, events: [data]))
                }
            }
            do {
                return try await store.append(appends, condition: AppendCondition(failIfEventsMatch: model.query, after: position))
            } catch .appendConditionFailed {
                continue
            } catch {
                throw DecisionError.store(error)
            }
        }
        throw DecisionError.tooManyConflicts(attempts: maximumAttempts)
    }
}
