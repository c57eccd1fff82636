import Synchronization

/// Named points between the steps of multi-file operations (compaction), where a crash must
/// leave a store that opens and reads correctly. A crash test installs a handler that ends the
/// process at the N-th point (the `annals` command does, in its test mode: `ANNALS_CRASH_POINT`);
/// the library itself never installs one, reads no environment and never exits, so in an app
/// a crash point costs one lock of an empty slot.
@_spi(Testing) public enum CrashPoints {
    /// Called with the point's number (1 for the first point reached in the process) and name.
    public typealias Handler = @Sendable (_ number: Int, _ name: StaticString) -> Void

    /// Exit status a crash test's handler uses for an injected crash.
    public static let exitStatus: Int32 = 86

    private static let handler = Locked<Handler?>(nil)
    private static let reached = Atomic<Int>(0)

    /// Installs `handler` for every crash point reached from now on (replacing any earlier one).
    public static func install(_ handler: @escaping Handler) {
        self.handler.withLock { $0 = handler }
    }

    static func reach(_ name: StaticString) {
        guard let handler = handler.withLock({ $0 }) else { return }
        handler(reached.add(1, ordering: .relaxed).newValue, name)
    }
}
