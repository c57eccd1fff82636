"""Reading an Annals store, written from format-spec.md alone.

Section numbers (§) refer to format-spec.md. Everything here only reads: a writer may be
appending while a store is open; the reader sees the log as it was when it was opened.
"""

import mmap
import os
import struct
import time
import uuid
from dataclasses import dataclass

import lz4.block

from .crc32c import crc32c

#: Newest format version this reader understands (§6).
SUPPORTED_VERSION = 3

SEGMENT_HEADER_BYTES = 64
FRAME_HEADER_BYTES = 32
EVENT_HEADER_BYTES = 40
KIND_EVENTS, KIND_SEAL, KIND_DICTIONARY = 1, 2, 3
FLAG_COMPRESSED = 1
MAX_DICTIONARY_BYTES = 65536
LZ4_MAX_INPUT = 0x7E000000


class AnnalsError(Exception):
    """Base class of the reader's errors."""


class CorruptionError(AnnalsError):
    """Bytes that are not what the spec says they must be, with the file and offset."""

    def __init__(self, file, offset, reason):
        super().__init__(f"{file} at offset {offset}: {reason}")
        self.file, self.offset, self.reason = file, offset, reason


class UnsupportedVersionError(AnnalsError):
    """A file written by a newer format version than this reader supports (§6)."""


class NotAStoreError(AnnalsError):
    """The directory is not an Annals store (§1)."""


def align8(n):
    return (n + 7) & ~7


@dataclass(frozen=True)
class Frame:
    """A checked frame header (§3.1) and where it is."""

    segment: "Segment"
    offset: int
    length: int
    kind: int
    stream_name_bytes: int
    event_count: int
    first_position: int
    first_revision: int

    @property
    def end(self):
        return self.offset + align8(self.length)

    @property
    def records_offset(self):
        return self.offset + align8(FRAME_HEADER_BYTES + self.stream_name_bytes)

    @property
    def next_position(self):
        return self.first_position + self.event_count

    @property
    def stream(self):
        start = self.offset + FRAME_HEADER_BYTES
        return bytes(self.segment.data[start:start + self.stream_name_bytes]).decode("utf-8")


@dataclass(frozen=True)
class RecordedEvent:
    """One event as stored (§3.2), with metadata and payload decoded."""

    position: int
    stream: str
    revision: int
    id: uuid.UUID
    timestamp_ns: int
    type: str
    metadata: bytes
    payload: bytes
    compressed: bool


