/// Online backup: a consistent copy of the store, made while appends go on, incremental.
extension EventStore {
    /// Copies every event durable when the backup starts (it flushes first, so every append
    /// acknowledged before the call is included) into the store directory `destination`, while
    /// appends go on. The result is an ordinary store: it opens, verifies and reads as that
    /// prefix of the log, with a checkpoint naming its end and the index files that match it.
    ///
    /// - Incremental: when `destination` holds an earlier backup of this store, the sealed
    ///   segment files already there (same header, sealed) are hard-linked into the new backup,
    ///   not copied again; only what is new is written (``BackupReport`` says what).
    /// - Crash-safe: the new backup is built beside `destination` (`destination.backup-tmp`),
    ///   synced, and swapped with the old one in one atomic step (`renameat2` with
    ///   `RENAME_EXCHANGE`; a plain rename for a first backup). A backup stopped at any moment
    ///   leaves `destination` the previous backup, or the new one, or absent before the first.
    /// - `destination` must be absent, empty, or a backup of this store (an `annals-backup`
    ///   file in it names the store); a store a writer has open there is refused.
    /// - Self-contained: archived segments (``archiveSegments(olderThan:to:)``) are copied into
    ///   the backup with the others; the backup needs no archive directory.
    /// - Runs on the store's maintenance queue: no compaction or index merge runs meanwhile.
    /// - From a read-only store (another process writes), it copies the log as that store sees
    ///   it (what it recovered when it opened).
    ///
    /// - Throws: ``BackupError``: `.storeClosed`, `.storeFailed`, `.foreignDestination` for a
    ///   destination that is something else, `.system` when a file operation fails (the
    ///   destination stays the previous backup).
    public func backup(to destination: String) async throws(BackupError) -> BackupReport {
        if !options.readOnly {
            do { try await flush() } catch {
                if case .storeFailed(let failure) = error { throw .storeFailed(failure) }
                throw .storeClosed
            }
        }
        let started = Syscalls.monotonicNanoseconds()
        let result: Result<BackupReport, BackupError> = await maintenance.run { [self] in
            Result { () throws(BackupError) in try copyDurablePrefix(to: destination) }
        }
        var report = try result.get()
        report.seconds = Double(Syscalls.monotonicNanoseconds() - started) / 1e9
        logger.notice("backup written", metadata: [
            "annals.destination": "\(destination)", "annals.position": "\(report.events)",
            "annals.bytes": "\(report.bytesCopied)", "annals.segmentsKept": "\(report.segmentsKept)",
        ])
        return report
    }

    /// The file in a backup directory that names the store it backs up.
    static let backupMarker = "annals-backup"

