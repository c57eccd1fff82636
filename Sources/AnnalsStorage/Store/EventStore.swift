import Dispatch
import Synchronization

/// An embedded, append-only event store kept in a directory.
///
/// Appends go to fixed-size, memory-mapped segment files as checksummed frames; each append of
/// one stream is one frame and therefore atomic. Every event gets a gapless global position.
///
/// - Durability: see ``Durability``; the default acknowledges an append only after it is on
///   stable storage, with concurrent appends sharing one flush.
/// - Ordering: global positions follow commit order; readers see a prefix of the log.
/// - Thread safety: one `EventStore` may be used from any number of tasks. Appends are
///   serialized; reads never block appends. One writer per store directory, enforced with a
///   file lock across processes.
///
/// ```swift
/// let store = try EventStore.open(at: "/var/lib/app/orders.annals")
/// let result = try await store.append([EventData(type: "OrderPlaced", payload: bytes)], to: "order-123")
/// for try await event in store.readAll() { print(event.position, event.type) }
/// try await store.close()
/// ```
public final class EventStore: Sendable {
    /// The store directory.
    public let path: String
    /// The options the store was opened with.
    public let options: StoreOptions
    /// What recovery found and did at open.
    public let recoveryReport: RecoveryReport

    let layout: StoreLayout
    let state: Locked<LogState>
    let flushQueue = DispatchQueue(label: "annals.flush")
    let indexMergeQueue = DispatchQueue(label: "annals.index-merge", qos: .utility)
    let periodicTimer: Locked<PeriodicTimer?> = Locked(nil)
    let commitWatch = CommitWatch()
    /// Every write of the `checkpoint` file goes through it.
    let checkpoints: CheckpointWriter
    /// What the background work (index files, merges, checkpoints) failed to do; its own lock.
    let maintenance = Locked(MaintenanceStatus())
    /// Prefixes of system streams whose newest event supersedes every earlier one, as the
    /// layers that own them declared (``declareNewestOnlySystemStreams(prefix:)``).
    let newestOnlyPrefixes = Locked<Set<String>>([])

    /// Largest aligned frame an append may produce (fits an empty segment with its seal).
    var frameLimitBytes: Int {
        options.segmentSizeBytes - Format.segmentHeaderBytes - Format.sealFrameBytes - Format.durableMarkAreaBytes
    }

    /// A store released without ``close()`` behaves like a stopped process: appends already
    /// acknowledged stay (durable, or in the page cache under the unsafe modes) and the next
    /// open verifies the tail. The lock is released with the last reference.
    deinit {
        periodicTimer.withLock { $0?.source.cancel() }
    }

    private init(path: String, options: StoreOptions, layout: StoreLayout, state: LogState, report: RecoveryReport) {
        self.path = path
        self.options = options
        self.layout = layout
        self.checkpoints = CheckpointWriter(layout: layout)
        self.state = Locked(state)
        self.recoveryReport = report
    }

    /// Opens (or creates) the store at `path` and recovers it: verifies the log after the last
    /// checkpoint and cuts a torn tail left by a crash (reported in ``recoveryReport``). Only
    /// bytes no appender was told about are ever cut: the open segment's durable mark says how
    /// far appends were acknowledged (`format-spec.md` §3.8), and damage before that is
    /// corruption. A read-only open reads the log up to such damage and reports it in
    /// ``RecoveryReport/damage``.
    ///
    /// - Throws: ``OpenError``: `.storeLocked` when another writer has it open, `.corrupt` when
    ///   acknowledged data fails its checks (a writable open then cuts and zeroes nothing),
    ///   `.unsupportedFormatVersion` for a newer store, `.notAStore` for a directory that is
    ///   not a store.
    public static func open(at path: String, options: StoreOptions = StoreOptions()) throws(OpenError) -> EventStore {
        try options.validate()
        let layout = StoreLayout(root: path, storage: options.storage.storage)
        var lock: (any Sendable)?
        if !options.readOnly {
            try prepareDirectory(layout, create: options.createIfMissing)
            do { lock = try layout.storage.lock(layout.lockPath) } catch { throw .system(error) }
            guard lock != nil else { throw .storeLocked(path: path) }
            try initializeIfEmpty(layout, options: options)
        } else {
            guard (try? layout.storage.exists(layout.segmentsDirectory)) == true else {
                throw .notAStore(path: path, reason: "no segments directory")
            }
        }
        var report = RecoveryReport()
        let checkpoint = try readCheckpoint(layout, report: &report)
        if let checkpoint, !options.readOnly, checkpoint.formatVersion > Format.version {
            throw .unsupportedFormatVersion(path: layout.checkpointPath, found: Int(checkpoint.formatVersion),
                                            supported: Int(Format.version))
        }
        let recovered = try LogRecovery(layout: layout, writable: !options.readOnly, hasher: options.streamHasher,
                                        discardDamagedTail: options.discardDamagedTail)
            .recover(checkpoint: checkpoint, report: report)
        let state = LogState(recovered: recovered, lock: lock, checkpointSequence: checkpoint?.sequence ?? 0,
                             options: options)
        let store = EventStore(path: path, options: options, layout: layout, state: state, report: recovered.report)
        try store.loadRetention()
        if !options.readOnly {
            try store.finishOpening(scanned: recovered.report.scannedBytes > 0)
        }
        return store
    }

