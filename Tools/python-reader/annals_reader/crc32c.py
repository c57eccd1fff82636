"""CRC-32C (Castagnoli), as format-spec.md section 4 defines it.

Uses PyPI's ``crc32c`` when it is installed (hardware speed) and a 256-entry table over the
reflected polynomial otherwise (pure Python: fine for small stores and tests).
"""

try:  # pragma: no cover - depends on the environment
    from crc32c import crc32c as _fast
except ImportError:  # pragma: no cover
    _fast = None


def _table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _table()


def crc32c(data) -> int:
    """CRC-32C of ``data`` (bytes-like): init 0xFFFFFFFF, reflected, final XOR 0xFFFFFFFF."""
    if _fast is not None:
        return _fast(bytes(data))
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