    /// The work of ``backup(to:)``, on the maintenance queue.
    private func copyDurablePrefix(to destination: String) throws(BackupError) -> BackupReport {
        if closed.load(ordering: .relaxed) { throw .storeClosed }
        if let failure = durability.withLock({ $0.failure }) { throw .storeFailed(failure) }
        let end = options.readOnly ? view.withLock { $0.visibleEnd } : durability.withLock { $0.marks.durable }
        let (segments, tables) = view.withLock { ($0.segments, $0.tables) }
        let lastTimestamp = writer.withLock { $0.lastTimestamp }
        let storage = layout.storage
        let target = StoreLayout(root: destination, storage: storage)
        let building = StoreLayout(root: destination + ".backup-tmp", storage: storage)
        var report = BackupReport()
        report.events = end.nextPosition
        do {
            // The previous backup: held locked (a writer there refuses it), checked, linked from.
            var previousLock: (any Sendable)?
            var previous: Set<String> = []
            if try storage.exists(destination) {
                let entries = try storage.directoryEntries(destination) ?? []
                if !entries.isEmpty {
                    guard entries.contains(Self.backupMarker),
                          let marker = try storage.readFile(destination + "/" + Self.backupMarker, maximumBytes: 4096),
                          String(decoding: marker, as: UTF8.self) == path
                    else { throw BackupError.foreignDestination(path: destination, reason: "it is not a backup of \(path)") }
                    previousLock = try storage.lock(target.lockPath)
                    guard previousLock != nil else {
                        throw BackupError.foreignDestination(path: destination, reason: "a writer has it open")
                    }
                    previous = Set(try storage.directoryEntries(target.segmentsDirectory) ?? [])
                }
            }
            try Self.remove(building)
            try storage.makeDirectory(building.root)
            try storage.makeDirectory(building.segmentsDirectory)
            for segment in segments where segment.index <= end.segmentIndex {
                let name = StoreLayout.segmentFileName(segment.index)
                let isOpen = segment.index == end.segmentIndex
                if !isOpen, previous.contains(name), try isSameSealedSegment(target.segmentPath(segment.index), as: segment) {
                    try storage.link(target.segmentPath(segment.index), to: building.segmentPath(segment.index))
                    report.segmentsKept += 1
                    continue
                }
                // The open segment up to the durable end, zeros after it (no durable mark: the
                // checkpoint names the end); a sealed one whole.
                var bytes = Array(segment.bytes)
                if isOpen { for offset in end.offset..<bytes.count { bytes[offset] = 0 } }
                try storage.writeFile(bytes, to: building.segmentPath(segment.index))
                report.segmentsCopied += 1
                report.bytesCopied += bytes.count
            }
            // The index files of the sealed segments copied: identical files, whose
            // fingerprints match them.
            for table in tables where table.segments.upperBound < end.segmentIndex {
                let bytes = Array(table.file.bytes)
                let name = String(building.indexPath(table.segments).split(separator: "/").last ?? "")
                let previousPath = target.indexPath(table.segments)
                if previous.contains(name), try storage.readFile(previousPath, maximumBytes: bytes.count + 1) == bytes {
                    try storage.link(previousPath, to: building.indexPath(table.segments))
                    continue
                }
                try storage.writeFile(bytes, to: building.indexPath(table.segments))
                report.bytesCopied += bytes.count
            }
            try storage.syncDirectory(building.segmentsDirectory)
            var checkpoint = Checkpoint(cleanShutdown: false, segmentIndex: end.segmentIndex, segmentOffset: UInt64(end.offset),
                                        nextPosition: end.nextPosition, sequence: 1, lastTimestamp: lastTimestamp)
            checkpoint.minimumReaderVersion = minimumReaderVersion
            if checkpoint.minimumReaderVersion == Format.archiveVersion {
                // The backup has no archive: only compaction or tags raise its readers' version.
                checkpoint.minimumReaderVersion = segments.contains(where: \.isCompacted) ? Format.compactedSegmentVersion : Format.appendSegmentVersion
            }
            try storage.writeFile(checkpoint.encoded(), to: building.checkpointPath)
            // The keys as they stand: every key a copied record names (keys are durable before
            // any record names them); none a forget destroyed.
            if let keys = keyRing?.fileBytes() { try storage.writeFile(keys, to: building.keysPath) }
            try storage.writeFile(Array(path.utf8), to: building.root + "/" + Self.backupMarker)
            try storage.syncDirectory(building.root)
            // One atomic step from the old backup to the new one.
            if previousLock != nil {
                try storage.exchange(destination, building.root)
                try storage.syncDirectory(target.parentDirectory)
                previousLock = nil
                try Self.remove(building) // the old backup, now under the temporary name
            } else {
                try storage.removeDirectoryIfPresent(destination) // empty
                try storage.rename(building.root, to: destination)
                try storage.syncDirectory(target.parentDirectory)
            }
        } catch let error as BackupError {
            try? Self.remove(building)
            throw error
        } catch let error as SystemError {
            try? Self.remove(building)
            throw .system(error)
        } catch {
            try? Self.remove(building)
            throw .system(SystemError(call: "backup", path: destination, errorNumber: 5))
        }
        return report
    }

    /// True when the file at `path` is `segment` as sealed: the same header and a seal frame
    /// (the copy of a segment that was open at an earlier backup has the header but no seal).
    private func isSameSealedSegment(_ path: String, as segment: Segment) throws(SystemError) -> Bool {
        guard layout.storage.fileSize(path) == segment.file.size else { return false }
        let copy = try layout.storage.openMappedFile(path: path, writable: false)
        guard let decoded = try? SegmentHeader.decode(copy.bytes, file: path) else { return false }
        let copied = Segment(header: decoded, file: copy, keyRing: nil)
        return copied.headerChecksum == segment.headerChecksum && copied.usedBytes == segment.usedBytes
    }
}

/// Restoring a backup.
extension EventStore {
    /// Copies the store directory `backup` (made by ``backup(to:)``, or any closed store) to
    /// `destination`, through a temporary directory that is checked (it must open, and read
    /// with no damage) before it takes `destination`'s place in one atomic step; then opens it
    /// for writing (recovery verifies its tail) and closes it cleanly. Segments `backup` has
    /// in an archive directory are copied in with the others: the restored store holds every
    /// segment itself.
    ///
    /// - Parameters:
    ///   - backup: the backup's directory.
    ///   - destination: the store directory to create.
    ///   - overwrite: replace a `destination` that exists and is not empty (default: refuse).
    ///     A store a writer has open there is refused even so. The old directory is swapped
    ///     out atomically and deleted afterwards.
    ///   - encryption: the backup's key-encryption key, when it holds encrypted events (the
    ///     restored store is checked with it).
    /// - Throws: ``OpenError``: `.notAStore` when `backup` is not a store or `destination` is
    ///   not empty and `overwrite` is false; `.storeLocked` when a writer has `destination`
    ///   open; `.corrupt` when the copy does not read whole (nothing is replaced);
    ///   `.archiveUnavailable` when `backup` has archived segments whose directory is not
    ///   there; what opening the result throws.
    public static func restore(
        backup: String, to destination: String, overwrite: Bool = false, encryption: EncryptionOptions? = nil
    ) async throws(OpenError) {
        try await restore(backup: backup, to: destination, overwrite: overwrite, encryption: encryption, storage: SystemStorage.shared)
    }

