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

#: keyId (4), nonce (12) and GCM tag (16) of an encrypted record (§3.9).
ENCRYPTION_OVERHEAD = 32
EVENT_AAD = b"ANNALSEV"


def event_aad(position, revision, stream_bytes, record_prefix):
    """The associated data of an encrypted record (§3.9): `ANNALSEV`, the event's position and
    revision (u64), the stream name's length (u16) and bytes as stored, then ``record_prefix``,
    the record's bytes [4, 44 + t + g) (typeLength through keyId)."""
    return EVENT_AAD + struct.pack("<QQH", position, revision, len(stream_bytes)) + bytes(stream_bytes) + bytes(record_prefix)

#: Newest format version this reader understands (§6).
SUPPORTED_VERSION = 7

SEGMENT_HEADER_BYTES = 64
FRAME_HEADER_BYTES = 32
SEAL_FRAME_BYTES = 32
EVENT_HEADER_BYTES = 40
KIND_EVENTS, KIND_SEAL, KIND_DICTIONARY = 1, 2, 3
FLAG_COMPRESSED = 1
FLAG_TAGGED = 2
FLAG_ENCRYPTED = 4
MAX_TAGS = 32
MAX_TAG_BYTES = 256
SEGMENT_FLAG_COMPACTED = 1
SEGMENT_FLAG_DURABLE_MARKS = 2
MARK_AREA_BYTES = 128
MARK_SLOT_BYTES = 64
MARK_MAGIC = b"ANMK"
MAX_NAME_BYTES = 1024
MAX_DICTIONARY_BYTES = 65536
LZ4_MAX_INPUT = 0x7E000000
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
_ZERO_BOOT = bytes(16)


class AnnalsError(Exception):
    """Base class of the reader's errors."""


class CorruptionError(AnnalsError):
    """Bytes that are not what the spec says they must be, with the file and offset (§10).

    ``tearable`` is True for *invalid bytes* (§3.4, item 2): bytes a torn write can leave
    (no frame whose checksum matches). At or after the protected end of the last segment they
    are a torn tail; anywhere else, like every other CorruptionError, corruption."""

    def __init__(self, file, offset, reason, tearable=False):
        super().__init__(f"{file} at offset {offset}: {reason}")
        self.file, self.offset, self.reason, self.tearable = file, offset, reason, tearable


class UnsupportedVersionError(AnnalsError):
    """A file written by a newer format version than this reader supports (§6)."""


class ArchiveUnavailableError(AnnalsError):
    """The store has archived segments (§1A) and their directory is missing or not its archive."""


class NotAStoreError(AnnalsError):
    """The directory is not an Annals store (§1)."""


ARCHIVE_MAGIC = b"ANNALSAR"
ARCHIVE_MARKER_MAGIC = b"ANNALSAM"
ARCHIVE_MARKER = "annals-archive"


def read_archive(path):
    """The store's archive (§1A) as (directory, firstLocalSegment), or None without an
    `archive` file. Raises CorruptionError for a damaged file and ArchiveUnavailableError when
    segments are archived but the directory is not this store's archive."""
    name = os.path.join(path, "archive")
    try:
        with open(name, "rb") as file:
            data = file.read(4096 + 64)
    except FileNotFoundError:
        return None
    if len(data) < 44 or data[:8] != ARCHIVE_MAGIC:
        raise CorruptionError(name, 0, "bad archive magic" if len(data) >= 44 else f"archive file of {len(data)} bytes")
    length = struct.unpack_from("<I", data, 12)[0]
    if length > 4096 or len(data) != 40 + length + 4:
        raise CorruptionError(name, 12, f"directory length {length} does not match the file's size")
    if crc32c(data[:40 + length]) != struct.unpack_from("<I", data, 40 + length)[0]:
        raise CorruptionError(name, 40 + length, "archive file checksum mismatch")
    version = struct.unpack_from("<H", data, 8)[0]
    if version != 1:
        raise CorruptionError(name, 8, f"archive file version {version}")
    if length == 0:
        raise CorruptionError(name, 12, "empty archive directory")
    first_local = struct.unpack_from("<Q", data, 16)[0]
    archive_id = data[24:40]
    directory = data[40:40 + length].decode("utf-8", "replace")
    if not directory.startswith("/"):
        directory = os.path.join(path, directory)
    if first_local > 0:
        def unavailable(reason):
            return ArchiveUnavailableError(f"the store's archive {directory} cannot be used: {reason}")
        try:
            with open(os.path.join(directory, ARCHIVE_MARKER), "rb") as file:
                marker = file.read(33)
        except FileNotFoundError:
            if os.path.isdir(directory):
                raise unavailable(f"it has no {ARCHIVE_MARKER} file (is the right file system mounted there?)") from None
            raise unavailable("it does not exist (is its file system mounted?)") from None
        except OSError as error:
            raise unavailable(str(error)) from None
        if (len(marker) != 32 or marker[:8] != ARCHIVE_MARKER_MAGIC
                or crc32c(marker[:28]) != struct.unpack_from("<I", marker, 28)[0]):
            raise unavailable(f"its {ARCHIVE_MARKER} file is damaged")
        if marker[8:24] != archive_id:
            raise unavailable("it is the archive of another store")
    return directory, first_local


def _segment_numbers(directory):
    return {int(name[:-4]): os.path.join(directory, name) for name in os.listdir(directory)
            if name.endswith(".seg") and len(name) == 20 and name[:-4].isdigit()}


def align8(n):
    return (n + 7) & ~7


def current_boot_id():
    """This machine's Linux boot id (16 bytes, §2.2), or None when it cannot be read."""
    try:
        with open(BOOT_ID_PATH, "r", encoding="ascii") as file:
            return uuid.UUID(file.read().strip()).bytes
    except (OSError, ValueError):
        return None


