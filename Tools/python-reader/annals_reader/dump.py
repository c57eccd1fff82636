"""The JSON Lines that `annals dump` prints, byte for byte.

Each event is one line: position, stream, revision, id (lowercase UUID), type, timestamp
(ISO 8601 UTC with nine fraction digits), then "metadata" and "data" (for an erased event,
format-spec.md §3.9: `"erased":true` in their place). Metadata and data that
are exactly one strict JSON value (RFC 8259; surrounding spaces, tabs allowed; no line breaks;
nesting at most 512 deep) are printed verbatim; other bytes as "metadataBase64"/"dataBase64";
empty ones are left out.
"""

import base64
import datetime
import sys

_ESCAPES = {0x22: b'\\"', 0x5C: b"\\\\", 0x08: b"\\b", 0x0C: b"\\f", 0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t"}
_EPOCH = datetime.datetime(1970, 1, 1)


def json_string(text: str) -> bytes:
    """A JSON string literal: quotes, backslashes and control characters escaped, everything
    else (including non-ASCII) as UTF-8."""
    out = bytearray(b'"')
    for byte in text.encode("utf-8"):
        if byte in _ESCAPES:
            out += _ESCAPES[byte]
        elif byte < 0x20:
            out += b"\\u00%02x" % byte
        else:
            out.append(byte)
    out += b'"'
    return bytes(out)


def iso8601(nanoseconds: int) -> str:
    """`2026-11-27T05:37:32.123456789Z`: proleptic Gregorian, UTC."""
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    moment = _EPOCH + datetime.timedelta(seconds=seconds)
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{fraction:09d}Z"


class _Invalid(Exception):
    pass


class _Scanner:
    """A strict JSON validator over bytes (the rules of `annals import`/`dump`)."""

    MAX_DEPTH = 512

    def __init__(self, data: bytes):
        self.data, self.index, self.depth = data, 0, 0

    def peek(self):
        return self.data[self.index] if self.index < len(self.data) else None

    def skip_whitespace(self):
        while self.peek() in (0x20, 0x09, 0x0A, 0x0D):
            self.index += 1

    def expect(self, byte):
        if self.peek() != byte:
            raise _Invalid
        self.index += 1

    def value(self):
        byte = self.peek()
        if byte is None:
            raise _Invalid
        if byte in (0x7B, 0x5B):  # { [
            self.depth += 1
            if self.depth > self.MAX_DEPTH:
                raise _Invalid
            self.object() if byte == 0x7B else self.array()
            self.depth -= 1
        elif byte == 0x22:
            self.string()
        elif byte == 0x74:
            self.literal(b"true")
        elif byte == 0x66:
            self.literal(b"false")
        elif byte == 0x6E:
            self.literal(b"null")
        else:
            self.number()

    def object(self):
        self.sequence(0x7D, self.member)

    def array(self):
        self.sequence(0x5D, self.value)

    def member(self):
        if self.peek() != 0x22:
            raise _Invalid
        self.string()
        self.skip_whitespace()
        self.expect(0x3A)
        self.skip_whitespace()
        self.value()

    def sequence(self, close, item):
        """`{…}` or `[…]` from its opening byte: items separated by commas, then `close`."""
        self.index += 1
        self.skip_whitespace()
        if self.peek() == close:
            self.index += 1
            return
        while True:
            self.skip_whitespace()
            item()
            self.skip_whitespace()
            if self.peek() == 0x2C:
                self.index += 1
                continue
            self.expect(close)
            return

    def literal(self, word):
        if self.data[self.index:self.index + len(word)] != word:
            raise _Invalid
        self.index += len(word)

    def digits(self):
        start = self.index
        while self.peek() is not None and 0x30 <= self.peek() <= 0x39:
            self.index += 1
        return self.index - start

    def number(self):
        if self.peek() == 0x2D:
            self.index += 1
        if self.peek() == 0x30:
            self.index += 1
        elif self.digits() == 0:
            raise _Invalid
        if self.peek() == 0x2E:
            self.index += 1
            if self.digits() == 0:
                raise _Invalid
        if self.peek() in (0x65, 0x45):
            self.index += 1
            if self.peek() in (0x2B, 0x2D):
                self.index += 1
            if self.digits() == 0:
                raise _Invalid

    def hex4(self):
        text = self.data[self.index:self.index + 4]
        if len(text) != 4 or any(c not in b"0123456789abcdefABCDEF" for c in text):
            raise _Invalid
        self.index += 4
        return int(text, 16)

    def string(self):
        self.index += 1
        plain_start = self.index
        while True:
            byte = self.peek()
            if byte is None or byte < 0x20:
                raise _Invalid
            if byte == 0x22:
                self.check_utf8(plain_start, self.index)
                self.index += 1
                return
            if byte == 0x5C:
                self.check_utf8(plain_start, self.index)
                self.index += 1
                escape = self.peek()
                if escape is None:
                    raise _Invalid
                self.index += 1
                if escape == 0x75:  # u
                    code = self.hex4()
                    if 0xD800 <= code < 0xDC00:
                        if self.data[self.index:self.index + 2] != b"\\u":
                            raise _Invalid
                        self.index += 2
                        if not 0xDC00 <= self.hex4() < 0xE000:
                            raise _Invalid
                    elif 0xDC00 <= code < 0xE000:
                        raise _Invalid
                elif escape not in b'"\\/bfnrt':
                    raise _Invalid
                plain_start = self.index
                continue
            self.index += 1

    def check_utf8(self, start, end):
        try:
            self.data[start:end].decode("utf-8")
        except UnicodeDecodeError:
            raise _Invalid from None


def is_json(data: bytes) -> bool:
    """True when ``data`` is exactly one JSON value, optionally surrounded by whitespace."""
    scanner = _Scanner(data)
    # Up to 512 nested values, a few Python frames each.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * _Scanner.MAX_DEPTH + 200))
    try:
        scanner.skip_whitespace()
        scanner.value()
        scanner.skip_whitespace()
        return scanner.index == len(data)
    except (_Invalid, IndexError):
        return False


def _bytes_member(data: bytes, key: str) -> bytes:
    if not data:
        return b""
    if b"\n" not in data and b"\r" not in data and is_json(data):
        return b',"' + key.encode() + b'":' + data
    return b',"' + key.encode() + b'Base64":"' + base64.b64encode(data) + b'"'


def event_line(event) -> bytes:
    """One event as `annals dump` prints it, with the trailing newline."""
    return (b'{"position":' + str(event.position).encode()
            + b',"stream":' + json_string(event.stream)
            + b',"revision":' + str(event.revision).encode()
            + b',"id":"' + str(event.id).encode()
            + b'","type":' + json_string(event.type)
            + (b',"tags":[' + b",".join(json_string(tag) for tag in event.tags) + b"]" if event.tags else b"")
            + b',"timestamp":"' + iso8601(event.timestamp_ns).encode() + b'"'
            + (b',"erased":true' if getattr(event, "erased", False) else
               _bytes_member(event.metadata, "metadata") + _bytes_member(event.payload, "data"))
            + b"}\n")
