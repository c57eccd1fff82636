import CoreMetrics
import Dispatch
import Logging
import Tracing
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
///   serialized; reads never block appends, and never wait for a segment roll, a flush or any
///   background work (they take only a short lock that no I/O is done under). One writer per
///   store directory, enforced with a file lock across processes.
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
    /// The single writer: active segment, offsets, compression (``WriterState``).
    let writer: Locked<WriterState>
    /// Group commit: what is written, durable, awaited, failed (``DurabilityState``).
    let durability: Locked<DurabilityState>
    /// What readers see: segments, index files, in-memory frames, visible end (``LogView``).
    let view: Locked<LogView>
    /// Retention settings of the streams that have any (from the `$retention` stream); written
    /// only under the writer lock, together with the append that records them.
    let retentionSettings = Locked<[String: StreamRetention]>([:])
    /// True once ``close()`` has begun (for a writer, set under the writer lock, so no append
    /// starts after it); read anywhere.
    let closed = Atomic<Bool>(false)
    /// Appends written since open (statistics).
    let appendCounter = Atomic<Int>(0)
    /// Runs group commit's syncs.
    let flushQueue = DispatchQueue(label: "annals.flush")
    let periodicTimer: Locked<PeriodicTimer?> = Locked(nil)
    /// Tasks waiting for new commits (``waitForCommit(beyond:)``); its own lock.
    let commitWatch = CommitWatch()
    /// Builds and writes every checkpoint; its own lock.
    let checkpointer: Checkpointer
    /// Index files, merges and background checkpoints, with their failures and retries.
    let maintenance: MaintenanceQueue
    /// Where the archived segments are (nil: none yet): changed only on the maintenance queue,
    /// by an archive run; its own lock, taken after any other.
    let archive: Locked<ArchiveLocation?>
    /// Set (for good) when a first archive is being set up: checkpoints say version 5 from
    /// then on, before the `archive` file exists (``archive`` is set only once it does).
    let checkpointsNameArchives = Atomic<Bool>(false)
    /// Set (for good) before the first tagged record or multi-stream group is written, or at
    /// open when the checkpoint already names version 6: checkpoints say version 6 from then on.
    let checkpointsNameVersion6 = Atomic<Bool>(false)
    /// Set (for good) before the first encrypted record is written, or at open when the
    /// checkpoint already names version 7: checkpoints say version 7 from then on.
    let checkpointsNameVersion7 = Atomic<Bool>(false)
    /// The store's data keys and its `keys` file (nil: the store encrypts nothing); its own lock.
    let keyRing: KeyRing?
    /// Prefixes of system streams whose newest event supersedes every earlier one, as the
    /// layers that own them declared (``declareNewestOnlySystemStreams(prefix:)``).
    let newestOnlyPrefixes = Locked<Set<String>>([])
    /// ``StoreOptions/logger`` with `annals.store` set.
    let logger: Logger
    /// The metrics the store records (``StoreOptions/metricsFactory``).
    let metrics: StoreMetrics
    /// The tracer the store and the layers built on it start their spans with
    /// (``StoreOptions/tracer``, or the one bootstrapped when the store opened).
    public let tracer: any Tracer

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

    private init(path: String, options: StoreOptions, layout: StoreLayout, recovered: LogRecovery.Result,
                 archive: ArchiveLocation?, keyRing: KeyRing?, fileLock: (any Sendable)?, checkpointSequence: UInt64) {
        self.path = path
        self.keyRing = keyRing
        self.options = options
        self.layout = layout
        recoveryReport = recovered.report
        self.archive = Locked(archive)
        writer = Locked(WriterState(recovered: recovered, fileLock: fileLock, options: options))
        durability = Locked(DurabilityState(recovered: recovered, bootID: options.storage.storage.bootID))
        view = Locked(LogView(segments: recovered.segments, tables: recovered.tables, visibleEnd: recovered.end,
                              openFrames: recovered.streams))
        checkpointer = Checkpointer(layout: layout, sequence: checkpointSequence,
                                    saysClean: recovered.report.cleanShutdown && recovered.report.scannedBytes == 0)
        maintenance = MaintenanceQueue(retryDelay: options.maintenanceRetryDelay)
        var logger = options.logger
        logger[metadataKey: "annals.store"] = "\(path)"
        self.logger = logger
        metrics = StoreMetrics(factory: options.metricsFactory ?? MetricsSystem.factory)
        tracer = options.tracer ?? InstrumentationSystem.tracer
    }

    /// Opens (or creates) the store at `path` and recovers it: verifies the log after the last
    /// checkpoint and cuts a torn tail left by a crash (reported in ``recoveryReport``). Only
    /// bytes no appender was told about are ever cut: the open segment's durable mark says how
    /// far appends were acknowledged (`format-spec.md` §3.8), and damage before that is
    /// corruption. A read-only open reads the log up to such damage and reports it in
    /// ``RecoveryReport/damage``.
    ///
    /// - Throws: ``OpenError``: `.storeLocked` when another writer has it open (after trying
    ///   again for about 100 ms: a child process spawned at that moment holds a closed store's
    ///   lock until its exec), `.corrupt` when
    ///   acknowledged data fails its checks (a writable open then cuts and zeroes nothing),
    ///   `.unsupportedFormatVersion` for a newer store, `.notAStore` for a directory that is
    ///   not a store.
    public static func open(at path: String, options: StoreOptions = StoreOptions()) throws(OpenError) -> EventStore {
        try options.validate()
        // The key-encryption key first: a provider that fails changes nothing, not even a new
        // store's directory.
        let keyEncryptionKey = try options.encryption?.keyProvider.keyEncryptionKey()
        let layout = StoreLayout(root: path, storage: options.storage.storage)
        var lock: (any Sendable)?
        if !options.readOnly {
            try prepareDirectory(layout, create: options.createIfMissing)
            lock = try acquireWriterLock(layout)
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
        let keyRing = try KeyRing.open(layout: layout, options: options, checkpointVersion: checkpoint?.minimumReaderVersion ?? 0,
                                       keyEncryptionKey: keyEncryptionKey)
        let recoveryStarted = ContinuousClock.now
        let (archive, recovered) = try recover(layout, checkpoint: checkpoint, report: report, options: options, keyRing: keyRing)
        let store = EventStore(path: path, options: options, layout: layout, recovered: recovered, archive: archive,
                               keyRing: keyRing, fileLock: lock, checkpointSequence: checkpoint?.sequence ?? 0)
        if (checkpoint?.minimumReaderVersion ?? 0) >= Format.taggedRecordsVersion { store.checkpointsNameVersion6.store(true, ordering: .relaxed) }
        if (checkpoint?.minimumReaderVersion ?? 0) >= Format.encryptedRecordsVersion { store.checkpointsNameVersion7.store(true, ordering: .relaxed) }
        store.reportRecovery(took: ContinuousClock.now - recoveryStarted)
        try store.loadRetention()
        if !options.readOnly {
            try store.finishOpening(scanned: recovered.report.scannedBytes > 0)
        }
        return store
    }

    /// The archive and the recovered log. A read-only open may race an archive run of the
    /// writer in another process (files move between the listing and their mapping): when the
    /// `archive` file changed meanwhile, it starts over (a few times), so it never reports a
    /// file missing that moved, nor reads the log with its start in neither place.
    private static func recover(
        _ layout: StoreLayout, checkpoint: Checkpoint?, report: RecoveryReport, options: StoreOptions, keyRing: KeyRing?
    ) throws(OpenError) -> (ArchiveLocation?, LogRecovery.Result) {
        var attempt = 0
        while true {
            attempt += 1
            let archive = try ArchiveLocation.load(layout)
            let recovery = LogRecovery(layout: layout, archive: archive, writable: !options.readOnly, hasher: options.streamHasher,
                                       discardDamagedTail: options.discardDamagedTail, keyRing: keyRing)
            let result: Result<LogRecovery.Result, OpenError> = Result { () throws(OpenError) in
                try recovery.recover(checkpoint: checkpoint, report: report)
            }
            if options.readOnly, attempt < 4, (try? ArchiveLocation.load(layout)) != archive { continue }
            return (archive, try result.get())
        }
    }

    /// The writer lock, or nil when another writer holds it. A lock that is held is tried again
    /// for up to about 100 ms: a child process this process spawns shares the lock file's open
    /// description (and so the `flock`) between its fork and its exec, so a store closed a
    /// moment ago may look held by then. A writer that really holds it is reported after that.
    private static func acquireWriterLock(_ layout: StoreLayout) throws(OpenError) -> (any Sendable)? {
        for attempt in 0..<Self.lockAttempts {
            let lock: (any Sendable)?
            do { lock = try layout.storage.lock(layout.lockPath) } catch { throw .system(error) }
            if lock != nil || attempt == Self.lockAttempts - 1 { return lock }
            usleep(5_000)
        }
        return nil
    }

    static let lockAttempts = 20

    private func finishOpening(scanned: Bool) throws(OpenError) {
        do {
            try writer.withLock { (writer) throws(SystemError) in
                // A verified tail is checkpointed before anything else is written (and the
                // clean-shutdown flag cleared; otherwise the first append clears it).
                if scanned { try writeCheckpoint(writer, clean: false) }
                // A segment made by an older format version is sealed, never extended with
                // records its version does not describe; one without a durable-mark area too,
                // so that every acknowledged append is vouched for (§3.8).
                let active = writer.active
                if writer.activeSealed || active.header.formatVersion < Format.appendSegmentVersion || !active.hasDurableMarks {
                    try startNextSegment(&writer)
                }
                // Everything recovery kept is durable: the mark says so before any append (a
                // repeat of a recovered append is acknowledged without a sync of its own, and a
                // compaction may move the checkpoint back to the start of this segment).
                // It also replaces a mark that claims more than recovery kept (a tail discarded on
                // request). Skipped when the newest mark says exactly this already (no write then).
                let end = writer.writtenEnd
                let segment = writer.active
                try durability.withLock { (durability) throws(SystemError) in
                    if !durability.marks.names(exactly: end) { try durability.marks.synced(end, acknowledged: end, in: segment) }
                }
            }
        } catch { throw .system(error) }
        if case .periodic(let interval) = options.durability { startPeriodicFlush(every: interval) }
        scheduleMaintenance(.mergeIndexFiles)
        if options.archive != nil { scheduleMaintenance(.archiveSegments) }
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
            closed.store(true, ordering: .sequentiallyConsistent)
            return
        }
        var failure: AppendError?
        do { try await flush() } catch { failure = error }
        let alreadyClosed = writer.withLock { _ in
            closed.exchange(true, ordering: .sequentiallyConsistent)
        }
        if alreadyClosed { return }
        // No background job may touch the directory once the lock is released: none is taken
        // from now on, and the ones scheduled run first.
        maintenance.stopAccepting()
        await maintenance.drain()
        writer.withLock { writer in
            let stillFine = durability.withLock { $0.failure == nil }
            if failure == nil, stillFine {
                do throws(SystemError) {
                    try writer.staged.write()
                    let synced = durability.withLock { $0.syncedOffset }
                    try writer.active.file.sync(min(synced, writer.writeOffset)..<writer.writeOffset)
                } catch {
                    // A flush still queued must not acknowledge frames whose write or sync failed.
                    durability.withLock { $0.failure = $0.failure ?? error }
                    failure = .storeFailed(error)
                }
                if failure == nil {
                    do throws(SystemError) { try writeCheckpoint(writer, clean: true) } catch { failure = .system(error) }
                }
            }
            if let prepared = writer.preparedSegment { try? layout.storage.unlinkIfPresent(prepared.file.path) }
            writer.preparedSegment = nil
            writer.fileLock = nil
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
            try file.write(at: 0, count: Format.segmentHeaderBytes) { header.encode(into: $0) }
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
