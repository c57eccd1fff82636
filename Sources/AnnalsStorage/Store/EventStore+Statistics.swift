/// Size and shape of a store.
public struct StoreStatistics: Sendable, Hashable, Codable {
    /// Segment files.
    public var segments: Int
    /// Events committed (positions are gapless, so also the next position).
    public var events: UInt64
    /// Streams with at least one event (distinct stream hashes: names whose hashes collide
    /// count once).
    public var streams: Int
    /// Frames in the stream index (index files and memory).
    public var indexedFrames: Int
    /// Bytes of index files on disk.
    public var indexFileBytes: Int
    /// Approximate bytes of the in-memory index of the open segment.
    public var indexMemoryBytes: Int
    /// Bytes of frames in use across all segments (headers and padding included).
    public var usedBytes: Int
    /// Bytes in use in the open segment (how far it is filled).
    public var openSegmentUsedBytes: Int
    /// Bytes the file system has allocated for segment files.
    public var allocatedBytes: Int
    /// Bytes of segment files (their fixed sizes).
    public var segmentFileBytes: Int
    /// Size of new segments (read-only: the size of the newest segment file).
    public var segmentSizeBytes: Int
    /// Appends since open.
    public var appendsSinceOpen: Int
    /// Flushes since open (fewer flushes than appends means group commit is working).
    public var flushesSinceOpen: Int
}

extension EventStore {
    /// Counts and sizes. Reads file metadata, the index files and in-memory state, not the log.
    ///
    /// - Throws: ``SystemError`` if a segment file's metadata cannot be read.
    public func statistics() throws(SystemError) -> StoreStatistics {
        let (segments, end, tables, memoryHashes, memoryFrames, memoryBytes) = view.withLock {
            ($0.segments, $0.visibleEnd, $0.tables, $0.openFrames.hashes + $0.sealedUnindexed.flatMap(\.hashes),
             $0.openFrames.frameCount + $0.sealedUnindexed.reduce(0) { $0 + $1.frameCount },
             $0.openFrames.approximateBytes + $0.sealedUnindexed.reduce(0) { $0 + $1.approximateBytes })
        }
        let (appends, flushes) = commitCounters
        var hashes = Set(memoryHashes)
        var frames = memoryFrames
        var indexFileBytes = 0
        for table in tables {
            indexFileBytes += table.sizeBytes
            frames += table.entryCount
            for index in 0..<table.entryCount { hashes.insert(table.entry(index).streamHash) }
        }
        var used = 0
        var allocated = 0
        var fileBytes = 0
        for segment in segments {
            allocated += try segment.file.allocatedBytes()
            fileBytes += segment.file.size
            if segment.index < end.segmentIndex {
                used += segment.usedBytes
            } else {
                used += segment.index == end.segmentIndex ? end.offset : Format.segmentHeaderBytes
            }
        }
        return StoreStatistics(
            segments: segments.count, events: end.nextPosition, streams: hashes.count, indexedFrames: frames,
            indexFileBytes: indexFileBytes, indexMemoryBytes: memoryBytes, usedBytes: used,
            openSegmentUsedBytes: segments.last?.index == end.segmentIndex ? end.offset : Format.segmentHeaderBytes,
            allocatedBytes: allocated, segmentFileBytes: fileBytes,
            segmentSizeBytes: options.readOnly ? (segments.last?.file.size ?? options.segmentSizeBytes) : options.segmentSizeBytes,
            appendsSinceOpen: appends, flushesSinceOpen: flushes)
    }

    /// Checks what an append would be refused for (names, types, sizes) without writing.
    ///
    /// - Throws: the ``AppendError`` that ``append(_:to:expecting:)`` would throw for this input.
    public func validate(_ events: [EventData], to stream: String) throws(AppendError) {
        _ = try PreparedAppend(StreamAppend(stream: stream, events: events), frameLimitBytes: frameLimitBytes, generateIDs: false,
                               encryptsEverything: keyRing?.encryptsEverything)
    }

    /// Bytes `events` take in one frame of `stream`; an append is accepted when this is at most
    /// ``maximumAppendBytes``. Events naming a ``EventData/subject`` count as encrypted; in a
    /// store that encrypts everything, each other event takes
    /// ``encryptionOverheadBytes`` more.
    public static func encodedSize(of events: [EventData], to stream: String) -> Int {
        FrameEncoder.alignedFrameBytes(streamNameBytes: stream.utf8.count, events: events) { events[$0].subject != nil }
    }

    /// Bytes encryption adds to an event's record: its key number, nonce and authentication tag.
    public static var encryptionOverheadBytes: Int { EncryptedBodyLayout.overheadBytes
    }

    /// Bytes in use in the open segment, and its size: how close the next roll is. Cheap.
    @_spi(Testing) public var openSegmentFill: (usedBytes: Int, sizeBytes: Int) {
        writer.withLock { ($0.writeOffset, $0.active.file.size) }
    }

    /// The size of the newest segment file of the store at `path` (nil when there is none): the
    /// segment size to open an existing store with, so that new segments match the old ones.
    public static func currentSegmentSize(at path: String) -> Int? {
        let layout = StoreLayout(root: path)
        // The last segment is never archived: the local files suffice.
        guard let last = (try? layout.listSegments(archive: nil))?.files.last,
              let status = try? Syscalls.status(last.path) else { return nil }
        return Int(status.st_size)
    }

    /// The largest frame an append may produce with this store's segment size.
    public var maximumAppendBytes: Int { frameLimitBytes }
}

extension Segment {
    /// Bytes of a sealed segment in use, through its seal frame (found by a header walk).
    var usedBytes: Int {
        var walk = self.walk(verification: .headers)
        while true {
            switch walk.next() {
            case .events, .dictionary: continue
            case .seal(let frame): return frame.end
            case .endOfData, .limit, .notAFrame, .corrupt: return walk.offset
            }
        }
    }
}
