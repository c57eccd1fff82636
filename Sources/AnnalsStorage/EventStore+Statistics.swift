/// Size and shape of a store.
public struct StoreStatistics: Sendable, Hashable, Codable {
    /// Segment files.
    public var segments: Int
    /// Events committed (positions are gapless, so also the next position).
    public var events: UInt64
    /// Streams with at least one event.
    public var streams: Int
    /// Frames in the stream index.
    public var indexedFrames: Int
    /// Approximate bytes of the stream index.
    public var indexBytes: Int
    /// Bytes of frames in use across all segments (headers and padding included).
    public var usedBytes: Int
    /// Bytes the file system has allocated for segment files.
    public var allocatedBytes: Int
    /// Bytes of segment files (their fixed sizes).
    public var segmentFileBytes: Int
    /// Size of new segments.
    public var segmentSizeBytes: Int
    /// Appends and flushes since open (flushes < appends means group commit is working).
    public var appendsSinceOpen: Int
    public var flushesSinceOpen: Int
}

extension EventStore {
    /// Counts and sizes. Cheap: reads file metadata and in-memory state, not the log.
    ///
    /// - Throws: ``SystemError`` if a segment file's metadata cannot be read.
    public func statistics() throws(SystemError) -> StoreStatistics {
        let (segments, end, streams, frames, indexBytes, appends, flushes) = state.withLock {
            ($0.segments, $0.visibleEnd, $0.streams.streamCount, $0.streams.frameCount, $0.streams.approximateBytes,
             $0.appendCount, $0.flushCount)
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
            segments: segments.count, events: end.nextPosition, streams: streams, indexedFrames: frames, indexBytes: indexBytes,
            usedBytes: used,
            allocatedBytes: allocated, segmentFileBytes: fileBytes, segmentSizeBytes: options.segmentSizeBytes,
            appendsSinceOpen: appends, flushesSinceOpen: flushes)
    }

    /// Checks what an append would be refused for (names, types, sizes) without writing.
    ///
    /// - Throws: the ``AppendError`` that ``append(_:to:)`` would throw for this input.
    public func validate(_ events: [EventData], to stream: String) throws(AppendError) {
        _ = try PreparedAppend(StreamAppend(stream: stream, events: events), frameLimitBytes: frameLimitBytes, generateIDs: false)
    }

    /// Bytes `events` take in one frame of `stream`; an append is accepted when this is at most
    /// ``maximumAppendBytes``.
    public static func encodedSize(of events: [EventData], to stream: String) -> Int {
        FrameEncoder.alignedFrameBytes(streamNameBytes: stream.utf8.count, events: events)
    }

    /// The largest frame an append may produce with this store's segment size.
    public var maximumAppendBytes: Int { frameLimitBytes }
}

extension Segment {
    /// Bytes of a sealed segment in use, through its seal frame (found by a header walk).
    var usedBytes: Int {
        var offset = Format.segmentHeaderBytes
        while case .frame(let frame) = FrameDecoder.probe(bytes, at: offset, verifyChecksum: false) {
            offset = frame.end
            if frame.kind == .seal { break }
        }
        return offset
    }
}
