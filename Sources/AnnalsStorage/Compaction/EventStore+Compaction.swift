/// Compaction: sealed segments are rewritten without their dead events (see ``Liveness``),
/// keeping every surviving event's position and revision; small results are merged.
///
/// Online: it runs on the maintenance queue (never beside an index write or merge), appends and reads go on,
/// and a reader holding a segment that gets replaced keeps its mapping of the old file until
/// it is done. Crash-safe at every step (see `format-spec.md`, "Compaction"): outputs are
/// written to temporary files and synced, renamed over the first segment they replace (one
/// atomic step each, so each number is either the old file or the new one), then the files
/// they replace are deleted and the index file of the range is rewritten. A crash leaves old
/// and new files that a writer's open sorts out: a file whose number lies inside a compacted
/// file's range is a left-over input (deleted), and an index file whose fingerprint does not
/// match its segment files is rebuilt.
extension EventStore {
    /// Gives the space of dead events back to the file system.
    ///
    /// - Parameters:
    ///   - options: what to rewrite (see ``CompactionOptions``).
    ///   - progress: called on the compaction's queue as it goes.
    /// - Returns: what was rewritten and the allocated bytes before and after.
    /// - Throws: ``CompactionError``; files already replaced stay replaced, consistently.
    @discardableResult
    public func compact(
        _ options: CompactionOptions = CompactionOptions(), progress: (@Sendable (CompactionProgress) -> Void)? = nil
    ) async throws(CompactionError) -> CompactionReport {
        guard !self.options.readOnly else { throw .readOnly }
        let started = Syscalls.monotonicNanoseconds()
        var report = CompactionReport()
        report.allocatedBytesBefore = try allocatedSegmentBytes()
        if options.sealOpenSegment { report.sealedOpenSegment = try sealOpenSegmentIfItHasDeadEvents(options) }
        // After the roll's index file: the compaction job queues behind it.
        let initial = report
        let result: Result<CompactionReport, CompactionError> = await maintenance.run { [self] in
            Result { () throws(CompactionError) in try compactSealedSegments(options, into: initial, progress: progress) }
        }
        report = try result.get()
        scheduleMaintenance(.mergeIndexFiles)
        report.allocatedBytesAfter = try allocatedSegmentBytes()
        report.seconds = Double(Syscalls.monotonicNanoseconds() - started) / 1e9
        metrics.compactionExamined.increment(by: report.allocatedBytesBefore)
        metrics.compactionWritten.increment(by: report.bytesWritten)
        metrics.compactionReleased.increment(by: max(0, report.allocatedBytesBefore - report.allocatedBytesAfter))
        logger.notice("compaction done", metadata: [
            "annals.releasedBytes": "\(max(0, report.allocatedBytesBefore - report.allocatedBytesAfter))",
            "annals.writtenBytes": "\(report.bytesWritten)", "annals.eventsRemoved": "\(report.eventsRemoved)",
            "annals.segmentsRewritten": "\(report.segmentsRewritten)",
        ])
        return report
    }

    /// Per segment file: what compaction would keep, remove and give back. Walks every frame
    /// (checksums verified).
    ///
    /// - Throws: ``CompactionError/corrupt(_:)`` for a frame that fails its checks,
    ///   ``CompactionError/system(_:)`` when file metadata cannot be read.
    public func spaceUsage() throws(CompactionError) -> [SegmentSpace] {
        var liveness = try makeLiveness()
        let (segments, end) = view.withLock { ($0.segments, $0.visibleEnd) }
        var result: [SegmentSpace] = []
        for segment in segments where segment.index <= end.segmentIndex {
            let isOpen = segment.index == end.segmentIndex
            let plan: SegmentPlan
            do { plan = try SegmentPlan.make(for: segment, limit: isOpen ? end.offset : nil, liveness: &liveness) } catch {
                guard case .corrupt(let corruption) = error else { throw .storeClosed }
                throw .corrupt(corruption)
            }
            let allocated: Int
            do { allocated = try segment.file.allocatedBytes() } catch { throw .system(error) }
            let live = Format.segmentHeaderBytes + plan.compactedBytes + Format.sealFrameBytes
            result.append(SegmentSpace(
                firstSegment: segment.index, lastSegment: segment.lastIndex, isOpen: isOpen, isCompacted: segment.isCompacted,
                fileBytes: segment.file.size, allocatedBytes: allocated, liveBytes: live, deadBytes: plan.removedBytes,
                reclaimableBytes: isOpen ? plan.removedBytes : max(0, allocated - live),
                liveEvents: plan.keptEvents, deadEvents: plan.removedEvents, bodyBytes: plan.bodyBytes,
                storedBodyBytes: plan.storedBodyBytes))
        }
        metrics.liveBytes.record(result.reduce(0) { $0 + $1.liveBytes })
        metrics.deadBytes.record(result.reduce(0) { $0 + $1.deadBytes })
        return result
    }

