"""The Python reader against the Swift engine: for stores written by `annals import` with every
option that changes bytes on disk, and for the golden stores under Tests/Fixtures, the reader's
dump must equal `annals dump` (or the committed expected dump) byte for byte.

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
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "Tools", "python-reader"))

from annals_reader import CorruptionError, Store  # noqa: E402
from annals_reader.__main__ import main as reader_main  # noqa: E402
from annals_reader.crc32c import crc32c  # noqa: E402
from annals_reader.dump import is_json  # noqa: E402
from annals_reader.index import stream_hash  # noqa: E402

ANNALS = os.environ.get("ANNALS_BIN", os.path.join(ROOT, ".build", "debug", "annals"))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")


def import_lines(rng, count, streams):
    """`annals import` lines: realistic JSON bodies, plus the awkward cases (base64 bodies,
    empty bodies, non-ASCII names, escapes in types, JSON with odd spacing)."""
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
            status, actual = reader_dump(os.path.join(directory, "store"))
            self.assertEqual(status, 0, name)
            self.assertEqual(actual, expected, f"fixture {name}")


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
