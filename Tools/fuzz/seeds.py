"""Seed corpora for the libFuzzer targets, from the golden stores under Tests/Fixtures.

    python3 Tools/fuzz/seeds.py OUTPUT_DIRECTORY

Writes OUTPUT/<target>/<name> for the targets of Tests/AnnalsStorageTests/Fuzzing/FuzzTargets.swift.
The first byte of every input is the mode (odd: the target recomputes checksums).
"""
import os
import struct
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")


def files(store, suffix):
    directory = os.path.join(store, "segments")
    return [os.path.join(directory, name) for name in sorted(os.listdir(directory)) if name.endswith(suffix)]


def main(output):
    for target in ["frames", "index", "lz4", "records", "open"]:
        os.makedirs(os.path.join(output, target), exist_ok=True)

    def put(target, name, data):
        with open(os.path.join(output, target, name), "wb") as file:
            file.write(data)

    for fixture in sorted(os.listdir(FIXTURES)):
        store = os.path.join(FIXTURES, fixture, "store")
        if not os.path.isdir(store):
            continue
        packed = bytearray([0])
        for number, path in enumerate(files(store, ".seg")):
            data = open(path, "rb").read()
            put("frames", f"{fixture}-{number}", bytes([0]) + data[64:])
            put("records", f"{fixture}-{number}", bytes([0]) + data[:64])
            packed += bytes([0]) + struct.pack("<I", len(data)) + data
        for number, path in enumerate(files(store, ".idx")):
            data = open(path, "rb").read()
            put("index", f"{fixture}-{number}", bytes([0]) + data)
        checkpoint = open(os.path.join(store, "checkpoint"), "rb").read()
        put("records", f"{fixture}-checkpoint", bytes([0]) + checkpoint)
        packed += bytes([1]) + struct.pack("<I", len(checkpoint)) + checkpoint
        put("open", fixture, bytes(packed))
    put("lz4", "literals", bytes([0]) + struct.pack("<IH", 16, 0) + bytes([0xF0, 0x01]) + b"0123456789abcdef")


if __name__ == "__main__":
    main(sys.argv[1])