    // MARK: Steps

    private func allocatedSegmentBytes() throws(CompactionError) -> Int {
        let segments = view.withLock { $0.segments }
        var total = 0
        for segment in segments {
            do { total += try segment.file.allocatedBytes() } catch { throw .system(error) }
        }
        return total
    }

    /// Declares that in every system stream whose name starts with `prefix`, the newest event
    /// supersedes all earlier ones (a checkpoint, a committed state): compaction removes the
    /// earlier ones. The layer that owns such streams declares them — the `Annals` projection
    /// runner `$projection-`, the Kafka relay `$relay-`, `annals compact` both —; streams of a
    /// prefix nobody declared are kept whole, so nothing a layer may need is removed. The store's
    /// own streams (`$retention`, `$snapshot-…`) need no declaration and are never affected.
    /// A declaration lasts as long as the store object. Thread-safe.
    ///
    /// - Precondition: `prefix` starts with `$`, is longer than `$`, and neither contains nor
    ///   is contained in the name of one of the store's own streams (ignored otherwise: a
    ///   declaration can never make compaction drop retention records or snapshots).
    public func declareNewestOnlySystemStreams(prefix: String) {
        let own = [StreamRetention.stream, Liveness.snapshotPrefix]
        guard prefix.first == StoreLimits.reservedStreamPrefix, prefix.count > 1,
              !own.contains(where: { $0.hasPrefix(prefix) || prefix.hasPrefix($0) })
        else { return }
        newestOnlyPrefixes.withLock { _ = $0.insert(prefix) }
    }

    /// What is dead now: retention as reads apply it, plus the newest `$retention` record of
    /// each stream (older ones are superseded).
    private func makeLiveness() throws(CompactionError) -> Liveness {
        var newestRecord: [String: UInt64] = [:]
        var cursor = read(StreamRetention.stream).makeCursor()
        do {
            while let event = try cursor.next() {
                if let name = try event.withPayloadBytes({ StreamRetention.decode($0)?.stream }) { newestRecord[name] = event.revision }
            }
        } catch {
            guard case .corrupt(let corruption) = error else { throw .storeClosed }
            throw .corrupt(corruption)
        }
        return Liveness(rules: retentionView().rules, newestRetentionRecord: newestRecord,
                        newestOnlyPrefixes: newestOnlyPrefixes.withLock { $0 }) { [self] in lastRevision(of: $0) }
    }

    /// Seals the open segment when enough of what it holds is dead, so compaction can take it.
    private func sealOpenSegmentIfItHasDeadEvents(_ options: CompactionOptions) throws(CompactionError) -> Bool {
        var liveness = try makeLiveness()
        let (active, end) = view.withLock { ($0.segments[$0.segments.count - 1], $0.visibleEnd) }
        guard active.index == end.segmentIndex, end.offset > Format.segmentHeaderBytes else { return false }
        let plan: SegmentPlan
        do { plan = try SegmentPlan.make(for: active, limit: end.offset, liveness: &liveness) } catch {
            guard case .corrupt(let corruption) = error else { throw .storeClosed }
            throw .corrupt(corruption)
        }
        guard plan.removedBytes > 0, Double(plan.removedBytes) >= options.minimumGain * Double(plan.usedBytes) else { return false }
        return try writer.withLock { (writer) throws(CompactionError) -> Bool in
            if closed.load(ordering: .relaxed) { throw .storeClosed }
            if let failure = durability.withLock({ $0.failure }) { throw .storeFailed(failure) }
            guard writer.active === active, !writer.activeSealed else { return false }
            do throws(SystemError) { try startNextSegment(&writer) } catch {
                throw durability.withLock({ $0.failure != nil }) ? .storeFailed(error) : .system(error)
            }
            return true
        }
    }

