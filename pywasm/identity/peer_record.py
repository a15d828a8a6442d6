"""Peer records (libp2p/specs RFC 0003): a peer's addresses, signed by the peer itself.

A record travels in a signed envelope with domain ``libp2p-peer-record`` and payload type
``0x03 0x01`` (multicodec ``libp2p-peer-record`` as two bytes, like go and js). Opening
one checks the signature first and then that the record's peer id is the signer's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .. import pb
from ..errors import PywasmError
from ..multiformats.multiaddr import Multiaddr
from .envelope import Envelope, EnvelopeError, open_envelope, seal
from .keys import PrivateKey
from .peer_id import PeerId

PEER_RECORD_DOMAIN = "libp2p-peer-record"
PEER_RECORD_PAYLOAD_TYPE = bytes([0x03, 0x01])
# Addresses taken from one record (identify bounds its address list the same way).
MAX_RECORD_ADDRS = 64


@dataclass
class _AddressInfoPB(pb.Message):
    multiaddr: bytes | None = pb.field(1, "bytes")


@dataclass
class _PeerRecordPB(pb.Message):
    peer_id: bytes | None = pb.field(1, "bytes")
    seq: int | None = pb.field(2, "uint64")
    addresses: list[_AddressInfoPB] = pb.field(3, "message", repeated=True, message=_AddressInfoPB)


@dataclass
class PeerRecord:
    peer_id: PeerId
    seq: int
    addrs: list[Multiaddr] = field(default_factory=list)

    def encode(self) -> bytes:
        return _PeerRecordPB(
            peer_id=self.peer_id.to_bytes(),
            seq=self.seq,
            addresses=[_AddressInfoPB(a.to_bytes()) for a in self.addrs],
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> "PeerRecord":
        try:
            msg = _PeerRecordPB.decode(data)
            if msg.peer_id is None:
                raise EnvelopeError("peer record without peer id")
            peer = PeerId.from_bytes(msg.peer_id)
        except EnvelopeError:
            raise
        except PywasmError as exc:
            raise EnvelopeError(f"malformed peer record: {exc}") from None
        addrs: list[Multiaddr] = []
        for info in msg.addresses[:MAX_RECORD_ADDRS]:
            if info.multiaddr is None:
                continue
            try:
                addrs.append(Multiaddr(info.multiaddr))
            except PywasmError:
                continue  # one unknown address must not void the record
        return cls(peer, msg.seq or 0, addrs)


def next_seq() -> int:
    """A sequence number that grows across restarts without stored state (RFC 0003 allows
    the time): milliseconds, so two records made within one second still differ."""
    return time.time_ns() // 1_000_000


async def seal_peer_record(key: PrivateKey, addrs: list[Multiaddr], seq: int | None = None) -> Envelope:
    record = PeerRecord(PeerId.from_public_key(key.public_key), next_seq() if seq is None else seq, list(addrs))
    return await seal(key, PEER_RECORD_DOMAIN, PEER_RECORD_PAYLOAD_TYPE, record.encode())


async def open_peer_record(data: bytes | bytearray | memoryview) -> tuple[Envelope, PeerRecord]:
    """Verify a signed peer record; :class:`EnvelopeError` if the signature, type or
    signer does not check out."""
    env = await open_envelope(data, PEER_RECORD_DOMAIN, PEER_RECORD_PAYLOAD_TYPE)
    record = PeerRecord.decode(env.payload)
    if record.peer_id != env.signer:
        raise EnvelopeError(f"peer record for {record.peer_id} is signed by {env.signer}")
    return env, record


__all__ = [
    "PEER_RECORD_DOMAIN",
    "PEER_RECORD_PAYLOAD_TYPE",
    "PeerRecord",
    "next_seq",
    "open_peer_record",
    "seal_peer_record",
]