def decode_name(raw):
    """A stream or type name: UTF-8, each maximal ill-formed subsequence replaced by U+FFFD
    (the spec's conventions), as the Swift engine decodes it."""
    return bytes(raw).decode("utf-8", "replace")


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
    #: Events frame flag bit 0 (§3.1): the next events frame belongs to the same atomic append.
    continues: bool = False

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
    def next_revision(self):
        return self.first_revision + self.event_count

    @property
    def stream_bytes(self):
        """The stream name as stored (compare these: §7.6 compares names byte for byte)."""
        start = self.offset + FRAME_HEADER_BYTES
        return bytes(self.segment.data[start:start + self.stream_name_bytes])

    @property
    def stream(self):
        return decode_name(self.stream_bytes)


@dataclass(frozen=True)
class Mark:
    """The durable mark of a segment (§2.2): its valid slot with the higher sequence."""

    slot: int
    sequence: int
    acknowledged_offset: int
    durable_offset: int
    acknowledged_position: int
    durable_position: int
    boot_id: bytes


@dataclass(frozen=True)
class RecordedEvent:
    """One event as stored (§3.2), with metadata and payload decoded (and decrypted, §3.9).

    ``erased``: an encrypted event whose key was forgotten (§3.9): its metadata and payload are
    gone (both None); stream, revision, position, id, type, tags and timestamp remain.
    ``encrypted``: the record is encrypted (record flag bit 2)."""

    position: int
    stream: str
    revision: int
    id: uuid.UUID
    timestamp_ns: int
    type: str
    metadata: bytes
    payload: bytes
    compressed: bool
    tags: tuple = ()
    encrypted: bool = False
    erased: bool = False


