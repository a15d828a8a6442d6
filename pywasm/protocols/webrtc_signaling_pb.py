"""``/webrtc-signaling/0.0.1`` messages (libp2p/specs webrtc/webrtc.md, "Signaling Protocol").

The dialer of a private-to-private WebRTC connection opens this protocol on the relayed
(limited) connection to the listener; both sides then exchange varint-length-prefixed::

    message Message {
      enum Type { SDP_OFFER = 0; SDP_ANSWER = 1; ICE_CANDIDATE = 2; }
      optional Type type = 1;
      optional string data = 2;
    }

``data`` is ``RTCSessionDescription.sdp`` for offer and answer, and the JSON of
``RTCIceCandidate.toJSON()`` for a candidate (``null`` or ``""``: end of candidates, as
js-libp2p reads them). Pure Python, no I/O.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import Any

from .. import pb
from ..errors import DecodeError, HandshakeTimeoutError, ProtocolError
from ..streams import encode_lp

SIGNALING_PROTOCOL = "/webrtc-signaling/0.0.1"
# An SDP of a data-channel-only session is ~600 bytes, a candidate ~200; Chromium's with
# many interfaces stays far below this. js-libp2p allows its default 4 MiB; we need less.
MAX_MESSAGE_SIZE = 64 * 1024


class SignalingType(enum.IntEnum):
    SDP_OFFER = 0
    SDP_ANSWER = 1
    ICE_CANDIDATE = 2


class SignalingError(ProtocolError):
    """The remote broke the signaling exchange (wrong message, malformed, ended early)."""


@dataclass
class SignalingMessage(pb.Message):
    # kept as a plain int: an unknown type is the caller's protocol error, not a decode one
    type: int | None = pb.field(1, "enum")
    data: str | None = pb.field(2, "string")


def encode_signaling(kind: SignalingType, data: str) -> bytes:
    """One framed message, length prefix included."""
    body = SignalingMessage(type=int(kind), data=data).encode()
    if len(body) > MAX_MESSAGE_SIZE:
        raise SignalingError(f"signaling message of {len(body)} bytes exceeds {MAX_MESSAGE_SIZE}")
    return encode_lp(body)


async def read_signaling(stream: Any, timeout: float, what: str) -> SignalingMessage | None:
    """The next message, or None on a clean end of stream; typed errors otherwise."""
    try:
        data = await asyncio.wait_for(stream.read_lp(MAX_MESSAGE_SIZE), timeout)
    except asyncio.TimeoutError:
        raise HandshakeTimeoutError(f"no {what} within {timeout:g} s") from None
    if data is None:
        return None
    try:
        return SignalingMessage.decode(data)
    except DecodeError as exc:
        raise SignalingError(f"malformed signaling message ({what}): {exc}") from None


__all__ = [
    "SIGNALING_PROTOCOL",
    "MAX_MESSAGE_SIZE",
    "SignalingType",
    "SignalingError",
    "SignalingMessage",
    "encode_signaling",
    "read_signaling",
]
