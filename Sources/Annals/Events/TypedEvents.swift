import Foundation

/// A recorded event decoded into an ``EventFamily``, or explicitly unknown.
public enum TypedEvent<Family: EventFamily>: Sendable {
    case known(Family, RecordedEvent)
    case unknown(UnknownEvent)
}

/// Encodes family events for appending and decodes recorded ones, with upcasting. One per
/// repository or projection; cheap to copy.
public struct EventTranslator<Family: EventFamily>: Sendable {
    /// How payloads are encoded and decoded.
    public let codec: any EventCodec
    /// How old versions and old names are brought up to date on read.
    public let upcasters: Upcasters
    private let members: [String: EventMember<Family>]

    /// A translator for the family's members, with `codec` and `upcasters`.
    public init(codec: any EventCodec = JSONEventCodec(), upcasters: Upcasters = Upcasters()) {
        self.codec = codec
        self.upcasters = upcasters
        self.members = Dictionary(Family.members.map { ($0.eventType, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The `EventData` to append for `event`: its wire type, its payload through the codec,
    /// and metadata recording the schema version (`{"schemaVersion":N}`, plus correlation and
    /// causation ids when given).
    public func encode(_ event: Family, id: UUID? = nil, correlationID: String? = nil, causationID: String? = nil) throws -> EventData {
        let domainEvent = event.event
        let type = Swift.type(of: domainEvent)
        let payload = try codec.encode(domainEvent)
        return EventData(id: id, type: type.eventType, payload: payload,
                         metadata: EventMetadata(schemaVersion: type.schemaVersion, correlationID: correlationID,
                                                 causationID: causationID).encoded())
    }

    /// The family value of a recorded event, or ``TypedEvent/unknown(_:)`` for a type or
    /// schema version this code does not know.
    ///
    /// - Throws: ``EventDecodingError`` when the event is of a known type but cannot be
    ///   upcast or decoded (a bug or damaged data: never skipped silently).
    public func decode(_ recorded: RecordedEvent) throws(EventDecodingError) -> TypedEvent<Family> {
        let type = upcasters.currentName(of: recorded.type)
        let payload: [UInt8]
        let version: Int
        do {
            payload = try recorded.payload
            version = EventMetadata.schemaVersion(in: try recorded.metadata)
        } catch {
            throw .read(error)
        }
        func unknown(_ reason: UnknownEvent.Reason) -> TypedEvent<Family> {
            .unknown(UnknownEvent(eventType: type, schemaVersion: version, reason: reason, position: recorded.position,
                                  stream: recorded.stream, revision: recorded.revision, payload: payload))
        }
        guard let member = members[type] else { return unknown(.unknownType) }
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

/// The metadata the `Annals` layer writes with each event: a small JSON object.
struct EventMetadata: Codable {
    var schemaVersion: Int
    var correlationID: String?
    var causationID: String?

    func encoded() -> [UInt8] {
        guard correlationID != nil || causationID != nil else { return Array(#"{"schemaVersion":\#(schemaVersion)}"#.utf8) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? Array(encoder.encode(self))) ?? Array(#"{"schemaVersion":\#(schemaVersion)}"#.utf8)
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
