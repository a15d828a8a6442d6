"""Noise_XX_25519_ChaChaPoly_SHA256 for libp2p: handshake, payload, transport framing.

Sans-IO pieces only; :mod:`pywasm.security.noise` drives them over a connection.
"""

from __future__ import annotations

from .handshake import PROTOCOL_NAME, CipherState, HandshakeState, generate_keypair
from .payload import (
    NoiseExtensions,
    NoiseHandshakePayload,
    RemoteIdentity,
    make_payload,
    select_muxer,
    verify_payload,
)
from .transport import MAX_FRAME_LEN, MAX_PLAINTEXT_LEN, FrameDecoder, NoiseTransport

__all__ = [
    "PROTOCOL_NAME",
    "CipherState",
    "HandshakeState",
    "generate_keypair",
    "NoiseExtensions",
    "NoiseHandshakePayload",
    "RemoteIdentity",
    "make_payload",
    "verify_payload",
    "select_muxer",
    "MAX_FRAME_LEN",
    "MAX_PLAINTEXT_LEN",
    "FrameDecoder",
    "NoiseTransport",
]
