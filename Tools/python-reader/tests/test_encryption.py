"""Format version 7 (format-spec.md §1B, §3.9): the key file, the key store (`keys`), encrypted
event records, erased events and the dump line that shows them.

Key stores and records are built here byte by byte from the spec, with PyPI's `cryptography`
used directly (not through the reader), so the reader is held to the spec; then, when the
built `annals` has the commands (`annals key generate`), stores it writes are dumped by both
and compared byte for byte; and the golden store `Tests/Fixtures/v7-encrypted` is read with its
published key.

Run from the repository root (or from Tools/python-reader):
    python3 -m unittest discover -s Tools/python-reader/tests
"""

import json
import os
import random
import shutil
import struct
import subprocess
import tempfile
import unittest
import uuid

import lz4.block
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from test_reader import (ANNALS, BOOT, FIXTURES, TIMESTAMP, SegmentBuilder, align8, events_frame, import_lines,
                         reader_dump, run_annals, write_checkpoint)

from annals_reader import (CorruptionError, KeyFileError, KeyRequiredError, Store, UnsupportedVersionError,
                           WrongKeyError, keyed_tag, load_key_file)
from annals_reader.crc32c import crc32c
from annals_reader.dump import event_line

#: The published test key of the fixtures: bytes 0x00 to 0x1f.
KEK = bytes(range(32))
OTHER_KEK = bytes(range(100, 132))
V7_FIXTURE = os.path.join(FIXTURES, "v7-encrypted")


# The spec's constructions, written out here independently of the reader ----------------------

def hkdf(kek, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"", info=info).derive(kek)


def hmac_sha256(key, data):
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def wrap_key(kek):
    return hkdf(kek, b"annals key wrapping")


def digest_of(kek, subject):
    return hmac_sha256(hkdf(kek, b"annals subject digest"), subject.encode())


def key_file_bytes(kek):
    return b"annals-kek-v1:" + kek.hex().encode() + b"\n"


def data_key(key_id):
    """A fixed data key per key id (the tests' stand-in for random keys)."""
    return bytes((key_id * 37 + i) & 0xFF for i in range(32))


def key_store_header(kek, flags=0, check_nonce=b"\x07" * 12):
    check = AESGCM(wrap_key(kek)).encrypt(check_nonce, bytes(16), b"annals-keys-check")
    header = b"ANNALSKY" + struct.pack("<HHI", 1, flags, 0) + check_nonce + check
    assert len(header) == 60
    return header + struct.pack("<I", crc32c(header))


def key_entry(kek, kind, key_id, subject=None, key=None, nonce=None):
    """One 104-byte entry (§1B). kind 1: ``subject``'s key; 2: the store key; 3: forgotten."""
    if kind == 3:
        body = struct.pack("<B3xI", 3, key_id) + bytes(32 + 12 + 48)
    else:
        digest = digest_of(kek, subject) if kind == 1 else bytes(32)
        nonce = nonce or bytes([key_id & 0xFF]) * 12
        aad = b"annals-key" + struct.pack("<IB", key_id, kind) + digest
        wrapped = AESGCM(wrap_key(kek)).encrypt(nonce, key if key is not None else data_key(key_id), aad)
        body = struct.pack("<B3xI", kind, key_id) + digest + nonce + wrapped
    assert len(body) == 100
    return body + struct.pack("<I", crc32c(body))


def tag_block(tags):
    block = struct.pack("<H", len(tags))
    for tag in tags:
        raw = tag.encode()
        block += struct.pack("<H", len(raw)) + raw
    return block


def plain_record(event_type, metadata, payload, tags=(), event_id=None, timestamp=TIMESTAMP):
    """A raw record (§3.2), tagged when ``tags``."""
    event_id = event_id or uuid.UUID(int=0x1234).bytes
    tags_bytes = tag_block(tags) if tags else b""
    body = event_type + tags_bytes + metadata + payload
    record = struct.pack("<IHHIIq", 40 + len(body), len(event_type), 2 if tags else 0, len(metadata), len(payload),
                         timestamp) + event_id + body
    return record + bytes(align8(len(record)) - len(record))


def encrypted_record(event_type, metadata, payload, key_id, position, revision, stream, tags=(), compress=False,
                     event_id=None, nonce=None, key=None, timestamp=TIMESTAMP, stated=None):
    """An encrypted record (§3.9) of the event at ``position``/``revision`` of ``stream``.
    ``stated``: (metadataLength, payloadLength) to write instead of the true ones."""
    event_id = event_id or uuid.UUID(int=0x5EC0_0000 + position).bytes
    nonce = nonce or struct.pack("<IQ", 0xA11A, position)
    key = key if key is not None else data_key(key_id)
    tags_bytes = tag_block(tags) if tags else b""
    plain = metadata + payload
    if compress:
        plain = lz4.block.compress(plain, store_size=False)
    flags = 4 | (1 if compress else 0) | (2 if tags else 0)
    meta_length, payload_length = stated or (len(metadata), len(payload))
    length = 40 + len(event_type) + len(tags_bytes) + 32 + len(plain)
    prefix = struct.pack("<IHHIIq", length, len(event_type), flags, meta_length, payload_length, timestamp) + event_id \
        + event_type + tags_bytes + struct.pack("<I", key_id)
    stream_bytes = stream.encode()
    aad = b"ANNALSEV" + struct.pack("<QQH", position, revision, len(stream_bytes)) + stream_bytes + prefix[4:]
    sealed = AESGCM(key).encrypt(nonce, plain, aad)
    record = prefix + nonce + sealed
    assert len(record) == length
    return record + bytes(align8(len(record)) - len(record))