@dataclass(frozen=True)
class _Record:
    """The checked layout of one event record (§3.2)."""

    offset: int
    length: int
    type_bytes: int
    flags: int
    metadata_bytes: int
    payload_bytes: int
    timestamp: int
    tag_bytes: int = 0

    @property
    def compressed(self):
        return bool(self.flags & FLAG_COMPRESSED)

    @property
    def encrypted(self):
        return bool(self.flags & FLAG_ENCRYPTED)


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
        if version < 1 or version > SUPPORTED_VERSION:
            raise UnsupportedVersionError(f"{path} has format version {version}; this reader supports 1 to {SUPPORTED_VERSION}")
        if header_size != SEGMENT_HEADER_BYTES:
            raise CorruptionError(path, 0, f"unexpected header size {header_size}")
        self.version = version
        self.index, self.size, self.first_position = struct.unpack_from("<QQQ", header, 16)
        flags = struct.unpack_from("<I", header, 12)[0]
        # A compacted segment (§3.7) stands for the numbers index..last_index; its positions,
        # and a stream's revisions, may skip events compaction removed.
        self.compacted = version >= 3 and bool(flags & SEGMENT_FLAG_COMPACTED)
        # The durable-mark area (§2.2): ignored in version-1 and compacted headers.
        self.durable_marks = version >= 2 and not self.compacted and bool(flags & SEGMENT_FLAG_DURABLE_MARKS)
        self.last_index = struct.unpack_from("<Q", header, 48)[0] if self.compacted else self.index
        if self.last_index < self.index:
            raise CorruptionError(path, 0, f"header covers segments {self.index} to {self.last_index}")
        if self.size != size:
            raise CorruptionError(path, 0, f"header says {self.size} bytes but the file has {size}")
        if self.durable_marks and size < SEGMENT_HEADER_BYTES + SEAL_FRAME_BYTES + MARK_AREA_BYTES:
            raise CorruptionError(path, 0, f"segment of {size} bytes is too small for its durable-mark area")
        if self.index != expected_index:
            raise CorruptionError(path, 16, f"header names segment {self.index}")
        #: Frames lie in [64, area_end) (§2).
        self.area_end = size - MARK_AREA_BYTES if self.durable_marks else size
        self._verified_dictionaries = set()
        #: The store's key store (§1B), set by Store once it has read it; None without one.
        self.keys = None

    def close(self):
        self.data.close()

    # Durable marks (§2.2) --------------------------------------------------------------------

    def mark(self):
        """The segment's mark: its valid slot with the higher sequence (slot 0 on a tie), or
        None (no mark area, or no valid slot)."""
        if not self.durable_marks:
            return None
        best = None
        for slot in (0, 1):
            mark = self._slot(slot)
            if mark is not None and (best is None or mark.sequence > best.sequence):
                best = mark
        return best

    def _slot(self, slot):
        start = self.size - MARK_AREA_BYTES + slot * MARK_SLOT_BYTES
        raw = bytes(self.data[start:start + MARK_SLOT_BYTES])
        checksum, magic, sequence, index, acknowledged, durable, acknowledged_position, durable_position = \
            struct.unpack_from("<I4sQQIIQQ", raw)
        if crc32c(raw[4:]) != checksum or magic != MARK_MAGIC or sequence < 1 or index != self.index:
            return None
        if not (SEGMENT_HEADER_BYTES <= durable <= acknowledged <= self.area_end) or durable % 8 or acknowledged % 8 \
                or durable_position > acknowledged_position:
            return None
        return Mark(slot, sequence, acknowledged, durable, acknowledged_position, durable_position, raw[48:64])

    # Frames (§3.1, §3.4) ---------------------------------------------------------------------

    def probe(self, offset, verify=True):
        """The frame at ``offset``; None at the end of data (zero bytes, §3.4 item 1). Raises
        CorruptionError for anything else: ``tearable`` for invalid bytes (item 2), not for a
        frame whose checksum matched but that fails another check (item 3). With ``verify``
        False the checksum is not checked (a header walk, only to find frames) and every
        failure is tearable."""
        data, path, end = self.data, self.path, self.area_end
        if offset + FRAME_HEADER_BYTES > end:
            if any(data[offset:end]):
                raise CorruptionError(path, offset, "frame header past the end of the frame area", tearable=True)
            return None
        header = data[offset:offset + FRAME_HEADER_BYTES]
        checksum, length, kind, flags, name_bytes, count, first_position, first_revision = struct.unpack(
            "<IIBBHIQQ", header)
        if length == 0:
            if any(header):
                raise CorruptionError(path, offset, "zero frame length with non-zero header", tearable=True)
            return None
        if length < FRAME_HEADER_BYTES or offset + length > end:
            raise CorruptionError(path, offset, f"frame length {length} out of range", tearable=True)
        if verify and crc32c(data[offset + 4:offset + length]) != checksum:
            raise CorruptionError(path, offset, "frame checksum mismatch", tearable=True)

        def bad(reason):
            return CorruptionError(path, offset, reason, tearable=not verify)

        if kind not in (KIND_EVENTS, KIND_SEAL, KIND_DICTIONARY):
            raise bad(f"unknown frame kind {kind}")
        if flags != 0 and not (kind == KIND_EVENTS and flags == 1):
            raise bad(f"frame flags {flags}; must be 0" + (" or 1" if kind == KIND_EVENTS else ""))
        if kind == KIND_SEAL:
            if length != SEAL_FRAME_BYTES or count != 0 or name_bytes != 0 or first_revision != 0:
                raise bad("malformed seal frame")
        elif kind == KIND_DICTIONARY:
            if self.version < 2:
                raise bad("dictionary frame in a version-1 segment")
            if count != 0 or name_bytes != 0 or first_revision != 0 \
                    or not (FRAME_HEADER_BYTES < length <= FRAME_HEADER_BYTES + MAX_DICTIONARY_BYTES):
                raise bad("malformed dictionary frame")
        elif count < 1 or not 1 <= name_bytes <= MAX_NAME_BYTES or FRAME_HEADER_BYTES + name_bytes > length:
            raise bad("malformed events frame header")
        return Frame(self, offset, length, kind, name_bytes, count, first_position, first_revision, flags == 1)

    def accepts(self, position, expected):
        """§3.4: a frame's firstPosition is the expected one, or (compacted segment) beyond it."""
        return position == expected or (self.compacted and position > expected)

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

    def _has_dictionary(self, offset, before):
        """True when a valid dictionary frame starts at ``offset``, before offset ``before``."""
        if offset in self._verified_dictionaries:
            return offset < before
        if not (SEGMENT_HEADER_BYTES <= offset < before) or offset % 8:
            return False
        try:
            frame = self.probe(offset)
        except CorruptionError:
            return False
        if frame is None or frame.kind != KIND_DICTIONARY:
            return False
        self._verified_dictionaries.add(offset)
        return True

    def dictionary(self, offset):
        """The bytes of the dictionary frame at ``offset`` (already checked by check_records)."""
        length = struct.unpack_from("<I", self.data, offset + 4)[0]
        return bytes(self.data[offset + FRAME_HEADER_BYTES:offset + length])

    def check_records(self, frame):
        """The records of an events frame, their structure checked (§3.2, §3.5) but not
        decoded. Raises CorruptionError at the offending record's offset."""
        data, path = self.data, self.path
        frame_end = frame.offset + frame.length
        cursor = frame.records_offset
        records = []
        for index in range(frame.event_count):
            if cursor + EVENT_HEADER_BYTES > frame_end:
                raise CorruptionError(path, cursor, f"event record {index} past end of frame")
            length, type_bytes, flags, meta_bytes, payload_bytes, timestamp = struct.unpack_from(
                "<IHHIIq", data, cursor)
            if flags & ~(FLAG_COMPRESSED | FLAG_TAGGED | FLAG_ENCRYPTED):
                raise CorruptionError(path, cursor, f"event record {index} has unknown flags {flags}")
            if flags & FLAG_COMPRESSED and self.version < 2:
                raise CorruptionError(path, cursor, f"compressed event record {index} in a version-1 segment")
            if flags & FLAG_ENCRYPTED and self.version < 2:
                raise CorruptionError(path, cursor, f"encrypted event record {index} in a version-1 segment")
            tag_bytes = 0
            if flags & FLAG_TAGGED:
                tag_bytes = self._check_tags(cursor, index, min(frame_end, cursor + length))
            if length < EVENT_HEADER_BYTES or cursor + length > frame_end:
                raise CorruptionError(path, cursor, f"event record {index} has inconsistent lengths")
            if flags & FLAG_ENCRYPTED:
                # §3.9: keyId, nonce, ciphertext (c bytes), GCM tag; no dictionary reference.
                decoded_size = meta_bytes + payload_bytes
                sealed_bytes = length - EVENT_HEADER_BYTES - type_bytes - tag_bytes - ENCRYPTION_OVERHEAD
                if sealed_bytes < 0:
                    raise CorruptionError(path, cursor, f"encrypted event record {index} has inconsistent lengths")
                if flags & FLAG_COMPRESSED:
                    if sealed_bytes < 1 or decoded_size < 1 or decoded_size > LZ4_MAX_INPUT \
                            or decoded_size > 255 * sealed_bytes:
                        raise CorruptionError(path, cursor, f"encrypted compressed event record {index} has inconsistent lengths")
                elif sealed_bytes != decoded_size:
                    raise CorruptionError(path, cursor, f"encrypted event record {index} has inconsistent lengths")
            elif flags & FLAG_COMPRESSED:
                decoded_size = meta_bytes + payload_bytes
                block_bytes = length - EVENT_HEADER_BYTES - type_bytes - tag_bytes - 4
                if block_bytes < 1 or decoded_size < 1 or decoded_size > LZ4_MAX_INPUT \
                        or decoded_size > 255 * block_bytes:
                    raise CorruptionError(path, cursor, f"compressed event record {index} has inconsistent lengths")
                dictionary_offset = struct.unpack_from("<I", data, cursor + EVENT_HEADER_BYTES + type_bytes + tag_bytes)[0]
                if dictionary_offset and not self._has_dictionary(dictionary_offset, frame.offset):
                    raise CorruptionError(path, cursor, f"compressed event record {index}: no valid dictionary frame at offset {dictionary_offset}")
            elif EVENT_HEADER_BYTES + type_bytes + tag_bytes + meta_bytes + payload_bytes != length:
                raise CorruptionError(path, cursor, f"event record {index} has inconsistent lengths")
            if index == frame.event_count - 1 and cursor + length != frame_end:
                raise CorruptionError(path, cursor, "last event record does not end the frame")
            records.append(_Record(cursor, length, type_bytes, flags, meta_bytes, payload_bytes, timestamp, tag_bytes))
            cursor += align8(length)
        return records

    def _check_tags(self, cursor, index, end):
        """The size of a tagged record's tag block (§3.2), checked: 1 to 32 tags of 1 to 256
        bytes, all before `end`."""
        data, path = self.data, self.path
        if self.version < 2:
            raise CorruptionError(path, cursor, f"tagged event record {index} in a version-1 segment")
        start = cursor + EVENT_HEADER_BYTES + struct.unpack_from("<H", data, cursor + 4)[0]
        if start + 2 > end:
            raise CorruptionError(path, cursor, f"event record {index}: tag block past its end")
        count = struct.unpack_from("<H", data, start)[0]
        if not 1 <= count <= MAX_TAGS:
            raise CorruptionError(path, cursor, f"event record {index} has {count} tags")
        offset = start + 2
        for _ in range(count):
            if offset + 2 > end:
                raise CorruptionError(path, cursor, f"event record {index}: tag past its end")
            size = struct.unpack_from("<H", data, offset)[0]
            if not 1 <= size <= MAX_TAG_BYTES or offset + 2 + size > end:
                raise CorruptionError(path, cursor, f"event record {index} has a tag of {size} bytes")
            offset += 2 + size
        return offset - start

    def _tags(self, record):
        if not record.tag_bytes:
            return ()
        data = self.data
        start = record.offset + EVENT_HEADER_BYTES + record.type_bytes
        tags, offset = [], start + 2
        for _ in range(struct.unpack_from("<H", data, start)[0]):
            size = struct.unpack_from("<H", data, offset)[0]
            tags.append(decode_name(data[offset + 2:offset + 2 + size]))
            offset += 2 + size
        return tuple(tags)

    def records(self, frame):
        """The events of an events frame, checked (§3.2) and decoded (§3.6)."""
        data, path = self.data, self.path
        stream = frame.stream
        events = []
        for index, record in enumerate(self.check_records(frame)):
            cursor = record.offset
            event_id = uuid.UUID(bytes=bytes(data[cursor + 24:cursor + 40]))
            type_start = cursor + EVENT_HEADER_BYTES
            event_type = decode_name(data[type_start:type_start + record.type_bytes])
            body = type_start + record.type_bytes + record.tag_bytes
            meta_bytes, payload_bytes = record.metadata_bytes, record.payload_bytes
            position, revision = frame.first_position + index, frame.first_revision + index
            if record.encrypted:
                plain = self._decrypt(frame, record, body, position, revision)
                if plain is None:  # erased: its key was forgotten
                    events.append(RecordedEvent(
                        position=position, stream=stream, revision=revision, id=event_id, timestamp_ns=record.timestamp,
                        type=event_type, metadata=None, payload=None, compressed=record.compressed,
                        tags=self._tags(record), encrypted=True, erased=True))
                    continue
                if record.compressed:
                    decoded_size = meta_bytes + payload_bytes
                    try:
                        decoded = lz4.block.decompress(plain, uncompressed_size=decoded_size)
                    except lz4.block.LZ4BlockError:
                        decoded = None
                    if decoded is None or len(decoded) != decoded_size:
                        raise CorruptionError(path, cursor, "encrypted compressed event record does not decode to its stated size")
                    plain = decoded
                metadata, payload = plain[:meta_bytes], plain[meta_bytes:]
            elif record.compressed:
                decoded_size = meta_bytes + payload_bytes
                block_bytes = record.length - EVENT_HEADER_BYTES - record.type_bytes - record.tag_bytes - 4
                dictionary_offset = struct.unpack_from("<I", data, body)[0]
                dictionary = self.dictionary(dictionary_offset) if dictionary_offset else None
                block = bytes(data[body + 4:body + 4 + block_bytes])
                try:
                    decoded = lz4.block.decompress(block, uncompressed_size=decoded_size, dict=dictionary)
                except lz4.block.LZ4BlockError:
                    decoded = None
                if decoded is None or len(decoded) != decoded_size:
                    raise CorruptionError(path, cursor, "compressed event record does not decode to its stated size")
                metadata, payload = decoded[:meta_bytes], decoded[meta_bytes:]
            else:
                metadata = bytes(data[body:body + meta_bytes])
                payload = bytes(data[body + meta_bytes:body + meta_bytes + payload_bytes])
            events.append(RecordedEvent(
                position=position, stream=stream, revision=revision,
                id=event_id, timestamp_ns=record.timestamp, type=event_type, metadata=metadata, payload=payload,
                compressed=record.compressed, tags=self._tags(record), encrypted=record.encrypted))
        return events

    def _decrypt(self, frame, record, body, position, revision):
        """The plaintext of an encrypted record (§3.9), still LZ4-compressed when the record
        is; None when its key was forgotten (the event is erased). A key id the key store does
        not hold, and a ciphertext that does not authenticate, are corruption; a live key read
        without the store's key raises KeyRequiredError."""
        data, path, cursor = self.data, self.path, record.offset
        key_id = struct.unpack_from("<I", data, body)[0]
        entry = self.keys.entries.get(key_id) if self.keys is not None else None
        if entry is None:
            where = "the key store does not hold it" if self.keys is not None else "the store has no key store"
            raise CorruptionError(path, cursor, f"encrypted event record names key id {key_id}: {where}")
        if entry.forgotten:
            return None
        nonce = bytes(data[body + 4:body + 16])
        sealed = bytes(data[body + 16:cursor + record.length])
        aad = event_aad(position, revision, frame.stream_bytes, data[cursor + 4:body + 4])
        plain = self.keys.decrypt(entry, nonce, sealed, aad)
        if plain is None:
            raise CorruptionError(path, cursor, "encrypted event record does not authenticate (ciphertext, tag or the fields it covers changed)")
        return plain