    /// Runs on the maintenance queue: examines the sealed segments of each index file's range and
    /// rewrites the groups worth it.
    private func compactSealedSegments(
        _ options: CompactionOptions, into initial: CompactionReport, progress: (@Sendable (CompactionProgress) -> Void)?
    ) throws(CompactionError) -> CompactionReport {
        var report = initial
        // Recovery must never start inside a segment about to be rewritten: checkpoint the
        // start of the open segment (everything before it is durable since its roll).
        let checkpoint = try writer.withLock { (writer) throws(CompactionError) in
            if closed.load(ordering: .relaxed) { throw .storeClosed }
            if let failure = durability.withLock({ $0.failure }) { throw .storeFailed(failure) }
            return checkpointAtOpenSegmentStart(writer)
        }
        // Taken after the checkpoint: every segment before the open one is sealed and durable.
        let (segments, tables) = view.withLock { ($0.segments, $0.tables) }
        do { try checkpointer.write(checkpoint) } catch {
            throw .system(error)
        }
        var liveness = try makeLiveness()
        let total = tables.reduce(0) { count, table in count + segments.filter { table.segments.contains($0.index) }.count }
        for table in tables {
            if closed.load(ordering: .relaxed) { throw .storeClosed }
            let members = segments.filter { table.segments.contains($0.index) }
            var plans: [SegmentPlan] = []
            do {
                for member in members { plans.append(try SegmentPlan.make(for: member, liveness: &liveness)) }
            } catch {
                guard case .corrupt(let corruption) = error else { throw .storeClosed }
                throw .corrupt(corruption)
            }
            var allocated: [Int] = []
            for member in members {
                do { allocated.append(try member.file.allocatedBytes()) } catch { throw .system(error) }
            }
            // A compacted file replaces files of one directory: groups never span the archive's
            // boundary, and an archived group's output goes to the archive.
            let archiveBoundary = archive.withLock { $0?.firstLocalSegment ?? 0 }
            let groups = Self.groups(plans, allocated: allocated, targetBytes: self.options.segmentSizeBytes,
                                     minimumGain: options.minimumGain)
                .flatMap { Self.split($0) { members[$0].index < archiveBoundary } }
            if !groups.isEmpty {
                try rewrite(table, members: members, plans: plans, groups: groups, segments: segments, report: &report)
            }
            report.segmentsExamined += members.count
            progress?(CompactionProgress(segmentsExamined: report.segmentsExamined, segmentsTotal: total,
                                         bytesWritten: report.bytesWritten))
        }
        let final = writer.withLock { checkpointAtOpenSegmentStart($0) }
        do { try checkpointer.write(final) } catch {
            throw .system(error)
        }
        CrashPoints.reach("compaction: final checkpoint written")
        return report
    }

    /// A checkpoint at the start of the open segment: always true, since a roll syncs the
    /// sealed segment before the next one exists.
    func checkpointAtOpenSegmentStart(_ writer: WriterState) -> Checkpoint {
        let active = writer.active
        return makeCheckpoint(writer, clean: false, at: LogEnd(segmentIndex: active.index, offset: Format.segmentHeaderBytes,
                                                               nextPosition: active.firstPosition))
    }

