/// Online backup: a consistent copy of the store, made while appends go on, incremental.
extension EventStore {
    /// Copies every event durable when the backup starts (it flushes first, so every append
    /// acknowledged before the call is included) into the store directory `destination`, while
    /// appends go on. The result is an ordinary store: it opens, verifies and reads as that
    /// prefix of the log, with a checkpoint naming its end and the index files that match it.
    ///
    /// - Incremental: when `destination` holds an earlier backup of this store, the sealed
    ///   segment files already there (same header, sealed) are kept, not copied again; only
    ///   what is new is written (``BackupReport`` says what).
    /// - Crash-safe: the first backup is built beside `destination` and renamed into place; a
    ///   later one replaces files one at a time, in segment order, each through a temporary file,
    ///   a rename and a directory sync. A backup stopped at any moment leaves `destination`
    ///   absent (first backup), or a store that opens and reads as a prefix of the log at least as
    ///   long as the previous backup's.
    /// - Runs on the store's maintenance queue: no compaction or index merge runs meanwhile.
    /// - From a read-only store (another process writes), it copies the log as that store sees
    ///   it (what it recovered when it opened).
    ///
    /// - Throws: ``BackupError``: `.storeClosed`, `.storeFailed`,
    ///   `.foreignDestination` when `destination` holds something that is not a backup of this
    ///   store, `.system` when a file operation fails (the destination stays as the guarantees
    ///   above say).
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

    /// The work of ``backup(to:)``, on the maintenance queue.
    private func copyDurablePrefix(to destination: String) throws(BackupError) -> BackupReport {
        if closed.load(ordering: .relaxed) { throw .storeClosed }
        if let failure = durability.withLock({ $0.failure }) { throw .storeFailed(failure) }
        let end = options.readOnly ? view.withLock { $0.visibleEnd } : durability.withLock { $0.marks.durable }
        let (segments, tables) = view.withLock { ($0.segments, $0.tables) }
        let lastTimestamp = writer.withLock { $0.lastTimestamp }
        let storage = layout.storage
        let target = StoreLayout(root: destination, storage: storage)
        var report = BackupReport()
        report.events = end.nextPosition
        do {
            let firstBackup = try !storage.exists(destination)
            // The first backup is built beside the destination and renamed into place.
            let building = firstBackup ? StoreLayout(root: destination + ".backup-tmp", storage: storage) : target
            if firstBackup { try Self.remove(building) }
            try storage.makeDirectory(building.root)
            try storage.makeDirectory(building.segmentsDirectory)
            if !firstBackup { try checkDestination(building, against: segments) }
            let existing = Set(try storage.directoryEntries(building.segmentsDirectory) ?? [])
            for segment in segments where segment.index <= end.segmentIndex {
                let name = StoreLayout.segmentFileName(segment.index)
                let isOpen = segment.index == end.segmentIndex
                if !isOpen, existing.contains(name), try isSameSealedSegment(building.segmentPath(segment.index), as: segment) {
                    report.segmentsKept += 1
                    continue
                }
                // The open segment up to the durable end, zeros after it (no durable mark: the
                // checkpoint names the end); a sealed one whole.
                var bytes = Array(segment.bytes)
                if isOpen { for offset in end.offset..<bytes.count { bytes[offset] = 0 } }
                try replace(building.segmentPath(segment.index), with: bytes, in: building)
                report.segmentsCopied += 1
                report.bytesCopied += bytes.count
                // A compacted file stands for a range: the older files of its numbers go.
                for superseded in (segment.index + 1)...max(segment.index + 1, segment.lastIndex) where segment.isCompacted {
                    try storage.unlinkIfPresent(building.segmentPath(superseded))
                }
            }
            // Index files of the sealed segments copied: identical files, so their fingerprints
            // match; any other index file in the destination is stale and goes.
            var indexNames: Set<String> = []
            for table in tables where table.segments.upperBound < end.segmentIndex {
                let path = building.indexPath(table.segments)
                indexNames.insert(String(path.split(separator: "/").last ?? ""))
                let bytes = Array(table.file.bytes)
                if existing.contains(String(path.split(separator: "/").last ?? "")),
                   try storage.readFile(path, maximumBytes: bytes.count + 1) == bytes { continue }
                try replace(path, with: bytes, in: building)
                report.bytesCopied += bytes.count
            }
            for name in existing where name.hasSuffix(".idx") && !indexNames.contains(name) {
                try storage.unlinkIfPresent(building.segmentsDirectory + "/" + name)
            }
            try storage.syncDirectory(building.segmentsDirectory)
            let previous = try storage.readFile(building.checkpointPath, maximumBytes: Format.checkpointBytes + 1)
                .flatMap { try? Checkpoint.decode($0).get() }
            var checkpoint = Checkpoint(cleanShutdown: false, segmentIndex: end.segmentIndex, segmentOffset: UInt64(end.offset),
                                        nextPosition: end.nextPosition, sequence: (previous?.sequence ?? 0) + 1,
                                        lastTimestamp: lastTimestamp)
            if segments.contains(where: \.isCompacted) { checkpoint.minimumReaderVersion = Format.compactedSegmentVersion }
            try storage.writeFileAtomically(checkpoint.encoded(), to: building.checkpointPath, directory: building.root)
            if firstBackup {
                try storage.syncDirectory(building.root)
                try storage.rename(building.root, to: destination)
                try storage.syncDirectory(target.parentDirectory)
            }
        } catch let error as BackupError {
            throw error
        } catch let error as SystemError {
            throw .system(error)
        } catch {
            throw .system(SystemError(call: "backup", path: destination, errorNumber: 5))
        }
        return report
    }

