/// Owns the store's `checkpoint` file: builds every checkpoint (numbering them) and writes
/// them (temp file + fsync + rename + directory fsync) one at a time, never going back to an
/// older one. The checkpoint a roll schedules in the background, the ones compaction writes and
/// the ones written at open, at the first append and at close all go through it, so two
/// writers never share `checkpoint.tmp`. Two locks of its own, taken after any other: one for
/// the numbers and the clean flag (never held across I/O, so an append asking about the flag
/// never waits for a background checkpoint write), one held across each file write.
final class Checkpointer: Sendable {
    private struct Numbers {
        /// Sequence of the newest checkpoint built.
        var builtSequence: UInt64
        /// True while the file on disk has its clean-shutdown flag set (§5).
        var saysClean: Bool
    }

    private let layout: StoreLayout
    private let numbers: Locked<Numbers>
    /// Sequence of the newest checkpoint written (0: none yet in this process); held across
    /// the write of the file.
    private let written = Locked<UInt64>(0)

    /// Continues after the checkpoint recovery read (`sequence`), whose flag still stands when
    /// recovery had nothing to verify.
    init(layout: StoreLayout, sequence: UInt64, saysClean: Bool) {
        self.layout = layout
        numbers = Locked(Numbers(builtSequence: sequence, saysClean: saysClean))
    }

    /// True while the checkpoint on disk says the store was closed cleanly: the first append
    /// must clear it (synchronously) before it writes a byte (§5).
    var saysClean: Bool { numbers.withLock { $0.saysClean } }

    /// The next checkpoint, naming `end`, for readers of at least `minimumReaderVersion`.
    func make(at end: LogEnd, lastTimestamp: Int64, clean: Bool, minimumReaderVersion: UInt16) -> Checkpoint {
        let sequence = numbers.withLock { numbers in
            numbers.builtSequence += 1
            return numbers.builtSequence
        }
        var checkpoint = Checkpoint(cleanShutdown: clean, segmentIndex: end.segmentIndex,
                                    segmentOffset: UInt64(end.offset), nextPosition: end.nextPosition,
                                    sequence: sequence, lastTimestamp: lastTimestamp)
        checkpoint.minimumReaderVersion = minimumReaderVersion
        return checkpoint
    }

    /// Writes `checkpoint` unless a newer one (higher sequence) was written already. The
    /// caller guarantees that every frame before the point it names is durable.
    ///
    /// - Throws: ``SystemError`` when the file cannot be written (the old one stays).
    func write(_ checkpoint: Checkpoint) throws(SystemError) {
        try written.withLock { (newest) throws(SystemError) in
            guard checkpoint.sequence > newest else { return }
            try layout.storage.writeFileAtomically(checkpoint.encoded(), to: layout.checkpointPath, directory: layout.root)
            newest = checkpoint.sequence
            numbers.withLock { $0.saysClean = checkpoint.cleanShutdown }
        }
    }
}
