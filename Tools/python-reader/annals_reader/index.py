"""Stream index files (format-spec.md section 7): checks, cover selection, Bloom filter, lookup."""

import os
import re
import struct
from dataclasses import dataclass

from .crc32c import crc32c

HEADER_BYTES = 96
ENTRY_BYTES = 40
BLOOM_BLOCK_BYTES = 64
HASH_FNV1A_64 = 1
_MASK = (1 << 64) - 1
_NAME = re.compile(r"^(\d{16})(?:-(\d{16}))?\.idx$")


def key_hash(kind: int, name: str) -> int:
    """The query index key of an event type (kind 1) or a tag (kind 2), §7.7: FNV-1a 64 over
    the kind byte followed by the name's UTF-8."""
    value = 0xCBF29CE484222325
    for byte in bytes([kind]) + name.encode("utf-8"):
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def stream_hash(name: str) -> int:
    """FNV-1a 64 of the name's UTF-8 bytes (§7.1)."""
    value = 0xCBF29CE484222325
    for byte in name.encode("utf-8"):
        value = ((value ^ byte) * 0x100000001B3) & _MASK
    return value


def _mix(x: int) -> int:
    """SplitMix64's finaliser (§7.3)."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


@dataclass(frozen=True)
class Entry:
    stream_hash: int
    first_revision: int
    first_position: int
    segment: int
    offset: int
    event_count: int


class IndexFile:
    """One index file whose header, entries and Bloom filter passed every check of §7.2."""

    def __init__(self, path, data):
        self.path = path
        self.data = data
        (self.first_segment, self.last_segment, self.entry_count, self.bloom_blocks,
         self.next_position) = struct.unpack_from("<QQQQQ", data, 16)
        self.fingerprint = struct.unpack_from("<I", data, 68)[0]

    @staticmethod
    def load(path):
        """The file, or None when it fails a check (a reader then walks those segments)."""
        match = _NAME.match(os.path.basename(path))
        if match is None:
            return None
        with open(path, "rb") as file:
            data = file.read()
        if len(data) < HEADER_BYTES or data[0:8] != b"ANNALSIX":
            return None
        if crc32c(data[0:92]) != struct.unpack_from("<I", data, 92)[0]:
            return None
        version, header_size, flags = struct.unpack_from("<HHI", data, 8)
        first, last, count, blocks, _ = struct.unpack_from("<QQQQQ", data, 16)
        hash_function, entries_checksum, bloom_checksum = struct.unpack_from("<III", data, 56)
        key_count, key_checksum = struct.unpack_from("<QI", data, 72)
        name_first = int(match.group(1))
        name_last = int(match.group(2)) if match.group(2) else name_first
        if version != 2 or header_size != HEADER_BYTES or hash_function != HASH_FNV1A_64 or blocks < 1:
            return None  # version 1 (no query entries): a writer rebuilds it
        if (first, last) != (name_first, name_last) or first > last:
            return None
        if len(data) != HEADER_BYTES + ENTRY_BYTES * (count + key_count) + BLOOM_BLOCK_BYTES * blocks:
            return None
        entries_end = HEADER_BYTES + ENTRY_BYTES * count
        bloom_end = entries_end + BLOOM_BLOCK_BYTES * blocks
        if crc32c(data[HEADER_BYTES:entries_end]) != entries_checksum or crc32c(data[entries_end:bloom_end]) != bloom_checksum \
                or crc32c(data[bloom_end:]) != key_checksum:
            return None
        # Query entries (§7.7) in ascending (keyHash, firstPosition) order, each naming a covered segment.
        previous = None
        for key_hash, _, first_position, segment, _, _ in struct.iter_unpack("<QQQIII4x", data[bloom_end:]):
            if (previous is not None and (key_hash, first_position) < previous) or not first <= segment <= last:
                return None
            previous = (key_hash, first_position)
        # Entries in ascending (streamHash, firstRevision) order, each naming a covered segment.
        previous = None
        for stream_hash, first_revision, _, segment, _, _ in struct.iter_unpack("<QQQIII4x", data[HEADER_BYTES:entries_end]):
            if (previous is not None and (stream_hash, first_revision) < previous) or not first <= segment <= last:
                return None
            previous = (stream_hash, first_revision)
        return IndexFile(path, data)

    def entry(self, index):
        values = struct.unpack_from("<QQQIII", self.data, HEADER_BYTES + ENTRY_BYTES * index)
        return Entry(*values[:6])

    def may_contain(self, value):
        """The Bloom filter (§7.3): False means the hash is certainly absent."""
        mixed = _mix(value)
        block = ((mixed >> 32) * self.bloom_blocks) >> 32
        start = HEADER_BYTES + ENTRY_BYTES * self.entry_count + BLOOM_BLOCK_BYTES * block
        bits = _mix(mixed)
        for i in range(6):
            bit = (bits >> (9 * i)) & 511
            if not self.data[start + bit // 8] & (1 << (bit % 8)):
                return False
        return True


def chosen_index_files(store, sealed_segments):
    """The cover of §7.4: widest files first, within the sealed segments, starting and ending
    at segment file boundaries, not overlapping, every check passed, nextPosition equal to the
    next segment's first position, and the fingerprint of the files covered."""
    if not sealed_segments:
        return []
    low, high = sealed_segments[0].index, sealed_segments[-1].last_index
    by_first = {segment.index: slot for slot, segment in enumerate(store.segments)}
    by_last = {segment.last_index: slot for slot, segment in enumerate(store.segments)}
    directory = os.path.join(store.path, "segments")
    candidates = []
    for name in os.listdir(directory):
        match = _NAME.match(name)
        if match is None:
            continue
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        if low <= first <= last <= high and first in by_first and last in by_last:
            candidates.append((last - first, first, os.path.join(directory, name)))
    chosen = []
    taken = set()
    for _, first, path in sorted(candidates, key=lambda c: (-c[0], c[1])):
        table = IndexFile.load(path)
        if table is None:
            continue
        span = set(range(table.first_segment, table.last_segment + 1))
        first_slot, last_slot = by_first[table.first_segment], by_last[table.last_segment]
        covered = store.segments[first_slot:last_slot + 1]
        following = store.segments[last_slot + 1] if last_slot + 1 < len(store.segments) else None
        if span & taken or following is None or following.first_position != table.next_position:
            continue
        if table.fingerprint == 0:
            if any(segment.compacted for segment in covered):
                continue  # written before a compaction rewrote one of its segments
        elif table.fingerprint != fingerprint(covered):
            continue
        chosen.append(table)
        taken |= span
    return sorted(chosen, key=lambda table: table.first_segment)


def fingerprint(segments):
    """CRC-32C over the header checksums of ``segments`` (§7.2, segmentsFingerprint)."""
    return crc32c(b"".join(bytes(segment.data[60:64]) for segment in segments))


def lookup(table, name):
    """Entries of ``table`` whose hash is the name's (§7.6); the caller checks stream names."""
    value = stream_hash(name)
    if table.entry_count == 0 or not table.may_contain(value):
        return []
    low, high = 0, table.entry_count  # first entry with hash >= value (bisection)
    while low < high:
        middle = (low + high) // 2
        if struct.unpack_from("<Q", table.data, HEADER_BYTES + ENTRY_BYTES * middle)[0] < value:
            low = middle + 1
        else:
            high = middle
    entries = []
    while low < table.entry_count:
        entry = table.entry(low)
        if entry.stream_hash != value:
            break
        entries.append(entry)
        low += 1
    return entries
