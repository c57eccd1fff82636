/// Rolls: sealing the active segment and starting the next one, from a file prepared ahead.
extension EventStore {
    /// Seals the active segment, makes it durable, starts the next one and schedules its
    /// checkpoint. Runs under the writer lock (appenders wait for it; readers do not: they see
    /// the view, which changes only in short steps after each piece of I/O). The old segment
    /// is synced before anything is written to the new one, so only the last segment can ever
    /// have a torn tail.
    ///
    /// - Throws: ``SystemError``. A failed sync of the old segment fails the store (nothing
    ///   after the last durable position is acknowledged); a failed creation of the next file
    ///   leaves the sealed segment last and the store usable (the next append tries again).
    func startNextSegment(_ writer: inout WriterState) throws(SystemError) {
        let old = writer.active
        let sealed = writer.writtenEnd
        do {
            try writer.staged.write()
            if !writer.activeSealed {
                let nextPosition = writer.nextPosition
                try old.file.write(at: writer.writeOffset, count: Format.sealFrameBytes) {
                    _ = FrameEncoder.writeSealFrame(into: $0, at: 0, nextPosition: nextPosition)
                }
                writer.activeSealed = true
            }
            let synced = durability.withLock { $0.syncedOffset }
            try old.file.sync(min(synced, writer.writeOffset)..<(writer.writeOffset + Format.sealFrameBytes))
            // Until the next segment exists (creating it may fail), this one is still the last:
            // its durable mark vouches for every frame before the seal, and goes to disk now.
            // It is the segment's last: a flush finishing meanwhile writes none after it.
            try durability.withLock { (durability) throws(SystemError) in
                try durability.marks.synced(sealed, acknowledged: sealed, in: old)
                durability.marks.seal(old.index)
            }
            if old.hasDurableMarks { try old.file.sync(old.frameAreaEnd..<old.file.size) }
        } catch {
            durability.withLock { $0.failure = $0.failure ?? error }
            logger.error("sealing a segment failed (writing or syncing it): the store takes no more writes until it is reopened",
                         metadata: ["annals.segment": "\(old.index)", "annals.error": "\(error)"])
            throw error
        }
        old.file.refuseWrites()
        // Sealed before it was full (compaction, an old format version): its preallocated
        // end goes back to the file system. It reads as zeros either way.
        let unusedStart = (writer.writeOffset + Format.sealFrameBytes + Self.releaseGranule - 1) / Self.releaseGranule * Self.releaseGranule
        if old.file.size - unusedStart >= Self.minimumReleasedBytes {
            try? old.file.releaseSpace(unusedStart..<old.file.size)
        }
        durability.withLock { $0.durablePosition = max($0.durablePosition, sealed.nextPosition) }
        // The sealed segment's frames move aside in one step (the open segment starts empty)
        // and stay findable until its index file is in place, written off the writer lock; a
        // crash before that rebuilds it at open.
        let scheduleIndex = writer.indexScheduledThrough.map { $0 < old.index } ?? true
        let frames: StreamIndex? = view.withLock { view in
            view.reveal(sealed)
            guard scheduleIndex, view.tables.last.map({ $0.segments.upperBound < old.index }) ?? true else { return nil }
            let frames = view.openFrames
            view.sealedUnindexed.append(frames)
            view.openFrames = StreamIndex(hasher: frames.hasher)
            return frames
        }
        if let frames {
            writer.indexScheduledThrough = old.index
            scheduleMaintenance(.indexFiles(frames: frames, nextPosition: sealed.nextPosition, lastSegment: old.index))
        }

        let file = try createSegmentFile(&writer, index: old.index + 1, firstPosition: writer.nextPosition)
        writer.active = file
        writer.activeSealed = false
        writer.writeOffset = Format.segmentHeaderBytes
        writer.compression?.startSegment()
        let start = writer.writtenEnd
        // Readers' view first: an end group commit reveals always names a segment in it.
        view.withLock { $0.segments.append(file) }
        durability.withLock { $0.started(file, at: start) }
        metrics.rolls.increment()
        logger.debug("segment sealed, next started", metadata: ["annals.segment": "\(file.index)", "annals.position": "\(start.nextPosition)"])
        // Written in the background (the writer lock is not held for it): until it is written,
        // recovery starts from the previous checkpoint and scans a little more.
        scheduleMaintenance(.checkpoint(makeCheckpoint(writer, clean: false)))
        prepareNextSegment()
        if options.archive != nil { scheduleMaintenance(.archiveSegments) }
    }

