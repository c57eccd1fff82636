"""The Python reader against the Swift engine: for stores written by `annals import` with every
option that changes bytes on disk, and for the golden stores under Tests/Fixtures, the reader's
dump must equal `annals dump` (or the committed expected dump) byte for byte. Segments built
byte by byte test the rules of format-spec.md §2.2 and §3.4 (durable marks, torn tails and
corruption) without the engine.

Run from the repository root after `swift build`:
    python3 -m unittest discover -s Tools/python-reader/tests
ANNALS_BIN names the `annals` executable (default: .build/debug/annals).
"""

import base64
import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import uuid
from contextlib import redirect_stderr, redirect_stdout

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "Tools", "python-reader"))

from annals_reader import CorruptionError, Store  # noqa: E402
from annals_reader.__main__ import main as reader_main  # noqa: E402
from annals_reader.crc32c import crc32c  # noqa: E402
from annals_reader.store import KIND_EVENTS  # noqa: E402
from annals_reader.dump import event_line, is_json  # noqa: E402
from annals_reader.index import _mix, chosen_index_files, stream_hash  # noqa: E402

ANNALS = os.environ.get("ANNALS_BIN", os.path.join(ROOT, ".build", "debug", "annals"))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")


def import_lines(rng, count, streams, tagged=False):
    """`annals import` lines: realistic JSON bodies, plus the awkward cases (base64 bodies,
    empty bodies, non-ASCII names, escapes in types, JSON with odd spacing). With `tagged`,
    most lines carry tags (none to several, non-ASCII and escapes among them)."""
    lines = []
    names = ["Olivia Smith", "Søren Müller", "Chloé Dubois", "Kenji Tanaka", "Zanele Okafor"]
    for i in range(count):
        stream = rng.choice(streams)
        kind = rng.randrange(10)
        body = {"orderId": f"ord_{rng.getrandbits(40):010x}", "customer": {"name": rng.choice(names),
                "email": f"c{rng.randrange(1000)}@example.com"}, "amount": round(rng.uniform(1, 2400), 2),
                "lines": [{"sku": rng.choice(["espresso-beans-1kg", "merino-socks-3pk", "usb-c-hub-7in1"]),
                           "qty": rng.randrange(1, 5)} for _ in range(rng.randrange(1, 4))],
                "placedAt": f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T10:00:00Z"}
        line = {"stream": stream, "type": rng.choice(["OrderPlaced", "PaymentAuthorized", "ShipmentDispatched"])}
        if kind == 0:
            line["dataBase64"] = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 300)))).decode()
        elif kind == 1:
            line["type"] = 'Odd "type"\twith\\escapes ✓'
            line["data"] = {"note": "line\nbreak, tab\t, quote \" and unicode ✓ \u2028", "n": -0.5e-3}
        elif kind == 2:
            pass  # no data at all
        else:
            line["data"] = body
        if kind != 3:
            line["metadata"] = {"correlationId": f"{rng.getrandbits(64):016x}", "source": "checkout-api", "v": 1}
        if kind == 4:
            line["id"] = "%08x-%04x-4%03x-8%03x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12),
                                                         rng.getrandbits(12), rng.getrandbits(48))
        if tagged and kind != 2:
            pool = [f"customer:{rng.randrange(30)}", f"sku:{rng.randrange(8)}", "région:île-de-france", 'odd "tag"\t✓']
            line["tags"] = rng.sample(pool, rng.randrange(1, 4))
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
        if kind == 5:
            text = text.replace('"data":{', '"data":  { ', 1)  # stored byte for byte, spaces included
        lines.append(text)
    return lines


def run_annals(*arguments, stdin=None):
    result = subprocess.run([ANNALS, *arguments], input=stdin, capture_output=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"annals {' '.join(arguments)} failed: {result.stderr.decode()}")
    return result.stdout


def reader_dump(*arguments):
    buffer = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with redirect_stdout(buffer), redirect_stderr(io.StringIO()):
        status = reader_main(["dump", *arguments])
    buffer.flush()
    return status, buffer.buffer.getvalue()


def run_annals_status(*arguments):
    """`annals ARGUMENTS`: (exit status, stdout), whatever the status."""
    result = subprocess.run([ANNALS, *arguments], capture_output=True, check=False)
    return result.returncode, result.stdout


def flip(path, offset, mask=0x10):
    """Flips bits of the byte at ``offset`` of file ``path``."""
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([byte ^ mask]))


# Synthetic stores (format-spec.md, built byte by byte): the rules the Python reader must follow
# without needing the Swift engine.

BOOT = uuid.UUID("6c1f3a52-9d0e-4b7a-8f21-3e5d7c9b0a14").bytes
OTHER_BOOT = uuid.UUID("0b9e2d71-5a4c-4f38-9e60-d1c2b3a49587").bytes
TIMESTAMP = 1_795_000_000_123_456_789


def align8(n):
    return (n + 7) & ~7


def checksummed(body):
    """A frame: CRC-32C of everything after the checksum field, then zero padding to 8."""
    frame = struct.pack("<I", crc32c(body)) + body
    return frame + bytes(align8(len(frame)) - len(frame))


def frame_bytes(kind, first_position, first_revision=0, name=b"", count=0, payload=b"", flags=0, length=None):
    length = 32 + len(payload) if length is None else length
    return checksummed(struct.pack("<IBBHIQQ", length, kind, flags, len(name), count, first_position, first_revision) + payload)


def record_bytes(event_type, metadata=b"", payload=b"", flags=0, event_id=None, length=None):
    """One raw event record (§3.2)."""
    event_id = event_id or uuid.UUID(int=0x1234_5678_9ABC_DEF0_0FED_CBA9_8765_4321).bytes
    body = event_type + metadata + payload
    length = 40 + len(body) if length is None else length
    record = struct.pack("<IHHIIq", length, len(event_type), flags, len(metadata), len(payload), TIMESTAMP) + event_id + body
    return record + bytes(align8(len(record)) - len(record))


