import Synchronization

/// Which published events Kafka has acknowledged, and so how far the relay's checkpoint may
/// go: up to, not including, the oldest event still in flight or whose delivery failed.
/// Events are produced in position order; reports arrive in any order across partitions.
/// Thread-safe (delivery reports arrive on the polling thread).
final class DeliveryTracker: Sendable {
    private struct State {
        var outstanding = Set<UInt64>()
        var firstFailure: UInt64?
        var failure: String?
        var delivered: UInt64 = 0
        var deliveredSinceCheckpoint = 0
    }

    private let state = Mutex(State())

    /// Called before an event is handed to the producer.
    func published(position: UInt64) {
        state.withLock { _ = $0.outstanding.insert(position) }
    }

    /// A delivery report: `error` nil when the broker acknowledged the message.
    func delivered(position: UInt64, error: String?) {
        state.withLock { state in
            guard state.outstanding.remove(position) != nil else { return }
            if let error {
                if state.firstFailure.map({ position < $0 }) ?? true {
                    state.firstFailure = position
                    state.failure = error
                }
            } else {
                state.delivered += 1
                state.deliveredSinceCheckpoint += 1
            }
        }
    }

    var inFlight: Int { state.withLock { $0.outstanding.count } }
    var deliveredCount: UInt64 { state.withLock { $0.delivered } }

    /// The first failed delivery since the last ``reset(_:)``, with why.
    var failure: (position: UInt64, reason: String)? {
        state.withLock { state in state.firstFailure.map { ($0, state.failure ?? "delivery failed") } }
    }

    /// The position the relay may checkpoint when it has read up to (not including) `next`:
    /// every event before it was delivered (or filtered out).
    func safePosition(readUpTo next: UInt64) -> UInt64 {
        state.withLock { state in
            var safe = next
            if let oldest = state.outstanding.min() { safe = min(safe, oldest) }
            if let failure = state.firstFailure { safe = min(safe, failure) }
            return safe
        }
    }

    /// True (once) when events were delivered since the last call: a checkpoint is worth writing.
    func takeDeliveredSinceCheckpoint() -> Bool {
        state.withLock { state in
            defer { state.deliveredSinceCheckpoint = 0 }
            return state.deliveredSinceCheckpoint > 0
        }
    }

    /// Forgets a failure once nothing is in flight, before publishing again from the checkpoint.
    func clearFailure() {
        state.withLock { state in
            state.firstFailure = nil
            state.failure = nil
        }
    }
}
