"""Wire messages of pubsub (floodsub, gossipsub v1.0/v1.1/v1.2).

libp2p/specs pubsub/README.md and pubsub/gossipsub/gossipsub-v1.{0,1,2}.md: every frame on a
pubsub stream is one varint-length-prefixed ``RPC``. ``Message.topic`` is field 4, which
older peers declared ``repeated string topicIDs``; the encoding of one value is the same,
and our decoder keeps the last one if a peer sends several. ``ControlIDontWant`` (field 5
of ``ControlMessage``) is v1.2; ``PeerInfo`` in PRUNE carries peer exchange (v1.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import pb


@dataclass
class SubOpts(pb.Message):
    subscribe: bool | None = pb.field(1, "bool")
    topic: str | None = pb.field(2, "string")


@dataclass
class MessagePB(pb.Message):
    from_peer: bytes | None = pb.field(1, "bytes")
    data: bytes | None = pb.field(2, "bytes")
    seqno: bytes | None = pb.field(3, "bytes")
    topic: str | None = pb.field(4, "string")
    signature: bytes | None = pb.field(5, "bytes")
    key: bytes | None = pb.field(6, "bytes")


@dataclass
class ControlIHave(pb.Message):
    topic: str | None = pb.field(1, "string")
    message_ids: list[bytes] = pb.field(2, "bytes", repeated=True)


@dataclass
class ControlIWant(pb.Message):
    message_ids: list[bytes] = pb.field(1, "bytes", repeated=True)


@dataclass
class ControlGraft(pb.Message):
    topic: str | None = pb.field(1, "string")


@dataclass
class PeerInfoPB(pb.Message):
    peer_id: bytes | None = pb.field(1, "bytes")
    signed_peer_record: bytes | None = pb.field(2, "bytes")


@dataclass
class ControlPrune(pb.Message):
    topic: str | None = pb.field(1, "string")
    peers: list[PeerInfoPB] = pb.field(2, "message", repeated=True, message=PeerInfoPB)
    backoff: int | None = pb.field(3, "uint64")


@dataclass
class ControlIDontWant(pb.Message):
    message_ids: list[bytes] = pb.field(1, "bytes", repeated=True)


@dataclass
class ControlMessage(pb.Message):
    ihave: list[ControlIHave] = pb.field(1, "message", repeated=True, message=ControlIHave)
    iwant: list[ControlIWant] = pb.field(2, "message", repeated=True, message=ControlIWant)
    graft: list[ControlGraft] = pb.field(3, "message", repeated=True, message=ControlGraft)
    prune: list[ControlPrune] = pb.field(4, "message", repeated=True, message=ControlPrune)
    idontwant: list[ControlIDontWant] = pb.field(5, "message", repeated=True, message=ControlIDontWant)

    def is_empty(self) -> bool:
        return not (self.ihave or self.iwant or self.graft or self.prune or self.idontwant)


@dataclass
class RPC(pb.Message):
    subscriptions: list[SubOpts] = pb.field(1, "message", repeated=True, message=SubOpts)
    publish: list[MessagePB] = pb.field(2, "message", repeated=True, message=MessagePB)
    control: ControlMessage | None = pb.field(3, "message", message=ControlMessage)

    def is_empty(self) -> bool:
        return not self.subscriptions and not self.publish and (self.control is None or self.control.is_empty())


def signing_payload(msg: MessagePB) -> bytes:
    """What a StrictSign signature covers: the prefix plus the message without
    ``signature`` and ``key`` (pubsub/README.md, "Message Signing")."""
    bare = MessagePB(from_peer=msg.from_peer, data=msg.data, seqno=msg.seqno, topic=msg.topic)
    return SIGN_PREFIX + bare.encode()


SIGN_PREFIX = b"libp2p-pubsub:"

__all__ = [
    "RPC",
    "SubOpts",
    "MessagePB",
    "ControlMessage",
    "ControlIHave",
    "ControlIWant",
    "ControlGraft",
    "ControlPrune",
    "ControlIDontWant",
    "PeerInfoPB",
    "SIGN_PREFIX",
    "signing_payload",
]