    /// Writes `bytes` to `path` through a temporary file, a rename and a directory sync: the
    /// file is either the old one or the new one, and durable before the next step.
    private func replace(_ path: String, with bytes: [UInt8], in layout: StoreLayout) throws(SystemError) {
        let temporary = path + ".backup.tmp"
        try layout.storage.writeFile(bytes, to: temporary)
        try layout.storage.rename(temporary, to: path)
        try layout.storage.syncDirectory(layout.segmentsDirectory)
    }

    /// True when the file at `path` is `segment` as sealed: the same header and a seal frame
    /// (the copy of a segment that was open at an earlier backup has the header but no seal).
    private func isSameSealedSegment(_ path: String, as segment: Segment) throws(SystemError) -> Bool {
        guard layout.storage.fileSize(path) == segment.file.size else { return false }
        let copy = try layout.storage.openMappedFile(path: path, writable: false)
        guard let decoded = try? SegmentHeader.decode(copy.bytes, file: path) else { return false }
        let copied = Segment(header: decoded, file: copy)
        return copied.headerChecksum == segment.headerChecksum && copied.usedBytes == segment.usedBytes
    }

    /// Refuses a destination that holds another store: its first segment file must have the
    /// header of this store's segment of that number (or of the file that replaced it).
    private func checkDestination(_ destination: StoreLayout, against segments: [Segment]) throws(BackupError) {
        let listing: (indexes: [UInt64], temporaryFiles: [String])
        do { listing = try destination.listSegments() } catch { throw .system(error) }
        for file in listing.temporaryFiles { try? destination.storage.unlinkIfPresent(file) }
        guard let first = listing.indexes.first else { return }
        guard let source = segments.segment(numbered: first) else {
            throw .foreignDestination(path: destination.root, reason: "its segment \(first) is not this store's")
        }
        let copy: MappedFile
        do { copy = try destination.storage.openMappedFile(path: destination.segmentPath(first), writable: false) } catch {
            throw .system(error)
        }
        // The same first position (a compacted file keeps it), and the same header when the
        // source still has that very file.
        guard let header = try? SegmentHeader.decode(copy.bytes, file: copy.path), header.firstPosition == source.firstPosition,
              source.index != first || source.isCompacted || header.isCompacted
                || Segment(header: header, file: copy).headerChecksum == source.headerChecksum
        else { throw .foreignDestination(path: destination.root, reason: "its segment \(first) is not this store's") }
    }
}

