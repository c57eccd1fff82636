/// An event type of the domain: a value with a stable wire name and a schema version.
///
/// The wire name (``eventType``) is what the store records as the event's type, so it must
/// never change once events were written; the Swift type may be renamed freely. Older schema
/// versions and former wire names are read through the type's own ``upcasters``, declared once
/// with the type and applied wherever it is decoded (repositories, projection runners,
/// translators): no component can be built without them.
///
/// ```swift
/// struct Deposited: DomainEvent {
///     static let eventType = "Deposited"
///     static let schemaVersion = 2
///     static let upcasters = Upcasters()
///         .renaming("MoneyDeposited", to: "Deposited")
///         .upcasting("Deposited", from: 1) { json in json["currency"] = "EUR" }   // v1 → v2
///     var amount: Decimal
///     var currency: String
/// }
/// ```
public protocol DomainEvent: Codable, Sendable {
    /// The stable wire name recorded with every event of this type.
    static var eventType: String { get }
    /// The schema version this Swift type reads and writes (default 1). Older versions are
    /// brought up to it by ``upcasters`` when read.
    static var schemaVersion: Int { get }
    /// How events recorded with an older schema version of this type, or under one of its
    /// former wire names, are brought up to date when read (default: none). Only entries for
    /// this type's wire name (and renames to it) belong here.
    static var upcasters: Upcasters { get }
    /// The event's tags (such as `member:42`), stored with it: what ``DecisionModel`` queries
    /// and ``SubscriptionFilter/matching(_:)`` select events by across streams. Default none.
    /// Tags are stored in the clear: keep personal data out of them (or hash them with
    /// `EventStore.keyedTag(_:)`).
    var tags: [String] { get }
    /// The data subject whose personal data the event carries (such as `customer-42`): its
    /// payload and metadata are then encrypted under that subject's key, and erased when the
    /// subject is forgotten (`EventStore.forget(subject:)`; needs `StoreOptions.encryption`).
    /// Default nil.
    var subject: String? { get }
}

extension DomainEvent {
    /// Version 1 unless the type says otherwise.
    public static var schemaVersion: Int { 1 }
    /// No older versions or names unless the type says otherwise.
    public static var upcasters: Upcasters { Upcasters() }
    /// No tags unless the type says otherwise.
    public var tags: [String] { [] }
    /// No data subject unless the type says otherwise.
    public var subject: String? { nil }
}

/// The closed set of event types one aggregate (or projection) understands, usually an enum
/// with one case per event type.
///
/// ```swift
/// enum AccountEvent: EventFamily {
///     case opened(AccountOpened), deposited(Deposited), withdrawn(Withdrawn)
///     static let members: [EventMember<AccountEvent>] = [
///         .member(AccountOpened.self, AccountEvent.opened),
///         .member(Deposited.self, AccountEvent.deposited),
///         .member(Withdrawn.self, AccountEvent.withdrawn),
///     ]
///     var event: any DomainEvent {
///         switch self { case .opened(let e): e; case .deposited(let e): e; case .withdrawn(let e): e }
///     }
/// }
/// ```
public protocol EventFamily: Sendable {
    /// Every member type, with how to wrap a decoded value. Wire names must be distinct.
    static var members: [EventMember<Self>] { get }
    /// The domain event this value carries.
    var event: any DomainEvent { get }
}

/// One event type of an ``EventFamily``: its wire name, schema version and decoder.
public struct EventMember<Family: EventFamily>: Sendable {
    /// The wire name.
    public let eventType: String
    /// The schema version the member's Swift type reads.
    public let schemaVersion: Int
    /// The member's ``DomainEvent/upcasters``.
    public let upcasters: Upcasters
    let decode: @Sendable ([UInt8], any EventCodec) throws -> Family

    /// The member for `type`, wrapped into the family by `wrap` (usually the enum case).
    public static func member<Event: DomainEvent>(_ type: Event.Type, _ wrap: @escaping @Sendable (Event) -> Family) -> Self {
        EventMember(eventType: Event.eventType, schemaVersion: Event.schemaVersion, upcasters: Event.upcasters) { bytes, codec in
            wrap(try codec.decode(Event.self, from: bytes))
        }
    }
}

/// An event whose type (or schema version) the reading code does not know. Surfaces
/// instead of a crash or a silent skip; an aggregate decides what it means (by default,
/// nothing: see ``Aggregate/evolve(unknown:)``).
public struct UnknownEvent: Sendable, Hashable {
    /// Why it could not be decoded as a family member.
    public enum Reason: Sendable, Hashable {
        /// No member has this wire name (after renames).
        case unknownType
        /// Written with a newer schema version than the member reads.
        case newerSchemaVersion(known: Int)
        /// Its body was erased: it named a data subject whose key was destroyed
        /// (`EventStore.forget(subject:)`). The payload is empty and the schema version 0; the
        /// type, stream, revision and position are the event's. An aggregate's
        /// ``Aggregate/evolve(unknown:)`` sees it (by default it changes nothing: the state
        /// folds as if the personal data had never been there); projections skip it.
        case erased
    }

    /// The recorded type (after renames).
    public let eventType: String
    /// The recorded schema version (0 for an erased event).
    public let schemaVersion: Int
    /// Why no family member decoded it.
    public let reason: Reason
    /// Global position of the event in the store.
    public let position: UInt64
    /// The stream it belongs to.
    public let stream: String
    /// Its revision in that stream.
    public let revision: UInt64
    /// The payload as stored (after any upcasting that applied).
    public let payload: [UInt8]
}
