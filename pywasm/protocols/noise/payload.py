"""The libp2p Noise handshake payload (noise spec, "The libp2p Handshake Payload").

Messages 2 (responder) and 3 (initiator) of the XX handshake carry, encrypted::

    message NoiseExtensions {
        repeated bytes webtransport_certhashes = 1;
        repeated string stream_muxers = 2;
    }
    message NoiseHandshakePayload {
        optional bytes identity_key = 1;           // libp2p PublicKey protobuf
        optional bytes identity_sig = 2;           // sig("noise-libp2p-static-key:" || s)
        optional NoiseExtensions extensions = 4;
    }

The signature binds the sender's Noise static X25519 key to its libp2p identity key;
the receiver checks it with the identity key from the same payload, then derives the
peer id from that key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from ... import pb
from ...errors import NoiseError, PywasmError

if TYPE_CHECKING:
    from ...identity import PeerId, PrivateKey, PublicKey

SIGNATURE_PREFIX = b"noise-libp2p-static-key:"
# Bounds on what a remote may put in its extensions. A handshake message is at most
# 64 KiB anyway; these stop a peer from handing the upper layers absurd lists.
MAX_STREAM_MUXERS = 64
MAX_CERTHASHES = 16
MAX_IDENTITY_KEY_LEN = 8 * 1024  # an RSA-4096 SPKI protobuf is ~550 bytes; leave room


@dataclass
class NoiseExtensions(pb.Message):
    webtransport_certhashes: list[bytes] = pb.field(1, "bytes", repeated=True)
    stream_muxers: list[str] = pb.field(2, "string", repeated=True)


@dataclass
class NoiseHandshakePayload(pb.Message):
    identity_key: bytes | None = pb.field(1, "bytes")
    identity_sig: bytes | None = pb.field(2, "bytes")
    extensions: NoiseExtensions | None = pb.field(4, "message", message=NoiseExtensions)


@dataclass(frozen=True)
class RemoteIdentity:
    """What a verified handshake payload tells us about the remote."""

    public_key: "PublicKey"
    peer_id: "PeerId"
    stream_muxers: tuple[str, ...]
    webtransport_certhashes: tuple[bytes, ...]
    # whether the remote sent an extensions message at all
    has_extensions: bool


def signed_data(static_public: bytes) -> bytes:
    """The bytes the identity key signs: prefix || X25519 static public key."""
    return SIGNATURE_PREFIX + bytes(static_public)


async def make_payload(
    private_key: "PrivateKey",
    static_public: bytes,
    *,
    stream_muxers: Sequence[str] = (),
    webtransport_certhashes: Sequence[bytes] = (),
    signature: bytes | None = None,
) -> bytes:
    """Encode our payload; ``signature`` may be a cached signature of ``static_public``."""
    if signature is None:
        signature = await private_key.sign(signed_data(static_public))
    extensions = None
    if stream_muxers or webtransport_certhashes:
        extensions = NoiseExtensions(
            webtransport_certhashes=[bytes(h) for h in webtransport_certhashes],
            stream_muxers=list(stream_muxers),
        )
    return NoiseHandshakePayload(
        identity_key=private_key.public_key.to_protobuf(),
        identity_sig=signature,
        extensions=extensions,
    ).encode()


def decode_payload(data: bytes | bytearray | memoryview) -> NoiseHandshakePayload:
    """Parse a payload; :class:`NoiseError` if it is malformed or over our bounds."""
    try:
        msg = NoiseHandshakePayload.decode(data)
    except PywasmError as exc:
        raise NoiseError(f"malformed Noise handshake payload: {exc}") from exc
    if not msg.identity_key:
        raise NoiseError("Noise handshake payload has no identity key")
    if not msg.identity_sig:
        raise NoiseError("Noise handshake payload has no identity signature")
    if len(msg.identity_key) > MAX_IDENTITY_KEY_LEN:
        raise NoiseError("identity key in the Noise handshake payload is too large")
    ext = msg.extensions
    if ext is not None:
        if len(ext.stream_muxers) > MAX_STREAM_MUXERS:
            raise NoiseError(f"more than {MAX_STREAM_MUXERS} stream muxers in Noise extensions")
        if len(ext.webtransport_certhashes) > MAX_CERTHASHES:
            raise NoiseError(f"more than {MAX_CERTHASHES} certhashes in Noise extensions")
    return msg


async def verify_payload(
    data: bytes | bytearray | memoryview, remote_static: bytes
) -> RemoteIdentity:
    """Decode ``data`` and check its signature over ``remote_static``.

    Raises :class:`NoiseError` for a malformed payload, an unusable identity key or a
    signature that does not verify.
    """
    from ...identity import PeerId, PublicKey  # lazy: identity imports the crypto backend

    msg = decode_payload(data)
    try:
        public_key = PublicKey.from_protobuf(bytes(msg.identity_key or b""))
    except PywasmError as exc:
        raise NoiseError(f"bad identity key in Noise handshake payload: {exc}") from exc
    try:
        ok = await public_key.verify(signed_data(remote_static), bytes(msg.identity_sig or b""))
    except PywasmError as exc:
        raise NoiseError(f"cannot verify the Noise static key signature: {exc}") from exc
    if not ok:
        raise NoiseError("Noise static key signature does not verify")
    try:
        peer_id = PeerId.from_public_key(public_key)
    except PywasmError as exc:
        raise NoiseError(f"cannot derive a peer id from the remote key: {exc}") from exc
    ext = msg.extensions
    return RemoteIdentity(
        public_key=public_key,
        peer_id=peer_id,
        stream_muxers=tuple(ext.stream_muxers) if ext else (),
        webtransport_certhashes=tuple(bytes(h) for h in ext.webtransport_certhashes) if ext else (),
        has_extensions=ext is not None,
    )


def select_muxer(initiator_muxers: Sequence[str], responder_muxers: Sequence[str]) -> str | None:
    """Early muxer negotiation: the initiator's first muxer that the responder supports.

    ``None`` when either list is empty or they share nothing; the connection then
    negotiates its muxer with multistream-select as usual (go-libp2p does the same).
    """
    offered = set(responder_muxers)
    for muxer in initiator_muxers:
        if muxer in offered:
            return muxer
    return None


__all__ = [
    "SIGNATURE_PREFIX",
    "NoiseExtensions",
    "NoiseHandshakePayload",
    "RemoteIdentity",
    "signed_data",
    "make_payload",
    "decode_payload",
    "verify_payload",
    "select_muxer",
]