def recompute_frame_checksum(data, offset):
    length = struct.unpack_from("<I", data, offset + 4)[0]
    data[offset:offset + 4] = struct.pack("<I", crc32c(bytes(data[offset + 4:offset + length])))


# Byte-by-byte stores ---------------------------------------------------------------------------

BIG_BODY = json.dumps({"notes": ["the customer asked for a call back about the invoice"] * 40}).encode()


class EncryptedRecords(unittest.TestCase):
    """Key stores and encrypted records built byte by byte (no engine needed)."""

    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="annals-python-v7-")
        self.key_path = os.path.join(self.directory, "test.kek")
        with open(self.key_path, "wb") as file:
            file.write(key_file_bytes(KEK))
        self.store = os.path.join(self.directory, "store")
        os.makedirs(self.store)

    def tearDown(self):
        shutil.rmtree(self.directory, ignore_errors=True)

    def write_keys(self, entries, kek=KEK, flags=0, header=None):
        with open(os.path.join(self.store, "keys"), "wb") as file:
            file.write((header or key_store_header(kek, flags)) + b"".join(entries))

    def standard_keys(self, forgotten=False):
        """Key id 1: customer-1; 2: the store key; 3: customer-2 (forgotten when asked)."""
        self.write_keys([key_entry(KEK, 1, 1, "customer-1"), key_entry(KEK, 2, 2),
                         key_entry(KEK, 3, 3) if forgotten else key_entry(KEK, 1, 3, "customer-2")])

    def build(self, records_by_frame, first_position=0, version=2):
        """One segment; ``records_by_frame``: a list of (stream, [record bytes])."""
        builder = SegmentBuilder(first_position=first_position, version=version, flags=2 if version >= 2 else 0,
                                 size=16384)
        position, revisions = first_position, {}
        for stream, records in records_by_frame:
            builder.add(events_frame(stream, position, revisions.get(stream, 0), records))
            position += len(records)
            revisions[stream] = revisions.get(stream, 0) + len(records)
        builder.write(self.store)
        return builder

    def sample(self):
        """Frames of plain and encrypted events: raw and LZ4 plaintext, tags, each key id."""
        return [
            ("customer-1", [
                plain_record(b"Registered", b'{"by":"web"}', b'{"plan":"basic"}', tags=("region:eu",)),
                encrypted_record(b"AddressChanged", b'{"by":"web"}', b'{"street":"Rue de Rivoli 1"}', 1, 1, 1, "customer-1"),
                encrypted_record(b"NotesAdded", b"", BIG_BODY, 1, 2, 2, "customer-1", compress=True, tags=("note", "région:île")),
            ]),
            ("order-7", [
                encrypted_record(b"OrderPlaced", b'{"m":1}', b'{"amount":12.5}', 2, 3, 0, "order-7"),
                encrypted_record(b"OrderPlaced", b"", b"", 2, 4, 1, "order-7"),
            ]),
            ("customer-2", [
                encrypted_record(b"Registered", b'{"by":"app"}', b'{"name":"Zanele"}', 3, 5, 0, "customer-2", tags=("region:za",)),
                encrypted_record(b"NotesAdded", b'{"big":true}', BIG_BODY, 3, 6, 1, "customer-2", compress=True),
            ]),
        ]

    def expected_bodies(self):
        return [(b'{"by":"web"}', b'{"plan":"basic"}'), (b'{"by":"web"}', b'{"street":"Rue de Rivoli 1"}'),
                (b"", BIG_BODY), (b'{"m":1}', b'{"amount":12.5}'), (b"", b""),
                (b'{"by":"app"}', b'{"name":"Zanele"}'), (b'{"big":true}', BIG_BODY)]

    def read(self, key=KEK, boot=BOOT):
        with Store(self.store, boot_id=boot, key=key) as store:
            return list(store.read_all())

    def assert_corrupt(self, offset=None, key=KEK, reason=None):
        """A forward read stops with CorruptionError (at ``offset``), and the dump fails."""
        events = []
        with self.assertRaises(CorruptionError) as caught:
            with Store(self.store, boot_id=BOOT, key=key) as store:
                for event in store.read_all():
                    events.append(event)
        if offset is not None:
            self.assertEqual(caught.exception.offset, offset)
        if reason is not None:
            self.assertIn(reason, caught.exception.reason)
        status, output = reader_dump(self.store, "--key-file", self.key_path)
        self.assertEqual(status, 1)
        self.assertEqual(output, b"".join(event_line(e) for e in events), "the events before it, nothing of it")
        return caught.exception

    # Round trips -------------------------------------------------------------------------------

    def test_decrypts_raw_and_lz4_plaintext_beside_plain_records(self):
        self.standard_keys()
        self.build(self.sample())
        for key in (KEK, self.key_path):  # the KEK's bytes, or its key file
            events = self.read(key=key)
            self.assertEqual([(e.metadata, e.payload) for e in events], self.expected_bodies())
            self.assertEqual([e.encrypted for e in events], [False] + [True] * 6)
            self.assertEqual([e.compressed for e in events], [False, False, True, False, False, False, True])
            self.assertFalse(any(e.erased for e in events))
            self.assertEqual(events[2].tags, ("note", "région:île"))
            self.assertEqual(events[3].stream, "order-7")
        with Store(self.store, key=KEK) as store:
            self.assertEqual(sorted(store.keys.entries), [1, 2, 3])
            self.assertIsNone(store.keys.torn_tail)
            self.assertFalse(store.keys.encrypt_all)

    def test_an_encrypted_event_dumps_exactly_like_the_plain_event(self):
        self.standard_keys()
        self.build(self.sample())
        status, encrypted = reader_dump(self.store, "--key-file", self.key_path)
        self.assertEqual(status, 0)
        # The same events stored plain (same ids, timestamps, types and tags).
        shutil.rmtree(self.store)
        os.makedirs(self.store)
        plain = []
        for stream, records in self.sample():
            rebuilt = []
            for record in records:
                length, type_length, flags, _, _, _ = struct.unpack_from("<IHHIIq", record)
                event_type = record[40:40 + type_length]
                tags = []
                if flags & 2:
                    offset = 42 + type_length
                    for _ in range(struct.unpack_from("<H", record, 40 + type_length)[0]):
                        size = struct.unpack_from("<H", record, offset)[0]
                        tags.append(record[offset + 2:offset + 2 + size].decode())
                        offset += 2 + size
                rebuilt.append((event_type, tuple(tags), record[24:40]))
            plain.append((stream, rebuilt))
        bodies = iter(self.expected_bodies())
        self.build([(stream, [plain_record(t, *next(bodies), tags=tags, event_id=i) for t, tags, i in rebuilt])
                    for stream, rebuilt in plain])
        self.assertEqual(reader_dump(self.store), (0, encrypted))

    def test_encrypt_all_flag_and_a_checkpoint_naming_version_7(self):
        self.write_keys([key_entry(KEK, 2, 1)], flags=1)
        self.build([("s", [encrypted_record(b"E", b"", b"{}", 1, 0, 0, "s")])])
        write_checkpoint(self.store, 0, 64, 0, minimum=7)
        with Store(self.store, boot_id=BOOT, key=KEK) as store:
            self.assertTrue(store.keys.encrypt_all)
            self.assertEqual(store.checkpoint.minimum_reader_version, 7)
            self.assertEqual([e.payload for e in store.read_all()], [b"{}"])
        write_checkpoint(self.store, 0, 64, 0, minimum=8)
        with self.assertRaises(UnsupportedVersionError):
            Store(self.store, key=KEK)

    # Tampering: every covered byte -------------------------------------------------------------

    def tamper(self, frame_index, where, mask=0x01, recompute=True):
        """Builds the sample, flips byte ``where(record offset, record)`` of the first
        encrypted record of frame ``frame_index``, recomputes the frame checksum (so that only
        the decryption can notice), and returns the record's offset."""
        self.standard_keys()
        frames = self.sample()
        builder = self.build(frames)
        frame_offset = builder.offsets[frame_index]
        name = frames[frame_index][0].encode()
        record_offset = frame_offset + align8(32 + len(name))
        if frame_index == 0:  # skip the plain record
            record_offset += align8(struct.unpack_from("<I", builder.data, record_offset)[0])
        builder.data[record_offset + where(record_offset, builder.data)] ^= mask
        if recompute:
            recompute_frame_checksum(builder.data, frame_offset)
        builder.write(self.store)
        return record_offset

    def body_offset(self, record_offset, data):
        type_length, flags = struct.unpack_from("<HH", data, record_offset + 4)
        offset = 40 + type_length
        if flags & 2:
            offset += 2
            for _ in range(struct.unpack_from("<H", data, record_offset + 40 + type_length)[0]):
                offset += 2 + struct.unpack_from("<H", data, record_offset + offset)[0]
        return offset  # keyId here, nonce at +4, ciphertext at +16

    def test_a_flipped_bit_anywhere_it_authenticates_is_corruption(self):
        covered = {
            "ciphertext": (0, lambda o, d: self.body_offset(o, d) + 16 + 3),
            "nonce": (0, lambda o, d: self.body_offset(o, d) + 4 + 5),
            "GCM tag": (0, lambda o, d: struct.unpack_from("<I", d, o)[0] - 2),
            "type name": (0, lambda o, d: 41),
            "timestamp": (0, lambda o, d: 17),
            "event id": (0, lambda o, d: 30),
            "tag": (2, lambda o, d: 40 + struct.unpack_from("<H", d, o + 4)[0] + 5),
            "keyId (to another key)": (1, lambda o, d: self.body_offset(o, d)),  # key id 2 -> 3
        }
        for what, (frame_index, where) in covered.items():
            with self.subTest(what):
                record_offset = self.tamper(frame_index, where)
                self.assert_corrupt(record_offset, reason="authenticate")
                shutil.rmtree(self.store)
                os.makedirs(self.store)
        # A keyId flipped to one the key store does not hold: corruption too.
        record_offset = self.tamper(1, lambda o, d: self.body_offset(o, d) + 2, mask=0x40)
        self.assert_corrupt(record_offset, reason="key id")

    def test_the_stream_and_position_are_authenticated(self):
        # The same frames under another stream name of the same length, checksums recomputed.
        self.standard_keys()
        builder = self.build([("order-7", [encrypted_record(b"OrderPlaced", b"", b"{}", 2, 0, 0, "order-7")])])
        builder.data[builder.offsets[0] + 32 + 6] ^= 0x01  # "order-6"
        recompute_frame_checksum(builder.data, builder.offsets[0])
        builder.write(self.store)
        self.assert_corrupt(builder.offsets[0] + 40, reason="authenticate")
        # The same record at position 10: a log starting there (header and frame agree).
        shutil.rmtree(self.store)
        os.makedirs(self.store)
        self.standard_keys()
        record = encrypted_record(b"OrderPlaced", b"", b"{}", 2, 0, 0, "order-7")
        builder = self.build([("order-7", [record])], first_position=10)
        self.assert_corrupt(builder.offsets[0] + 40, reason="authenticate")
        # And at revision 1 of its stream.
        shutil.rmtree(self.store)
        os.makedirs(self.store)
        self.standard_keys()
        builder = self.build([("order-7", [plain_record(b"OrderPlaced", b"", b"{}"), record])])
        second = builder.offsets[0] + 40 + align8(40 + 11 + 2)
        self.assert_corrupt(second, reason="authenticate")

    def test_a_flipped_bit_without_a_new_frame_checksum_is_caught_by_the_checksum(self):
        record_offset = self.tamper(2, lambda o, d: self.body_offset(o, d) + 20, recompute=False)
        with Store(self.store, boot_id=None, key=KEK) as store:  # protected end 64: a torn tail there
            self.assertIsNotNone(store.torn_tail)
            self.assertLess(store.torn_tail.offset, record_offset)

    def test_lengths_that_do_not_add_up_are_corruption_without_the_key(self):
        cases = {
            "raw: c is not m + p": encrypted_record(b"E", b"", b"{}", 1, 4, 0, "t", stated=(0, 3)),
            "lz4: decoded larger than 255 c": encrypted_record(b"E", b"", b"x" * 300, 1, 4, 0, "t", compress=True,
                                                               stated=(0, 100000)),
            "lz4: nothing sealed": bytes(bytearray(encrypted_record(b"E", b"", b"", 1, 4, 0, "t", stated=(0, 1)))[:6])
            + bytes([4 | 1]) + encrypted_record(b"E", b"", b"", 1, 4, 0, "t", stated=(0, 1))[7:],
        }
        for what, bad in cases.items():
            with self.subTest(what):
                shutil.rmtree(self.store)
                os.makedirs(self.store)
                self.standard_keys()
                builder = self.build([("t", [plain_record(b"E", b"", b"{}") for _ in range(4)]), ("t", [bad])])
                with Store(self.store, boot_id=None) as store:  # no key: a structural check
                    self.assertIsNone(store.torn_tail)
                    self.assertEqual(store.damage.offset, builder.offsets[1] + 40)
                    self.assertIn("inconsistent lengths", store.damage.reason)
                    events = []
                    with self.assertRaises(CorruptionError):
                        for event in store.read_all():
                            events.append(event)
                    self.assertEqual(len(events), 4)

    def test_lz4_plaintext_that_decodes_to_another_size_is_corruption(self):
        self.standard_keys()
        builder = self.build([("t", [encrypted_record(b"E", b"", b"y" * 200, 1, 0, 0, "t", compress=True,
                                                       stated=(0, 201))])])
        self.assert_corrupt(builder.offsets[0] + 40, reason="decode")

    def test_unknown_record_flags_and_version_1_segments(self):
        self.standard_keys()
        record = bytearray(encrypted_record(b"E", b"", b"{}", 1, 0, 0, "t"))
        record[6] |= 8  # bit 3: unknown
        builder = self.build([("t", [bytes(record)])])
        with Store(self.store, boot_id=None, key=KEK) as store:
            self.assertIn("unknown flags", store.damage.reason)
        shutil.rmtree(self.store)
        os.makedirs(self.store)
        self.standard_keys()
        builder = self.build([("t", [encrypted_record(b"E", b"", b"{}", 1, 0, 0, "t")])], version=1)
        with Store(self.store, boot_id=None, key=KEK) as store:
            self.assertIn("version-1", store.damage.reason)
            self.assertEqual(store.damage.offset, builder.offsets[0] + 40)

    def test_a_key_id_without_an_entry_or_without_a_key_store_is_corruption(self):
        self.standard_keys()
        builder = self.build([("t", [plain_record(b"E", b"", b"{}"), encrypted_record(b"E", b"", b"{}", 9, 1, 1, "t")])])
        second = builder.offsets[0] + 40 + align8(40 + 1 + 2)
        error = self.assert_corrupt(second, reason="key id 9")
        self.assertIn("does not hold", error.reason)
        os.remove(os.path.join(self.store, "keys"))
        error = self.assert_corrupt(second)
        self.assertIn("no key store", error.reason)

    # Erased events -----------------------------------------------------------------------------

    def test_a_forgotten_key_erases_its_events_and_the_dump_says_so(self):
        self.standard_keys(forgotten=True)
        self.build(self.sample())
        for key in (KEK, None):  # a forgotten key needs no KEK to be known as forgotten
            with Store(self.store, boot_id=BOOT, key=key) as store:
                events = list(store.read_all() if key else store.read_stream("customer-2"))
            erased = [e for e in events if e.erased]
            self.assertEqual([e.position for e in erased], [5, 6])
            self.assertTrue(all(e.metadata is None and e.payload is None and e.encrypted for e in erased))
            self.assertEqual(erased[0].tags, ("region:za",))
            self.assertEqual((erased[1].stream, erased[1].revision, erased[1].type), ("customer-2", 1, "NotesAdded"))
        status, output = reader_dump(self.store, "--key-file", self.key_path)
        self.assertEqual(status, 0)
        lines = output.split(b"\n")
        self.assertEqual(lines[5], b'{"position":5,"stream":"customer-2","revision":0,'
                                   b'"id":"00000000-0000-0000-0000-00005ec00005","type":"Registered",'
                                   b'"tags":["region:za"],"timestamp":"2026-11-18T11:06:40.123456789Z","erased":true}')
        self.assertEqual(lines[6], b'{"position":6,"stream":"customer-2","revision":1,'
                                   b'"id":"00000000-0000-0000-0000-00005ec00006","type":"NotesAdded",'
                                   b'"timestamp":"2026-11-18T11:06:40.123456789Z","erased":true}')
        self.assertNotIn(b'"erased"', b"\n".join(lines[:5]))
        # Only the forgotten key's events: the others still decrypt.
        self.assertEqual(json.loads(lines[3])["data"], {"amount": 12.5})

    def test_a_damaged_erased_record_is_still_checked_by_its_frame(self):
        self.standard_keys(forgotten=True)
        builder = self.build(self.sample())
        builder.data[builder.offsets[2] + 100] ^= 0x01  # no new checksum
        builder.write(self.store)
        write_checkpoint(self.store, 0, builder.offset, 7)  # the frames are checkpointed: damage
        with self.assertRaises(CorruptionError):
            self.read()

    # The key and the key store ---------------------------------------------------------------

    def test_no_key_reads_plain_events_and_refuses_encrypted_ones(self):
        self.standard_keys()
        self.build([("s", [plain_record(b"E", b"", b'{"plain":1}')])] + self.sample()[1:])
        with Store(self.store, boot_id=BOOT) as store:
            reader = store.read_all()
            self.assertEqual(next(reader).payload, b'{"plain":1}')
            with self.assertRaises(KeyRequiredError):
                next(reader)
        # The dump refuses a store with a key store outright, as `annals dump` does.
        self.assertEqual(reader_dump(self.store), (1, b""))

    def test_a_wrong_key_is_a_clear_error(self):
        self.standard_keys()
        self.build(self.sample())
        with self.assertRaises(WrongKeyError) as caught:
            Store(self.store, key=OTHER_KEK)
        self.assertIn("not this store's key", str(caught.exception))
        self.assertNotIsInstance(caught.exception, CorruptionError)
        other = os.path.join(self.directory, "other.kek")
        with open(other, "wb") as file:
            file.write(key_file_bytes(OTHER_KEK))
        self.assertEqual(reader_dump(self.store, "--key-file", other), (1, b""))

    def test_key_files(self):
        self.assertEqual(load_key_file(self.key_path), KEK)
        cases = {
            "trailing whitespace": (key_file_bytes(KEK)[:-1] + b"  \r\n\n", KEK),
            "no newline": (key_file_bytes(KEK)[:-1], KEK),
            "uppercase hex": (b"annals-kek-v1:" + KEK.hex().upper().encode() + b"\n", None),
            "short": (b"annals-kek-v1:" + KEK.hex()[:-2].encode() + b"\n", None),
            "other prefix": (b"annals-kek-v2:" + KEK.hex().encode() + b"\n", None),
            "leading space": (b" " + key_file_bytes(KEK), None),
            "raw bytes": (KEK, None),
        }
        path = os.path.join(self.directory, "case.kek")
        for what, (content, expected) in cases.items():
            with open(path, "wb") as file:
                file.write(content)
            if expected is None:
                with self.assertRaises(KeyFileError, msg=what) as caught:
                    load_key_file(path)
                self.assertIn("not an Annals key file", str(caught.exception))
            else:
                self.assertEqual(load_key_file(path), expected, what)
        with self.assertRaises(ValueError):
            Store(self.store, key=b"too short")

    def test_the_specs_test_vectors(self):
        """format-spec.md §1B, for the KEK 00..1f: derived keys, a subject digest, a keyed tag,
        a check value and a wrapped key; the reader's derivations against them."""
        from annals_reader.keys import DerivedKeys, subject_digest, wrap_aad
        derived = DerivedKeys.of(KEK)
        self.assertEqual(derived.wrap.hex(), "8916cab1c0e48819a98686cdb7b1d40ca8103469d149456e576c0d5cf04c1307")
        self.assertEqual(derived.subject.hex(), "a4b9f61c39bd0dd9e217457a12997156e5bbb6290f5f00c6fba098b04bcd5f87")
        self.assertEqual(derived.tag.hex(), "6ce6ceaa8cac5d7a254ab11cc2678ac079fb4ac2588cd8c27ee54d9793556e3f")
        self.assertEqual(subject_digest(KEK, "customer-42").hex(), "fca55e8879364fad63f0ba1aa76fc00549f1098de3af3a833837e5b4941aabdd")
        self.assertEqual(keyed_tag(KEK, "customer:42"), "h:00f1c5082090b06c06bb508e9766516a")
        nonce = bytes(range(12))
        self.assertEqual(AESGCM(derived.wrap).encrypt(nonce, bytes(16), b"annals-keys-check").hex(),
                         "718ccdab7da23b33726eb76316ffd24d70bdcd5d086e54e84064bbe62a41d376")
        wrapped = AESGCM(derived.wrap).encrypt(nonce, bytes(range(32, 64)), wrap_aad(1, 1, subject_digest(KEK, "customer-42")))
        self.assertEqual(wrapped.hex(), "51adef8859871d145a479d483ad2fc62071746677968f1ff9953c6a18e4232be"
                                        "9655d5711c0898189202dc3daf129f0b")
        self.assertEqual(key_file_bytes(KEK), b"annals-kek-v1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n")

    def test_keyed_tags(self):
        expected = "h:" + hmac_sha256(hkdf(KEK, b"annals keyed tag"), "customer:42".encode())[:16].hex()
        self.assertEqual(keyed_tag(KEK, "customer:42"), expected)
        self.assertRegex(expected, r"^h:[0-9a-f]{32}$")
        self.assertNotEqual(keyed_tag(OTHER_KEK, "customer:42"), expected)

    def test_a_torn_last_entry_is_ignored(self):
        entries = [key_entry(KEK, 1, 1, "customer-1"), key_entry(KEK, 2, 2), key_entry(KEK, 1, 3, "customer-2")]
        records = [("customer-1", [encrypted_record(b"E", b"", b"{}", 1, 0, 0, "customer-1")]),
                   ("s", [encrypted_record(b"E", b"", b"[2]", 2, 1, 0, "s")])]
        # An incomplete last entry (the file stops inside it), and a complete one whose checksum fails.
        incomplete = b"".join(entries)[:-50]
        damaged = bytearray(b"".join(entries))
        damaged[2 * 104 + 20] ^= 0x01
        for what, content in {"incomplete": incomplete, "checksum": bytes(damaged)}.items():
            with self.subTest(what):
                shutil.rmtree(self.store)
                os.makedirs(self.store)
                self.write_keys([content])
                self.build(records)
                with Store(self.store, boot_id=BOOT, key=KEK) as store:
                    self.assertEqual(sorted(store.keys.entries), [1, 2])
                    self.assertEqual(store.keys.torn_tail.offset, 64 + 2 * 104)
                    self.assertEqual([e.payload for e in store.read_all()], [b"{}", b"[2]"])
                # A record naming the torn entry's key id: that entry was never synced before it.
                shutil.rmtree(os.path.join(self.store, "segments"))
                builder = self.build(records + [("customer-2", [encrypted_record(b"E", b"", b"{}", 3, 2, 0, "customer-2")])])
                self.assert_corrupt(builder.offsets[2] + align8(32 + len("customer-2")), reason="key id 3")
        # A partial entry after a complete last entry whose checksum fails: that one is no tail.
        self.write_keys([bytes(damaged) + b"\x01" * 30])
        with self.assertRaises(CorruptionError) as caught:
            Store(self.store, key=KEK)
        self.assertEqual(caught.exception.offset, 64 + 2 * 104)

    def test_a_damaged_entry_before_the_last_is_corruption(self):
        entries = bytearray(b"".join([key_entry(KEK, 1, 1, "customer-1"), key_entry(KEK, 2, 2),
                                      key_entry(KEK, 1, 3, "customer-2")]))
        entries[104 + 60] ^= 0x20
        self.write_keys([bytes(entries)])
        self.build([("s", [plain_record(b"E", b"", b"{}")])])
        for key in (KEK, None):
            with self.assertRaises(CorruptionError) as caught:
                Store(self.store, key=key)
            self.assertEqual((caught.exception.file, caught.exception.offset), (os.path.join(self.store, "keys"), 64 + 104))
        self.assertEqual(reader_dump(self.store, "--key-file", self.key_path), (1, b""))

    def test_key_store_rules(self):
        self.build([("s", [plain_record(b"E", b"", b"{}")])])
        header = key_store_header(KEK)
        bad_crc = bytearray(header)
        bad_crc[30] ^= 0x01
        bad_magic = b"ANNALSKZ" + header[8:60]
        bad_magic += struct.pack("<I", crc32c(bad_magic))
        unwrappable = bytearray(key_entry(KEK, 1, 1, "customer-1"))
        unwrappable[60] ^= 0x01  # the wrapped key, checksum recomputed
        unwrappable[100:104] = struct.pack("<I", crc32c(bytes(unwrappable[:100])))
        other_subject = bytearray(key_entry(KEK, 1, 1, "customer-1"))
        other_subject[8:40] = digest_of(KEK, "customer-9")  # the digest is authenticated too
        other_subject[100:104] = struct.pack("<I", crc32c(bytes(other_subject[:100])))
        bad_kind = bytearray(key_entry(KEK, 1, 1, "customer-1"))
        bad_kind[0] = 4
        bad_kind[100:104] = struct.pack("<I", crc32c(bytes(bad_kind[:100])))
        cases = {
            "header checksum": (bytes(bad_crc), [], 60),
            "magic": (bad_magic, [], 0),
            "short": (header[:40], [], 0),
            "wrapped key": (header, [bytes(unwrappable), key_entry(KEK, 2, 2)], 64),
            "subject digest": (header, [bytes(other_subject), key_entry(KEK, 2, 2)], 64),
            "kind": (header, [bytes(bad_kind), key_entry(KEK, 2, 2)], 64),
            "repeated key id": (header, [key_entry(KEK, 1, 1, "a"), key_entry(KEK, 1, 1, "b"), key_entry(KEK, 2, 5)], 168),
            "descending key id": (header, [key_entry(KEK, 1, 4, "a"), key_entry(KEK, 1, 2, "b"), key_entry(KEK, 2, 5)], 168),
            "key id 0": (header, [key_entry(KEK, 1, 0, "a"), key_entry(KEK, 2, 5)], 64),
            "two store keys": (header, [key_entry(KEK, 2, 1), key_entry(KEK, 2, 2), key_entry(KEK, 1, 3, "a")], 168),
        }
        for what, (head, entries, offset) in cases.items():
            with self.subTest(what):
                self.write_keys(entries, header=head)
                with self.assertRaises(CorruptionError) as caught:
                    Store(self.store, key=KEK)
                self.assertEqual(caught.exception.offset, offset)
        reserved = bytearray(key_entry(KEK, 1, 1, "customer-1"))
        reserved[2] = 1
        reserved[100:104] = struct.pack("<I", crc32c(bytes(reserved[:100])))
        version_2 = b"ANNALSKY" + struct.pack("<H", 2) + header[10:60]
        flags_2 = header[:10] + struct.pack("<H", 2) + header[12:60]
        cases = {
            "version": (version_2 + struct.pack("<I", crc32c(version_2)), [], 8),
            "unknown header flag": (flags_2 + struct.pack("<I", crc32c(flags_2)), [], 10),
            "reserved entry bytes": (header, [bytes(reserved), key_entry(KEK, 2, 2)], 64),
        }
        for what, (head, entries, offset) in cases.items():
            with self.subTest(what):
                self.write_keys(entries, header=head)
                for key in (KEK, None):  # structure: no key needed
                    with self.assertRaises(CorruptionError) as caught:
                        Store(self.store, key=key)
                    self.assertEqual(caught.exception.offset, offset)
        # The check value is checked before any data key is unwrapped: under another key, an
        # entry that would not unwrap is not reached, and the wrong key is what is reported.
        self.write_keys([bytes(unwrappable), key_entry(KEK, 2, 2)])
        with self.assertRaises(WrongKeyError):
            Store(self.store, key=OTHER_KEK)

    def test_a_missing_key_store_in_a_store_with_encrypted_records(self):
        """A checkpoint that names minimumReaderVersion 7 says the log holds encrypted records:
        without its `keys` file, the store is refused at open."""
        self.build([("s", [plain_record(b"E", b"", b"{}")])])
        write_checkpoint(self.store, 0, 64, 0, minimum=7)
        for key in (KEK, None):
            with self.assertRaises(CorruptionError) as caught:
                Store(self.store, key=key)
            self.assertEqual((caught.exception.file, caught.exception.offset), (os.path.join(self.store, "keys"), 0))
        write_checkpoint(self.store, 0, 64, 0, minimum=6)
        self.assertEqual([e.payload for e in self.read()], [b"{}"])

    def test_a_subjects_several_keys_all_decrypt(self):
        """Several kind-1 entries of one digest (a subject forgotten and written again): each
        event decrypts with the key it names; forgetting turns every one of them to kind 3."""
        self.write_keys([key_entry(KEK, 1, 1, "customer-2"), key_entry(KEK, 1, 2, "customer-2")])
        self.build([("customer-2", [encrypted_record(b"E", b"", b"[1]", 1, 0, 0, "customer-2"),
                                    encrypted_record(b"E", b"", b"[2]", 2, 1, 1, "customer-2")])])
        self.assertEqual([e.payload for e in self.read()], [b"[1]", b"[2]"])
        with Store(self.store, key=KEK) as store:
            self.assertEqual([e.key_id for e in store.keys.subject_entries(digest_of(KEK, "customer-2"))], [1, 2])
        self.write_keys([key_entry(KEK, 3, 1), key_entry(KEK, 3, 2)])
        self.assertEqual([e.erased for e in self.read()], [True, True])