    static func restore(
        backup: String, to destination: String, overwrite: Bool, encryption: EncryptionOptions? = nil, storage: any Storage
    ) async throws(OpenError) {
        let source = StoreLayout(root: backup, storage: storage)
        let target = StoreLayout(root: destination, storage: storage)
        let building = StoreLayout(root: destination + ".restore-tmp", storage: storage)
        do {
            guard try storage.exists(source.segmentsDirectory) else {
                throw OpenError.notAStore(path: backup, reason: "no segments directory")
            }
            let occupied = try !(storage.directoryEntries(destination) ?? []).isEmpty
            var lock: (any Sendable)?
            if occupied {
                guard overwrite else {
                    throw OpenError.notAStore(path: destination, reason: "exists and is not empty (restore with overwrite to replace it)")
                }
                lock = try storage.lock(target.lockPath)
                guard lock != nil else { throw OpenError.storeLocked(path: destination) }
            }
            try Self.remove(building)
            try storage.makeDirectory(building.root)
            try storage.makeDirectory(building.segmentsDirectory)
            // Archived segments come home: the restored store holds every segment itself.
            let archive = try ArchiveLocation.load(source)
            var files = try source.listSegments(archive: archive).files.map(\.path)
            files += (try storage.directoryEntries(source.segmentsDirectory) ?? []).sorted()
                .filter { $0.hasSuffix(".idx") }.map { source.segmentsDirectory + "/" + $0 }
            for path in files {
                let bytes = try storage.readFile(path, maximumBytes: storage.fileSize(path) ?? 0) ?? []
                try storage.writeFile(bytes, to: building.segmentsDirectory + "/" + String(path.split(separator: "/").last ?? ""))
            }
            try storage.syncDirectory(building.segmentsDirectory)
            if let checkpoint = try storage.readFile(source.checkpointPath, maximumBytes: Format.checkpointBytes + 1) {
                try storage.writeFile(checkpoint, to: building.checkpointPath)
            }
            if let keys = try storage.readFile(source.keysPath, maximumBytes: storage.fileSize(source.keysPath) ?? 0) {
                try storage.writeFile(keys, to: building.keysPath)
            }
            try storage.syncDirectory(building.root)
            // Checked before it replaces anything.
            var readOptions = StoreOptions(readOnly: true)
            readOptions.storage = StorageChoice(storage: storage)
            readOptions.encryption = encryption
            let copy = try EventStore.open(at: building.root, options: readOptions)
            if let damage = copy.recoveryReport.damage { throw OpenError.corrupt(damage) }
            if occupied {
                try storage.exchange(destination, building.root)
                try storage.syncDirectory(target.parentDirectory)
                lock = nil
                try Self.remove(building) // the replaced store, now under the temporary name
            } else {
                try storage.removeDirectoryIfPresent(destination)
                try storage.rename(building.root, to: destination)
                try storage.syncDirectory(target.parentDirectory)
            }
        } catch let error as OpenError {
            try? Self.remove(building)
            throw error
        } catch let error as SystemError {
            throw .system(error)
        } catch {
            throw .notAStore(path: destination, reason: "\(error)")
        }
        var options = StoreOptions(createIfMissing: false)
        options.storage = StorageChoice(storage: storage)
        options.encryption = encryption
        if let size = currentSegmentSize(at: destination, storage: storage) { options.segmentSizeBytes = size }
        let restored = try EventStore.open(at: destination, options: options)
        do { try await restored.close() } catch { throw .system(SystemError(call: "close", path: destination, errorNumber: 5)) }
    }

    /// The size of the newest segment file under `path`, through `storage`.
    static func currentSegmentSize(at path: String, storage: any Storage) -> Int? {
        let layout = StoreLayout(root: path, storage: storage)
        // The last segment is never archived: the local files suffice.
        guard let last = (try? layout.listSegments(archive: nil))?.files.last else { return nil }
        return storage.fileSize(last.path)
    }

    /// Deletes a directory tree left by an interrupted backup or restore (or swapped out by
    /// one): files, then directories, depth first. Its key files are overwritten with zeros and
    /// synced first: an old backup replaced by a newer one keeps no copy of a key that was
    /// forgotten since (`format-spec.md` §1B).
    static func remove(_ layout: StoreLayout) throws(SystemError) {
        let storage = layout.storage
        for path in [layout.keysPath, layout.root + "/" + KeyStoreFile.scrubFileName] {
            if let size = storage.fileSize(path), size > 0 { try storage.write([UInt8](repeating: 0, count: size), to: path, at: 0) }
        }
        try removeTree(layout.root, storage: storage)
    }

    private static func removeTree(_ path: String, storage: any Storage) throws(SystemError) {
        guard let entries = try storage.directoryEntries(path) else {
            try storage.unlinkIfPresent(path)
            return
        }
        for name in entries { try removeTree(path + "/" + name, storage: storage) }
        try storage.removeDirectoryIfPresent(path)
    }
}
