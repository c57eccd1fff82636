/// Selects events by type and tag across streams: what ``EventStore/read(matching:from:limit:)``
/// reads and what an ``AppendCondition`` guards (the Dynamic Consistency Boundary model).
///
/// A query is a list of items joined by OR; an event matches an item when its type is one of
/// the item's types (any type when the item names none) and it carries every one of the
/// item's tags. The empty query, and any query with an item that names neither types nor tags,
/// matches every event.
///
/// ```swift
/// // Every loan and return of member 42, whatever the book.
/// let memberLoans = EventQuery(types: ["BookLent", "BookReturned"], tags: ["member:42"])
/// ```
public struct EventQuery: Sendable, Hashable, CustomStringConvertible {
    /// One alternative of a query.
    public struct Item: Sendable, Hashable {
        /// Event types, any of which matches (empty: every type).
        public var types: [String]
        /// Tags that a matching event carries, all of them (empty: no tag required).
        public var tags: [String]

        /// An item matching events of any of `types` carrying all of `tags`.
        public init(types: [String] = [], tags: [String] = []) {
            self.types = types
            self.tags = tags
        }

        /// True when the item names neither types nor tags: it matches every event.
        public var matchesEverything: Bool { types.isEmpty && tags.isEmpty }

        /// True when an event of `type` carrying `tags` matches. Names are compared byte for
        /// byte (UTF-8), as the store compares them: two Unicode spellings of the same text
        /// are different names.
        public func matches(type: String, tags eventTags: [String]) -> Bool {
            (types.isEmpty || types.contains { $0.utf8.elementsEqual(type.utf8) })
                && tags.allSatisfy { tag in eventTags.contains { $0.utf8.elementsEqual(tag.utf8) } }
        }
    }

    /// The alternatives (OR). Empty: every event.
    public var items: [Item]

    /// A query of `items`, joined by OR.
    public init(_ items: [Item]) { self.items = items }

    /// A query of one item: events of any of `types` (every type when empty) carrying all of `tags`.
    public init(types: [String] = [], tags: [String] = []) { self.items = [Item(types: types, tags: tags)] }

    /// Matches every event.
    public static let all = EventQuery([])

    /// True when every event matches.
    public var matchesEverything: Bool { items.isEmpty || items.contains(where: \.matchesEverything) }

    /// True when an event of `type` carrying `tags` matches.
    public func matches(type: String, tags: [String]) -> Bool {
        items.isEmpty || items.contains { $0.matches(type: type, tags: tags) }
    }

    /// True when `event` matches.
    public func matches(_ event: RecordedEvent) -> Bool {
        matchesEverything || matches(type: event.type, tags: event.tags)
    }

    public var description: String {
        guard !items.isEmpty else { return "every event" }
        return items.map { item in
            let types = item.types.isEmpty ? "any type" : item.types.joined(separator: " or ")
            return item.tags.isEmpty ? "(\(types))" : "(\(types) tagged \(item.tags.joined(separator: " and ")))"
        }.joined(separator: " or ")
    }
}

/// The condition of a conditional append (``EventStore/append(_:condition:)``): it succeeds only
/// when no event matching ``failIfEventsMatch`` was stored after ``after``.
public struct AppendCondition: Sendable, Hashable {
    /// The events whose presence makes the append fail.
    public var failIfEventsMatch: EventQuery
    /// The position the decision was made at: events at positions after it count. Nil: any
    /// matching event counts (a uniqueness guard).
    public var after: UInt64?

    /// Fail when an event matching `query` is stored after position `after` (anywhere when nil).
    public init(failIfEventsMatch query: EventQuery, after: UInt64? = nil) {
        self.failIfEventsMatch = query
        self.after = after
    }
}
