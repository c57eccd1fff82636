/// Waiting for commits with a deadline, for the layer's waits and runners.
extension EventStore {
    /// How a deadline-bound wait for commits ended.
    enum CommitWait: Equatable {
        /// The end passed `position`.
        case committed
        /// The deadline came first.
        case deadline
        /// The task was cancelled or the store closed.
        case ended
    }

    /// Waits until an event at `position` or later is visible (``waitForCommit(beyond:)``), or
    /// until `deadline` (nil: none).
    func waitForCommit(beyond position: UInt64, until deadline: ContinuousClock.Instant?) async -> CommitWait {
        guard let deadline else {
            return await waitForCommit(beyond: position) > position ? .committed : .ended
        }
        return await withTaskGroup(of: CommitWait.self) { group in
            group.addTask { await self.waitForCommit(beyond: position) > position ? .committed : .ended }
            group.addTask {
                do { try await Task.sleep(until: deadline, clock: .continuous) } catch { return .ended }
                return .deadline
            }
            let first = await group.next() ?? .ended
            group.cancelAll()
            return first
        }
    }
}
