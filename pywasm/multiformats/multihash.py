"""Multihash: ``<varint code><varint digest length><digest>`` (multiformats/multihash).

libp2p uses two: ``identity`` (the "digest" is the data itself; peer ids of small keys)
and ``sha2-256`` (peer ids of larger keys, certhash). Decoding is strict: the declared
length must match the bytes present exactly, and a digest may not be longer than its
hash function's output. Any violation raises :class:`MultihashError`.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Union

from ..errors import MultihashError, VarintError
from .varint import decode_varint, encode_varint

BytesLike = Union[bytes, bytearray, memoryview]

IDENTITY = 0x00
SHA1 = 0x11
SHA2_256 = 0x12
SHA2_512 = 0x13

#: Human-readable names (multicodec table) of the codes we know.
NAMES: dict[int, str] = {IDENTITY: "identity", SHA1: "sha1", SHA2_256: "sha2-256", SHA2_512: "sha2-512"}

# Full output size of each hash function; a digest may be truncated, never longer.
_DIGEST_SIZES: dict[int, int] = {SHA1: 20, SHA2_256: 32, SHA2_512: 64}

_HASHERS: dict[int, Callable[[bytes], bytes]] = {
    SHA1: lambda data: hashlib.sha1(data).digest(),
    SHA2_256: lambda data: hashlib.sha256(data).digest(),
    SHA2_512: lambda data: hashlib.sha512(data).digest(),
}


def _check_digest(code: int, digest_len: int) -> None:
    limit = _DIGEST_SIZES.get(code)
    if limit is not None and digest_len > limit:
        raise MultihashError(f"{NAMES[code]} digest of {digest_len} bytes exceeds {limit}")


def encode(code: int, digest: BytesLike) -> bytes:
    """Wrap an already computed ``digest`` as a multihash."""
    raw = bytes(digest)
    try:
        header = encode_varint(code) + encode_varint(len(raw))
    except VarintError as exc:
        raise MultihashError(f"multihash code out of range: {code}") from exc
    _check_digest(code, len(raw))
    return header + raw


def decode_prefix(data: BytesLike, offset: int = 0) -> tuple[int, bytes, int]:
    """Decode one multihash starting at ``offset``; trailing bytes are allowed.

    Returns ``(code, digest, bytes_used)``.
    """
    try:
        code, n1 = decode_varint(data, offset)
        length, n2 = decode_varint(data, offset + n1)
    except VarintError as exc:
        raise MultihashError(f"bad multihash header: {exc}") from exc
    start = offset + n1 + n2
    end = start + length
    if end > len(data):
        raise MultihashError(f"multihash truncated: digest needs {length} bytes, {len(data) - start} left")
    _check_digest(code, length)
    return code, bytes(data[start:end]), end - offset


def decode(data: BytesLike) -> tuple[int, bytes]:
    """Decode a complete multihash; returns ``(code, digest)``."""
    code, digest, used = decode_prefix(data)
    if used != len(data):
        raise MultihashError(f"{len(data) - used} trailing bytes after multihash")
    return code, digest


def is_valid(data: BytesLike) -> bool:
    try:
        decode(data)
    except MultihashError:
        return False
    return True


def digest(code: int, data: BytesLike) -> bytes:
    """Hash ``data`` with the function named by ``code`` and return the multihash."""
    raw = bytes(data)
    if code == IDENTITY:
        return encode(IDENTITY, raw)
    hasher = _HASHERS.get(code)
    if hasher is None:
        raise MultihashError(f"unsupported multihash function 0x{code:x}")
    return encode(code, hasher(raw))


def sha256(data: BytesLike) -> bytes:
    """The sha2-256 multihash of ``data`` (``12 20`` + 32-byte digest)."""
    return b"\x12\x20" + hashlib.sha256(bytes(data)).digest()


def sha512(data: BytesLike) -> bytes:
    return b"\x13\x40" + hashlib.sha512(bytes(data)).digest()


def identity(data: BytesLike) -> bytes:
    """The identity multihash: the data itself, length-prefixed."""
    return encode(IDENTITY, data)


__all__ = [
    "IDENTITY",
    "NAMES",
    "SHA1",
    "SHA2_256",
    "SHA2_512",
    "decode",
    "decode_prefix",
    "digest",
    "encode",
    "identity",
    "is_valid",
    "sha256",
    "sha512",
]
