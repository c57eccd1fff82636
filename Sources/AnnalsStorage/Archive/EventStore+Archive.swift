/// Archiving: sealed segments move to another directory (another file system, cheaper and
/// slower), and reads find them there (`format-spec.md` §1A).
///
/// Crash-safe at every step. A run copies each segment to the archive directory (temp file,
/// fsync, rename, directory fsync), then commits by replacing the store's `archive` file (which
/// names the first segment still local), then deletes the local files. Before the commit the
/// local files are the segments and the copies are left-overs; after it the archived files are,
/// and the local ones are left-overs; a writer's open deletes left-overs. Each segment is
/// therefore always readable, whole, from exactly one place.
extension EventStore {
    /// Moves every sealed segment whose newest event is older than `age` to `directory`,
    /// oldest first (the archive always holds the log's first segments: a segment stays local
    /// while an older one does). Reads, appends and every other operation see no difference
    /// but the latency of the archive's storage; `verify`, compaction and backup handle both
    /// places. The segments' index files stay in the store directory, so a read of an
    /// archived segment touches the archive only for the frames it returns.
    ///
    /// - Parameters:
    ///   - age: how old a segment's newest event must be (by the store's clock).
    ///   - directory: the archive directory, absolute or relative to the store directory. It
    ///     must be missing or empty the first time; it is created when missing and marked as
    ///     this store's archive (an `annals-archive` file). A store has one archive directory
    ///     from the first segment moved on.
    /// - Returns: what moved. Durable when it returns: the moved segments are synced in the
    ///   archive and the store's `archive` file names them.
    /// - Throws: ``ArchiveError``. A segment that fails its checksums is not moved
    ///   (`.corrupt`); `.otherDirectory` when the store archives elsewhere already;
    ///   `.foreignDirectory` for a directory that is neither empty nor this store's archive (or
    ///   a path longer than 4,096 bytes); `.system` when a file operation fails. Whatever was
    ///   not committed stays local; a local file that cannot be deleted after the commit is
    ///   logged, and the next writable open deletes it.
    ///
    /// Runs on the store's maintenance queue: no compaction, backup or index merge meanwhile.
    @discardableResult
    public func archiveSegments(olderThan age: Duration, to directory: String) async throws(ArchiveError) -> ArchiveReport {
        guard !options.readOnly else { throw .readOnly }
        let started = Syscalls.monotonicNanoseconds()
        let result: Result<ArchiveReport, ArchiveError> = await maintenance.run { [self] in
            Result { () throws(ArchiveError) in try moveSegmentsToArchive(olderThan: age, directory: directory) }
        }
        var report = try result.get()
        report.seconds = Double(Syscalls.monotonicNanoseconds() - started) / 1e9
        return report
    }

    /// The archive directory (as a path) when the store has archived segments or is set up to,
    /// nil otherwise.
    public var archiveDirectory: String? { archive.withLock { $0?.directory } }

    /// The archive job that ``StoreOptions/archive`` schedules after each roll and at open.
    func archiveByPolicy() -> MaintenanceFailure? {
        guard let policy = options.archive else { return nil }
        do { _ = try moveSegmentsToArchive(olderThan: policy.olderThan, directory: policy.directory) } catch {
            return MaintenanceFailure(what: "archiving segments to \(policy.directory)", error: error,
                                      retry: error.isWorthRetrying)
        }
        return nil
    }

