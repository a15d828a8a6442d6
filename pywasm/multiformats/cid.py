"""Content identifiers (multiformats/cid), as far as libp2p needs them.

libp2p writes peer ids as CIDv1 with the ``libp2p-key`` codec: ``bafz...`` in base32 or
``k51...`` in base36. CIDv0 (``Qm...``, base58btc, implicitly dag-pb + sha2-256) is
accepted on input because legacy peer ids look exactly like it.

Binary forms:

* CIDv0: the bare sha2-256 multihash (34 bytes, ``12 20 ...``).
* CIDv1: ``<varint 1><varint codec><multihash>``.

Every malformed input raises :class:`CidError`.
"""

from __future__ import annotations

from typing import Union

from ..errors import CidError, DecodeError
from . import multibase, multihash
from .varint import MAX_VARINT, decode_varint, encode_varint

BytesLike = Union[bytes, bytearray, memoryview]

# Content codecs (multicodec table) that matter to us.
RAW = 0x55
DAG_PB = 0x70
DAG_CBOR = 0x71
LIBP2P_KEY = 0x72

CODEC_NAMES: dict[int, str] = {RAW: "raw", DAG_PB: "dag-pb", DAG_CBOR: "dag-cbor", LIBP2P_KEY: "libp2p-key"}

# A CIDv0 string is always 46 base58btc characters starting "Qm" (0x12 0x20 prefix).
_V0_TEXT_LEN = 46
_V0_BYTES_LEN = 34


class CID:
    """An immutable CID (version 0 or 1)."""

    __slots__ = ("_version", "_codec", "_multihash")

    _version: int
    _codec: int
    _multihash: bytes

    def __init__(self, version: int, codec: int, mh: BytesLike) -> None:
        mh_bytes = bytes(mh)
        try:
            code, digest = multihash.decode(mh_bytes)
        except DecodeError as exc:
            raise CidError(f"invalid multihash in CID: {exc}") from exc
        if version == 0:
            if codec != DAG_PB or code != multihash.SHA2_256 or len(digest) != 32:
                raise CidError("CIDv0 must be dag-pb with a 32-byte sha2-256 multihash")
        elif version == 1:
            if not 0 <= codec <= MAX_VARINT:
                raise CidError(f"CID codec out of range: {codec}")
        else:
            raise CidError(f"unsupported CID version {version}")
        object.__setattr__(self, "_version", version)
        object.__setattr__(self, "_codec", codec)
        object.__setattr__(self, "_multihash", mh_bytes)

    # --- construction -------------------------------------------------------------
    @classmethod
    def v1(cls, codec: int, mh: BytesLike) -> CID:
        return cls(1, codec, mh)

    @classmethod
    def v0(cls, mh: BytesLike) -> CID:
        return cls(0, DAG_PB, mh)

    @classmethod
    def from_bytes(cls, data: BytesLike) -> CID:
        """Parse the binary form (CIDv0 bare multihash, or CIDv1)."""
        raw = bytes(data)
        if len(raw) == _V0_BYTES_LEN and raw[0] == 0x12 and raw[1] == 0x20:
            return cls(0, DAG_PB, raw)
        try:
            version, n1 = decode_varint(raw)
            codec, n2 = decode_varint(raw, n1)
        except DecodeError as exc:
            raise CidError(f"bad CID header: {exc}") from exc
        if version != 1:
            raise CidError(f"unsupported CID version {version}")
        return cls(1, codec, raw[n1 + n2 :])

    @classmethod
    def from_string(cls, text: str) -> CID:
        """Parse the text form: CIDv0 base58btc, or CIDv1 in any multibase."""
        if not isinstance(text, str):
            raise CidError(f"CID text must be str, not {type(text).__name__}")
        if len(text) == _V0_TEXT_LEN and text.startswith("Qm"):
            try:
                return cls(0, DAG_PB, multibase.b58decode(text))
            except DecodeError as exc:
                raise CidError(f"invalid CIDv0 {text!r}: {exc}") from exc
        try:
            raw = multibase.decode(text)
        except DecodeError as exc:
            raise CidError(f"invalid CID text: {exc}") from exc
        # The spec forbids a multibase-wrapped CIDv0: 0x12 could only start one.
        if raw[:1] == b"\x12":
            raise CidError("CIDv0 may not be multibase encoded")
        return cls.from_bytes(raw)

    # --- accessors ----------------------------------------------------------------
    @property
    def version(self) -> int:
        return self._version

    @property
    def codec(self) -> int:
        return self._codec

    @property
    def multihash(self) -> bytes:
        return self._multihash

    def to_bytes(self) -> bytes:
        if self._version == 0:
            return self._multihash
        return b"\x01" + encode_varint(self._codec) + self._multihash

    def encode(self, base: str | None = None) -> str:
        """Text form. CIDv0 is bare base58btc; CIDv1 defaults to base32."""
        if self._version == 0:
            if base not in (None, "base58btc"):
                raise CidError("CIDv0 can only be written in base58btc")
            return multibase.b58encode(self._multihash)
        return multibase.encode(base or "base32", self.to_bytes())

    def to_v1(self) -> CID:
        return self if self._version == 1 else CID(1, self._codec, self._multihash)

    # --- value semantics ----------------------------------------------------------
    def __str__(self) -> str:
        return self.encode()

    def __repr__(self) -> str:
        return f"CID({self.encode()!r})"

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CID):
            return NotImplemented
        return (self._version, self._codec, self._multihash) == (other._version, other._codec, other._multihash)

    def __hash__(self) -> int:
        return hash((self._version, self._codec, self._multihash))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("CID is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("CID is immutable")


def decode(text: str) -> CID:
    """Parse CID text (``Qm...`` or multibase CIDv1)."""
    return CID.from_string(text)


def from_bytes(data: BytesLike) -> CID:
    """Parse a binary CID."""
    return CID.from_bytes(data)


__all__ = ["CID", "CODEC_NAMES", "DAG_CBOR", "DAG_PB", "LIBP2P_KEY", "RAW", "decode", "from_bytes"]
