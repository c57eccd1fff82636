import Foundation
import Synchronization

/// A recorded event decoded into an ``EventFamily``, or explicitly unknown.
public enum TypedEvent<Family: EventFamily>: Sendable {
    case known(Family, RecordedEvent)
    case unknown(UnknownEvent)
}

/// Encodes family events for appending and decodes recorded ones, with upcasting. One per
/// repository or projection; cheap to copy.
///
/// Decoding applies the upcasters of every member type (``DomainEvent/upcasters``). As a
/// check, every translator records the renames it knows in a process-wide list: an event whose
/// type another type in the process renames to one of this family's members, without this
/// family's member declaring the rename, throws ``EventDecodingError/renameNotDeclared(eventType:renamedTo:)``
/// instead of being skipped as unknown. The check knows the renames of the translators made so
/// far in the process (every repository and runner makes one): make them at startup, before
/// any of them reads, so that it does not depend on which ran first.
public struct EventTranslator<Family: EventFamily>: Sendable {
    /// How payloads are encoded and decoded.
    public let codec: any EventCodec
    /// How old versions and old names are brought up to date on read: the members' upcasters
    /// and any given here.
    public let upcasters: Upcasters
    private let members: [String: EventMember<Family>]

    /// A translator for the family's members, with `codec`, the members' upcasters and
    /// `extraUpcasters` (for wire types no member declares, e.g. a family read by a tool).
    ///
    /// - Precondition: no two upcasters for the same wire type and version, and no name renamed
    ///   to two different names (a programming error, reported at once).
    public init(codec: any EventCodec = JSONEventCodec(), upcasters extraUpcasters: Upcasters = Upcasters()) {
        self.codec = codec
        var upcasters = extraUpcasters
        for member in Family.members {
            let (merged, conflicts) = upcasters.merging(member.upcasters)
            precondition(conflicts.isEmpty, "conflicting upcasters for \(Family.self): \(conflicts.joined(separator: "; "))")
            upcasters = merged
        }
        self.upcasters = upcasters
        self.members = Dictionary(Family.members.map { ($0.eventType, $0) }, uniquingKeysWith: { first, _ in first })
        KnownRenames.record(upcasters.renamedTypes)
    }

    /// The `EventData` to append for `event`: its wire type, its payload through the codec, its
    /// tags (``DomainEvent/tags``), and ``EventMetadata`` recording the schema version and
    /// whatever `metadata` says (its `schemaVersion` is replaced by the event type's).
    public func encode(_ event: Family, id: UUID? = nil, metadata: EventMetadata = EventMetadata()) throws -> EventData {
        let domainEvent = event.event
        let type = Swift.type(of: domainEvent)
        let payload = try codec.encode(domainEvent)
        var metadata = metadata
        metadata.schemaVersion = type.schemaVersion
        return EventData(id: id, type: type.eventType, payload: payload, metadata: metadata.encoded(), tags: domainEvent.tags,
                         subject: domainEvent.subject)
    }

    /// As ``encode(_:id:metadata:)``, with only correlation and causation ids.
    public func encode(_ event: Family, id: UUID? = nil, correlationID: String?, causationID: String? = nil) throws -> EventData {
        try encode(event, id: id, metadata: EventMetadata(correlationID: correlationID, causationID: causationID))
    }

