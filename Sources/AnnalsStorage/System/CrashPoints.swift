import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Deterministic crash injection for the crash tests: with `ANNALS_CRASH_POINT=N` in the
/// environment, the process ends with `_exit(86)` (no cleanup, like `kill -9`) when it reaches
/// its N-th crash point, after printing the point's name to standard error. Unset, a crash
/// point costs one atomic increment. Points sit between the steps of multi-file operations
/// (compaction), where a crash must leave a store that opens and reads correctly.
enum CrashPoints {
    /// Exit status of an injected crash.
    static let exitStatus: Int32 = 86

    private static let target: Int = {
        guard let value = getenv("ANNALS_CRASH_POINT") else { return 0 }
        return Int(String(cString: value)) ?? 0
    }()
    private static let reached = Atomic<Int>(0)

    static func reach(_ name: StaticString) {
        guard target > 0 else { return }
        let count = reached.add(1, ordering: .relaxed).newValue
        guard count == target else { return }
        let message = "annals: crash point \(count): \(name)\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        _exit(exitStatus)
    }
}
