/// The events of two families as one, for a read model over several aggregates (books and
/// members in one view) without merging their families by hand.
///
/// ```swift
/// struct LoansView: Projection {
///     typealias Event = EitherFamily<BookEvent, MemberEvent>
///     static func apply(_ event: Event, recorded: RecordedEvent, to state: inout State) {
///         switch event {
///         case .first(.borrowed(let borrowed)): state.loans[borrowed.book] = borrowed.member
///         case .second(.joined(let joined)): state.members.insert(joined.member)
///         default: break
///         }
///     }
/// }
/// ```
///
/// Wire names must be distinct across the two families; an event type both hold decodes as
/// the first's. Nest it for three or more (`EitherFamily<A, EitherFamily<B, C>>`).
public enum EitherFamily<First: EventFamily, Second: EventFamily>: EventFamily {
    case first(First)
    case second(Second)

    public static var members: [EventMember<Self>] {
        let first = First.members.map { $0.lifted { Self.first($0) } }
        let taken = Set(first.map(\.eventType))
        return first + Second.members.filter { !taken.contains($0.eventType) }.map { $0.lifted { Self.second($0) } }
    }

    public var event: any DomainEvent {
        switch self {
        case .first(let event): event.event
        case .second(let event): event.event
        }
    }
}

extension EventMember {
    /// This member as a member of a family that wraps `Family` (see ``EitherFamily``).
    func lifted<Outer: EventFamily>(_ wrap: @escaping @Sendable (Family) -> Outer) -> EventMember<Outer> {
        let decode = self.decode
        return EventMember<Outer>(eventType: eventType, schemaVersion: schemaVersion, upcasters: upcasters) { bytes, codec in
            wrap(try decode(bytes, codec))
        }
    }
}
