"""Format version 7: the key-encryption key (KEK) file, the store's key store (`keys`) and the
decryption of encrypted event records (format-spec.md §1B, §3.9).

PyPI's `cryptography` is imported only when something is decrypted or derived, so stores
without a key store read without it.
"""

import os
import struct
from dataclasses import dataclass, field

from .crc32c import crc32c
from .store import AnnalsError, CorruptionError, event_aad  # noqa: F401 (event_aad: part of this module's API)

KEK_PREFIX = b"annals-kek-v1:"
KEK_BYTES = 32
KEY_STORE_NAME = "keys"
KEY_STORE_MAGIC = b"ANNALSKY"
KEY_STORE_VERSION = 1
KEY_STORE_HEADER_BYTES = 64
KEY_ENTRY_BYTES = 104
KEY_STORE_FLAG_ENCRYPT_ALL = 1
KIND_SUBJECT, KIND_STORE, KIND_FORGOTTEN = 1, 2, 3
CHECK_AAD = b"annals-keys-check"
WRAP_AAD = b"annals-key"
NONCE_BYTES = 12
GCM_TAG_BYTES = 16
INFO_WRAP = b"annals key wrapping"
INFO_SUBJECT = b"annals subject digest"
INFO_TAG = b"annals keyed tag"


class KeyFileError(AnnalsError):
    """A file that is not an Annals key file (§1B)."""


class WrongKeyError(AnnalsError):
    """The key store's check value does not authenticate under the key given: another
    store's key (§1B). Not corruption: nothing was read with the wrong key."""


class KeyRequiredError(AnnalsError):
    """An encrypted event whose key is in the key store, read without the store's key."""


def load_key_file(path):
    """The 32-byte KEK of the key file at ``path`` (§1B): one line `annals-kek-v1:` followed by
    64 lowercase hex digits; trailing whitespace (the newline) is accepted, anything else is
    not an Annals key file."""
    try:
        with open(path, "rb") as file:
            text = file.read(4096)
    except OSError as error:
        raise KeyFileError(f"{path}: {error.strerror or error}") from None
    digits = text.rstrip(b" \t\r\n\v\f")
    if not digits.startswith(KEK_PREFIX):
        raise KeyFileError(f"{path}: not an Annals key file")
    digits = digits[len(KEK_PREFIX):]
    if len(digits) != 2 * KEK_BYTES or any(c not in b"0123456789abcdef" for c in digits):
        raise KeyFileError(f"{path}: not an Annals key file")
    return bytes.fromhex(digits.decode("ascii"))


def key_file_text(kek):
    """The text of a key file holding ``kek`` (what `annals key generate` writes)."""
    return KEK_PREFIX + bytes(kek).hex().encode("ascii") + b"\n"


def _as_kek(key):
    """``key``: the KEK's 32 bytes, or the path of a key file."""
    if isinstance(key, (bytes, bytearray, memoryview)):
        key = bytes(key)
        if len(key) != KEK_BYTES:
            raise ValueError(f"a key-encryption key is {KEK_BYTES} bytes, not {len(key)} (give a key file's path for a file)")
        return key
    if isinstance(key, (str, os.PathLike)):
        return load_key_file(key)
    raise TypeError("key: the KEK's 32 bytes or the path of a key file")


def _hkdf(kek, info):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    # Salt: empty (RFC 5869 then uses HashLen zero bytes, the same HMAC key).
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"", info=info).derive(kek)


def _hmac_sha256(key, data):
    from cryptography.hazmat.primitives import hashes, hmac
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


@dataclass(frozen=True)
class DerivedKeys:
    """The three keys derived from a KEK (§1B)."""

    wrap: bytes
    subject: bytes
    tag: bytes

    @staticmethod
    def of(kek):
        kek = _as_kek(kek)
        return DerivedKeys(_hkdf(kek, INFO_WRAP), _hkdf(kek, INFO_SUBJECT), _hkdf(kek, INFO_TAG))