    private func finishOpening(scanned: Bool) throws(OpenError) {
        do {
            try state.withLock { (state) throws(SystemError) in
                // A segment made by an older format version is sealed, never extended with
                // records its version does not describe; one without a durable-mark area too,
                // so that every acknowledged append is vouched for (§3.8).
                // A verified tail is checkpointed before anything else is written (and the
                // clean-shutdown flag cleared; otherwise the first append clears it).
                if scanned { try writeCheckpoint(&state, clean: false) }
                let active = state.activeSegment
                if state.activeSealed || active.header.formatVersion < Format.appendSegmentVersion || !active.hasDurableMarks {
                    try startNextSegment(&state)
                }
                // Everything recovery kept is durable: the mark says so before any append (a
                // repeat of a recovered append is acknowledged without a sync of its own, and a
                // compaction may move the checkpoint back to the start of this segment).
                // It also replaces a mark that claims more than recovery kept (a tail discarded on
                // request). Skipped when the newest mark says exactly this already: the first
                // write through a new mapping costs a page fault on every reopen.
                let end = state.writtenEnd
                if !state.marks.names(exactly: end) { state.marks.synced(end, acknowledged: end, in: state.activeSegment) }
            }
        } catch { throw .system(error) }
        if case .periodic(let interval) = options.durability { startPeriodicFlush(every: interval) }
        scheduleIndexMerge()
    }

    /// Makes every append acknowledged so far durable, writes a clean checkpoint and releases
    /// the writer lock. Appends after `close` throw ``AppendError/storeClosed``. Events already
    /// read stay valid. Calling `close` twice is harmless.
    ///
    /// - Throws: ``AppendError/storeFailed(_:)`` or ``AppendError/system(_:)`` when the final
    ///   sync fails (the lock is released all the same).
    public func close() async throws(AppendError) {
        periodicTimer.withLock { timer in
            timer?.source.cancel()
            timer = nil
        }
        defer { closeCommitWatch() }
        if options.readOnly {
            state.withLock { $0.closed = true }
            return
        }
        var failure: AppendError?
        do { try await flush() } catch { failure = error }
        let alreadyClosed = state.withLock { state in
            defer { state.closed = true }
            return state.closed
        }
        if alreadyClosed { return }
        // No merge may touch the directory once the lock is released.
        await waitForIndexMerges()
        state.withLock { state in
            if failure == nil, state.failure == nil {
                do throws(SystemError) {
                    let active = state.activeSegment
                    try active.file.sync(state.syncedOffset..<state.writeOffset)
                    try writeCheckpoint(&state, clean: true)
                } catch {
                    failure = .system(error)
                }
            }
            state.lock = nil
        }
        if let failure, failure != .storeClosed { throw failure }
    }

    // MARK: Opening helpers

