"""Writes the golden stores under Tests/Fixtures (run once per format version, then commit).

    swift build && python3 Tests/Fixtures/make_fixtures.py NAME...

Each fixture is `NAME/store` (an Annals store) and `NAME/expected.jsonl` (its `annals dump`).
A fixture with encrypted events (format version 7) also holds its key file, `NAME/test.kek`: a
fixed, published test key (bytes 0x00..0x1f), never a secret; its dumps are made with
`--key-file NAME/test.kek`. `v7-encrypted` has a second store, `store-all` (written with
`--encrypt-all`), dumped to `expected-all.jsonl`.
Fixtures are never regenerated for an existing name: they are the files old versions wrote,
and every test run checks that they still read the same (Swift engine and Python reader).
"""

import os
import random
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "Tools", "python-reader"))
sys.path.insert(0, os.path.join(ROOT, "Tools", "python-reader", "tests"))

from annals_reader.crc32c import crc32c  # noqa: E402
from test_reader import import_lines  # noqa: E402
from test_encryption import encrypted_import_lines  # noqa: E402

#: The published test key of the encrypted fixtures (format-spec.md §1B): bytes 0x00..0x1f.
TEST_KEK = bytes(range(32))

ANNALS = os.environ.get("ANNALS_BIN", os.path.join(ROOT, ".build", "debug", "annals"))


def annals(*arguments, stdin=None):
    return subprocess.run([ANNALS, *arguments], input=stdin, capture_output=True, check=True).stdout


def import_into(path, lines, *options):
    annals("import", path, "--durability", "none", *options, stdin=("\n".join(lines) + "\n").encode())


def set_version(path, version):
    """Version fields as a writer of `version` left them (format 1 = format 2 without
    dictionary frames and compressed records, which the store must not contain)."""
    for name in sorted(os.listdir(os.path.join(path, "segments"))):
        if not name.endswith(".seg"):
            continue
        with open(os.path.join(path, "segments", name), "r+b") as file:
            header = bytearray(file.read(64))
            header[8:10] = version.to_bytes(2, "little")
            header[60:64] = crc32c(bytes(header[:60])).to_bytes(4, "little")
            file.seek(0)
            file.write(header)
    with open(os.path.join(path, "checkpoint"), "r+b") as file:
        data = bytearray(file.read())
        data[8:10] = version.to_bytes(2, "little")
        data[10:12] = version.to_bytes(2, "little")
        data[60:64] = crc32c(bytes(data[:60])).to_bytes(4, "little")
        file.seek(0)
        file.write(data)