class Segment:
    """One segment file (§2), mapped read-only, with its checked header (§2.1)."""

    def __init__(self, path, expected_index):
        self.path = path
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size < SEGMENT_HEADER_BYTES:
                raise CorruptionError(path, 0, "file shorter than a segment header")
            self.data = mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ)
        header = self.data[0:SEGMENT_HEADER_BYTES]
        if header[0:8] != b"ANNALSSG":
            raise CorruptionError(path, 0, "bad segment magic")
        if crc32c(header[0:60]) != struct.unpack_from("<I", header, 60)[0]:
            raise CorruptionError(path, 0, "segment header checksum mismatch")
        version, header_size = struct.unpack_from("<HH", header, 8)
        if version > SUPPORTED_VERSION:
            raise UnsupportedVersionError(f"{path} has format version {version}; this reader supports up to {SUPPORTED_VERSION}")
        if version < 1 or header_size != SEGMENT_HEADER_BYTES:
            raise CorruptionError(path, 8, f"unexpected version {version} or header size {header_size}")
        self.version = version
        self.index, self.size, self.first_position = struct.unpack_from("<QQQ", header, 16)
        flags = struct.unpack_from("<I", header, 12)[0]
        # A compacted segment (§3.7) stands for the numbers index..last_index; its positions,
        # and a stream's revisions, may skip events compaction removed.
        self.compacted = version >= 3 and bool(flags & 1)
        self.last_index = struct.unpack_from("<Q", header, 48)[0] if self.compacted else self.index
        if self.last_index < self.index:
            raise CorruptionError(path, 48, f"header covers segments {self.index} to {self.last_index}")
        if self.index != expected_index:
            raise CorruptionError(path, 16, f"header names segment {self.index}")
        if self.size != size:
            raise CorruptionError(path, 24, f"header says {self.size} bytes but the file has {size}")
        self._verified_dictionaries = set()

    def close(self):
        self.data.close()

    # Frames (§3.1, §3.4) ---------------------------------------------------------------------

    def probe(self, offset):
        """The frame at ``offset`` with its checksum and fields checked; None at the end of
        data (zero bytes); raises CorruptionError (reason only, the caller decides whether it
        is a torn tail) for anything else."""
        data = self.data
        if offset + FRAME_HEADER_BYTES > self.size:
            rest = data[offset:self.size]
            if any(rest):
                raise CorruptionError(self.path, offset, "frame header past end of segment")
            return None
        header = data[offset:offset + FRAME_HEADER_BYTES]
        checksum, length, kind, flags, name_bytes, count, first_position, first_revision = struct.unpack(
            "<IIBBHIQQ", header)
        if length == 0:
            if any(header):
                raise CorruptionError(self.path, offset, "zero frame length with non-zero header")
            return None
        if length < FRAME_HEADER_BYTES or offset + length > self.size:
            raise CorruptionError(self.path, offset, f"frame length {length} out of range")
        if kind not in (KIND_EVENTS, KIND_SEAL, KIND_DICTIONARY):
            raise CorruptionError(self.path, offset, f"unknown frame kind {kind}")
        if crc32c(data[offset + 4:offset + length]) != checksum:
            raise CorruptionError(self.path, offset, "frame checksum mismatch")
        if kind == KIND_SEAL:
            if length != 32 or count != 0 or name_bytes != 0:
                raise CorruptionError(self.path, offset, "malformed seal frame")
        elif kind == KIND_DICTIONARY:
            if self.version < 2 or count != 0 or name_bytes != 0 or first_revision != 0 \
                    or not (FRAME_HEADER_BYTES < length <= FRAME_HEADER_BYTES + MAX_DICTIONARY_BYTES):
                raise CorruptionError(self.path, offset, "malformed dictionary frame")
        elif count < 1 or name_bytes < 1 or FRAME_HEADER_BYTES + name_bytes > length:
            raise CorruptionError(self.path, offset, "malformed events frame header")
        return Frame(self, offset, length, kind, name_bytes, count, first_position, first_revision)

    def frames(self, start=SEGMENT_HEADER_BYTES, stop=None):
        """Checked frames from ``start`` up to the end of data, the seal, or ``stop``."""
        offset = start
        while stop is None or offset < stop:
            frame = self.probe(offset)
            if frame is None:
                return
            yield frame
            if frame.kind == KIND_SEAL:
                return
            offset = frame.end

    # Dictionaries and records (§3.2, §3.5, §3.6) -------------------------------------------

    def dictionary(self, offset, before):
        """The bytes of the dictionary frame at ``offset``, which must precede ``before``."""
        if not (SEGMENT_HEADER_BYTES <= offset < before) or offset % 8:
            raise CorruptionError(self.path, offset, "compressed record names no valid dictionary frame")
        try:
            frame = self.probe(offset)
        except CorruptionError as error:
            raise CorruptionError(self.path, offset, f"dictionary frame: {error.reason}") from None
        if frame is None or frame.kind != KIND_DICTIONARY:
            raise CorruptionError(self.path, offset, "compressed record names no valid dictionary frame")
        return bytes(self.data[offset + FRAME_HEADER_BYTES:offset + frame.length])

    def records(self, frame):
        """The events of an events frame, checked (§3.2) and decoded (§3.6)."""
        data, path = self.data, self.path
        frame_end = frame.offset + frame.length
        stream = frame.stream
        cursor = frame.records_offset
        events = []
        for index in range(frame.event_count):
            if cursor + EVENT_HEADER_BYTES > frame_end:
                raise CorruptionError(path, cursor, f"event record {index} past end of frame")
            length, type_bytes, flags, meta_bytes, payload_bytes, timestamp = struct.unpack_from(
                "<IHHIIq", data, cursor)
            if flags & ~FLAG_COMPRESSED or (flags and self.version < 2):
                raise CorruptionError(path, cursor, f"event record {index} has unknown flags {flags}")
            if length < EVENT_HEADER_BYTES or cursor + length > frame_end:
                raise CorruptionError(path, cursor, f"event record {index} has inconsistent lengths")
            event_id = uuid.UUID(bytes=bytes(data[cursor + 24:cursor + 40]))
            type_start = cursor + EVENT_HEADER_BYTES
            event_type = bytes(data[type_start:type_start + type_bytes]).decode("utf-8")
            body = type_start + type_bytes
            if flags & FLAG_COMPRESSED:
                decoded_size = meta_bytes + payload_bytes
                block_bytes = length - EVENT_HEADER_BYTES - type_bytes - 4
                if block_bytes < 1 or decoded_size < 1 or decoded_size > LZ4_MAX_INPUT \
                        or decoded_size > 255 * block_bytes:
                    raise CorruptionError(path, cursor, f"compressed event record {index} has inconsistent lengths")
                dictionary_offset = struct.unpack_from("<I", data, body)[0]
                dictionary = self.dictionary(dictionary_offset, frame.offset) if dictionary_offset else None
                block = bytes(data[body + 4:body + 4 + block_bytes])
                try:
                    decoded = lz4.block.decompress(block, uncompressed_size=decoded_size, dict=dictionary)
                except lz4.block.LZ4BlockError:
                    decoded = None
                if decoded is None or len(decoded) != decoded_size:
                    raise CorruptionError(path, cursor, "compressed event record does not decode to its stated size")
                metadata, payload = decoded[:meta_bytes], decoded[meta_bytes:]
            else:
                if EVENT_HEADER_BYTES + type_bytes + meta_bytes + payload_bytes != length:
                    raise CorruptionError(path, cursor, f"event record {index} has inconsistent lengths")
                metadata = bytes(data[body:body + meta_bytes])
                payload = bytes(data[body + meta_bytes:body + meta_bytes + payload_bytes])
            if index == frame.event_count - 1 and cursor + length != frame_end:
                raise CorruptionError(path, cursor, "last event record does not end the frame")
            events.append(RecordedEvent(
                position=frame.first_position + index, stream=stream, revision=frame.first_revision + index,
                id=event_id, timestamp_ns=timestamp, type=event_type, metadata=metadata, payload=payload,
                compressed=bool(flags & FLAG_COMPRESSED)))
            cursor += align8(length)
        return events