# The engine ------------------------------------------------------------------------------------

def encrypted_import_lines(rng, count, subjects=("customer-1", "customer-2", "customer-3")):
    """`annals import` lines for a store with encrypted events: most streams are a subject's
    (`customer-N`, with `"subject"`), some other streams' events name a subject too, some have no
    subject; tags on some; bodies over 1 KiB on some (LZ4 inside the encryption), small ones on
    others; the awkward cases of `import_lines` among them."""
    lines = []
    for text in import_lines(rng, count, [f"order-{i}" for i in range(4)], tagged=True):
        line = json.loads(text)
        kind = rng.randrange(6)
        if kind <= 2:
            subject = rng.choice(subjects)
            line["stream"] = subject
            line["subject"] = subject
        elif kind == 3:
            line["subject"] = rng.choice(subjects)  # a subject's event in another stream
        if rng.randrange(4) == 0:
            line["data"] = {"notes": [f"call back about invoice {rng.randrange(10**6)}: the customer prefers mornings"] * rng.randrange(12, 25)}
            line.pop("dataBase64", None)
        lines.append(json.dumps(line, ensure_ascii=False, separators=(",", ":")))
    return lines


def annals_has_keys():
    """True when the built `annals` has `annals key generate` (format version 7)."""
    if not os.path.exists(ANNALS):
        return False
    with tempfile.TemporaryDirectory() as scratch:
        result = subprocess.run([ANNALS, "key", "generate", os.path.join(scratch, "probe.kek")],
                                capture_output=True, check=False)
        return result.returncode == 0


