#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Random (version 4) UUIDs for events appended without an id.
///
/// Small batches take their bytes from a process-wide pool refilled by one `getrandom` call
/// per 256 ids (a `getrandom` per single-event append was 2.6% of the 64-writer benchmark's
/// samples); a batch larger than the pool, or one that finds the pool's lock taken, makes one
/// call of its own (never waiting). Thread-safe. A forked child shares the pool's remaining
/// bytes with its parent: like every engine object, the generator is not for use in a child
/// forked from a process with open stores (its threads are gone).
enum EventIDGenerator {
    static func fill(_ events: [EventData]) -> [UUID] {
        let missing = events.reduce(0) { $0 + ($1.id == nil ? 1 : 0) }
        if missing == 0 { return events.compactMap(\.id) }
        var random = [UInt8](repeating: 0, count: missing * 16)
        random.withUnsafeMutableBytes { bytes in
            let taken = bytes.count <= RandomPool.capacity && pool.withLockIfAvailable { $0.take(into: bytes) } != nil
            if !taken { Syscalls.fillRandom(bytes) }
        }
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

    private static let pool = Locked(RandomPool())

    /// Random bytes not handed out yet.
    struct RandomPool {
        static let capacity = 4096

        private var bytes = [UInt8](repeating: 0, count: Self.capacity)
        private var used = Self.capacity

        /// Copies fresh random bytes into `target` (at most ``capacity``), each byte handed out once.
        mutating func take(into target: UnsafeMutableRawBufferPointer) {
            if used + target.count > Self.capacity {
                bytes.withUnsafeMutableBytes { Syscalls.fillRandom($0) }
                used = 0
            }
            bytes.withUnsafeBytes { target.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[used..<used + target.count])) }
            used += target.count
        }
    }
}
