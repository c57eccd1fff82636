/// Writes the store's `checkpoint` file (temp file + fsync + rename + directory fsync), one
/// write at a time and never back to an older one: the checkpoint a roll schedules in the
/// background, the ones compaction writes and the ones written at open and close all go
/// through it, so two writers never share `checkpoint.tmp`. Its own mutex guards the sequence
/// of the newest checkpoint written; it never takes the store's state lock.
final class CheckpointWriter: Sendable {
    private let layout: StoreLayout
    /// Sequence of the newest checkpoint written (0: none yet in this process).
    private let newestSequence = Locked<UInt64>(0)

    init(layout: StoreLayout) {
        self.layout = layout
    }

    /// Writes `checkpoint` unless a newer one (higher sequence) was written already. The
    /// caller guarantees that every frame before the point it names is durable.
    func write(_ checkpoint: Checkpoint) throws(SystemError) {
        try newestSequence.withLock { (newest) throws(SystemError) in
            guard checkpoint.sequence > newest else { return }
            try layout.storage.writeFileAtomically(checkpoint.encoded(), to: layout.checkpointPath, directory: layout.root)
            newest = checkpoint.sequence
        }
    }
}