    /// Runs of neighbouring segments to rewrite together: a segment joins when rewriting it
    /// gives back at least `minimumGain` of its allocated bytes or it is small; a run ends
    /// before its output would exceed a segment. A run is written when it merges several files
    /// or gives back enough.
    static func groups(_ plans: [SegmentPlan], allocated: [Int], targetBytes: Int, minimumGain: Double) -> [[Int]] {
        let overhead = Format.segmentHeaderBytes + Format.sealFrameBytes
        let releaseGranule = Self.releaseGranule
        var groups: [[Int]] = []
        var current: [Int] = []
        var currentBytes = 0
        // What a rewrite would give back, in whole file-system blocks.
        func gain(_ slot: Int) -> Int {
            allocated[slot] - (plans[slot].compactedBytes + overhead + releaseGranule - 1) / releaseGranule * releaseGranule
        }
        func worthIt(_ slot: Int) -> Bool { Double(gain(slot)) >= minimumGain * Double(allocated[slot]) && gain(slot) > 0 }
        func close() {
            if current.count >= 2 || current.first.map(worthIt) == true { groups.append(current) }
            current = []
            currentBytes = 0
        }
        for slot in plans.indices {
            let bytes = plans[slot].compactedBytes
            let small = bytes + overhead <= targetBytes / 4
            guard worthIt(slot) || small else {
                close()
                continue
            }
            if !current.isEmpty, currentBytes + bytes + overhead > targetBytes { close() }
            current.append(slot)
            currentBytes += bytes
        }
        close()
        return groups
    }

    /// `group` cut where `isArchived` changes: runs of segments in one directory.
    static func split(_ group: [Int], isArchived: (Int) -> Bool) -> [[Int]] {
        var runs: [[Int]] = []
        for slot in group {
            if let previous = runs.last?.last, isArchived(previous) == isArchived(slot) {
                runs[runs.count - 1].append(slot)
            } else {
                runs.append([slot])
            }
        }
        return runs
    }

