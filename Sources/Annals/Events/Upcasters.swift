import Foundation

/// Schema evolution on read: payload transformations registered per (wire type, from
/// version), chained until the version the reading Swift type expects, and renames of wire
/// types. Stored events are never rewritten. Declared on the event type they upgrade
/// (``DomainEvent/upcasters``), so every component that decodes the type applies them.
///
/// ```swift
/// static let upcasters = Upcasters()
///     .renaming("MoneyDeposited", to: "Deposited")
///     .upcasting("Deposited", from: 1) { payload in payload["currency"] = "EUR" }   // v1 → v2
/// ```
public struct Upcasters: Sendable {
    /// Transforms a payload of version `from` into version `from + 1`.
    public typealias Transform = @Sendable ([UInt8]) throws -> [UInt8]

    private var transforms: [String: [Int: Transform]] = [:]
    private var renames: [String: String] = [:]

    /// No upcasters and no renames.
    public init() {}

    /// Events recorded as `oldType` are read as `newType` (with the same schema version).
    public func renaming(_ oldType: String, to newType: String) -> Upcasters {
        var copy = self
        copy.renames[oldType] = newType
        return copy
    }

    /// Payloads of `type` at version `version` become version `version + 1` through `transform`
    /// on the raw bytes.
    public func upcasting(_ type: String, from version: Int, bytes transform: @escaping Transform) -> Upcasters {
        var copy = self
        copy.transforms[type, default: [:]][version] = transform
        return copy
    }

    /// Payloads of `type` at version `version` become version `version + 1` by editing their
    /// JSON object in place (numbers are exact `Decimal`s).
    public func upcasting(
        _ type: String, from version: Int, json edit: @escaping @Sendable (inout JSONValue) throws -> Void
    ) -> Upcasters {
        upcasting(type, from: version) { bytes in
            var value = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
            try edit(&value)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return Array(try encoder.encode(value))
        }
    }

    /// These upcasters and `other`'s together. Two transforms for the same wire type and
    /// version, or two renames of one name to different names, are a programming error: the
    /// result names them in `conflicts`.
    func merging(_ other: Upcasters) -> (merged: Upcasters, conflicts: [String]) {
        var merged = self
        var conflicts: [String] = []
        for (type, steps) in other.transforms {
            for (version, transform) in steps {
                if merged.transforms[type]?[version] != nil { conflicts.append("two upcasters for \(type) from version \(version)") }
                merged.transforms[type, default: [:]][version] = transform
            }
        }
        for (old, new) in other.renames {
            if let existing = merged.renames[old], existing != new { conflicts.append("\(old) renamed to both \(existing) and \(new)") }
            merged.renames[old] = new
        }
        return (merged, conflicts)
    }

    /// The renames, old name → new name.
    var renamedTypes: [String: String] { renames }

    /// The wire type `type` is read as.
    func currentName(of type: String) -> String {
        var name = type
        var seen: Set<String> = [name]
        while let next = renames[name], seen.insert(next).inserted { name = next }
        return name
    }

    /// Brings `payload` from `version` up to `target`. Throws ``EventDecodingError`` when a step
    /// has no upcaster.
    func upcast(_ payload: [UInt8], type: String, from version: Int, to target: Int) throws -> [UInt8] {
        var bytes = payload
        var current = version
        while current < target {
            guard let transform = transforms[type]?[current] else {
                throw EventDecodingError.missingUpcaster(eventType: type, fromVersion: current)
            }
            do { bytes = try transform(bytes) } catch {
                throw EventDecodingError.upcasterFailed(eventType: type, fromVersion: current, reason: "\(error)")
            }
            current += 1
        }
        return bytes
    }
}

/// Why a recorded event of a known type could not become its Swift value.
public enum EventDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No upcaster from this version of the type.
    case missingUpcaster(eventType: String, fromVersion: Int)
    /// An upcaster threw.
    case upcasterFailed(eventType: String, fromVersion: Int, reason: String)
    /// Another event type in this process declares that `eventType` was renamed to
    /// `renamedTo`, a member of the reading family, but the family's member does not: the
    /// event would otherwise be skipped as unknown. Declare the rename on the member's type.
    case renameNotDeclared(eventType: String, renamedTo: String)
    /// The codec could not decode the (upcast) payload.
    case undecodable(eventType: String, position: UInt64, reason: String)
    /// The store could not read the event.
    case read(ReadError)

    public var description: String {
        switch self {
        case .missingUpcaster(let type, let version): "no upcaster for \(type) from schema version \(version)"
        case .upcasterFailed(let type, let version, let reason): "upcaster for \(type) from version \(version) failed: \(reason)"
        case .renameNotDeclared(let type, let renamed):
            "\(type) was renamed to \(renamed) elsewhere in this process, but not on this family's \(renamed): declare it there"
        case .undecodable(let type, let position, let reason): "event \(type) at position \(position) does not decode: \(reason)"
        case .read(let error): "\(error)"
        }
    }
}