    /// The work of ``archiveSegments(olderThan:to:)``, on the maintenance queue.
    func moveSegmentsToArchive(olderThan age: Duration, directory requested: String) throws(ArchiveError) -> ArchiveReport {
        if closed.load(ordering: .relaxed) { throw .storeClosed }
        if let failure = durability.withLock({ $0.failure }) { throw .storeFailed(failure) }
        let storage = layout.storage
        var location = try archiveLocation(for: requested)
        var report = ArchiveReport()
        report.directory = location.directory
        report.firstLocalSegment = location.firstLocalSegment
        let (difference, overflow) = options.clock.clock.nowNanoseconds().subtractingReportingOverflow(age.totalNanoseconds)
        let cutoff = overflow ? (age > .zero ? Int64.min : Int64.max) : difference
        let (segments, end) = view.withLock { ($0.segments, $0.visibleEnd) }
        var moving: [Segment] = []
        for (slot, segment) in segments.enumerated() where segment.index >= location.firstLocalSegment {
            // Sealed segments only, oldest first, while old enough.
            guard slot + 1 < segments.count, segment.lastIndex < end.segmentIndex else { break }
            guard try newestTimestamp(before: segments[slot + 1].firstPosition) < cutoff else { break }
            moving.append(segment)
        }
        guard let last = moving.last else { return report }

        var temporaryPaths: [String] = []
        defer { for path in temporaryPaths { try? storage.unlinkIfPresent(path) } }
        var copies: [Segment] = []
        do {
            try removeTemporaryCopies(in: location)
            for segment in moving {
                try Self.checkBeforeArchiving(segment)
                let final = location.segmentPath(segment.index)
                let temporary = final + Self.copySuffix
                temporaryPaths.append(temporary)
                try storage.writeFile(Array(segment.bytes), to: temporary)
                try storage.rename(temporary, to: final)
                CrashPoints.reach("archive: segment copied")
                report.bytesMoved += segment.file.size
            }
            try storage.syncDirectory(location.directory)
            // Mapped before the commit (after it, these are the segments), with the header and
            // size checked against the segment's: a copy that is not the file is never committed.
            for segment in moving {
                let path = location.segmentPath(segment.index)
                let file = try storage.openMappedFile(path: path, writable: false)
                guard let header = try? SegmentHeader.decode(file.bytes, file: path), header == segment.header,
                      file.size == segment.file.size
                else { throw ArchiveError.corrupt(CorruptionError(file: path, offset: 0, reason: "the archived copy differs from the segment")) }
                copies.append(Segment(header: header, file: file, keyRing: keyRing))
            }
            // The commit.
            location.manifest.firstLocalSegment = last.lastIndex + 1
            try storage.writeFileAtomically(location.manifest.encoded(), to: layout.archiveManifestPath, directory: layout.root)
            CrashPoints.reach("archive: archive file written")
        } catch let error as ArchiveError {
            throw error
        } catch let error as SystemError {
            // A failed sync of the `archive` file may still have replaced it: the next run
            // reads it back before anything else (``archiveLocation(for:)``).
            throw .system(error)
        } catch {
            throw .system(SystemError(call: "archive", path: location.directory, errorNumber: 5))
        }
        temporaryPaths.removeAll()
        archive.withLock { $0 = location }
        view.withLock { view in
            for (old, copy) in zip(moving, copies) {
                if let slot = view.segments.firstIndex(where: { $0 === old }) { view.segments[slot] = copy }
            }
        }
        report.segmentsMoved = moving.count
        report.firstLocalSegment = location.firstLocalSegment
        // The segments moved: a local file that cannot be deleted now is a left-over the next
        // writable open deletes. Readers that hold the local files keep their mappings.
        do {
            for segment in moving {
                try storage.unlinkIfPresent(segment.path)
                CrashPoints.reach("archive: local file deleted")
            }
            try storage.syncDirectory(layout.segmentsDirectory)
        } catch {
            logger.warning("archived segments' local files not deleted; the next writable open deletes them",
                           metadata: ["annals.error": "\(error)"])
        }
        metrics.archivedBytes.increment(by: report.bytesMoved)
        logger.notice("segments archived", metadata: [
            "annals.archive": "\(location.directory)", "annals.segmentsMoved": "\(report.segmentsMoved)",
            "annals.bytes": "\(report.bytesMoved)", "annals.firstLocalSegment": "\(report.firstLocalSegment)",
        ])
        return report
    }

    /// The suffix of a copy being written into the archive directory.
    static let copySuffix = ".archiving.tmp"

    /// The store's archive, checked, or a new one in `requested`.
    ///
    /// The `archive` file on disk wins over the one in memory: a commit whose sync failed may
    /// have replaced it. A new archive is set up in an order that a crash cannot turn into a
    /// refused store: a checkpoint naming version 5 (so no older reader reads the store
    /// without its archive), the `archive` file naming the directory with nothing archived
    /// yet, then the directory (its parent synced) and its `annals-archive` marker. While
    /// nothing is archived, the directory may still change, and a missing marker is written
    /// again (in a directory holding nothing but copies of this store's segments).
    private func archiveLocation(for requested: String) throws(ArchiveError) -> ArchiveLocation {
        let storage = layout.storage
        let given = Self.trimmed(requested)
        guard !given.isEmpty, given.utf8.count <= ArchiveManifest.maximumDirectoryBytes else {
            throw .foreignDirectory(path: given, reason: "an archive directory is 1 to \(ArchiveManifest.maximumDirectoryBytes) bytes long")
        }
        let wanted = ArchiveLocation(manifest: ArchiveManifest(directory: given, archiveID: [], firstLocalSegment: 0),
                                     storeRoot: layout.root).directory
        do {
            var current = archive.withLock { $0 }
            if let bytes = try storage.readFile(layout.archiveManifestPath, maximumBytes: ArchiveManifest.maximumDirectoryBytes + 64),
               case .success(let onDisk) = ArchiveManifest.decode(bytes, file: layout.archiveManifestPath),
               current.map({ onDisk.archiveID == $0.manifest.archiveID && onDisk.firstLocalSegment >= $0.firstLocalSegment }) ?? true {
                current = ArchiveLocation(manifest: onDisk, storeRoot: layout.root)
            }
            if let current, current.firstLocalSegment > 0 || Self.samePlace(current.directory, wanted) {
                guard Self.samePlace(current.directory, wanted) else {
                    throw ArchiveError.otherDirectory(current: current.directory, requested: wanted)
                }
                if let problem = current.markerProblem(storage: storage) {
                    guard current.firstLocalSegment == 0, try holdsOnlyCopies(current.directory) else {
                        throw ArchiveError.foreignDirectory(path: current.directory, reason: problem)
                    }
                    try makeArchiveDirectory(current)
                }
                archive.withLock { $0 = current }
                return current
            }
            // A new archive (or, with nothing archived yet, another directory for it).
            if let entries = try storage.directoryEntries(wanted), !entries.isEmpty {
                throw ArchiveError.foreignDirectory(
                    path: wanted, reason: entries.contains(ArchiveMarker.fileName) ? "it is the archive of another store" : "it is not empty")
            }
            var id = [UInt8](repeating: 0, count: 16)
            id.withUnsafeMutableBytes { Syscalls.fillRandom($0) }
            let location = ArchiveLocation(manifest: ArchiveManifest(directory: given, archiveID: id, firstLocalSegment: 0),
                                           storeRoot: layout.root)
            checkpointsNameArchives.store(true, ordering: .relaxed)
            try checkpointer.write(writer.withLock { checkpointAtOpenSegmentStart($0) })
            try storage.writeFileAtomically(location.manifest.encoded(), to: layout.archiveManifestPath, directory: layout.root)
            CrashPoints.reach("archive: archive file created")
            try makeArchiveDirectory(location)
            archive.withLock { $0 = location }
            return location
        } catch let error as ArchiveError {
            throw error
        } catch let error as SystemError {
            throw .system(error)
        } catch {
            throw .system(SystemError(call: "archive", path: wanted, errorNumber: 5))
        }
    }