@unittest.skipUnless(annals_has_keys(), f"{ANNALS} is not built or has no `annals key generate`")
class EncryptedStoresMatchAnnalsDump(unittest.TestCase):
    """Stores the engine writes with `--key-file`, subjects, `annals forget` and `--encrypt-all`:
    the reader's dump equals `annals dump --key-file` byte for byte."""

    @classmethod
    def setUpClass(cls):
        cls.directory = tempfile.mkdtemp(prefix="annals-python-v7-engine-")
        cls.key = os.path.join(cls.directory, "store.kek")
        run_annals("key", "generate", cls.key)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.directory, ignore_errors=True)

    def make_store(self, name, lines, *options):
        path = os.path.join(self.directory, name)
        run_annals("import", path, "--durability", "none", "--segment-size-bytes", "16384", "--batch", "5",
                   "--key-file", self.key, *options, stdin=("\n".join(lines) + "\n").encode())
        return path

    def assert_same_dumps(self, path):
        variants = [[], ["--backwards"], ["--from", "7"], ["--stream", "customer-2"], ["--stream", "customer-1", "--backwards"],
                    ["--tag", "customer:3"], ["--type", "OrderPlaced", "--limit", "20"]]
        for options in variants:
            expected = run_annals("dump", path, "--key-file", self.key, *options)
            self.assertEqual(reader_dump(path, "--key-file", self.key, *options), (0, expected), f"dump {options} differs")
        return run_annals("dump", path, "--key-file", self.key)

    def test_subjects_forgetting_and_encrypt_all(self):
        rng = random.Random(70)
        path = self.make_store("subjects", encrypted_import_lines(rng, 600))
        self.assertTrue(os.path.exists(os.path.join(path, "keys")))
        before = self.assert_same_dumps(path)
        with Store(path, key=self.key) as store:
            events = list(store.read_all())
            self.assertTrue(any(e.encrypted and e.compressed for e in events))
            self.assertTrue(any(e.encrypted and not e.compressed for e in events))
            self.assertTrue(any(not e.encrypted for e in events))
            self.assertGreaterEqual(store.checkpoint.minimum_reader_version, 7)
        self.assertNotIn(b'"erased"', before)
        run_annals("forget", path, "customer-2", "--key-file", self.key)
        # Written again after the forgetting: a new key for the same subject.
        more = [json.dumps({"stream": "customer-2", "subject": "customer-2", "type": "Registered", "data": {"again": i}})
                for i in range(3)]
        run_annals("import", path, "--durability", "none", "--segment-size-bytes", "16384", "--key-file", self.key,
                   stdin=("\n".join(more) + "\n").encode())
        after = self.assert_same_dumps(path)
        self.assertIn(b'"erased":true', after)
        with Store(path, key=self.key) as store:
            erased = [e for e in store.read_all() if e.erased]
        self.assertTrue(erased)
        self.assertEqual({e.metadata for e in erased} | {e.payload for e in erased}, {None})
        # Without the key both refuse the store; with the wrong one both fail.
        self.assertEqual(subprocess.run([ANNALS, "dump", path], capture_output=True).returncode, 1)
        self.assertEqual(reader_dump(path)[0], 1)
        other = os.path.join(self.directory, "other.kek")
        if not os.path.exists(other):
            run_annals("key", "generate", other)
        self.assertEqual(subprocess.run([ANNALS, "dump", path, "--key-file", other], capture_output=True).returncode, 1)
        self.assertEqual(reader_dump(path, "--key-file", other)[0], 1)
        everything = self.make_store("all", encrypted_import_lines(rng, 300), "--encrypt-all")
        self.assert_same_dumps(everything)
        with Store(everything, key=self.key) as store:
            self.assertTrue(store.keys.encrypt_all)
            self.assertTrue(all(e.encrypted for e in store.read_all()))

    def test_a_flipped_ciphertext_bit_is_corruption_for_both(self):
        rng = random.Random(71)
        path = self.make_store("flip", encrypted_import_lines(rng, 200), "--encrypt-all")
        with Store(path, key=self.key) as store:
            self.assertGreater(len(store.segments), 1)
            frame = next(f for f in store.frames() if f.segment is store.segments[0])
            first = frame.segment.path
            record = frame.records_offset
            length = struct.unpack_from("<I", frame.segment.data, record)[0]
        # A byte of the GCM tag of the first record of a sealed segment, with the frame checksum
        # recomputed so that only the decryption can notice.
        with open(first, "r+b") as file:
            data = bytearray(file.read())
            data[record + length - 3] ^= 0x04
            recompute_frame_checksum(data, frame.offset)
            file.seek(0)
            file.write(data)
        expected = subprocess.run([ANNALS, "dump", path, "--key-file", self.key], capture_output=True)
        self.assertEqual(expected.returncode, 1)
        self.assertEqual(reader_dump(path, "--key-file", self.key), (1, expected.stdout))


