"""Pubsub messages as the application sees them, plus signing and signature checks.

StrictSign (pubsub/README.md, "Message Signing"): ``from`` is the author's peer id bytes,
``seqno`` 8 big-endian bytes, ``signature`` signs ``b"libp2p-pubsub:" + Message`` without
``signature`` and ``key``; ``key`` carries the public key only when the peer id cannot
inline it (RSA). StrictNoSign: none of the four fields may be present.
"""

from __future__ import annotations

import enum
import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import PywasmError, ProtocolError
from ..identity import PeerId, PublicKey
from ..protocols.pubsub_pb import MessagePB, signing_payload
from .config import SignaturePolicy

if TYPE_CHECKING:
    from ..identity import PrivateKey


class PubsubError(PywasmError):
    """A pubsub operation failed (bad topic, message too large, stopped service ...)."""


class PubsubProtocolError(ProtocolError):
    """A peer sent pubsub bytes that do not decode or break a framing rule."""


class ValidationResult(enum.Enum):
    ACCEPT = "accept"
    #: invalid: not forwarded, and the sender's score is penalized (P4)
    REJECT = "reject"
    #: not forwarded, no penalty (e.g. a message we cannot judge)
    IGNORE = "ignore"


@dataclass(frozen=True)
class PubsubMessage:
    """One message; ``msg_id`` is set by the router (the configured msg-id function)."""

    topic: str
    data: bytes
    from_peer: bytes | None = None
    seqno: bytes | None = None
    signature: bytes | None = None
    key: bytes | None = None
    msg_id: bytes = b""
    #: the neighbour that handed it to us (None for our own messages)
    received_from: PeerId | None = None

    @property
    def author(self) -> PeerId | None:
        if not self.from_peer:
            return None
        try:
            return PeerId.from_bytes(self.from_peer)
        except PywasmError:
            return None

    @classmethod
    def from_pb(cls, pbm: MessagePB, received_from: PeerId | None = None) -> "PubsubMessage":
        return cls(
            topic=pbm.topic or "",
            data=pbm.data or b"",
            from_peer=pbm.from_peer,
            seqno=pbm.seqno,
            signature=pbm.signature,
            key=pbm.key,
            received_from=received_from,
        )

    def to_pb(self) -> MessagePB:
        return MessagePB(
            from_peer=self.from_peer, data=self.data, seqno=self.seqno, topic=self.topic,
            signature=self.signature, key=self.key,
        )


class SeqnoCounter:
    """Our seqnos: start from the clock in nanoseconds (as go does) so a restarted node
    does not reuse ids it used before, then count up."""

    def __init__(self, start: int | None = None) -> None:
        self._next = itertools.count(start if start is not None else time.time_ns())

    def next(self) -> bytes:
        return (next(self._next) & ((1 << 64) - 1)).to_bytes(8, "big")


async def sign_message(key: "PrivateKey", local: PeerId, topic: str, data: bytes, seqno: bytes) -> MessagePB:
    msg = MessagePB(from_peer=local.to_bytes(), data=data, seqno=seqno, topic=topic)
    msg.signature = await key.sign(signing_payload(msg))
    if local.public_key() is None:  # e.g. RSA: the id is a hash, the key must travel along
        msg.key = key.public_key.to_protobuf()
    return msg


async def check_signature_policy(msg: MessagePB, policy: SignaturePolicy) -> str | None:
    """None when ``msg`` satisfies ``policy``, else why not (the message is then rejected)."""
    if policy is SignaturePolicy.STRICT_NO_SIGN:
        if msg.from_peer is not None or msg.seqno is not None or msg.signature is not None or msg.key is not None:
            return "strict_no_sign: message carries from/seqno/signature/key"
        return None
    if not msg.from_peer or msg.signature is None:
        return "strict_sign: unsigned message"
    if msg.seqno is None or len(msg.seqno) != 8:
        return "strict_sign: seqno missing or not 8 bytes"
    try:
        author = PeerId.from_bytes(msg.from_peer)
    except PywasmError:
        return "strict_sign: from is not a peer id"
    pub: PublicKey | None
    try:
        if msg.key is not None:
            pub = PublicKey.from_protobuf(msg.key)
            if not author.matches_public_key(pub):
                return "strict_sign: key does not match from"
        else:
            pub = author.public_key()
    except PywasmError:
        return "strict_sign: invalid key"
    if pub is None:
        return "strict_sign: no public key for the author"
    try:
        ok = await pub.verify(signing_payload(msg), msg.signature)
    except PywasmError:
        ok = False
    return None if ok else "strict_sign: bad signature"


__all__ = [
    "PubsubMessage",
    "PubsubError",
    "PubsubProtocolError",
    "ValidationResult",
    "SeqnoCounter",
    "sign_message",
    "check_signature_policy",
]