def events_frame(stream, first_position, first_revision, events, flags=0):
    """An events frame; ``events``: a list of (type, metadata, payload) or raw record bytes."""
    name = stream.encode() if isinstance(stream, str) else stream
    records = b"".join(e if isinstance(e, bytes) else record_bytes(*e) for e in events)
    # The frame's length excludes the last record's padding: trim it back to the record's length.
    last = events[-1]
    last_bytes = last if isinstance(last, bytes) else record_bytes(*last)
    trailing = len(last_bytes) - struct.unpack_from("<I", last_bytes, 0)[0]
    body = name + bytes(align8(32 + len(name)) - 32 - len(name)) + records[:len(records) - trailing]
    return frame_bytes(1, first_position, first_revision, name, len(events), body, flags)


def seal_frame(next_position):
    return frame_bytes(2, next_position)


def slot_bytes(sequence, segment, acknowledged, durable, acknowledged_position, durable_position, boot=BOOT):
    body = b"ANMK" + struct.pack("<QQIIQQ", sequence, segment, acknowledged, durable,
                                 acknowledged_position, durable_position) + boot
    return struct.pack("<I", crc32c(body)) + body


class SegmentBuilder:
    """A segment file (§2): header, frames appended back to back, optional mark slots."""

    def __init__(self, index=0, size=4096, first_position=0, version=2, flags=2, last_index=0):
        self.index, self.size, self.first_position = index, size, first_position
        self.version, self.flags, self.last_index = version, flags, last_index
        self.data = bytearray(size)
        self.offset = 64
        self.offsets = []

    def header(self):
        header = b"ANNALSSG" + struct.pack("<HHIQQQqQ4x", self.version, 64, self.flags, self.index, self.size,
                                           self.first_position, TIMESTAMP, self.last_index)
        return header + struct.pack("<I", crc32c(header))

    def add(self, frame):
        self.offsets.append(self.offset)
        self.data[self.offset:self.offset + len(frame)] = frame
        self.offset += len(frame)
        return self.offsets[-1]

    def slot(self, number, *arguments, **options):
        start = self.size - 128 + 64 * number
        self.data[start:start + 64] = slot_bytes(*arguments, **options)

    def write(self, directory):
        self.data[0:64] = self.header()
        path = os.path.join(directory, "segments", f"{self.index:016d}.seg")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as file:
            file.write(self.data)
        return path


def write_checkpoint(directory, segment, offset, next_position, clean=False, minimum=2):
    body = b"ANNALSCP" + struct.pack("<HHIQQQQq4x", 3, minimum, 1 if clean else 0, segment, offset, next_position, 7, TIMESTAMP)
    with open(os.path.join(directory, "checkpoint"), "wb") as file:
        file.write(body + struct.pack("<I", crc32c(body)))


