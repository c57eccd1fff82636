#if ANNALS_PTHREAD_LOCKS
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The engine's lock around shared state: `Synchronization.Mutex` normally. Built with
/// `-DANNALS_PTHREAD_LOCKS` (`make tsan`), a `pthread_mutex_t` instead: Thread Sanitizer
/// intercepts pthread locks but does not see the synchronization inside `Mutex` on Linux
/// (a six-line program using only `Mutex` reports races under TSan with Swift 6.3), which
/// would bury real reports under false ones.
final class Locked<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }

    /// Runs `body` under the lock if it is free, else returns nil without waiting.
    func withLockIfAvailable<Result, E: Error>(_ body: (inout Value) throws(E) -> Result) throws(E) -> Result? {
        guard pthread_mutex_trylock(mutex) == 0 else { return nil }
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
#else
import Synchronization

/// The engine's lock around shared state (see the `ANNALS_PTHREAD_LOCKS` variant above).
typealias Locked<Value> = Mutex<Value>
#endif
