"""Signed envelopes (libp2p/specs RFC 0002).

An envelope carries a payload, a type hint for it and the signer's public key. The
signature covers a domain string plus the payload type and payload, each prefixed with
its unsigned-varint length, so a signature made for one purpose (a peer record) can
never be replayed as another (a relay voucher).

The payload type is an opaque byte string. go- and js-libp2p use the two big-endian bytes
of the record's multicodec (``0x03 0x01`` for peer records, ``0x03 0x02`` for relay
vouchers), not its varint: we do the same so the bytes they sign are the bytes we sign.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import pb
from ..errors import DecodeError, PywasmError
from ..multiformats.varint import encode_varint
from .keys import PrivateKey, PublicKey
from .peer_id import PeerId

# Envelopes travel inside identify, DHT and relay messages: a few KiB at most
# (an RSA-4096 key is the largest part). The bound keeps hostile input cheap.
MAX_ENVELOPE_SIZE = 64 * 1024


class EnvelopeError(DecodeError):
    """An envelope is malformed, of the wrong type, or its signature does not verify."""


@dataclass
class _EnvelopePB(pb.Message):
    public_key: bytes | None = pb.field(1, "bytes")
    payload_type: bytes | None = pb.field(2, "bytes")
    payload: bytes | None = pb.field(3, "bytes")
    signature: bytes | None = pb.field(5, "bytes")


def signing_bytes(domain: str, payload_type: bytes, payload: bytes) -> bytes:
    """What the signature covers: varint-prefixed domain, payload type and payload."""
    d = domain.encode("utf-8")
    return b"".join(
        (
            encode_varint(len(d)),
            d,
            encode_varint(len(payload_type)),
            payload_type,
            encode_varint(len(payload)),
            payload,
        )
    )


@dataclass(frozen=True)
class Envelope:
    """A signed payload; build one with :func:`seal`, check one with :func:`open_envelope`."""

    public_key: PublicKey
    payload_type: bytes
    payload: bytes
    signature: bytes

    @property
    def signer(self) -> PeerId:
        return PeerId.from_public_key(self.public_key)

    def encode(self) -> bytes:
        return _EnvelopePB(
            public_key=self.public_key.to_protobuf(),
            payload_type=self.payload_type,
            payload=self.payload,
            signature=self.signature,
        ).encode()

    async def verify(self, domain: str) -> bool:
        return await self.public_key.verify(signing_bytes(domain, self.payload_type, self.payload), self.signature)


async def seal(key: PrivateKey, domain: str, payload_type: bytes, payload: bytes) -> Envelope:
    """Sign ``payload`` for ``domain`` with ``key``."""
    if not domain:
        raise ValueError("an envelope needs a non-empty domain")
    payload_type, payload = bytes(payload_type), bytes(payload)
    signature = await key.sign(signing_bytes(domain, payload_type, payload))
    return Envelope(key.public_key, payload_type, payload, signature)


def decode_envelope(data: bytes | bytearray | memoryview) -> Envelope:
    """Parse an envelope without checking its signature (use :func:`open_envelope`)."""
    if len(data) > MAX_ENVELOPE_SIZE:
        raise EnvelopeError(f"envelope of {len(data)} bytes exceeds {MAX_ENVELOPE_SIZE}")
    try:
        msg = _EnvelopePB.decode(data)
    except PywasmError as exc:
        raise EnvelopeError(f"malformed envelope: {exc}") from None
    if msg.public_key is None or msg.signature is None:
        raise EnvelopeError("envelope without public key or signature")
    try:
        public_key = PublicKey.from_protobuf(msg.public_key)
    except PywasmError as exc:
        raise EnvelopeError(f"envelope public key is invalid: {exc}") from None
    return Envelope(public_key, msg.payload_type or b"", msg.payload or b"", msg.signature)


async def open_envelope(
    data: bytes | bytearray | memoryview, domain: str, payload_type: bytes | None = None
) -> Envelope:
    """Parse ``data`` and check its signature for ``domain`` (and its payload type, when
    given); :class:`EnvelopeError` otherwise. Only then is the payload worth decoding."""
    env = decode_envelope(data)
    if payload_type is not None and env.payload_type != payload_type:
        raise EnvelopeError(f"envelope payload type {env.payload_type.hex()} is not the expected {payload_type.hex()}")
    if not await env.verify(domain):
        raise EnvelopeError(f"envelope signature does not verify for domain {domain!r}")
    return env


__all__ = [
    "Envelope",
    "EnvelopeError",
    "MAX_ENVELOPE_SIZE",
    "decode_envelope",
    "open_envelope",
    "seal",
    "signing_bytes",
]