    private static func prepareDirectory(_ layout: StoreLayout, create: Bool) throws(OpenError) {
        do {
            if try !layout.storage.exists(layout.root) {
                guard create else { throw OpenError.notAStore(path: layout.root, reason: "directory does not exist") }
                try layout.storage.makeDirectory(layout.root)
                // The new directory's own name must be durable too, or a power loss could take
                // the whole store with it (found by the crash simulation).
                try layout.storage.syncDirectory(layout.parentDirectory)
            }
        } catch let error as SystemError {
            throw .system(error)
        } catch let error as OpenError {
            throw error
        } catch {
            throw .notAStore(path: layout.root, reason: "\(error)")
        }
    }

    private static func initializeIfEmpty(_ layout: StoreLayout, options: StoreOptions) throws(OpenError) {
        var entries: [String]
        let storage = layout.storage
        do { entries = try storage.directoryEntries(layout.root) ?? [] } catch { throw .system(error) }
        let known: Set<String> = ["lock", "checkpoint", "checkpoint.tmp", "segments.tmp"]
        if entries.contains("segments") {
            // A `segments` directory with nothing in it holds no event (a creation cut short by
            // a crash, or by hand): the store is created anew rather than refused for ever.
            let segmentFiles: [String]?
            do { segmentFiles = try storage.directoryEntries(layout.segmentsDirectory) } catch { throw .system(error) }
            guard let segmentFiles, segmentFiles.isEmpty, options.createIfMissing else { return }
            do {
                try storage.removeDirectoryIfPresent(layout.segmentsDirectory)
                try storage.unlinkIfPresent(layout.checkpointPath)
                try storage.syncDirectory(layout.root)
            } catch {
                throw .system(error)
            }
            entries.removeAll { $0 == "segments" }
        }
        guard options.createIfMissing else { throw .notAStore(path: layout.root, reason: "no segments directory") }
        if let stranger = entries.first(where: { !known.contains($0) }) {
            throw .notAStore(path: layout.root, reason: "directory holds \(stranger) and no segments")
        }
        do {
            // A crash during an earlier initialization leaves `segments.tmp`: start it again.
            let temporary = layout.root + "/segments.tmp"
            for name in try storage.directoryEntries(temporary) ?? [] {
                try storage.unlinkIfPresent(temporary + "/" + name)
            }
            try storage.removeDirectoryIfPresent(temporary)
            try storage.makeDirectory(temporary)
            let header = SegmentHeader(segmentIndex: 0, segmentSizeBytes: UInt64(options.segmentSizeBytes),
                                       firstPosition: 0, createdAtNanoseconds: options.clock.clock.nowNanoseconds(),
                                       hasDurableMarks: true)
            let segmentPath = temporary + "/" + StoreLayout.segmentFileName(0)
            let file = try storage.createMappedFile(path: segmentPath, size: options.segmentSizeBytes)
            header.encode(into: file.mutableBytes)
            try file.sync(0..<Format.segmentHeaderBytes)
            try storage.syncDirectory(temporary)
            let checkpoint = Checkpoint(cleanShutdown: true, segmentIndex: 0,
                                        segmentOffset: UInt64(Format.segmentHeaderBytes), nextPosition: 0, sequence: 1)
            try storage.writeFileAtomically(checkpoint.encoded(), to: layout.checkpointPath, directory: layout.root)
            // The rename publishes the store: before it, a crash leaves no `segments` directory.
            try storage.rename(temporary, to: layout.segmentsDirectory)
            try storage.syncDirectory(layout.root)
        } catch {
            throw .system(error)
        }
    }

    private static func readCheckpoint(_ layout: StoreLayout, report: inout RecoveryReport) throws(OpenError) -> Checkpoint? {
        let bytes: [UInt8]
        do {
            guard let read = try layout.storage.readFile(layout.checkpointPath, maximumBytes: Format.checkpointBytes + 1) else {
                report.warnings.append("no checkpoint file; verified the whole log")
                return nil
            }
            bytes = read
        } catch {
            throw .system(error)
        }
        switch Checkpoint.decode(bytes) {
        case .success(let checkpoint):
            return checkpoint
        case .failure(.unsupported(let version)):
            throw .unsupportedFormatVersion(path: layout.checkpointPath, found: Int(version), supported: Int(Format.version))
        case .failure(.corrupt(let reason)):
            report.warnings.append("checkpoint unreadable (\(reason)); verified the whole log")
            return nil
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