    /// Replaces the `groups` of `members` (the segment files of `table`'s range) by compacted
    /// files, rewrites the table and swaps both in.
    private func rewrite(
        _ table: IndexTable, members: [Segment], plans: [SegmentPlan], groups: [[Int]], segments: [Segment],
        report: inout CompactionReport
    ) throws(CompactionError) {
        struct Written {
            let group: [Int]
            let temporaryPath: String
            let finalPath: String
            let output: CompactedSegmentEncoder.Output
        }
        var written: [Written] = []
        defer { for item in written { try? layout.storage.unlinkIfPresent(item.temporaryPath) } }
        for group in groups {
            let inputs = group.map { plans[$0] }
            let first = inputs[0].segment, last = inputs[inputs.count - 1].segment
            guard let after = segments.first(where: { $0.index > last.lastIndex }) else { continue }
            let output = CompactedSegmentEncoder.encode(
                inputs, numbers: first.index...last.lastIndex, firstPosition: first.firstPosition,
                endPosition: after.firstPosition, createdAt: options.clock.clock.nowNanoseconds())
            let finalPath = first.path // in the store directory or in the archive
            let temporaryPath = finalPath + ".compacting.tmp"
            if let problem = output.bytes.withUnsafeBytes({ CompactedSegmentEncoder.check($0, path: temporaryPath) }) {
                throw .corrupt(problem)
            }
            do { try layout.storage.writeFile(output.bytes, to: temporaryPath) } catch { throw .system(error) }
            written.append(Written(group: group, temporaryPath: temporaryPath, finalPath: finalPath, output: output))
            CrashPoints.reach("compaction: output written and synced")
        }
        // The point of no return, one file at a time: each rename replaces one number.
        do {
            for item in written {
                try layout.storage.rename(item.temporaryPath, to: item.finalPath)
                CrashPoints.reach("compaction: output renamed into place")
            }
            let directories = Set(written.map { StoreLayout(root: $0.finalPath, storage: layout.storage).parentDirectory })
            for directory in directories.sorted() { try layout.storage.syncDirectory(directory) }
            CrashPoints.reach("compaction: renames durable")
            for item in written {
                for slot in item.group.dropFirst() {
                    try layout.storage.unlinkIfPresent(members[slot].path)
                    CrashPoints.reach("compaction: replaced input deleted")
                }
            }
            for directory in directories.sorted() { try layout.storage.syncDirectory(directory) }
        } catch {
            throw .system(error)
        }
        // The new range: untouched members and the compacted files, in number order.
        var replacements: [Int: Segment] = [:]
        var replaced = Set<Int>()
        var newFrames: [(UInt64, [(stream: String, location: FrameLocation)])] = []
        for item in written {
            let file: MappedFile
            do { file = try layout.storage.openMappedFile(path: item.finalPath, writable: false) } catch { throw .system(error) }
            replacements[item.group[0]] = Segment(header: item.output.header, file: file, keyRing: keyRing)
            newFrames.append((item.output.header.segmentIndex, item.output.frames))
            replaced.formUnion(item.group)
            report.segmentsRewritten += item.group.count
            report.filesWritten += 1
            report.bytesWritten += item.output.bytes.count
            for slot in item.group {
                report.eventsRemoved += plans[slot].removedEvents
                report.eventsKept += plans[slot].keptEvents
            }
        }
        written.removeAll()
        var newMembers: [Segment] = []
        for slot in members.indices {
            if let replacement = replacements[slot] { newMembers.append(replacement) } else if !replaced.contains(slot) { newMembers.append(members[slot]) }
        }
        let rewrittenNumbers = Set(replaced.map { members[$0].index })
        var entries: [IndexFile.Entry] = []
        entries.reserveCapacity(table.entryCount)
        for slot in 0..<table.entryCount {
            let entry = table.entry(slot)
            if !rewrittenNumbers.contains(UInt64(entry.segmentIndex)) { entries.append(entry) }
        }
        let hasher = options.streamHasher
        for (number, frames) in newFrames {
            for (stream, location) in frames {
                entries.append(IndexFile.Entry(streamHash: hasher.hash(stream), firstRevision: location.firstRevision,
                                               firstPosition: location.firstPosition, segmentIndex: UInt32(number),
                                               offset: location.offset, eventCount: location.eventCount))
            }
        }
        // Query entries: the untouched segments' as they were, the compacted files' from their
        // frames (verified when the file was checked; walked again, verified, to read the keys).
        var keyEntries: [IndexFile.Entry] = []
        keyEntries.reserveCapacity(table.keyEntryCount)
        for slot in 0..<table.keyEntryCount {
            let entry = table.keyEntry(slot)
            if !rewrittenNumbers.contains(UInt64(entry.segmentIndex)) { keyEntries.append(entry) }
        }
        for replacement in replacements.values {
            let keyed: [(QueryKey, FrameLocation)]
            do { keyed = try replacement.keyedFrames() } catch {
                guard case .corrupt(let corruption) = error else { throw .storeClosed }
                throw .corrupt(corruption)
            }
            for (key, frame) in keyed { keyEntries.append(IndexFile.Entry(keyHash: key.hash(with: hasher), frame: frame)) }
        }
        let newTable: IndexTable?
        do {
            newTable = try IndexWriter.write(segments: table.segments, nextPosition: table.nextPosition,
                                             fingerprint: IndexFile.fingerprint(ofHeaderChecksums: newMembers.map(\.headerChecksum)), entries: entries,
                                             keyEntries: keyEntries, hasher: hasher, layout: layout)
        } catch {
            throw .system(error)
        }
        CrashPoints.reach("compaction: index file rewritten")
        guard let newTable else {
            throw .corrupt(CorruptionError(file: layout.indexPath(table.segments), offset: 0, reason: "index file unreadable after writing"))
        }
        view.withLock { view in
            if let first = view.segments.firstIndex(where: { $0 === members[0] }), first + members.count <= view.segments.count {
                view.segments.replaceSubrange(first..<first + members.count, with: newMembers)
            }
            if let slot = view.tables.firstIndex(where: { $0 === table }) { view.tables[slot] = newTable }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