    /// Segment `index`, durable under its final name (§9): the prepared file when there is one
    /// (only its header is written and synced now), a new file otherwise.
    private func createSegmentFile(_ writer: inout WriterState, index: UInt64, firstPosition: UInt64) throws(SystemError) -> Segment {
        let finalPath = layout.segmentPath(index)
        let header = SegmentHeader(segmentIndex: index, segmentSizeBytes: UInt64(options.segmentSizeBytes),
                                   firstPosition: firstPosition, createdAtNanoseconds: options.clock.clock.nowNanoseconds(),
                                   hasDurableMarks: true)
        let file: MappedFile
        let temporaryPath: String
        if let prepared = writer.preparedSegment, prepared.file.size == options.segmentSizeBytes {
            writer.preparedSegment = nil
            file = prepared.file
            temporaryPath = prepared.file.path
        } else {
            temporaryPath = finalPath + ".tmp"
            file = try layout.storage.createMappedFile(path: temporaryPath, size: options.segmentSizeBytes)
        }
        do {
            try file.write(at: 0, count: Format.segmentHeaderBytes) { header.encode(into: $0) }
            try file.sync(0..<Format.segmentHeaderBytes)
            try layout.storage.rename(temporaryPath, to: finalPath)
        } catch {
            // Nothing of the next segment stays behind (a prepared file included).
            try? layout.storage.unlinkIfPresent(temporaryPath)
            throw error
        }
        try layout.storage.syncDirectory(layout.segmentsDirectory)
        file.path = finalPath
        return Segment(header: header, file: file, keyRing: keyRing)
    }

    /// Allocates the next segment file in the background (``PreparedSegmentFile``), so that a
    /// roll only writes and syncs a header. Does nothing when one is ready. Scheduled by each
    /// roll, so a store that never fills its open segment never allocates another file.
    func prepareNextSegment() {
        guard !options.readOnly else { return }
        scheduleMaintenance(.prepareSegment)
    }

    /// The work of ``prepareNextSegment()``, on the maintenance queue.
    func prepareSegmentFile() -> MaintenanceFailure? {
        let ready = writer.withLock { $0.preparedSegment != nil }
        if ready || closed.load(ordering: .relaxed) { return nil }
        let path = layout.segmentsDirectory + "/" + PreparedSegmentFile.fileName
        let file: MappedFile
        do { file = try layout.storage.createMappedFile(path: path, size: options.segmentSizeBytes) } catch {
            try? layout.storage.unlinkIfPresent(path)
            // Not retried: the next roll creates its file itself and prepares again.
            return MaintenanceFailure(what: "preparing the next segment file", error: error, retry: false)
        }
        let unused: MappedFile? = writer.withLock { writer in
            guard writer.preparedSegment == nil, !closed.load(ordering: .relaxed) else { return file }
            writer.preparedSegment = PreparedSegmentFile(file: file)
            return nil
        }
        if unused != nil { try? layout.storage.unlinkIfPresent(path) }
        return nil
    }

    /// Space is given back in whole file-system blocks...
    static let releaseGranule = 4096
    /// ...and only when it is worth a system call.
    static let minimumReleasedBytes = 64 * 1024

    /// Records the end of the log in the checkpoint file. The caller holds the writer lock and
    /// guarantees that everything written so far is durable (after a roll, after recovery's
    /// sync, at close).
    func writeCheckpoint(_ writer: WriterState, clean: Bool) throws(SystemError) {
        try checkpointer.write(makeCheckpoint(writer, clean: clean))
    }

    /// The next checkpoint, naming `end` (default: the end of what `writer` wrote).
    func makeCheckpoint(_ writer: WriterState, clean: Bool, at end: LogEnd? = nil) -> Checkpoint {
        return checkpointer.make(at: end ?? writer.writtenEnd, lastTimestamp: writer.lastTimestamp, clean: clean,
                                 minimumReaderVersion: minimumReaderVersion)
    }

    /// The oldest reader that reads the store as it is (§5, §6): 7 once a record is
    /// encrypted, 6 once a record has tags or
    /// a multi-stream append was written as a group of frames, 5
    /// once it has (or is setting up) an archive, 3 once a segment is compacted, else 2.
    var minimumReaderVersion: UInt16 {
        if checkpointsNameVersion7.load(ordering: .relaxed) { return Format.encryptedRecordsVersion }
        if checkpointsNameVersion6.load(ordering: .relaxed) { return Format.taggedRecordsVersion }
        if checkpointsNameArchives.load(ordering: .relaxed) || archive.withLock({ $0 != nil }) { return Format.archiveVersion }
        if view.withLock({ $0.segments.contains(where: \.isCompacted) }) { return Format.compactedSegmentVersion }
        return Format.appendSegmentVersion
    }
}

/// The next segment file, created ahead of the roll that needs it: allocated at the segment
/// size and synced under a temporary name (`segments/next-segment.tmp`), with no header yet.
/// A crash leaves a `.tmp` file that the next writable open deletes. Owned by ``WriterState``.
struct PreparedSegmentFile {
    static let fileName = "next-segment.tmp"
    let file: MappedFile
}