    /// Creates the archive directory when missing, syncs the directory that holds it (a
    /// directory made by someone else may not be durable yet either), and writes its marker.
    private func makeArchiveDirectory(_ location: ArchiveLocation) throws(SystemError) {
        let storage = layout.storage
        if try !storage.exists(location.directory) { try storage.makeDirectory(location.directory) }
        try storage.syncDirectory(StoreLayout(root: location.directory, storage: storage).parentDirectory)
        try storage.writeFileAtomically(ArchiveMarker.encoded(archiveID: location.manifest.archiveID),
                                        to: location.directory + "/" + ArchiveMarker.fileName, directory: location.directory)
        CrashPoints.reach("archive: directory marked")
    }

    /// True when `directory` is missing or holds nothing but segment files and copies in
    /// progress (what an earlier run of this store that stopped before its first commit leaves).
    private func holdsOnlyCopies(_ directory: String) throws(SystemError) -> Bool {
        try (layout.storage.directoryEntries(directory) ?? []).allSatisfy {
            StoreLayout.segmentIndex(fileName: $0) != nil || $0.hasSuffix(Self.copySuffix) || $0.hasSuffix(".tmp")
        }
    }

    /// Copies in progress that a run which stopped left in the archive. Segment files at or
    /// above the boundary are left alone: never read, and replaced by the next copy of the
    /// same number.
    private func removeTemporaryCopies(in location: ArchiveLocation) throws(SystemError) {
        for name in try layout.storage.directoryEntries(location.directory) ?? [] where name.hasSuffix(Self.copySuffix) {
            try layout.storage.unlinkIfPresent(location.directory + "/" + name)
        }
    }

    /// The same directory (after resolving links, `.` and `..` when it exists).
    private static func samePlace(_ a: String, _ b: String) -> Bool {
        a == b || (Syscalls.canonicalPath(a).map { $0 == Syscalls.canonicalPath(b) } ?? false)
    }

    /// The timestamp of the newest event before `position` (`Int64.min` when there is none):
    /// with timestamps that never go back, the newest event of the segments before it.
    private func newestTimestamp(before position: UInt64) throws(ArchiveError) -> Int64 {
        guard position > 0 else { return .min }
        var cursor = BackwardCursor(snapshot: snapshot(), from: position - 1, limit: 1)
        do { return try cursor.next()?.timestamp.nanosecondsSinceEpoch ?? .min } catch {
            guard case .corrupt(let corruption) = error else { return .min }
            throw .corrupt(corruption)
        }
    }

    /// Every frame of a sealed segment checks (checksums and records) up to its seal: damage
    /// is reported, never copied to the archive where it would be found later.
    private static func checkBeforeArchiving(_ segment: Segment) throws(ArchiveError) {
        var walk = segment.walk(verification: .checksumsAndRecords)
        while true {
            switch walk.next() {
            case .events, .dictionary: continue
            case .seal: return
            case .endOfData(let offset), .limit(let offset):
                throw .corrupt(segment.corruption(at: offset, "sealed segment without its seal frame"))
            case .notAFrame(let offset, let reason), .corrupt(let offset, let reason):
                throw .corrupt(segment.corruption(at: offset, reason))
            }
        }
    }

    /// `path` without trailing slashes.
    private static func trimmed(_ path: String) -> String {
        var path = path
        while path.count > 1, path.hasSuffix("/") { path.removeLast() }
        return path
    }
}

extension ArchiveError {
    /// False for what a retry cannot fix (the store closed or failed, a foreign or other
    /// directory, corruption): the job then waits for the next roll.
    var isWorthRetrying: Bool {
        if case .system = self { return true }
        return false
    }
}

extension Duration {
    /// The duration in whole nanoseconds (saturating).
    var totalNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return product.addingReportingOverflow(attoseconds / 1_000_000_000).overflow ? .max : product + attoseconds / 1_000_000_000
    }
}
