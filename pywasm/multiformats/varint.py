"""Unsigned varint (multiformats/unsigned-varint).

Rules enforced on decode: at most 9 bytes (so values < 2**63), and minimal encoding
(no trailing 0x80 0x00 padding). Violations raise :class:`VarintError`.
"""

from __future__ import annotations

from ..errors import VarintError

MAX_VARINT_LEN = 9
MAX_VARINT = (1 << 63) - 1


def encode_varint(value: int) -> bytes:
    if value < 0 or value > MAX_VARINT:
        raise VarintError(f"varint value out of range: {value}")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint_prefix(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int] | None:
    """Decode a varint at ``offset``.

    Returns ``(value, bytes_used)``, or ``None`` when ``data`` ends before the varint does
    (so a stream reader can wait for more). Raises :class:`VarintError` on invalid input.
    """
    value = 0
    shift = 0
    end = len(data)
    i = offset
    while i < end:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            used = i - offset
            if b == 0 and used > 1:
                raise VarintError("varint is not minimally encoded")
            return value, used
        shift += 7
        if i - offset >= MAX_VARINT_LEN:
            raise VarintError("varint longer than 9 bytes")
    return None


def decode_varint(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int]:
    """Decode a varint that must be complete: ``(value, bytes_used)``."""
    res = decode_varint_prefix(data, offset)
    if res is None:
        raise VarintError("truncated varint")
    return res