def write_index(directory, segments, next_position, frames, key_frames=()):
    """An index file (§7.2) over the segment files ``segments``; ``frames``: (stream hash,
    first revision, first position, segment number, offset, event count); ``key_frames``: the
    query entries (§7.7), (key hash, first revision, first position, segment, offset, count)."""
    entries = sorted(frames, key=lambda f: (f[0], f[1]))
    blocks = max(1, -(-10 * len({f[0] for f in entries}) // 512))
    bloom = bytearray(64 * blocks)
    for value in {f[0] for f in entries}:
        mixed = _mix(value)
        block = ((mixed >> 32) * blocks) >> 32
        bits = _mix(mixed)
        for i in range(6):
            bit = (bits >> (9 * i)) & 511
            bloom[64 * block + bit // 8] |= 1 << (bit % 8)
    entry_bytes = b"".join(struct.pack("<QQQIII4x", *f) for f in entries)
    key_bytes = b"".join(struct.pack("<QQQIII4x", *f) for f in sorted(key_frames, key=lambda f: (f[0], f[2])))
    fingerprint = crc32c(b"".join(s.header()[60:64] for s in segments))
    first, last = segments[0].index, segments[-1].last_index or segments[-1].index
    header = b"ANNALSIX" + struct.pack("<HHIQQQQQIIIIQI8x", 2, 96, 0, first, last, len(entries), blocks, next_position,
                                       1, crc32c(entry_bytes), crc32c(bytes(bloom)), fingerprint,
                                       len(key_frames), crc32c(key_bytes))
    name = f"{first:016d}.idx" if first == last else f"{first:016d}-{last:016d}.idx"
    with open(os.path.join(directory, "segments", name), "wb") as file:
        file.write(header + struct.pack("<I", crc32c(header)) + entry_bytes + bytes(bloom) + key_bytes)


@unittest.skipUnless(os.path.exists(ANNALS), f"{ANNALS} not built")
class ReaderMatchesAnnalsDump(unittest.TestCase):
    """Stores written by the Swift engine, read by the Python reader, byte for byte."""

    @classmethod
    def setUpClass(cls):
        cls.directory = tempfile.mkdtemp(prefix="annals-python-reader-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.directory, ignore_errors=True)

    def make_store(self, name, imports):
        """`imports`: a list of (options, lines) run one after another on the same store."""
        path = os.path.join(self.directory, name)
        for options, lines in imports:
            run_annals("import", path, "--durability", "none", *options, stdin=("\n".join(lines) + "\n").encode())
        return path

    def assert_same_dumps(self, path, streams):
        variants = [[], ["--backwards"], ["--from", "7"], ["--from", "40", "--limit", "25"], ["--backwards", "--from", "90", "--limit", "3"]]
        for stream in streams:
            variants += [["--stream", stream], ["--stream", stream, "--backwards"], ["--stream", stream, "--from", "2", "--limit", "4"]]
        variants.append(["--stream", "never-written"])
        for options in variants:
            expected = run_annals("dump", path, *options)
            status, actual = reader_dump(path, *options)
            self.assertEqual(status, 0, options)
            self.assertEqual(actual, expected, f"dump {options} differs")
        return run_annals("dump", path)

    def test_compressed_store_over_many_segments_with_merged_indexes(self):
        rng = random.Random(1)
        streams = [f"order-{i}" for i in range(12)] + ["Zürich-€-1"]
        # 16 KiB segments: dozens of sealed segments, index files merged four at a time.
        path = self.make_store("lz4", [(["--segment-size-bytes", "16384", "--batch", "7"], import_lines(rng, 2500, streams))])
        segments = os.listdir(os.path.join(path, "segments"))
        self.assertGreater(len([n for n in segments if n.endswith(".seg")]), 16)
        self.assertTrue(any("-" in n for n in segments if n.endswith(".idx")), "expected merged index files")
        with Store(path) as store:
            events = list(store.read_all())
        self.assertEqual(len(events), 2500)
        self.assertGreater(sum(e.compressed for e in events), 1500)
        self.assert_same_dumps(path, ["order-3", "Zürich-€-1"])

    def test_uncompressed_and_mixed_stores(self):
        rng = random.Random(2)
        streams = [f"cart-{i}" for i in range(5)]
        plain = self.make_store("plain", [(["--compression", "none", "--segment-size-bytes", "16384"], import_lines(rng, 600, streams))])
        with Store(plain) as store:
            self.assertFalse(any(e.compressed for e in store.read_all()))
        self.assert_same_dumps(plain, ["cart-1"])
        mixed = self.make_store("mixed", [
            (["--compression", "none", "--segment-size-bytes", "32768"], import_lines(rng, 300, streams)),
            (["--segment-size-bytes", "32768"], import_lines(rng, 300, streams)),
            (["--compression", "none", "--segment-size-bytes", "32768"], import_lines(rng, 100, streams)),
        ])
        self.assert_same_dumps(mixed, ["cart-0", "cart-4"])

    def test_tagged_events_raw_and_compressed(self):
        rng = random.Random(9)
        streams = [f"order-{i}" for i in range(6)]
        path = self.make_store("tagged", [
            (["--segment-size-bytes", "16384", "--batch", "5"], import_lines(rng, 800, streams, tagged=True)),
            (["--compression", "none", "--segment-size-bytes", "16384"], import_lines(rng, 200, streams, tagged=True)),
        ])
        with Store(path) as store:
            events = list(store.read_all())
            self.assertGreater(sum(1 for e in events if e.tags), 700)
            self.assertTrue(any(e.tags and e.compressed for e in events))
            self.assertTrue(any(e.tags and not e.compressed for e in events))
            self.assertGreaterEqual(store.checkpoint.minimum_reader_version, 6)
        self.assert_same_dumps(path, ["order-2"])
        self.assert_query_entries_match_the_log(path)
        for options in (["--tag", "customer:3"], ["--type", "OrderPlaced", "--tag", "sku:2"],
                        ["--type", "OrderPlaced", "--type", "PaymentAuthorized", "--tag", "région:île-de-france", "--backwards"],
                        ["--tag", "customer:3", "--from", "300", "--limit", "4"]):
            expected = run_annals("dump", path, *options)
            status, actual = reader_dump(path, *options)
            self.assertEqual(status, 0)
            self.assertEqual(actual, expected, f"dump {options} differs")
            self.assertTrue(expected, f"dump {options} prints something")

    def assert_query_entries_match_the_log(self, path):
        """§7.7: each chosen index file's query entries are exactly one per events frame and
        distinct type or tag of its events, keyed by key_hash, in (keyHash, firstPosition) order."""
        from annals_reader.index import chosen_index_files, key_hash
        with Store(path) as store:
            tables = chosen_index_files(store, store.segments[:-1])
            self.assertTrue(tables)
            for table in tables:
                expected = []
                for segment in store.segments:
                    if not table.first_segment <= segment.index <= table.last_segment:
                        continue
                    for frame in segment.frames():
                        if frame.kind != 1:
                            continue
                        keys = []
                        for event in segment.records(frame):
                            for key in [(1, event.type)] + [(2, tag) for tag in event.tags]:
                                if key not in keys:
                                    keys.append(key)
                        for kind, name in keys:
                            expected.append((key_hash(kind, name), frame.first_position, segment.index, frame.offset, frame.event_count))
                data = table.data
                count = struct.unpack_from("<Q", data, 72)[0]
                start = len(data) - 40 * count
                stored = [(h, p, s, o, c) for h, _, p, s, o, c in struct.iter_unpack("<QQQIII4x", data[start:])]
                self.assertEqual(stored, sorted(expected), table.path)

    def test_tiny_segments_without_dictionaries(self):
        rng = random.Random(3)
        path = self.make_store("tiny", [(["--segment-size-bytes", "4096", "--batch", "1"], import_lines(rng, 120, ["a", "b"]))])
        self.assert_same_dumps(path, ["a"])

    def test_retention_is_applied_like_the_engine(self):
        rng = random.Random(6)
        streams = ["keep", "soft", "hard", "trunc", "capped"]
        path = self.make_store("retention", [(["--segment-size-bytes", "16384", "--batch", "3"], import_lines(rng, 400, streams))])
        run_annals("retention", path, "soft", "--delete")
        run_annals("retention", path, "hard", "--hard-delete")
        run_annals("retention", path, "trunc", "--truncate-before", "40")
        run_annals("retention", path, "capped", "--max-count", "7")
        # After a soft delete the stream continues at the next revision.
        more = [json.dumps({"stream": "soft", "type": "Again", "data": {"n": i}}) for i in range(3)]
        run_annals("import", path, "--durability", "none", "--segment-size-bytes", "16384", stdin=("\n".join(more) + "\n").encode())
        dump = self.assert_same_dumps(path, streams)
        lines = [json.loads(line) for line in dump.decode().split("\n") if line]
        self.assertFalse([l for l in lines if l["stream"] == "hard"])
        self.assertEqual([l["type"] for l in lines if l["stream"] == "soft"], ["Again"] * 3)
        self.assertEqual(len([l for l in lines if l["stream"] == "capped"]), 7)
        self.assertTrue(all(l["revision"] >= 40 for l in lines if l["stream"] == "trunc"))

    def test_compacted_store_reads_like_the_engine(self):
        """Compacted segments (format version 3): positions and revisions that skip removed
        events, files standing for several segments, rewritten index files, superseded
        snapshots gone; and the same store after a compaction stopped half-way."""
        rng = random.Random(8)
        streams = ["keep", "soft", "hard", "trunc", "capped", "other"]
        path = self.make_store("compacted", [(["--segment-size-bytes", "16384", "--batch", "3"], import_lines(rng, 600, streams))])
        run_annals("retention", path, "soft", "--delete")
        run_annals("delete", path, "hard", "--hard")
        run_annals("retention", path, "trunc", "--truncate-before", "60")
        run_annals("retention", path, "capped", "--max-count", "4")
        before = run_annals("dump", path)
        stopped = path + "-stopped"
        shutil.copytree(path, stopped)
        run_annals("compact", path)
        with Store(path) as store:
            self.assertTrue(any(segment.compacted for segment in store.segments))
            self.assertTrue(any(segment.last_index > segment.index for segment in store.segments))
        after = self.assert_same_dumps(path, streams)
        self.assertEqual(after, before, "compaction changes nothing a reader sees")
        # A compaction killed after its first output replaced a segment (crash point 3).
        env = dict(os.environ, ANNALS_CRASH_POINT="3")
        result = subprocess.run([ANNALS, "compact", stopped], env=env, capture_output=True, check=False)
        self.assertEqual(result.returncode, 86, result.stderr.decode())
        self.assertEqual(reader_dump(stopped), (0, before))
        self.assertEqual(reader_dump(stopped, "--stream", "trunc"), (0, run_annals("dump", stopped, "--stream", "trunc")))

    def test_flipped_bit_is_reported_with_file_and_offset(self):
        rng = random.Random(4)
        path = self.make_store("flip", [(["--segment-size-bytes", "65536"], import_lines(rng, 400, ["s-1", "s-2"]))])
        first = os.path.join(path, "segments", "0000000000000000.seg")
        with open(first, "r+b") as file:
            file.seek(4000)
            byte = file.read(1)
            file.seek(4000)
            file.write(bytes([byte[0] ^ 0x10]))
        status, _ = reader_dump(path)
        self.assertEqual(status, 1)
        with Store(path) as store:
            with self.assertRaises(CorruptionError) as caught:
                list(store.read_all())
        self.assertEqual(caught.exception.file, first)
        self.assertLessEqual(caught.exception.offset, 4000)

    def test_torn_tail_after_the_checkpoint_is_ignored(self):
        rng = random.Random(5)
        path = self.make_store("torn", [(["--segment-size-bytes", "1048576"], import_lines(rng, 200, ["t"]))])
        expected = run_annals("dump", path)
        last = sorted(n for n in os.listdir(os.path.join(path, "segments")) if n.endswith(".seg"))[-1]
        with Store(path) as store:
            end = store.end_offset
        # Pretend the writer crashed mid-append: a frame header with no valid checksum, and
        # a checkpoint from before the last append (the common state after kill -9).
        with open(os.path.join(path, "segments", last), "r+b") as file:
            file.seek(end)
            file.write(b"\x01\x02\x03\x04\x40\x00\x00\x00\x01" + b"\xAA" * 55)
        checkpoint = os.path.join(path, "checkpoint")
        with open(checkpoint, "r+b") as file:
            data = bytearray(file.read())
            data[24:32] = (64).to_bytes(8, "little")       # segmentOffset: the start of the segment
            data[16:24] = int(last[:-4]).to_bytes(8, "little")
            data[12] = 0                                      # not a clean shutdown
            first_position = Store(path).segments[-1].first_position
            data[32:40] = first_position.to_bytes(8, "little")
            data[60:64] = crc32c(bytes(data[:60])).to_bytes(4, "little")
            file.seek(0)
            file.write(data)
        status, actual = reader_dump(path)
        self.assertEqual(status, 0)
        self.assertEqual(actual, expected)
        with Store(path) as store:
            self.assertIsNotNone(store.torn_tail)


    def test_durable_marks_written_by_the_engine_protect_acknowledged_frames(self):
        """The engine's segments carry durable marks (§2.2): a bit flipped in an acknowledged
        frame of the last segment, after the checkpoint, is damage for the engine and the reader
        alike (the same events printed, exit 1), never a torn tail to cut."""
        from annals_reader import current_boot_id
        rng = random.Random(9)
        path = self.make_store("marks", [(["--segment-size-bytes", "1048576"], import_lines(rng, 200, ["m-1", "m-2"]))])
        with Store(path) as store:
            last = store.segments[-1]
            self.assertTrue(last.durable_marks, "segments the engine creates have the durable-marks flag")
            self.assertIsNotNone(store.mark, "the last segment has a valid durable mark")
            self.assertEqual(store.mark.acknowledged_offset, store.end_offset)
            frames = list(store.frames())
            middle = frames[len(frames) // 2]
            last_path, last_index, first_position = last.path, last.index, last.first_position
        # The checkpoint back at the start of the segment, as a crash before the next one leaves it.
        with open(os.path.join(path, "checkpoint"), "r+b") as file:
            data = bytearray(file.read())
            data[12] = 0
            data[16:24] = last_index.to_bytes(8, "little")
            data[24:32] = (64).to_bytes(8, "little")
            data[32:40] = first_position.to_bytes(8, "little")
            data[60:64] = crc32c(bytes(data[:60])).to_bytes(4, "little")
            file.seek(0)
            file.write(data)
        flip(last_path, middle.records_offset + 44)
        expected = run_annals_status("dump", path)
        self.assertEqual(reader_dump(path), expected)
        if current_boot_id() is not None:
            self.assertEqual(expected[0], 1, "damage before the acknowledged end fails the dump")
            with Store(path) as store:
                self.assertEqual(store.damage.offset, middle.offset)

class DurableMarksAndCorruption(unittest.TestCase):
    """The protected end of the last segment (§2.2, §3.4, §3.8) and the rules that make a
    frame corruption rather than a torn tail, on stores built byte by byte (no engine needed)."""

    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="annals-python-marks-")

    def tearDown(self):
        shutil.rmtree(self.directory, ignore_errors=True)

    def build(self, frames=5, **segment):
        """A one-segment store: ``frames`` frames of stream "s", two events each."""
        builder = SegmentBuilder(**segment)
        for i in range(frames):
            builder.add(events_frame("s", 2 * i, 2 * i, [(b"Happened", b'{"m":1}', b'{"n":%d}' % (2 * i)),
                                                          (b"Happened", b"", b'{"n":%d}' % (2 * i + 1))]))
        return builder

    def open(self, builder, boot=BOOT, checkpoint=None):
        builder.write(self.directory)
        if checkpoint is not None:
            write_checkpoint(self.directory, 0, *checkpoint)
        return Store(self.directory, boot_id=boot)

    def events(self, store):
        """The events a forward read returns, and the error it ends with (or None)."""
        events = []
        try:
            for event in store.read_all():
                events.append(event)
        except CorruptionError as error:
            return events, error
        return events, None

    def test_flip_before_the_protected_end_is_damage_not_a_torn_tail(self):
        builder = self.build()
        end = builder.offset
        # Periodic/none: every append acknowledged; nothing synced yet.
        builder.slot(1, 1, 0, end, 64, 10, 0)
        flip_at = builder.offsets[2] + 60
        builder.data[flip_at] ^= 0x04
        with self.open(builder) as store:
            self.assertEqual(store.protected_end, end)
            self.assertIsNone(store.torn_tail)
            self.assertEqual((store.damage.file, store.damage.offset), (os.path.join(self.directory, "segments", "0000000000000000.seg"), builder.offsets[2]))
            events, error = self.events(store)
        self.assertEqual([e.position for e in events], [0, 1, 2, 3])
        self.assertIs(error.__class__, CorruptionError)
        self.assertEqual(error.offset, builder.offsets[2])
        # The dump (this machine's boot id, whatever it is) with a mark that vouches for synced
        # appends (fsyncBeforeAck): it prints the events before the damage, then fails; with
        # --limit and --backwards too.
        builder.slot(0, 2, 0, end, end, 10, 10)
        builder.write(self.directory)
        status, output = reader_dump(self.directory)
        self.assertEqual(status, 1)
        self.assertEqual(output, b"".join(event_line(e) for e in events))
        self.assertEqual(reader_dump(self.directory, "--limit", "1")[0], 1)
        status, output = reader_dump(self.directory, "--backwards")
        self.assertEqual((status, output), (1, b"".join(event_line(e) for e in reversed(events))))

    def test_another_boot_protects_only_the_durable_end(self):
        builder = self.build()
        builder.slot(1, 1, 0, builder.offset, builder.offsets[2], 10, 4)
        builder.data[builder.offsets[3] + 60] ^= 0x04
        for boot in (OTHER_BOOT, None):  # rebooted, or this machine's boot id unknown
            with self.open(builder, boot=boot) as store:
                self.assertEqual(store.protected_end, builder.offsets[2])
                self.assertIsNone(store.damage)
                self.assertEqual(store.torn_tail.offset, builder.offsets[3])
                events, error = self.events(store)
            self.assertIsNone(error)
            self.assertEqual(len(events), 6)
        # A mark that does not know its boot vouches for its durable end only, whatever the reader's.
        builder.slot(1, 1, 0, builder.offset, builder.offsets[2], 10, 4, boot=bytes(16))
        with self.open(builder) as store:
            self.assertEqual(store.protected_end, builder.offsets[2])
        # Damage before the durable end is damage after a reboot too.
        builder.slot(1, 1, 0, builder.offset, builder.offsets[4], 10, 8)
        with self.open(builder, boot=OTHER_BOOT) as store:
            self.assertEqual(store.damage.offset, builder.offsets[3])

    def test_damage_after_the_protected_end_is_a_torn_tail(self):
        builder = self.build()
        builder.slot(1, 1, 0, builder.offsets[3], builder.offsets[3], 6, 6)
        builder.data[builder.offsets[4] + 44] ^= 0x01
        with self.open(builder) as store:
            self.assertIsNone(store.damage)
            self.assertEqual(store.torn_tail.offset, builder.offsets[4])
            self.assertEqual(store.end_offset, builder.offsets[4])
            events, error = self.events(store)
        self.assertIsNone(error)
        self.assertEqual(len(events), 8)
        self.assertEqual(reader_dump(self.directory)[0], 0)

    def test_an_invalid_slot_leaves_the_other_one(self):
        builder = self.build()
        builder.slot(0, 2, 0, builder.offset, builder.offset, 10, 10)      # newest, covers all
        builder.slot(1, 1, 0, builder.offsets[2], builder.offsets[2], 4, 4)  # previous
        builder.data[builder.offsets[3] + 50] ^= 0x02
        with self.open(builder) as store:
            self.assertEqual((store.mark.slot, store.mark.sequence), (0, 2))
            self.assertEqual(store.damage.offset, builder.offsets[3])
        torn_slot = builder.size - 128 + 30
        builder.data[torn_slot] ^= 0x01  # the newest slot's write was torn: its checksum fails
        with self.open(builder) as store:
            self.assertEqual((store.mark.slot, store.mark.sequence), (1, 1))
            self.assertIsNone(store.damage)
            self.assertEqual(store.torn_tail.offset, builder.offsets[3])
        builder.data[torn_slot] ^= 0x01
        # Slots whose fields break the rules of §2.2 are invalid even with a good checksum.
        invalid = [
            (2, 5, builder.offset, builder.offset, 10, 10),                   # another segment's
            (2, 0, builder.offset + 4, builder.offset, 10, 10),               # not a multiple of 8
            (2, 0, builder.size - 120, builder.offset, 10, 10),               # in the mark area
            (2, 0, builder.offsets[1], builder.offsets[2], 2, 4),             # durable after acknowledged
            (2, 0, builder.offset, builder.offset, 4, 10),                    # positions the wrong way round
            (0, 0, builder.offset, builder.offset, 10, 10),                   # sequence 0
        ]
        for fields in invalid:
            builder.slot(0, *fields)
            with self.open(builder) as store:
                self.assertEqual(store.mark.slot, 1, fields)
                self.assertIsNone(store.damage, fields)

    def test_the_log_must_have_the_marks_position_at_the_protected_end(self):
        builder = self.build()
        builder.slot(1, 1, 0, builder.offsets[3], 64, 7, 0)  # the log has position 6 there
        with self.open(builder) as store:
            self.assertEqual(store.damage.offset, builder.offsets[3])
            self.assertIn("says 7", store.damage.reason)
            self.assertEqual(len(self.events(store)[0]), 6)

    def test_missing_or_straddled_acknowledged_data_is_damage(self):
        builder = self.build(frames=3)
        end = builder.offset
        builder.slot(1, 1, 0, end + 64, 64, 8, 0)  # vouches for a frame that is not there
        with self.open(builder) as store:
            self.assertEqual(store.damage.offset, end)
            self.assertIn("acknowledged data missing", store.damage.reason)
        builder.slot(1, 1, 0, builder.offsets[1] + 8, 64, 3, 0)  # inside the second frame
        with self.open(builder) as store:
            self.assertEqual(store.damage.offset, builder.offsets[1])

    def test_the_checkpoint_protects_too_and_must_agree_with_the_log(self):
        builder = self.build()
        builder.data[builder.offsets[3] + 70] ^= 0x08  # after the checkpoint, before the mark
        builder.slot(1, 1, 0, builder.offset, builder.offset, 10, 10)
        with self.open(builder, checkpoint=(builder.offsets[1], 2)) as store:
            self.assertEqual(store.damage.offset, builder.offsets[3])
        builder.data[builder.offsets[3] + 70] ^= 0x08
        builder.slot(1, 0, 0, 0, 0, 0, 0, boot=bytes(16))  # no mark: the checkpoint alone
        builder.data[builder.offsets[4] + 70] ^= 0x08  # after the checkpoint: a torn tail
        with self.open(builder, checkpoint=(builder.offsets[3], 6)) as store:
            self.assertIsNone(store.mark)
            self.assertEqual(store.protected_end, builder.offsets[3])
            self.assertEqual(store.torn_tail.offset, builder.offsets[4])
        builder.data[builder.offsets[4] + 70] ^= 0x08
        # Before the checkpoint, frames were verified when they were written: the open walks
        # their headers, and the read that reaches a damaged one reports it.
        builder.data[builder.offsets[1] + 70] ^= 0x08
        with self.open(builder, checkpoint=(builder.offsets[3], 6)) as store:
            self.assertIsNone(store.damage)
            events, error = self.events(store)
            self.assertEqual((len(events), error.offset), (2, builder.offsets[1]))
        self.assertEqual(reader_dump(self.directory, "--limit", "2"), (0, b"".join(event_line(e) for e in events)))
        builder.data[builder.offsets[1] + 70] ^= 0x08
        # A damaged length there sends the header walk astray: the frame is blamed, at open.
        builder.data[builder.offsets[1] + 5] ^= 0x01
        with self.open(builder, checkpoint=(builder.offsets[3], 6)) as store:
            self.assertEqual(store.damage.offset, builder.offsets[1])
            self.assertEqual(len(self.events(store)[0]), 2)
        builder.data[builder.offsets[1] + 5] ^= 0x01
        with self.assertRaises(CorruptionError) as caught:
            self.open(builder, checkpoint=(builder.offsets[3], 5))
        self.assertEqual(caught.exception.offset, builder.offsets[3])
        self.assertEqual(reader_dump(self.directory), (1, b""))

    def test_frames_end_before_the_mark_area(self):
        frame = events_frame("s", 0, 0, [(b"Big", b"", b"x" * 40)])
        self.assertGreater(len(frame), 64)
        target = 4096 - 128 - 64
        for flags in (2, 0):
            builder = SegmentBuilder(flags=flags)
            while target - builder.offset > 120:  # dictionary frames (no positions) up to the target
                builder.add(frame_bytes(3, 0, payload=b"d" * 24))
            builder.add(frame_bytes(3, 0, payload=b"d" * (target - builder.offset - 32)))
            self.assertEqual(builder.add(frame), target)
            with self.open(builder) as store:
                if flags:  # it would cross into the mark area: not a frame there
                    self.assertEqual(store.torn_tail.offset, target)
                    self.assertEqual(self.events(store), ([], None))
                else:  # without the flag, frames may reach the end of the file
                    self.assertIsNone(store.torn_tail)
                    self.assertEqual(len(self.events(store)[0]), 1)

    def test_non_zero_frame_flags_are_corruption_even_at_the_end(self):
        builder = self.build(frames=2)
        builder.add(events_frame("s", 4, 4, [(b"Happened", b"", b"{}")], flags=2))
        with self.open(builder, boot=None) as store:  # protected end 64: the frame is "after" it
            self.assertIsNone(store.torn_tail)
            self.assertEqual(store.damage.offset, builder.offsets[2])
            self.assertIn("flags", store.damage.reason)
            self.assertEqual(len(self.events(store)[0]), 4)

    def test_a_group_without_its_last_frame_is_torn_after_the_protected_end_and_corruption_before(self):
        """§3.1, §3.4: an incomplete multi-stream group at the end of the log is dropped whole
        after the protected end, and is damage before it."""
        builder = self.build(frames=2)
        builder.add(events_frame("a", 4, 0, [(b"Happened", b"", b"{}")], flags=1))
        builder.add(events_frame("b", 5, 0, [(b"Happened", b"", b"{}")], flags=1))
        with self.open(builder, boot=None) as store:  # protected end 64: the group is after it
            self.assertIsNone(store.damage)
            self.assertIsNotNone(store.torn_tail)
            self.assertEqual(store.end_offset, builder.offsets[2])
            self.assertEqual(len(self.events(store)[0]), 4, "none of the group's events")
        complete = self.build(frames=2)
        complete.add(events_frame("a", 4, 0, [(b"Happened", b"", b"{}")], flags=1))
        complete.add(events_frame("b", 5, 0, [(b"Happened", b"", b"{}")]))
        with self.open(complete, boot=None) as store:
            self.assertIsNone(store.torn_tail)
            self.assertEqual(len(self.events(store)[0]), 6, "the whole group")

    def test_a_checksummed_frame_with_bad_fields_is_never_a_torn_tail(self):
        bad_frames = {
            "records": events_frame("s", 4, 4, [record_bytes(b"Happened", b"", b"{}", length=45)]),
            "kind": frame_bytes(9, 4),
            "seal revision": frame_bytes(2, 4, first_revision=1),
            "position": events_frame("s", 5, 4, [(b"Happened", b"", b"{}")]),
            "record flags": events_frame("s", 4, 4, [record_bytes(b"Happened", b"", b"{}", flags=8)]),
        }
        for what, frame in bad_frames.items():
            builder = self.build(frames=2)
            builder.add(frame)
            with self.open(builder, boot=None) as store:
                self.assertIsNone(store.torn_tail, what)
                self.assertIsNotNone(store.damage, what)
                self.assertEqual(len(self.events(store)[0]), 4, what)
        # The same bytes with a checksum that does not match are a torn tail.
        builder = self.build(frames=2)
        builder.add(frame_bytes(9, 4))
        builder.data[builder.offsets[2] + 20] ^= 0x01
        with self.open(builder, boot=None) as store:
            self.assertIsNone(store.damage)
            self.assertEqual(store.torn_tail.offset, builder.offsets[2])

    def test_version_1_segments_hold_no_dictionaries_or_compressed_records(self):
        builder = self.build(frames=2, version=1, flags=0)
        builder.add(frame_bytes(3, 4, payload=b"dictionary bytes"))
        with self.open(builder) as store:
            self.assertIn("version-1", store.damage.reason)
        builder = self.build(frames=2, version=1, flags=0)
        record_at = builder.add(events_frame("s", 4, 4, [record_bytes(b"Happened", b"", b"\x00\x00\x00\x00\x10x", flags=1)]))
        with self.open(builder) as store:
            self.assertEqual(store.damage.offset, record_at + 32 + 8)  # the record's offset
            self.assertIn("version-1", store.damage.reason)

    def test_a_segment_that_ends_with_its_seal_is_still_the_last(self):
        builder = self.build(frames=2)
        seal_at = builder.add(seal_frame(4))
        builder.slot(1, 1, 0, seal_at, seal_at, 4, 4)
        with self.open(builder) as store:
            self.assertIsNone(store.damage)
            self.assertEqual(store.end_offset, seal_at)
            self.assertEqual(len(self.events(store)[0]), 4)

    def test_a_flipped_name_in_an_indexed_frame_is_corruption_not_a_collision(self):
        first = SegmentBuilder(index=0, flags=2)
        a0 = first.add(events_frame("a", 0, 0, [(b"A", b"", b"{}")]))
        b0 = first.add(events_frame("b", 1, 0, [(b"B", b"", b"[0]")]))
        b1 = first.add(events_frame("b", 2, 1, [(b"B", b"", b"[1]")]))
        first.add(seal_frame(3))
        second = SegmentBuilder(index=1, first_position=3, flags=2)
        second.add(events_frame("b", 3, 2, [(b"B", b"", b"[2]")]))
        # The entry at (hash("b"), 5) plays a hash collision: it names stream "a"'s frame.
        entries = [(stream_hash("a"), 0, 0, 0, a0, 1), (stream_hash("b"), 0, 1, 0, b0, 1),
                   (stream_hash("b"), 1, 2, 0, b1, 1), (stream_hash("b"), 0, 0, 0, a0, 1)]
        first.write(self.directory)
        second.write(self.directory)
        write_index(self.directory, [first], 3, entries)
        with Store(self.directory, boot_id=BOOT) as store:
            self.assertEqual(len(chosen_index_files(store, store.segments[:-1])), 1, "the index file is used")
            self.assertEqual([e.revision for e in store.read_stream("b")], [0, 1, 2])
        # Flip a byte of "a"'s name: the colliding entry's frame fails its checksum. Skipping
        # it on the strength of its (damaged) name could hide one of "b"'s frames.
        flip(os.path.join(self.directory, "segments", "0000000000000000.seg"), a0 + 32, 0x03)
        with Store(self.directory, boot_id=BOOT) as store:
            with self.assertRaises(CorruptionError) as caught:
                list(store.read_stream("b"))
        self.assertEqual(caught.exception.offset, a0)
        status, output = reader_dump(self.directory, "--stream", "b")
        self.assertEqual(status, 1)
        self.assertEqual(output.count(b"\n"), 1)  # revision 0, then the frame its entry places next

    def test_a_gap_in_a_streams_revisions_is_corruption(self):
        builder = SegmentBuilder()
        builder.add(events_frame("s", 0, 0, [(b"E", b"", b"[0]"), (b"E", b"", b"[1]")]))
        gap = builder.add(events_frame("s", 2, 5, [(b"E", b"", b"[5]")]))
        with self.open(builder) as store:
            events = []
            with self.assertRaises(CorruptionError) as caught:
                for event in store.read_stream("s"):
                    events.append(event.revision)
            self.assertEqual(events, [0, 1])
            self.assertEqual(caught.exception.offset, gap)
            with self.assertRaises(CorruptionError):
                list(store.read_stream_backwards("s"))
            with self.assertRaises(CorruptionError):
                list(store.read_all())

    def test_names_are_decoded_like_the_engine_and_bad_retention_records_are_ignored(self):
        builder = SegmentBuilder()
        builder.add(events_frame(b"caf\xc3 \xed\xa0\x80", 0, 0, [(b"T\xff", b"", b"{}")]))
        bad_name = struct.pack("<BBHIQQq", 1, 1, 3, 0, 0, 0, 0) + b"\xc3\x28x"
        short = struct.pack("<BBH", 1, 1, 0)
        builder.add(events_frame("$retention", 1, 0, [(b"$retention", b"", bad_name), (b"$retention", b"", short)]))
        with self.open(builder) as store:
            events = list(store.read_all())
            self.assertEqual(store.retention, {})
        self.assertEqual(events[0].stream, "caf\ufffd \ufffd\ufffd\ufffd")
        self.assertEqual(events[0].type, "T\ufffd")
        self.assertEqual(reader_dump(self.directory)[0], 0)

    def test_this_machines_boot_id_is_the_default(self):
        from annals_reader import current_boot_id
        boot = current_boot_id()
        if boot is None:
            self.skipTest("no /proc/sys/kernel/random/boot_id here")
        builder = self.build()
        builder.slot(1, 1, 0, builder.offset, 64, 10, 0, boot=boot)
        builder.data[builder.offsets[4] + 44] ^= 0x01
        builder.write(self.directory)
        with Store(self.directory) as store:
            self.assertEqual(store.boot_id, boot)
            self.assertEqual(store.damage.offset, builder.offsets[4])


EXAMPLE = os.path.join(os.path.dirname(ANNALS), "annals-example")


@unittest.skipUnless(os.path.exists(EXAMPLE), f"{EXAMPLE} not built")
class SnapshotsAndSystemStreams(unittest.TestCase):
    """The example app writes snapshots and a projection's checkpoints; the reader finds the
    latest snapshot as §7A says and still dumps exactly what `annals dump` prints."""

    def test_latest_snapshot_of_the_example_account(self):
        directory = tempfile.mkdtemp(prefix="annals-python-example-")
        try:
            store_path = os.path.join(directory, "store")
            output = subprocess.run([EXAMPLE, store_path], capture_output=True, check=True).stdout.decode()
            account = output.split("account ")[1].split(":")[0]
            with Store(store_path) as store:
                snapshot = store.latest_snapshot("account-" + account, 1)
                self.assertIsNotNone(snapshot)
                self.assertEqual(snapshot.revision, 3)  # Opened, Deposited, Deposited, Withdrawn
                self.assertEqual(json.loads(snapshot.state)["balance"], 1000)
                self.assertIsNone(store.latest_snapshot("account-" + account, 2))
                checkpoints = list(store.read_stream_backwards("$projection-orders-view"))
                self.assertTrue(checkpoints)
                self.assertEqual(checkpoints[0].type, "ProjectionCheckpoint")
            status, actual = reader_dump(store_path)
            self.assertEqual(status, 0)
            self.assertEqual(actual, run_annals("dump", store_path))
        finally:
            shutil.rmtree(directory, ignore_errors=True)


class GoldenFixtures(unittest.TestCase):
    """Stores committed under Tests/Fixtures: every format version ever written stays readable."""

    def test_every_fixture_dumps_as_committed(self):
        fixtures = sorted(d for d in os.listdir(FIXTURES) if os.path.isdir(os.path.join(FIXTURES, d, "store")))
        self.assertTrue(fixtures, "no fixtures found")
        for name in fixtures:
            directory = os.path.join(FIXTURES, name)
            with open(os.path.join(directory, "expected.jsonl"), "rb") as file:
                expected = file.read()
            # A fixture with encrypted events (format version 7) publishes its key as test.kek.
            key = os.path.join(directory, "test.kek")
            status, actual = reader_dump(os.path.join(directory, "store"), *(["--key-file", key] if os.path.exists(key) else []))
            self.assertEqual(status, 0, name)
            self.assertEqual(actual, expected, f"fixture {name}")

    def test_durable_marks_fixture_protects_its_open_segment(self):
        """The checkpoint of `v4-durable-marks` names the start of its last segment, and the mark
        vouches for every frame there: a flipped bit in one of them is damage (events before it,
        then exit 1), never a torn tail to ignore."""
        source = os.path.join(FIXTURES, "v4-durable-marks", "store")
        with Store(source) as store:
            last = store.segments[-1]
            self.assertIsNotNone(store.mark)
            # Written under fsync: the acknowledged and the durable end are the same.
            self.assertEqual(store.protected_end, store.mark.durable_offset)
            self.assertEqual(store.mark.acknowledged_offset, store.mark.durable_offset)
            frames = [frame for frame in last.frames() if frame.kind == KIND_EVENTS]
            victim, before = frames[len(frames) // 2].offset, frames[len(frames) // 2].first_position
            self.assertGreater(store.protected_end, victim)
        with tempfile.TemporaryDirectory() as scratch:
            copy = os.path.join(scratch, "store")
            shutil.copytree(source, copy)
            flip(os.path.join(copy, "segments", os.path.basename(last.path)), victim + 40)
            status, output = reader_dump(copy)
            self.assertEqual(status, 1)
            self.assertEqual(len(output.splitlines()), before)


class Primitives(unittest.TestCase):
    """The spec's test vectors."""

    def test_vectors(self):
        self.assertEqual(crc32c(b"123456789"), 0xE3069283)
        self.assertEqual(stream_hash(""), 0xCBF29CE484222325)
        self.assertEqual(stream_hash("a"), 0xAF63DC4C8601EC8C)
        self.assertEqual(stream_hash("order-123"), 0x1B96F9C28B5D5ABA)

    def test_strict_json(self):
        for good in [b'{"a":1}', b' [1, 2.5e-3, "x\\u00e9", true, null] ', b'"\\ud83d\\ude00"', b"0", b"-0.1E+2"]:
            self.assertTrue(is_json(good), good)
        for bad in [b"", b"NaN", b"{'a':1}", b"01", b"1.", b'"\\ud83d"', b'"\\udc00"', b"[1,]", b'{"a":1} x',
                    b'"\xff"', b"[" * 513 + b"]" * 513, b'"tab\there"']:
            self.assertFalse(is_json(bad), bad)


if __name__ == "__main__":
    unittest.main()