@dataclass(frozen=True)
class Checkpoint:
    """The checkpoint file (§5). ``clean_shutdown`` is informative only: nothing is skipped
    because of it."""

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


#: ``Store(boot_id=...)`` default: this machine's boot id, read from /proc.
CURRENT_BOOT = object()


def _culprit(segment, previous, offset, reason):
    """The error for a header walk that failed at ``offset``: a damaged length sends such a
    walk into the middle of a frame, so the frame before it is blamed when its checksum fails."""
    if previous is not None:
        try:
            segment.probe(previous.offset)
        except CorruptionError as error:
            return CorruptionError(segment.path, previous.offset, error.reason)
    return CorruptionError(segment.path, offset, reason)


class Store:
    """A store opened read-only (§10). Use as a context manager, or call close().

    After opening:

    - ``torn_tail``: a CorruptionError describing the invalid bytes ignored at the end of the
      log (§3.4), or None;
    - ``damage``: corruption found in the last segment (§3.4), or None. The log ends where it
      starts, and every read that runs to its end returns the events before it and then raises
      it (as ``annals dump`` prints them and then exits 1);
    - ``mark``: the last segment's durable mark (§2.2), or None; ``protected_end``: the offset
      before which the last segment must hold valid frames (§3.4).

    ``boot_id``: the 16 bytes of this machine's boot id, compared with the mark's; by default
    read from /proc/sys/kernel/random/boot_id; None means unknown (the mark's durable offset is
    then used).

    ``key``: the store's key-encryption key (format version 7, §1B): its 32 bytes, or the path
    of a key file (``load_key_file``). With it, the key store is checked against it (a wrong key
    raises ``WrongKeyError``) and encrypted events are decrypted (§3.9). Without it, plain
    events read as usual, events whose key was forgotten read as erased, and any other
    encrypted event raises ``KeyRequiredError`` when a read reaches it. ``keys``: the store's
    ``KeyStore`` (its `keys` file), or None."""

    def __init__(self, path, boot_id=CURRENT_BOOT, key=None):
        from .keys import KeyStore, _as_kek
        kek = _as_kek(key) if key is not None else None
        self.path = path
        self.keys = None
        directory = os.path.join(path, "segments")
        if not os.path.isdir(directory):
            raise NotAStoreError(f"{path}: no segments/ directory")
        self.segments = []
        try:
            # A writer in another process may move segments to the archive while we list and
            # open them: when the `archive` file changed meanwhile, start over (§1A).
            for attempt in range(4):
                archive = read_archive(path)
                self._open_segments(path, directory, archive)
                if attempt == 3 or read_archive(path) == archive:
                    break
                for segment in self.segments:
                    segment.close()
                self.segments = []
            self.compacted = any(segment.compacted for segment in self.segments)
            self._seal_positions = {}
            self.boot_id = current_boot_id() if boot_id is CURRENT_BOOT else boot_id
            self.checkpoint = Checkpoint.read(os.path.join(path, "checkpoint"))
            self._usable_checkpoint = self._usable(self.checkpoint)
            self.damage = None
            self.torn_tail = None
            self._check_checkpoint_segment()
            self._find_end()
            # After the walk that fixed the end of the log: a writer syncs a key's entry before
            # it writes a record naming it, so every key id of the log read here is in the file.
            self.keys = KeyStore.read(path, kek)
            if self.keys is None and self.checkpoint is not None and self.checkpoint.minimum_reader_version >= 7:
                # The checkpoint says the log holds encrypted records (§5): their keys are gone.
                raise CorruptionError(os.path.join(path, "keys"), 0, "the store holds encrypted records and its keys file is missing")
            for segment in self.segments:
                segment.keys = self.keys
            self.retention = self._retention_rules()
        except BaseException:
            self.close()
            raise

    def _open_segments(self, path, directory, archive):
        """Opens the segment files (§1, §1A): below the archive's boundary those of the archive
        directory, the others those of `segments/`; a file on the wrong side of the boundary
        is a copy an archive run left, never read."""
        first_local = archive[1] if archive else 0
        files = {number: name for number, name in _segment_numbers(directory).items() if number >= first_local}
        if first_local > 0:
            files.update((number, name) for number, name in _segment_numbers(archive[0]).items() if number < first_local)

        def expected_path(number):
            return os.path.join(archive[0] if number < first_local else directory, f"{number:016d}.seg")

        numbers = sorted(files)
        if not numbers:
            raise NotAStoreError(f"{path}: no segment files")
        if numbers[0] != 0:
            raise CorruptionError(expected_path(0), 0, "segment file missing")
        # Each file stands for its number up to its header's last number (§1); a file inside a
        # compacted file's range is a replaced input a stopped compaction left: skipped.
        for number in numbers:
            if self.segments and number <= self.segments[-1].last_index:
                continue
            if self.segments and number != self.segments[-1].last_index + 1:
                raise CorruptionError(expected_path(self.segments[-1].last_index + 1), 0, "segment file missing")
            try:
                self.segments.append(Segment(files[number], number))
            except FileNotFoundError:
                if not self.segments:
                    raise CorruptionError(files[number], 0, "segment file missing") from None
                # Deleted by a compaction after the listing: its data is in a file already open.
                continue
        if self.segments[-1].index < first_local:
            raise CorruptionError(os.path.join(directory, f"{first_local:016d}.seg"), 0,
                                  "segment file missing (the archive holds every segment before it)")

    def close(self):
        for segment in self.segments:
            segment.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # The checkpoint and the end of the log (§3.4, §5) ----------------------------------------

    def _usable(self, checkpoint):
        """The checkpoint when it is usable (§5): it names a segment file that exists and is not
        compacted, at a multiple of 8 between 64 and the end of its frame area. Otherwise None."""
        if checkpoint is None:
            return None
        segment = next((s for s in self.segments if s.index == checkpoint.segment_index), None)
        if segment is None or segment.compacted:
            return None
        if not SEGMENT_HEADER_BYTES <= checkpoint.segment_offset <= segment.area_end or checkpoint.segment_offset % 8:
            return None
        return checkpoint

    def _check_checkpoint_segment(self):
        """A checkpoint naming a segment before the last: that segment's frames must reach its
        offset at a frame boundary, with its position (§5). Anything else refuses the store."""
        checkpoint = self._usable_checkpoint
        if checkpoint is None or checkpoint.segment_index == self.segments[-1].index:
            return
        segment = next(s for s in self.segments if s.index == checkpoint.segment_index)
        limit = checkpoint.segment_offset
        offset, expected, previous = SEGMENT_HEADER_BYTES, segment.first_position, None
        while offset < limit:
            try:
                frame = segment.probe(offset, verify=False)  # headers only: finding frames
            except CorruptionError as error:
                raise _culprit(segment, previous, offset, error.reason) from None
            if frame is None:
                raise _culprit(segment, previous, offset, "checkpointed data missing")
            if not segment.accepts(frame.first_position, expected):
                raise _culprit(segment, previous, offset, f"frame at position {frame.first_position}, expected {expected}")
            if frame.kind == KIND_SEAL:
                raise CorruptionError(segment.path, offset, "checkpointed data missing: the seal frame comes before the checkpoint's offset")
            if frame.end > limit:
                raise CorruptionError(segment.path, offset, "frame runs past the checkpoint's offset")
            if frame.kind == KIND_EVENTS:
                expected = frame.next_position
            previous, offset = frame, frame.end
        if expected != checkpoint.next_position:
            raise CorruptionError(segment.path, limit, f"checkpoint says position {checkpoint.next_position}, log says {expected}")

    def _find_end(self):
        """Walks the last segment (§3.4): before the protected end every byte must be valid
        frames (damage there is corruption); invalid bytes at or after it are a torn tail; a
        frame whose checksum matched but that fails another check is corruption anywhere.
        Frames before the checkpoint's offset were verified when they were written: like the
        engine, this walks their headers only, and reads verify them when they return them."""
        last = self.segments[-1]
        if last.compacted:
            raise CorruptionError(last.path, 12, "the last segment of a store cannot be a compacted one")
        # The mark is read before the frames it protects: the writer writes them before it.
        self.mark = mark = last.mark()
        checkpoint = self._usable_checkpoint
        if checkpoint is not None and checkpoint.segment_index != last.index:
            checkpoint = None
        protected, position, source = SEGMENT_HEADER_BYTES, last.first_position, "the segment header"
        if checkpoint is not None and checkpoint.segment_offset > protected:
            protected, position, source = checkpoint.segment_offset, checkpoint.next_position, "the checkpoint"
        if mark is not None:
            same_boot = mark.boot_id != _ZERO_BOOT and self.boot_id is not None and mark.boot_id == self.boot_id
            if same_boot:
                vouched = (mark.acknowledged_offset, mark.acknowledged_position, "the durable mark (acknowledged appends)")
            else:
                vouched = (mark.durable_offset, mark.durable_position, "the durable mark (synced appends)")
            if vouched[0] > protected:
                protected, position, source = vouched
        self.protected_end = protected
        boundaries = [protected] + ([checkpoint.segment_offset] if checkpoint is not None else [])

        def before_protected(offset, reason):
            return CorruptionError(last.path, offset, f"{reason}, before offset {protected} that {source} vouches for")

        verified_from = checkpoint.segment_offset if checkpoint is not None else SEGMENT_HEADER_BYTES
        offset, expected, sealed_at, previous = SEGMENT_HEADER_BYTES, last.first_position, None, None
        # The first frame and position of a multi-stream append whose last frame is not seen
        # yet (§3.1): the log never ends inside one.
        group = None
        while True:
            if checkpoint is not None and offset == checkpoint.segment_offset and expected != checkpoint.next_position:
                # Not damage to read around: the checkpoint and the log disagree (§5).
                raise CorruptionError(last.path, offset, f"checkpoint says position {checkpoint.next_position}, log says {expected}")
            if offset == protected and expected != position:
                self.damage = CorruptionError(last.path, offset, f"the log has position {expected} here; {source} says {position}")
                break
            if sealed_at is not None:
                if sealed_at < protected:
                    self.damage = before_protected(sealed_at, "acknowledged data missing: the segment is sealed")
                break
            header_only = offset < verified_from
            try:
                frame = last.probe(offset, verify=not header_only)
            except CorruptionError as error:
                if header_only:
                    culprit = _culprit(last, previous, offset, error.reason)
                    self.damage = before_protected(culprit.offset, culprit.reason)
                elif not error.tearable:
                    self.damage = error
                elif offset < protected:
                    self.damage = before_protected(offset, error.reason)
                else:
                    self.torn_tail = error
                break
            if frame is None:
                if offset < protected:
                    culprit = _culprit(last, previous, offset, "acknowledged data missing: zero bytes where a frame must be")
                    self.damage = before_protected(culprit.offset, culprit.reason)
                break
            if any(frame.offset < boundary < frame.end for boundary in boundaries):
                self.damage = before_protected(offset, "frame runs past a frame boundary")
                break
            if frame.first_position != expected:
                self.damage = _culprit(last, previous if header_only else None, offset,
                                       f"frame at position {frame.first_position}, expected {expected}")
                break
            if frame.kind == KIND_EVENTS:
                if not header_only:
                    try:
                        last.check_records(frame)
                    except CorruptionError as error:
                        self.damage = error
                        break
                if frame.continues and group is None:
                    group = (frame.offset, frame.first_position)
                elif not frame.continues:
                    group = None
                expected = frame.next_position
            elif frame.kind == KIND_SEAL:
                if group is not None:
                    self.damage = CorruptionError(last.path, group[0], "a multi-stream append whose last frame is missing before the seal")
                    break
                sealed_at = offset
            previous, offset = frame, frame.end
        if group is not None:
            # An incomplete group: a torn write after the protected end, damage before it.
            if self.damage is None and group[0] < protected:
                self.damage = before_protected(group[0], "a multi-stream append whose last frame is missing")
            elif self.damage is None and self.torn_tail is None:
                self.torn_tail = CorruptionError(last.path, group[0], "a multi-stream append whose last frame was never written", tearable=True)
            offset, expected = group
        #: Where the log ends in the last segment (at its seal frame, when it has one).
        self.end_offset = sealed_at if sealed_at is not None else offset
        #: Frames of the last segment from here on were verified by this walk.
        self.verified_from = verified_from
        #: The global position of the next event after the log's end.
        self.end_position = expected

    def _segment_frames(self, segment, verify=True):
        """Frames of one segment (no seal) up to the end of the log, positions checked (§3.4).
        With ``verify`` False, the frames of the last segment before ``verified_from`` are found
        by their headers only (§10): the caller verifies those it uses."""
        is_last = segment is self.segments[-1]
        stop = self.end_offset if is_last else None
        header_only_before = self.verified_from if is_last and not verify else 0
        expected = segment.first_position
        offset = SEGMENT_HEADER_BYTES
        while stop is None or offset < stop:
            frame = segment.probe(offset, verify=offset >= header_only_before)
            if frame is None:
                if is_last:
                    return
                raise CorruptionError(segment.path, offset, "sealed segment ends without a seal frame")
            if not segment.accepts(frame.first_position, expected):
                raise CorruptionError(segment.path, frame.offset,
                                      f"frame at position {frame.first_position}, expected {expected}")
            if frame.kind == KIND_SEAL:
                self._seal_positions[segment.index] = frame.first_position
                return
            if frame.kind == KIND_EVENTS:
                expected = frame.next_position
            yield frame
            offset = frame.end

    def frames(self):
        """Every events frame of the log in position order, every check of §3.4 applied. Raises
        the store's ``damage`` (if any) after the last frame before it."""
        revisions = {}
        expected = self.segments[0].first_position
        compacted_seen = False
        for segment in self.segments:
            if segment.first_position != expected:
                raise CorruptionError(segment.path, 32, f"segment starts at position {segment.first_position}, expected {expected}")
            compacted_seen = compacted_seen or segment.compacted
            for frame in self._segment_frames(segment):
                if frame.kind != KIND_EVENTS:
                    continue
                expected = frame.next_position
                stream = frame.stream
                want = revisions.get(stream, 0)
                if frame.first_revision != want and not (compacted_seen and frame.first_revision > want):
                    raise CorruptionError(segment.path, frame.offset,
                                          f"stream {stream} continues at revision {frame.first_revision}, expected {want}")
                revisions[stream] = frame.next_revision
                yield frame
            expected = self._seal_positions.get(segment.index, expected)
        if self.damage is not None:
            raise self.damage

    # Retention (§7A) -------------------------------------------------------------------------

    def _retention_rules(self):
        """Per stream with settings: (first revision kept, oldest timestamp kept, deleted)."""
        settings = {}
        try:
            for event in self._read_stream("$retention"):
                payload = event.payload
                if event.erased or event.type != "$retention" or len(payload) < 32 or payload[0] != 1:
                    continue
                _, flags, name_length, _, truncate, max_count, max_age = struct.unpack_from("<BBHIQQq", payload)
                if len(payload) != 32 + name_length:
                    continue
                try:
                    name = payload[32:].decode("utf-8")
                except UnicodeDecodeError:
                    continue  # not a record this reader understands: ignored (§7A)
                settings[name] = (bool(flags & 1), truncate, max_count, max_age)
        except CorruptionError as error:
            if error is not self.damage:
                raise
            # The records before the damage in the last segment still apply.
        now = time.time_ns()
        rules = {}
        for stream, (deleted, truncate, max_count, max_age) in settings.items():
            first = truncate
            if max_count:
                ends = [first_revision + count for first_revision, count, _ in self._stream_items(stream)]
                last = max(ends) - 1 if ends else None
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
        """``$all`` newest first, from ``start`` (default: the last event), without removed
        events. With ``damage``, the log before it newest first, then the damage is raised."""
        events, damage = [], None
        try:
            for frame in self.frames():
                if start is not None and frame.first_position > start:
                    break  # the read starts before it: no need to go further
                events.extend(frame.segment.records(frame))
        except CorruptionError as error:
            if error is not self.damage:
                raise
            damage = error
        for event in reversed(events):
            if (start is None or event.position <= start) and self.keeps(event):
                yield event
        if damage is not None:
            raise damage

    # Streams through the index files (§7) ----------------------------------------------------

    def _stream_items(self, name):
        """Stream ``name``'s frames in revision order, as (firstRevision, eventCount, frame or
        CorruptionError): sealed segments through their index files (§7.4, §7.6), the others by
        walking them. A frame reached through an index is verified before it is used or skipped
        as another stream's; one that fails stays in the list as its error, at its entry's
        revision, so that the read reaching it reports it instead of returning less."""
        from .index import chosen_index_files, lookup
        wanted = name.encode("utf-8")
        tables = chosen_index_files(self, self.segments[:-1])
        covered = {segment.index for segment in self.segments
                   if any(table.first_segment <= segment.index <= table.last_segment for table in tables)}
        by_index = {segment.index: segment for segment in self.segments}
        items = []
        for table in tables:
            for entry in lookup(table, name):
                try:
                    frame = self._indexed_frame(by_index.get(entry.segment), entry)
                except CorruptionError as error:
                    items.append((entry.first_revision, entry.event_count, error))
                    continue
                if frame.stream_bytes == wanted:
                    items.append((frame.first_revision, frame.event_count, frame))
        for segment in self.segments:
            if segment.index in covered:
                continue
            for frame in self._segment_frames(segment, verify=False):
                if frame.kind == KIND_EVENTS and frame.stream_bytes == wanted:
                    if segment is self.segments[-1] and frame.offset < self.verified_from:
                        try:  # found by its header: verified before it is used
                            segment.probe(frame.offset)
                            segment.check_records(frame)
                        except CorruptionError as error:
                            items.append((frame.first_revision, frame.event_count, error))
                            continue
                    items.append((frame.first_revision, frame.event_count, frame))
        items.sort(key=lambda item: item[0])
        return items

    def _indexed_frame(self, segment, entry):
        """The frame an index entry names, verified (§7.6): checksum, fields, records, and the
        entry's revision, position and count."""
        if segment is None:
            path = os.path.join(self.path, "segments", f"{entry.segment:016d}.seg")
            raise CorruptionError(path, entry.offset, "indexed segment is not in the store")
        offset = entry.offset
        frame = segment.probe(offset)
        if frame is None:
            raise CorruptionError(segment.path, offset, "stream index points past the end of data")
        if frame.kind != KIND_EVENTS:
            raise CorruptionError(segment.path, offset, "stream index points at a frame without events")
        segment.check_records(frame)
        if (frame.first_revision, frame.first_position, frame.event_count) != \
                (entry.first_revision, entry.first_position, entry.event_count):
            raise CorruptionError(segment.path, offset, "frame does not match its stream index entry")
        return frame

    def _continues(self, first, expected):
        """§7.6: a frame continues the stream's previous one; once compaction removed events,
        it may start later (never earlier)."""
        return first == expected or (self.compacted and first > expected)

    def stream_frames(self, name):
        """The frames of stream ``name`` in revision order (§7.6); raises CorruptionError for a
        frame that fails verification or a gap in the revisions."""
        frames, expected = [], 0
        for first, count, item in self._stream_items(name):
            if isinstance(item, CorruptionError):
                raise item
            if not self._continues(first, expected):
                raise CorruptionError(item.segment.path, item.offset,
                                      f"stream {name} continues at revision {first}, expected {expected}")
            frames.append(item)
            expected = first + count
        return frames

    def _read_stream(self, name, start=0):
        """Stream ``name`` forwards from revision ``start`` (retention not applied). Corruption
        is raised where the read reaches it, after the events before it."""
        expected = 0
        for first, count, item in self._stream_items(name):
            if first + count > start:
                if isinstance(item, CorruptionError):
                    raise item
                if not self._continues(first, expected):
                    raise CorruptionError(item.segment.path, item.offset,
                                          f"stream {name} continues at revision {first}, expected {expected}")
                for event in item.segment.records(item):
                    if event.revision >= start:
                        yield event
            expected = first + count
        if self.damage is not None:
            raise self.damage

    def read_stream(self, name, start=0):
        """Stream ``name`` forwards from revision ``start``, without removed events."""
        return (event for event in self._read_stream(name, start) if self.keeps(event))

    def read_stream_backwards(self, name, start=None):
        """Stream ``name`` newest first, from revision ``start`` (default: the last), without
        removed events."""
        items = self._stream_items(name)
        for slot in range(len(items) - 1, -1, -1):
            first, count, item = items[slot]
            if start is not None and first > start:
                continue
            if isinstance(item, CorruptionError):
                raise item
            before = items[slot - 1][0] + items[slot - 1][1] if slot > 0 else 0
            if not self._continues(first, before):
                raise CorruptionError(item.segment.path, item.offset,
                                      f"stream {name} continues at revision {first}, expected {before}")
            for event in reversed(item.segment.records(item)):
                if (start is None or event.revision <= start) and self.keeps(event):
                    yield event
        if self.damage is not None:
            raise self.damage


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
        if event.erased or event.type != "$snapshot" or len(event.metadata) != 16:
            continue
        revision, version, _ = struct.unpack("<QII", event.metadata)
        if version == schema_version:
            return Snapshot(stream, revision, version, event.payload, event.position)
    return None


Store.latest_snapshot = latest_snapshot