def subject_digest(kek, subject):
    """HMAC-SHA256(subjectKey, UTF-8 of ``subject``): how the key store names a subject (§1B)."""
    return _hmac_sha256(DerivedKeys.of(kek).subject, subject.encode("utf-8"))


def keyed_tag(kek, value):
    """The keyed tag of ``value`` (§3.9): `h:` and 32 lowercase hex digits of
    HMAC-SHA256(tagKey, UTF-8 of ``value``) truncated to 16 bytes."""
    return "h:" + _hmac_sha256(DerivedKeys.of(kek).tag, value.encode("utf-8"))[:16].hex()


def _gcm_open(key, nonce, sealed, aad):
    """AES-256-GCM decryption; None when it does not authenticate."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    try:
        return AESGCM(key).decrypt(nonce, sealed, aad)
    except InvalidTag:
        return None


def wrap_aad(key_id, kind, digest):
    """The associated data of a wrapped data key (§1B)."""
    return WRAP_AAD + struct.pack("<IB", key_id, kind) + digest


@dataclass
class KeyEntry:
    """One checked entry of the key store (§1B)."""

    offset: int
    kind: int
    key_id: int
    subject_digest: bytes
    nonce: bytes
    wrapped: bytes
    #: The unwrapped 32-byte data key (kinds 1 and 2, when the store was opened with its key).
    data_key: bytes = field(default=None, repr=False)
    _cipher: object = field(default=None, repr=False)

    @property
    def forgotten(self):
        return self.kind == KIND_FORGOTTEN


class KeyStore:
    """A store's `keys` file (§1B), read and checked. With the KEK, the check value is verified
    (WrongKeyError) and every live entry's data key unwrapped (one that does not authenticate
    is corruption); without it, the entries' kinds and key ids are still known, so forgotten
    keys (erased events) and unknown key ids (corruption) are told apart.

    - ``entries``: key id -> KeyEntry, in file order;
    - ``encrypt_all``: header flag bit 0;
    - ``torn_tail``: a CorruptionError for an incomplete or unchecksummed last entry that was
      ignored, or None;
    - ``has_key``: True when opened with the KEK."""

    def __init__(self, path, data, kek=None):
        self.path = path
        self.size = len(data)
        if len(data) < KEY_STORE_HEADER_BYTES:
            raise CorruptionError(path, 0, f"key store of {len(data)} bytes, shorter than its header")
        if data[0:8] != KEY_STORE_MAGIC:
            raise CorruptionError(path, 0, "bad key store magic")
        if crc32c(data[0:60]) != struct.unpack_from("<I", data, 60)[0]:
            raise CorruptionError(path, 60, "key store header checksum mismatch")
        version, flags = struct.unpack_from("<HH", data, 8)
        if version != KEY_STORE_VERSION:
            raise CorruptionError(path, 8, f"key store version {version}; this reader reads version {KEY_STORE_VERSION}")
        if flags & ~KEY_STORE_FLAG_ENCRYPT_ALL:
            raise CorruptionError(path, 10, f"key store flags {flags}")
        self.flags = flags
        self.encrypt_all = bool(flags & KEY_STORE_FLAG_ENCRYPT_ALL)
        self.has_key = kek is not None
        self.entries = {}
        self.torn_tail = None
        # The entries' structure first (no key needed), then the key: its check value, then
        # the wrapped data keys.
        count, rest = divmod(len(data) - KEY_STORE_HEADER_BYTES, KEY_ENTRY_BYTES)
        if rest:
            self.torn_tail = CorruptionError(path, KEY_STORE_HEADER_BYTES + count * KEY_ENTRY_BYTES,
                                             f"incomplete last key store entry ({rest} bytes)", tearable=True)
        previous_id, store_keys = 0, 0
        for index in range(count):
            offset = KEY_STORE_HEADER_BYTES + index * KEY_ENTRY_BYTES
            raw = bytes(data[offset:offset + KEY_ENTRY_BYTES])
            if crc32c(raw[:100]) != struct.unpack_from("<I", raw, 100)[0]:
                if index == count - 1 and not rest:
                    # The entry a writer was appending when it stopped: no record names it.
                    self.torn_tail = CorruptionError(path, offset, "key store entry checksum mismatch", tearable=True)
                    break
                raise CorruptionError(path, offset, "key store entry checksum mismatch")
            kind = raw[0]
            key_id = struct.unpack_from("<I", raw, 4)[0]
            if kind not in (KIND_SUBJECT, KIND_STORE, KIND_FORGOTTEN) or any(raw[1:4]):
                raise CorruptionError(path, offset, f"key store entry of kind {kind} (reserved bytes {raw[1:4].hex()})")
            if key_id == 0 or key_id <= previous_id:
                raise CorruptionError(path, offset, f"key id {key_id} after key id {previous_id}: ids are >= 1, each once, ascending")
            if kind == KIND_STORE:
                store_keys += 1
                if store_keys > 1:
                    raise CorruptionError(path, offset, "a second store key")
            previous_id = key_id
            self.entries[key_id] = KeyEntry(offset, kind, key_id, raw[8:40], raw[40:52], raw[52:100])
        if kek is None:
            return
        keys = DerivedKeys.of(kek)
        if _gcm_open(keys.wrap, bytes(data[16:28]), bytes(data[28:60]), CHECK_AAD) != bytes(16):
            raise WrongKeyError(f"{path}: the key given is not this store's key (its check value does not authenticate)")
        for entry in self.entries.values():
            if entry.kind == KIND_FORGOTTEN:
                continue
            entry.data_key = _gcm_open(keys.wrap, entry.nonce, entry.wrapped,
                                       wrap_aad(entry.key_id, entry.kind, entry.subject_digest))
            if entry.data_key is None or len(entry.data_key) != 32:
                raise CorruptionError(path, entry.offset, f"the data key of key id {entry.key_id} does not authenticate")

    @staticmethod
    def read(store_path, kek=None):
        """The key store of the store at ``store_path``, or None when it has no `keys` file.
        A forgetting writer rewrites the file and then zeroes the old one in place (§1B): when
        the file read shows damage and the name now leads to another file, it is read again."""
        path = os.path.join(store_path, KEY_STORE_NAME)
        for attempt in range(3):
            try:
                with open(path, "rb") as file:
                    identity = os.fstat(file.fileno()).st_ino
                    data = file.read()
            except FileNotFoundError:
                return None
            try:
                return KeyStore(path, data, kek)
            except CorruptionError:
                try:
                    replaced = os.stat(path).st_ino != identity
                except FileNotFoundError:
                    replaced = False
                if attempt == 2 or not replaced:
                    raise
        raise AssertionError("unreachable")

    @property
    def store_key(self):
        """The store key's entry (kind 2), or None."""
        return next((entry for entry in self.entries.values() if entry.kind == KIND_STORE), None)

    def subject_entries(self, digest):
        """The entries (kind 1) of one subject digest, oldest first."""
        return [entry for entry in self.entries.values() if entry.kind == KIND_SUBJECT and entry.subject_digest == digest]

    def decrypt(self, entry, nonce, sealed, aad):
        """The plaintext of ``sealed`` (ciphertext and GCM tag) under ``entry``'s data key, or
        None when it does not authenticate. Raises KeyRequiredError without the KEK."""
        if entry.data_key is None:
            raise KeyRequiredError(f"{self.path}: an encrypted event (key id {entry.key_id}) was read without the store's key "
                                   "(give the key: Store(path, key=...), --key-file)")
        from cryptography.exceptions import InvalidTag
        if entry._cipher is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            entry._cipher = AESGCM(entry.data_key)
        try:
            return entry._cipher.decrypt(nonce, sealed, aad)
        except InvalidTag:
            return None
