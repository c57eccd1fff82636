/// Owns the store's `checkpoint` file: builds every checkpoint (numbering them) and writes
/// them (temp file + fsync + rename + directory fsync) one at a time, never going back to an
/// older one. The checkpoint a roll schedules in the background, the ones compaction writes and
/// the ones written at open, at the first append and at close all go through it, so two
/// writers never share `checkpoint.tmp`. Its own mutex guards its state; it never takes another
/// lock (callers may hold the writer lock).
final class Checkpointer: Sendable {
    private struct State {
        /// Sequence of the newest checkpoint built.
        var builtSequence: UInt64
        /// Sequence of the newest checkpoint written (0: none yet in this process).
        var writtenSequence: UInt64 = 0
        /// True while the file on disk has its clean-shutdown flag set (§5).
        var saysClean: Bool
    }

    private let layout: StoreLayout
    private let state: Locked<State>

    /// Continues after the checkpoint recovery read (`sequence`), whose flag still stands when
    /// recovery had nothing to verify.
    init(layout: StoreLayout, sequence: UInt64, saysClean: Bool) {
        self.layout = layout
        state = Locked(State(builtSequence: sequence, saysClean: saysClean))
    }

    /// True while the checkpoint on disk says the store was closed cleanly: the first append
    /// must clear it (synchronously) before it writes a byte (§5).
    var saysClean: Bool { state.withLock { $0.saysClean } }

    /// The next checkpoint, naming `end`. `compacted`: some segment is a compacted file, so
    /// readers need the version that reads them.
    func make(at end: LogEnd, lastTimestamp: Int64, clean: Bool, compacted: Bool) -> Checkpoint {
        let sequence = state.withLock { state in
            state.builtSequence += 1
            return state.builtSequence
        }
        var checkpoint = Checkpoint(cleanShutdown: clean, segmentIndex: end.segmentIndex,
                                    segmentOffset: UInt64(end.offset), nextPosition: end.nextPosition,
                                    sequence: sequence, lastTimestamp: lastTimestamp)
        if compacted { checkpoint.minimumReaderVersion = Format.compactedSegmentVersion }
        return checkpoint
    }

    /// Writes `checkpoint` unless a newer one (higher sequence) was written already. The
    /// caller guarantees that every frame before the point it names is durable.
    ///
    /// - Throws: ``SystemError`` when the file cannot be written (the old one stays).
    func write(_ checkpoint: Checkpoint) throws(SystemError) {
        try state.withLock { (state) throws(SystemError) in
            guard checkpoint.sequence > state.writtenSequence else { return }
            try layout.storage.writeFileAtomically(checkpoint.encoded(), to: layout.checkpointPath, directory: layout.root)
            state.writtenSequence = checkpoint.sequence
            state.saysClean = checkpoint.cleanShutdown
        }
    }
}
