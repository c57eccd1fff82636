import Foundation

/// Turns domain events into payload bytes and back. JSON by default; an app may plug in
/// another (Protocol Buffers, CBOR) per repository or projection.
public protocol EventCodec: Sendable {
    func encode<Event: Encodable>(_ event: Event) throws -> [UInt8]
    func decode<Event: Decodable>(_ type: Event.Type, from bytes: [UInt8]) throws -> Event
}

/// JSON through Foundation's encoder and decoder: keys sorted (stable bytes), dates as
/// ISO 8601, `Decimal` as exact JSON numbers.
public struct JSONEventCodec: EventCodec {
    public init() {}

    public func encode<Event: Encodable>(_ event: Event) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return Array(try encoder.encode(event))
    }

    public func decode<Event: Decodable>(_ type: Event.Type, from bytes: [UInt8]) throws -> Event {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(type, from: Data(bytes))
    }
}