@dataclass(frozen=True)
class Checkpoint:
    """The checkpoint file (§5)."""

    format_version: int
    minimum_reader_version: int
    clean_shutdown: bool
    segment_index: int
    segment_offset: int
    next_position: int

    @staticmethod
    def read(path):
        """The checkpoint, or None when missing or unreadable (then the whole log is checked)."""
        try:
            with open(path, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            return None
        if len(data) != 64 or data[0:8] != b"ANNALSCP" or crc32c(data[0:60]) != struct.unpack_from("<I", data, 60)[0]:
            return None
        version, minimum, flags, segment, offset, position = struct.unpack_from("<HHIQQQ", data, 8)
        if minimum > SUPPORTED_VERSION:
            raise UnsupportedVersionError(f"{path} needs reader version {minimum}; this reader supports up to {SUPPORTED_VERSION}")
        return Checkpoint(version, minimum, bool(flags & 1), segment, offset, position)


class Store:
    """A store opened read-only (§10). Use as a context manager, or call close()."""

    def __init__(self, path):
        self.path = path
        directory = os.path.join(path, "segments")
        if not os.path.isdir(directory):
            raise NotAStoreError(f"{path}: no segments/ directory")
        numbers = sorted(int(name[:-4]) for name in os.listdir(directory)
                         if name.endswith(".seg") and len(name) == 20 and name[:-4].isdigit())
        if not numbers:
            raise NotAStoreError(f"{path}: no segment files")
        # Each file stands for its number up to its header's last number (§1); a file inside a
        # compacted file's range is a replaced input a stopped compaction left: skipped.
        self.segments = []
        for number in numbers:
            if self.segments and number <= self.segments[-1].last_index:
                continue
            if self.segments and number != self.segments[-1].last_index + 1:
                missing = self.segments[-1].last_index + 1
                raise CorruptionError(os.path.join(directory, f"{missing:016d}.seg"), 0, "segment file missing")
            try:
                self.segments.append(Segment(os.path.join(directory, f"{number:016d}.seg"), number))
            except FileNotFoundError:
                # Deleted by a compaction after the listing: its data is in a file already open.
                continue
        self.compacted = any(segment.compacted for segment in self.segments)
        self._seal_positions = {}
        self.checkpoint = Checkpoint.read(os.path.join(path, "checkpoint"))
        self._find_end()
        self.retention = self._retention_rules()

    def close(self):
        for segment in self.segments:
            segment.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _find_end(self):
        """Where the log ends (§3.4): the last valid frame of the last segment. Invalid bytes
        there after the checkpoint are a torn tail and ignored; before it, corruption."""
        last = self.segments[-1]
        checkpoint = self.checkpoint
        protected = 0
        if checkpoint is not None:
            if checkpoint.segment_index > last.index:
                protected = last.size
            elif checkpoint.segment_index == last.index:
                protected = checkpoint.segment_offset
        offset = SEGMENT_HEADER_BYTES
        self.torn_tail = None
        while True:
            try:
                frame = last.probe(offset)
            except CorruptionError as error:
                if offset < protected:
                    raise
                self.torn_tail = error
                break
            if frame is None or frame.kind == KIND_SEAL:
                break
            offset = frame.end
        self.end_offset = offset  # in the last segment

    def _segment_frames(self, segment):
        """Frames of one segment up to the end of the log, position continuity checked."""
        is_last = segment is self.segments[-1]
        expected = segment.first_position
        sealed = False
        for frame in segment.frames(stop=self.end_offset if is_last else None):
            skipped_ahead = segment.compacted and frame.first_position > expected
            if frame.first_position != expected and not skipped_ahead:
                raise CorruptionError(segment.path, frame.offset,
                                      f"frame at position {frame.first_position}, expected {expected}")
            if frame.kind == KIND_SEAL:
                sealed = True
                self._seal_positions[segment.index] = frame.first_position
                break
            if frame.kind == KIND_EVENTS:
                expected = frame.next_position
            yield frame
        if not is_last and not sealed:
            raise CorruptionError(segment.path, 0, "sealed segment ends without a seal frame")

    def frames(self):
        """Every events frame of the log in position order, every check of §3.4 applied."""
        revisions = {}
        expected = self.segments[0].first_position
        compacted_seen = False
        for segment in self.segments:
            if segment.first_position != expected:
                raise CorruptionError(segment.path, 32, f"segment starts at position {segment.first_position}, expected {expected}")
            compacted_seen = compacted_seen or segment.compacted
            expected = segment.first_position
            for frame in self._segment_frames(segment):
                if frame.kind != KIND_EVENTS:
                    continue
                expected = frame.next_position
                stream = frame.stream
                want = revisions.get(stream, 0)
                if frame.first_revision != want and not (compacted_seen and frame.first_revision > want):
                    raise CorruptionError(segment.path, frame.offset,
                                          f"stream {stream} continues at revision {frame.first_revision}, expected {revisions.get(stream, 0)}")
                revisions[stream] = frame.first_revision + frame.event_count
                yield frame
            expected = self._seal_positions.get(segment.index, expected)

    # Retention (§7A) -------------------------------------------------------------------------

    def _retention_rules(self):
        """Per stream with settings: (first revision kept, oldest timestamp kept, deleted)."""
        settings = {}
        for event in self._read_stream("$retention"):
            if event.type != "$retention" or len(event.payload) < 32 or event.payload[0] != 1:
                continue
            version, flags, name_length, _, truncate, max_count, max_age = struct.unpack_from("<BBHIQQq", event.payload)
            if len(event.payload) != 32 + name_length:
                continue
            settings[event.payload[32:].decode("utf-8")] = (bool(flags & 1), truncate, max_count, max_age)
        now = time.time_ns()
        rules = {}
        for stream, (deleted, truncate, max_count, max_age) in settings.items():
            first = truncate
            if max_count:
                frames = self.stream_frames(stream)
                last = frames[-1].first_revision + frames[-1].event_count - 1 if frames else None
                if last is not None and last + 1 > max_count:
                    first = max(first, last + 1 - max_count)
            rules[stream] = (first, now - max_age if max_age > 0 else None, deleted)
        return rules

    def keeps(self, event):
        """False for an event that retention removed (§7A)."""
        rule = self.retention.get(event.stream)
        if rule is None:
            return True
        first, oldest, deleted = rule
        return not deleted and event.revision >= first and (oldest is None or event.timestamp_ns >= oldest)

    def read_all(self, start=0):
        """``$all`` forwards from global position ``start``, without removed events."""
        for frame in self.frames():
            if frame.next_position <= start:
                continue
            for event in frame.segment.records(frame):
                if event.position >= start and self.keeps(event):
                    yield event

    def read_all_backwards(self, start=None):
        """``$all`` newest first, from ``start`` (default: the last event), without removed events."""
        events = [event for frame in self.frames() for event in frame.segment.records(frame)]
        for event in reversed(events):
            if (start is None or event.position <= start) and self.keeps(event):
                yield event

    # Streams through the index files (§7) ----------------------------------------------------

    def stream_frames(self, name):
        """The frames of stream ``name`` in revision order: sealed segments through their
        index files (§7.4, §7.6), other segments by walking them."""
        from .index import chosen_index_files, lookup
        sealed = self.segments[:-1]
        tables = chosen_index_files(self, sealed)
        covered = {segment.index for segment in self.segments
                   if any(table.first_segment <= segment.index <= table.last_segment for table in tables)}
        by_index = {segment.index: segment for segment in self.segments}
        frames = []
        for table in tables:
            for entry in lookup(table, name):
                segment = by_index.get(entry.segment)
                if segment is None:
                    raise CorruptionError(table.path, 0, f"entry names segment {entry.segment}, not in the store")
                frame = segment.probe(entry.offset)
                if frame is None or frame.kind != KIND_EVENTS or frame.first_revision != entry.first_revision \
                        or frame.first_position != entry.first_position or frame.event_count != entry.event_count:
                    raise CorruptionError(table.path, 0, f"index entry does not match the frame at {segment.path} offset {entry.offset}")
                if frame.stream == name:
                    frames.append(frame)
        for segment in self.segments:
            if segment.index in covered:
                continue
            frames.extend(f for f in self._segment_frames(segment) if f.kind == KIND_EVENTS and f.stream == name)
        frames.sort(key=lambda frame: frame.first_revision)
        expected = 0
        for frame in frames:
            # Revisions may skip forward (never back) once compaction removed events (§3.4).
            if frame.first_revision != expected and not (self.compacted and frame.first_revision > expected):
                raise CorruptionError(frame.segment.path, frame.offset,
                                      f"stream {name} continues at revision {frame.first_revision}, expected {expected}")
            expected = frame.first_revision + frame.event_count
        return frames

    def _read_stream(self, name, start=0):
        for frame in self.stream_frames(name):
            if frame.first_revision + frame.event_count <= start:
                continue
            for event in frame.segment.records(frame):
                if event.revision >= start:
                    yield event

    def read_stream(self, name, start=0):
        """Stream ``name`` forwards from revision ``start``, without removed events."""
        return (event for event in self._read_stream(name, start) if self.keeps(event))

    def read_stream_backwards(self, name, start=None):
        """Stream ``name`` newest first, from revision ``start`` (default: the last), without
        removed events."""
        for frame in reversed(self.stream_frames(name)):
            if start is not None and frame.first_revision > start:
                continue
            for event in reversed(frame.segment.records(frame)):
                if (start is None or event.revision <= start) and self.keeps(event):
                    yield event


@dataclass(frozen=True)
class Snapshot:
    """A stored snapshot (format-spec.md §7A)."""

    stream: str
    revision: int
    schema_version: int
    state: bytes
    position: int


def latest_snapshot(store, stream, schema_version):
    """The newest snapshot of ``stream`` written with ``schema_version`` (§7A), or None. A
    snapshot that fails its checks raises CorruptionError: the caller replays instead."""
    for event in store.read_stream_backwards("$snapshot-" + stream):
        if event.type != "$snapshot" or len(event.metadata) != 16:
            continue
        revision, version, _ = struct.unpack("<QII", event.metadata)
        if version == schema_version:
            return Snapshot(stream, revision, version, event.payload, event.position)
    return None


Store.latest_snapshot = latest_snapshot
