import Foundation

/// Turns domain events into payload bytes and back. JSON by default; an app may plug in
/// another (Protocol Buffers, CBOR) per repository or projection.
public protocol EventCodec: Sendable {
    /// The payload bytes of `event`.
    func encode<Event: Encodable>(_ event: Event) throws -> [UInt8]
    /// The event stored as `bytes`.
    func decode<Event: Decodable>(_ type: Event.Type, from bytes: [UInt8]) throws -> Event
}

/// JSON through Foundation's encoder and decoder: keys sorted (stable bytes), dates as
/// ISO 8601, `Decimal` as exact JSON numbers.
public struct JSONEventCodec: EventCodec {
    // One configured encoder and decoder per codec (both are thread-safe): making them per
    // event was a measurable part of replay time.
    private let encoder: JSONEncoder
    private let decoder: JSONDecoder

    /// A codec with sorted keys, ISO 8601 dates and exact decimals.
    public init() {
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
    }

    /// The event as JSON bytes. Throws `EncodingError`.
    public func encode<Event: Encodable>(_ event: Event) throws -> [UInt8] {
        Array(try encoder.encode(event))
    }

    /// The event decoded from JSON bytes. Throws `DecodingError`.
    public func decode<Event: Decodable>(_ type: Event.Type, from bytes: [UInt8]) throws -> Event {
        try decoder.decode(type, from: Data(bytes))
    }
}