/// Restoring a backup.
extension EventStore {
    /// Copies the store directory `backup` (made by ``backup(to:)``, or any closed store) to
    /// `destination`, through a temporary directory renamed into place, then opens it for
    /// writing (recovery verifies its tail) and closes it cleanly.
    ///
    /// - Parameters:
    ///   - backup: the backup's directory.
    ///   - destination: the store directory to create.
    ///   - overwrite: replace a `destination` that exists and is not empty (default: refuse).
    ///     The old directory is moved aside to `destination.restore-old` and deleted once the
    ///     new one is in place; a crash between the two renames leaves both beside
    ///     `destination`, to be restored again.
    /// - Throws: ``OpenError``: `.notAStore` when `backup` is not a store or `destination` is
    ///   not empty and `overwrite` is false; what opening the result throws.
    public static func restore(backup: String, to destination: String, overwrite: Bool = false) async throws(OpenError) {
        try await restore(backup: backup, to: destination, overwrite: overwrite, storage: SystemStorage.shared)
    }

    static func restore(backup: String, to destination: String, overwrite: Bool, storage: any Storage) async throws(OpenError) {
        let source = StoreLayout(root: backup, storage: storage)
        let target = StoreLayout(root: destination, storage: storage)
        let building = StoreLayout(root: destination + ".restore-tmp", storage: storage)
        let aside = StoreLayout(root: destination + ".restore-old", storage: storage)
        do {
            guard try storage.exists(source.segmentsDirectory) else {
                throw OpenError.notAStore(path: backup, reason: "no segments directory")
            }
            let occupied = try !(storage.directoryEntries(destination) ?? []).isEmpty
            if occupied, !overwrite {
                throw OpenError.notAStore(path: destination, reason: "exists and is not empty (restore with overwrite to replace it)")
            }
            try Self.remove(building)
            try storage.makeDirectory(building.root)
            try storage.makeDirectory(building.segmentsDirectory)
            for name in (try storage.directoryEntries(source.segmentsDirectory) ?? []).sorted()
            where StoreLayout.segmentIndex(fileName: name) != nil || name.hasSuffix(".idx") {
                let path = source.segmentsDirectory + "/" + name
                let bytes = try storage.readFile(path, maximumBytes: storage.fileSize(path) ?? 0) ?? []
                try storage.writeFile(bytes, to: building.segmentsDirectory + "/" + name)
            }
            try storage.syncDirectory(building.segmentsDirectory)
            if let checkpoint = try storage.readFile(source.checkpointPath, maximumBytes: Format.checkpointBytes + 1) {
                try storage.writeFile(checkpoint, to: building.checkpointPath)
            }
            try storage.syncDirectory(building.root)
            if try storage.exists(destination) {
                try Self.remove(aside)
                try storage.rename(destination, to: aside.root)
            }
            try storage.rename(building.root, to: destination)
            try storage.syncDirectory(target.parentDirectory)
            try Self.remove(aside)
        } catch let error as OpenError {
            throw error
        } catch let error as SystemError {
            throw .system(error)
        } catch {
            throw .notAStore(path: destination, reason: "\(error)")
        }
        var options = StoreOptions(createIfMissing: false)
        options.storage = StorageChoice(storage: storage)
        if let size = currentSegmentSize(at: destination, storage: storage) { options.segmentSizeBytes = size }
        let restored = try EventStore.open(at: destination, options: options)
        do { try await restored.close() } catch { throw .system(SystemError(call: "close", path: destination, errorNumber: 5)) }
    }

    /// The size of the newest segment file under `path`, through `storage`.
    static func currentSegmentSize(at path: String, storage: any Storage) -> Int? {
        let layout = StoreLayout(root: path, storage: storage)
        guard let last = (try? layout.listSegments())?.indexes.last else { return nil }
        return storage.fileSize(layout.segmentPath(last))
    }

    /// Deletes a store directory left by an interrupted backup or restore.
    static func remove(_ layout: StoreLayout) throws(SystemError) {
        let storage = layout.storage
        for name in try storage.directoryEntries(layout.segmentsDirectory) ?? [] {
            try storage.unlinkIfPresent(layout.segmentsDirectory + "/" + name)
        }
        try storage.removeDirectoryIfPresent(layout.segmentsDirectory)
        for name in try storage.directoryEntries(layout.root) ?? [] {
            try storage.unlinkIfPresent(layout.root + "/" + name)
        }
        try storage.removeDirectoryIfPresent(layout.root)
    }
}