    /// The family value of a recorded event, or ``TypedEvent/unknown(_:)`` for a type or
    /// schema version this code does not know, or an erased event
    /// (``UnknownEvent/Reason/erased``).
    ///
    /// - Throws: ``EventDecodingError`` when the event is of a known type but cannot be
    ///   upcast or decoded (a bug or damaged data: never skipped silently).
    public func decode(_ recorded: RecordedEvent) throws(EventDecodingError) -> TypedEvent<Family> {
        let type = upcasters.currentName(of: recorded.type)
        if recorded.isErased {
            return .unknown(UnknownEvent(eventType: type, schemaVersion: 0, reason: .erased, position: recorded.position,
                                         stream: recorded.stream, revision: recorded.revision, payload: []))
        }
        let payload: [UInt8]
        let version: Int
        do {
            payload = try recorded.payload
            version = EventMetadata.schemaVersion(in: try recorded.metadata)
        } catch {
            // Forgotten between the check above and the read.
            if case .bodyErased = error {
                return .unknown(UnknownEvent(eventType: type, schemaVersion: 0, reason: .erased, position: recorded.position,
                                             stream: recorded.stream, revision: recorded.revision, payload: []))
            }
            throw .read(error)
        }
        func unknown(_ reason: UnknownEvent.Reason) -> TypedEvent<Family> {
            .unknown(UnknownEvent(eventType: type, schemaVersion: version, reason: reason, position: recorded.position,
                                  stream: recorded.stream, revision: recorded.revision, payload: payload))
        }
        guard let member = members[type] else {
            if let renamed = KnownRenames.currentName(of: type), members[renamed] != nil {
                throw .renameNotDeclared(eventType: type, renamedTo: renamed)
            }
            return unknown(.unknownType)
        }
        guard version <= member.schemaVersion else { return unknown(.newerSchemaVersion(known: member.schemaVersion)) }
        let current: [UInt8]
        do { current = try upcasters.upcast(payload, type: type, from: version, to: member.schemaVersion) } catch {
            throw error as? EventDecodingError ?? .undecodable(eventType: type, position: recorded.position, reason: "\(error)")
        }
        do {
            return .known(try member.decode(current, codec), recorded)
        } catch {
            throw .undecodable(eventType: type, position: recorded.position, reason: "\(error)")
        }
    }
}

/// The metadata the `Annals` layer writes with each event, a small JSON object: the event's
/// schema version, and who and what caused it. Read it back typed with
/// `RecordedEvent/eventMetadata()`.
///
/// ```swift
/// let metadata = try recorded.eventMetadata()
/// print(metadata.correlationID ?? "-", metadata.user ?? "anonymous", metadata.fields["channel"] ?? "")
/// ```
public struct EventMetadata: Codable, Sendable, Hashable {
    /// The schema version the payload was written with (1 for events written without one).
    public var schemaVersion: Int
    /// Shared by everything one request or process caused (the first command's id, usually).
    public var correlationID: String?
    /// What directly caused the event: the command (its id) or the event that led to it.
    public var causationID: String?
    /// The command that appended the event (see ``CommandContext/commandID``).
    public var commandID: UUID?
    /// The user on whose behalf it was appended.
    public var user: String?
    /// The tenant it belongs to.
    public var tenant: String?
    /// Fields the app defines.
    public var fields: [String: String]
    /// The trace the event was appended in, as W3C Trace Context headers (`traceparent`,
    /// `tracestate`) or whatever the bootstrapped instrument injects: a consumer continues the
    /// trace from it (the Kafka relay forwards it as message headers). Empty when no tracer ran.
    public var traceContext: [String: String]

    /// Metadata with the given fields (the schema version is set when an event is encoded).
    public init(schemaVersion: Int = 1, correlationID: String? = nil, causationID: String? = nil, commandID: UUID? = nil,
                user: String? = nil, tenant: String? = nil, fields: [String: String] = [:], traceContext: [String: String] = [:]) {
        self.schemaVersion = schemaVersion
        self.correlationID = correlationID
        self.causationID = causationID
        self.commandID = commandID
        self.user = user
        self.tenant = tenant
        self.fields = fields
        self.traceContext = traceContext
    }

