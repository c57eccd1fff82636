#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Random (version 4) UUIDs for events appended without an id: one `getrandom` call per batch
/// instead of one per id.
enum EventIDGenerator {
    static func fill(_ events: [EventData]) -> [UUID] {
        let missing = events.reduce(0) { $0 + ($1.id == nil ? 1 : 0) }
        if missing == 0 { return events.compactMap(\.id) }
        var random = [UInt8](repeating: 0, count: missing * 16)
        random.withUnsafeMutableBytes { Syscalls.fillRandom($0) }
        var next = 0
        return events.map { event in
            if let id = event.id { return id }
            var uuid: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &uuid) { target in
                random.withUnsafeBytes { target.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[next..<next + 16])) }
                target[6] = (target[6] & 0x0F) | 0x40 // version 4
                target[8] = (target[8] & 0x3F) | 0x80 // RFC 4122 variant
            }
            next += 16
            return UUID(uuid: uuid)
        }
    }
}