# The golden store ------------------------------------------------------------------------------

@unittest.skipUnless(os.path.isdir(os.path.join(V7_FIXTURE, "store")), f"{V7_FIXTURE} not written yet")
class EncryptedFixture(unittest.TestCase):
    """`Tests/Fixtures/v7-encrypted` (make_fixtures.py): `store` (subjects, one forgotten) and,
    when present, `store-all` (`--encrypt-all`), read with the published key `test.kek`
    (bytes 0x00..0x1f), dump exactly as `expected.jsonl` / `expected-all.jsonl`."""

    def test_the_fixture_dumps_as_committed_with_its_key(self):
        key = os.path.join(V7_FIXTURE, "test.kek")
        self.assertEqual(load_key_file(key), KEK, "the fixture's key is the published one")
        stores = [("store", "expected.jsonl")]
        if os.path.isdir(os.path.join(V7_FIXTURE, "store-all")):
            stores.append(("store-all", "expected-all.jsonl"))
        for store, expected_name in stores:
            path = os.path.join(V7_FIXTURE, store)
            with open(os.path.join(V7_FIXTURE, expected_name), "rb") as file:
                expected = file.read()
            self.assertEqual(reader_dump(path, "--key-file", key), (0, expected), f"fixture {store}")
            self.assertEqual(reader_dump(path), (1, b""), "without its key the dump refuses the store")
            with Store(path, key=key) as store_:
                events = list(store_.read_all())
                self.assertTrue(any(e.encrypted and e.compressed for e in events), "LZ4 inside the encryption")
                self.assertTrue(any(e.encrypted and not e.compressed and not e.erased for e in events), "raw plaintext")
                self.assertGreater(len(store_.segments), 2)
                self.assertGreaterEqual(store_.checkpoint.minimum_reader_version, 7)
            if store == "store":
                self.assertIn(b'"erased":true', expected, "customer-2 was forgotten")
                self.assertTrue(any(e.erased for e in events))
                self.assertTrue(any(not e.encrypted for e in events))
            else:
                self.assertTrue(all(e.encrypted for e in events))


if __name__ == "__main__":
    unittest.main()
