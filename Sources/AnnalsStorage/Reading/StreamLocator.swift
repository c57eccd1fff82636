/// Finds a stream's frames: in the index files of sealed segments (Bloom filter, binary search,
/// then the stream name checked against the frame itself) and in `recent`, the stream's record
/// in the in-memory index of segments not yet indexed on disk. It holds no reference to the
/// in-memory index itself, so the writer can keep mutating that without copying it.
struct StreamLocator {
    let tables: [IndexTable]
    let segments: [Segment]

    /// All frames of `stream`, oldest first.
    func record(for stream: String, hash: UInt64, recent: StreamRecord?) -> StreamRecord? {
        var frames = indexedFrames(of: stream, hash: hash)
        if let recent {
            if frames.isEmpty { return recent }
            let lastIndexed = frames[frames.count - 1].segmentIndex
            frames.append(contentsOf: recent.frames)
            // Only a read-only open can hold unindexed segments older than indexed ones.
            if recent.frames.contains(where: { $0.segmentIndex < lastIndexed }) {
                frames.sort { $0.firstRevision < $1.firstRevision }
            }
        }
        return frames.isEmpty ? nil : StreamRecord(name: stream, frames: frames)
    }

    /// The revision the next event of `stream` gets: from `recent` when it is newer than every
    /// index file, otherwise from the newest index file that has the stream.
    func nextRevision(of stream: String, hash: UInt64, recent: StreamRecord?) -> UInt64 {
        if let recent, let last = recent.frames.last, tables.last.map({ last.segmentIndex > $0.segments.upperBound }) ?? true {
            return recent.nextRevision
        }
        if recent != nil { return record(for: stream, hash: hash, recent: recent)?.nextRevision ?? 0 }
        prefetchEntries(hash)
        // Only the stream's last frame matters: search each file's run from its end and stop
        // at the first entry whose frame carries this name (one frame touched, not all).
        for table in tables.reversed() {
            for index in table.entries(for: hash).reversed() {
                let entry = table.entry(index)
                let location = FrameLocation(firstRevision: entry.firstRevision, firstPosition: entry.firstPosition,
                                             segmentIndex: UInt64(entry.segmentIndex), offset: entry.offset,
                                             eventCount: entry.eventCount)
                guard let segment = segment(location.segmentIndex),
                      !isVerifiedFrame(ofAnotherStreamThan: stream, at: location, in: segment) else { continue }
                // The stream's frame, or a damaged one the entry vouches for: a read of it
                // reports the damage; the numbering never goes back over it.
                return entry.firstRevision + UInt64(entry.eventCount)
            }
        }
        return 0
    }

    /// The stream's frames in the index files, oldest first. The lookups of all files go
    /// together, and so do the loads of the frames' headers: a stream spread over the whole
    /// log waits for about two rounds of cache misses, not two per file and one per frame.
    private func indexedFrames(of stream: String, hash: UInt64) -> [FrameLocation] {
        prefetchEntries(hash)
        var frames: [FrameLocation] = []
        for table in tables {
            for index in table.entries(for: hash) {
                let entry = table.entry(index)
                segment(UInt64(entry.segmentIndex))?.prefetch(at: Int(entry.offset))
                frames.append(FrameLocation(firstRevision: entry.firstRevision, firstPosition: entry.firstPosition,
                                            segmentIndex: UInt64(entry.segmentIndex), offset: entry.offset,
                                            eventCount: entry.eventCount))
            }
        }
        // Only frames verified to be another stream's leave the list: a damaged frame stays, so
        // the read that reaches it reports the damage instead of returning a shorter stream.
        frames.removeAll { frame in
            guard let segment = segment(frame.segmentIndex) else { return false }
            return isVerifiedFrame(ofAnotherStreamThan: stream, at: frame, in: segment)
        }
        return frames
    }

    /// True when the frame an index entry leads to is a sound frame (checksum, structure, and
    /// the entry's revision, position and count) of a stream whose name differs from `stream`:
    /// a hash collision. A frame that carries the name, or that fails a check (its name may be
    /// the damaged part, or the entry may be), is not: the read that reaches it reports it.
    private func isVerifiedFrame(ofAnotherStreamThan stream: String, at location: FrameLocation, in segment: Segment) -> Bool {
        let offset = Int(location.offset)
        guard !frameBelongs(to: stream, at: offset, in: segment),
              case .frame(let frame) = segment.probe(at: offset, verifyChecksum: true), frame.kind == .events,
              frame.firstRevision == location.firstRevision, frame.firstPosition == location.firstPosition,
              frame.eventCount == Int(location.eventCount)
        else { return false }
        return segment.validateRecords(of: frame) == nil
    }

    /// Starts loading every file's entries for `hash` at once (when there are several files).
    private func prefetchEntries(_ hash: UInt64) {
        guard tables.count > 1 else { return }
        for table in tables { table.prefetchEntries(for: hash) }
    }

    /// Hashes can collide: an entry counts only if its frame carries exactly this name.
    private func frameBelongs(to stream: String, at offset: Int, in segment: Segment) -> Bool {
        let bytes = segment.bytes
        guard bytes.fits(offset, Format.frameHeaderBytes) else { return false }
        let length = Int(bytes.u16(offset + FrameLayout.streamNameLength))
        guard bytes.fits(offset + FrameLayout.streamName, length) else { return false }
        var name = stream
        return name.withUTF8 { $0.count == length && bytes.slice(offset + FrameLayout.streamName, length).elementsEqual($0) }
    }

    private func segment(_ index: UInt64) -> Segment? {
        guard let segment = segments.segment(numbered: index), segment.index == index else { return nil }
        return segment
    }
}

/// Writes an index file (temp file + fsync + rename + directory fsync) and maps it.
enum IndexWriter {
    static func write(
        segments: ClosedRange<UInt64>, nextPosition: UInt64, fingerprint: UInt32, entries: [IndexFile.Entry],
        keyEntries: [IndexFile.Entry], sorted: Bool = false, hasher: StreamHasher, layout: StoreLayout
    ) throws(SystemError) -> IndexTable? {
        let path = layout.indexPath(segments)
        let bytes = sorted
            ? IndexFile.encode(segments: segments, nextPosition: nextPosition, hashID: hasher.id, fingerprint: fingerprint,
                               sortedEntries: entries, sortedKeyEntries: keyEntries)
            : IndexFile.encode(segments: segments, nextPosition: nextPosition, hashID: hasher.id, fingerprint: fingerprint,
                               entries: entries, keyEntries: keyEntries)
        try layout.storage.writeFileAtomically(bytes, to: path, directory: layout.segmentsDirectory)
        return try? IndexTable.open(path: path, segments: segments, hashID: hasher.id, storage: layout.storage).get()
    }
}