def write_test_key(path):
    """The fixed test key in the key file format (§1B), mode 0600 like `annals key generate`
    writes (not `annals key generate` itself: its key is random, and the fixture's must be
    known)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(b"annals-kek-v1:" + TEST_KEK.hex().encode() + b"\n")


def rewind_checkpoint_to_last_segment(path):
    """The checkpoint as the roll into the last segment wrote it: offset 64 of that segment,
    the position it starts at, clean-shutdown flag clear."""
    last = sorted(name for name in os.listdir(os.path.join(path, "segments")) if name.endswith(".seg"))[-1]
    with open(os.path.join(path, "segments", last), "rb") as file:
        header = file.read(64)
    with open(os.path.join(path, "checkpoint"), "r+b") as file:
        data = bytearray(file.read())
        data[12:16] = (0).to_bytes(4, "little")
        data[16:24] = header[16:24]  # segmentIndex
        data[24:32] = (64).to_bytes(8, "little")
        data[32:40] = header[32:40]  # firstPosition
        data[60:64] = crc32c(bytes(data[:60])).to_bytes(4, "little")
        file.seek(0)
        file.write(data)


def make_archive_path_relative(path, relative):
    """The `archive` file naming its directory relative to the store directory (§1A), as the
    API writes it when given a relative path, so the fixture reads wherever it is."""
    with open(os.path.join(path, "archive"), "rb") as file:
        data = file.read()
    length = int.from_bytes(data[12:16], "little")
    name = relative.encode()
    fixed = bytearray(data[:40])
    fixed[12:16] = len(name).to_bytes(4, "little")
    body = bytes(fixed) + name
    with open(os.path.join(path, "archive"), "wb") as file:
        file.write(body + crc32c(body).to_bytes(4, "little"))
    assert length > 0


def make(name):
    directory = os.path.join(HERE, name)
    if os.path.exists(directory):
        raise SystemExit(f"{directory} exists: fixtures are never rewritten")
    store = os.path.join(directory, "store")
    os.makedirs(directory)
    rng = random.Random(name)
    streams = ["order-1", "order-2", "account-7", "Zürich-€-1"]
    # Dumped (name of the store directory, name of its expected dump) after the recipe.
    stores = [("store", "expected.jsonl")]
    key_options = []
    if name == "v1-uncompressed":
        # Several sealed segments with index files, raw records only.
        import_into(store, import_lines(rng, 160, streams), "--compression", "none", "--segment-size-bytes", "16384", "--batch", "5")
        set_version(store, 1)
    elif name == "v2-system-streams":
        # Snapshots and projection checkpoints (the example app), deletions, truncation and a
        # max count (retention records), on top of compressed events.
        example = os.path.join(os.path.dirname(ANNALS), "annals-example")
        subprocess.run([example, store, "16384"], capture_output=True, check=True)
        import_into(store, import_lines(rng, 120, ["keep-1", "soft-1", "hard-1", "trunc-1", "capped-1"]),
                    "--segment-size-bytes", "16384")
        annals("retention", store, "soft-1", "--delete")
        annals("retention", store, "hard-1", "--hard-delete")
        annals("retention", store, "trunc-1", "--truncate-before", "10")
        annals("retention", store, "capped-1", "--max-count", "5")
        import_into(store, import_lines(rng, 10, ["soft-1", "keep-1"]), "--segment-size-bytes", "16384")
    elif name == "v2-compressed":
        # Raw records before the first dictionary, dictionary frames, compressed and raw records
        # side by side, merged index files, a reopen that keeps the open segment's dictionary.
        import_into(store, import_lines(rng, 250, streams), "--segment-size-bytes", "16384", "--batch", "7")
        import_into(store, import_lines(rng, 60, streams), "--compression", "none", "--segment-size-bytes", "16384")
        import_into(store, import_lines(rng, 60, streams), "--segment-size-bytes", "16384")
    elif name == "v3-compacted":
        # Compacted segments: merged ranges of segment numbers, positions and revisions that
        # skip removed events, rewritten index files, dictionaries copied into compacted files,
        # superseded snapshots and retention records removed, and a segment sealed early.
        example = os.path.join(os.path.dirname(ANNALS), "annals-example")
        subprocess.run([example, store, "16384"], capture_output=True, check=True)
        import_into(store, import_lines(rng, 300, ["keep-1", "soft-1", "hard-1", "trunc-1", "capped-1", "old-1"]),
                    "--segment-size-bytes", "16384", "--batch", "4")
        annals("retention", store, "soft-1", "--delete")
        annals("delete", store, "hard-1", "old-1", "--hard")
        annals("retention", store, "trunc-1", "--truncate-before", "20")
        annals("retention", store, "capped-1", "--max-count", "5")
        annals("retention", store, "capped-1", "--max-count", "3")
        annals("compact", store)
        import_into(store, import_lines(rng, 20, ["soft-1", "keep-1"]), "--segment-size-bytes", "16384")
    elif name == "v4-durable-marks":
        # Segments with the durable-marks flag and mark areas (§2.2), written under fsync so the
        # marks vouch for every acknowledged frame; then the checkpoint put back to the start of
        # the last segment with the clean-shutdown flag clear, as a `kill -9` after the last
        # commit leaves it: a reader must take the open segment's frames as protected by the
        # mark (§3.4), none of them as a torn tail.
        lines = import_lines(rng, 200, streams)
        annals("import", store, "--durability", "fsync", "--segment-size-bytes", "16384", "--batch", "3",
               stdin=("\n".join(lines) + "\n").encode())
        rewind_checkpoint_to_last_segment(store)
    elif name == "v5-archived":
        # Archived segments (§1A): the oldest segments (compacted ones among them) moved to
        # `../archive`, named relative to the store directory in the `archive` file; index files
        # kept in the store; events appended after the move.
        import_into(store, import_lines(rng, 300, ["keep-1", "trunc-1", "order-2", "Zürich-€-1"]),
                    "--segment-size-bytes", "16384", "--batch", "5")
        annals("retention", store, "trunc-1", "--truncate-before", "40")
        annals("compact", store)
        import_into(store, import_lines(rng, 40, streams), "--segment-size-bytes", "16384")
        annals("archive", store, os.path.join(directory, "archive"), "--older-than", "0")
        make_archive_path_relative(store, "../archive")
        import_into(store, import_lines(rng, 40, streams), "--segment-size-bytes", "16384")
    elif name == "v6-tags":
        # Tagged records (§3.2): tag blocks in compressed and raw records, non-ASCII and escaped
        # tags, events without tags between them, over several segments; import batches of
        # several streams written as groups (§3.1, the continued flag); index files with query
        # entries (§7.7).
        import_into(store, import_lines(rng, 300, streams, tagged=True), "--segment-size-bytes", "16384", "--batch", "5")
        import_into(store, import_lines(rng, 60, streams, tagged=True), "--compression", "none", "--segment-size-bytes", "16384")
    elif name == "v7-encrypted":
        # Encrypted records (§1B, §3.9) under the published test key `test.kek`: events of
        # subjects customer-1..3 (most in their own streams, some in order streams), events
        # without a subject stored plain among them, tags, bodies over 1 KiB (LZ4 inside the
        # encryption) and small ones, over several 16 KiB segments with index files; then
        # customer-2 forgotten (its events erased: `"erased":true` in the dump) and written
        # again under a new key. `store-all`: every event encrypted (`--encrypt-all`: the store
        # key for events without a subject).
        key = os.path.join(directory, "test.kek")
        write_test_key(key)
        key_options = ["--key-file", key]
        import_into(store, encrypted_import_lines(rng, 300), "--segment-size-bytes", "16384", "--batch", "5", *key_options)
        annals("forget", store, "customer-2", *key_options)
        import_into(store, encrypted_import_lines(rng, 40), "--segment-size-bytes", "16384", "--batch", "5", *key_options)
        store_all = os.path.join(directory, "store-all")
        import_into(store_all, encrypted_import_lines(rng, 150), "--segment-size-bytes", "16384", "--batch", "5",
                    "--encrypt-all", *key_options)
        stores.append(("store-all", "expected-all.jsonl"))
    else:
        raise SystemExit(f"unknown fixture {name}")
    for store_name, expected_name in stores:
        path = os.path.join(directory, store_name)
        for leftover in os.listdir(path):
            if leftover == "lock":
                os.remove(os.path.join(path, leftover))  # recreated by the next writer; keeps the fixture to data files
        with open(os.path.join(directory, expected_name), "wb") as file:
            file.write(annals("dump", path, *key_options))
    print(f"wrote {directory}")


if __name__ == "__main__":
    for fixture in sys.argv[1:]:
        make(fixture)
