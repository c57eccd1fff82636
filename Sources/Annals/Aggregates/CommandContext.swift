import Foundation

/// Who sent a command, and what it belongs to: recorded in the ``EventMetadata`` of every
/// event the command appends.
///
/// With a ``commandID`` the command is idempotent: executing it again (a retry after a timeout
/// or a crash, a duplicate message) appends nothing and returns the original result, also
/// after a restart. The command's events get ids derived from it. A repository that finds
/// them while loading the aggregate returns them instead of deciding again (``Executed/isRepeat``);
/// two copies that race, both deciding against the same revision, append the same ids at the
/// same place, and the store writes them once (both copies then report `isRepeat == false`,
/// with the events ``Aggregate/decide(_:)`` made, which must therefore be deterministic). A
/// repository sees the events after the aggregate's latest snapshot: with snapshots, a retry
/// is recognised as long as no snapshot taken after the original covers it (snapshots are
/// taken every N events, so keep N above the retries' reach); past that it is decided again.
///
/// ```swift
/// let context = CommandContext(commandID: request.id, correlationID: request.traceID, user: "ann")
/// try await accounts.execute(.deposit(500), on: "42", context: context)
/// ```
public struct CommandContext: Sendable, Hashable {
    /// The command's identity: the same id means the same command (nil: not idempotent).
    public var commandID: UUID?
    /// Shared by everything one request caused; defaults to the command id.
    public var correlationID: String?
    /// What caused the command (an event id, a message id); defaults to the command id.
    public var causationID: String?
    /// The user on whose behalf it runs.
    public var user: String?
    /// The tenant it belongs to.
    public var tenant: String?
    /// Fields the app defines, copied to every event.
    public var fields: [String: String]
    /// The trace the command runs in (see ``EventMetadata/traceContext``); a repository fills
    /// it from its command span when a tracer is bootstrapped.
    public var traceContext: [String: String] = [:]

    /// A context; every part is optional.
    public init(commandID: UUID? = nil, correlationID: String? = nil, causationID: String? = nil, user: String? = nil,
                tenant: String? = nil, fields: [String: String] = [:]) {
        self.commandID = commandID
        self.correlationID = correlationID
        self.causationID = causationID
        self.user = user
        self.tenant = tenant
        self.fields = fields
    }

    /// The metadata of the command's events.
    var metadata: EventMetadata {
        EventMetadata(correlationID: correlationID ?? commandID?.uuidString, causationID: causationID ?? commandID?.uuidString,
                      commandID: commandID, user: user, tenant: tenant, fields: fields, traceContext: traceContext)
    }

    /// The id of the command's event number `index`: a version 8 UUID derived from the
    /// command id (FNV-1a over its bytes and the index), the same on every retry.
    static func eventID(of commandID: UUID, index: Int) -> UUID {
        var bytes = commandID.uuid
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        withUnsafeBytes(of: &bytes) { raw in for byte in raw { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 } }
        withUnsafeBytes(of: UInt64(index).littleEndian) { raw in for byte in raw { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 } }
        var second = hash
        second = (second ^ (second >> 29)) &* 0xBF58_476D_1CE4_E5B9
        withUnsafeMutableBytes(of: &bytes) { raw in
            withUnsafeBytes(of: hash.littleEndian) { for (slot, byte) in $0.enumerated() { raw[slot] ^= byte } }
            withUnsafeBytes(of: second.littleEndian) { for (slot, byte) in $0.enumerated() { raw[8 + slot] ^= byte } }
            raw[6] = (raw[6] & 0x0F) | 0x80 // version 8
            raw[8] = (raw[8] & 0x3F) | 0x80 // RFC 9562 variant
        }
        return UUID(uuid: bytes)
    }
}
