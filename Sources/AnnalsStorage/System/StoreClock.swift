/// Where a store reads the wall-clock time: commit timestamps, segment creation times, and
/// "now" for max-age retention. The real clock normally; tests substitute one they move by hand,
/// so that time-based behaviour is tested without sleeping.
protocol StoreClock: AnyObject, Sendable {
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    func nowNanoseconds() -> Int64
}

/// The system's real-time clock (`clock_gettime(CLOCK_REALTIME)`).
final class SystemClock: StoreClock {
    static let shared = SystemClock()
    func nowNanoseconds() -> Int64 { Syscalls.wallClockNanoseconds() }
}

/// Which ``StoreClock`` a store uses, for ``StoreOptions`` (equal when it is the same object).
struct ClockChoice: Sendable, Hashable {
    let clock: any StoreClock

    static let system = ClockChoice(clock: SystemClock.shared)

    static func == (lhs: ClockChoice, rhs: ClockChoice) -> Bool { lhs.clock === rhs.clock }
    func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(clock)) }
}