    private enum CodingKeys: String, CodingKey {
        case schemaVersion, correlationID, causationID, commandID, user, tenant, fields, traceContext
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        schemaVersion = try container.decodeIfPresent(Int.self, forKey: .schemaVersion) ?? 1
        correlationID = try container.decodeIfPresent(String.self, forKey: .correlationID)
        causationID = try container.decodeIfPresent(String.self, forKey: .causationID)
        commandID = try container.decodeIfPresent(UUID.self, forKey: .commandID)
        user = try container.decodeIfPresent(String.self, forKey: .user)
        tenant = try container.decodeIfPresent(String.self, forKey: .tenant)
        fields = try container.decodeIfPresent([String: String].self, forKey: .fields) ?? [:]
        traceContext = try container.decodeIfPresent([String: String].self, forKey: .traceContext) ?? [:]
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(schemaVersion, forKey: .schemaVersion)
        try container.encodeIfPresent(correlationID, forKey: .correlationID)
        try container.encodeIfPresent(causationID, forKey: .causationID)
        try container.encodeIfPresent(commandID, forKey: .commandID)
        try container.encodeIfPresent(user, forKey: .user)
        try container.encodeIfPresent(tenant, forKey: .tenant)
        if !fields.isEmpty { try container.encode(fields, forKey: .fields) }
        if !traceContext.isEmpty { try container.encode(traceContext, forKey: .traceContext) }
    }

    /// The JSON bytes (`{"schemaVersion":N}` alone when nothing else is set).
    func encoded() -> [UInt8] {
        let minimal = Array(#"{"schemaVersion":\#(schemaVersion)}"#.utf8)
        guard correlationID != nil || causationID != nil || commandID != nil || user != nil || tenant != nil || !fields.isEmpty
            || !traceContext.isEmpty
        else { return minimal }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? Array(encoder.encode(self))) ?? minimal
    }

    /// The schema version recorded in `metadata`; 1 when absent (events written without it).
    static func schemaVersion(in metadata: [UInt8]) -> Int {
        let prefix = Array(#"{"schemaVersion":"#.utf8)
        if metadata.starts(with: prefix) {
            var value = 0
            var index = prefix.count
            while index < metadata.count, let digit = Int(exactly: metadata[index]).map({ $0 - 48 }), (0...9).contains(digit) {
                value = value * 10 + digit
                index += 1
            }
            if index > prefix.count { return value }
        }
        guard !metadata.isEmpty, let decoded = try? JSONDecoder().decode(VersionOnly.self, from: Data(metadata)) else { return 1 }
        return decoded.schemaVersion ?? 1
    }

    private struct VersionOnly: Decodable { var schemaVersion: Int? }
}

extension RecordedEvent {
    /// The event's ``EventMetadata``: empty metadata reads as schema version 1 and nothing else.
    ///
    /// - Throws: ``EventDecodingError/read(_:)`` when the bytes cannot be read,
    ///   ``EventDecodingError/undecodable(eventType:position:reason:)`` when they are not the
    ///   `Annals` layer's JSON object (metadata written by other code).
    public func eventMetadata() throws(EventDecodingError) -> EventMetadata {
        let bytes: [UInt8]
        do { bytes = try metadata } catch { throw .read(error) }
        guard !bytes.isEmpty else { return EventMetadata() }
        do { return try JSONDecoder().decode(EventMetadata.self, from: Data(bytes)) } catch {
            throw .undecodable(eventType: type, position: position, reason: "metadata: \(error)")
        }
    }
}

/// Every rename of a wire type that a translator in this process knows, so that a family whose
/// member lacks a rename another type declares is told instead of skipping the events.
enum KnownRenames {
    private static let renames = Mutex<[String: String]>([:])

    static func record(_ new: [String: String]) {
        guard !new.isEmpty else { return }
        renames.withLock { $0.merge(new) { existing, _ in existing } }
    }

    /// The name `type` was renamed to, following renames (nil: none known).
    static func currentName(of type: String) -> String? {
        renames.withLock { renames in
            var name = type
            var seen: Set<String> = [name]
            while let next = renames[name], seen.insert(next).inserted { name = next }
            return name == type ? nil : name
        }
    }
}
