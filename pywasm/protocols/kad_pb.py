"""Kademlia DHT wire messages (libp2p/specs kad-dht/README.md, "RPC messages").

Every message on a ``/ipfs/kad/1.0.0`` stream is one unsigned-varint-length-prefixed
``Message``; a stream may carry several request/response pairs in turn. js-libp2p and
go-libp2p encode it as proto3, so a ``type`` of ``PUT_VALUE`` (0) can be absent on the
wire: absence means 0, never an error.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .. import pb
from ..errors import ProtocolError, PywasmError
from ..identity import PeerId
from ..multiformats.multiaddr import Multiaddr

#: protocol id suffix; the full id is ``<prefix>/kad/1.0.0`` (prefix ``/ipfs`` by default)
KAD_SUFFIX = "/kad/1.0.0"
DEFAULT_PREFIX = "/ipfs"
LAN_PREFIX = "/ipfs/lan"
# go-libp2p and js-libp2p accept messages up to 4 MiB; records are small, peers lists are
# 20 entries: 1 MiB bounds what one peer can make us buffer per stream.
MAX_MESSAGE_SIZE = 1024 * 1024
# peers taken from one closerPeers/providerPeers list, addresses per peer
MAX_PEERS_PER_MESSAGE = 64
MAX_ADDRS_PER_PEER = 32


def protocol_id(prefix: str = DEFAULT_PREFIX) -> str:
    return prefix.rstrip("/") + KAD_SUFFIX


class MessageType(enum.IntEnum):
    PUT_VALUE = 0
    GET_VALUE = 1
    ADD_PROVIDER = 2
    GET_PROVIDERS = 3
    FIND_NODE = 4
    PING = 5


class ConnectionType(enum.IntEnum):
    NOT_CONNECTED = 0
    CONNECTED = 1
    CAN_CONNECT = 2
    CANNOT_CONNECT = 3


@dataclass
class RecordPB(pb.Message):
    key: bytes | None = pb.field(1, "bytes")
    value: bytes | None = pb.field(2, "bytes")
    # RFC 3339 time the receiver stored it; informative only
    time_received: str | None = pb.field(5, "string")


@dataclass
class PeerPB(pb.Message):
    id: bytes | None = pb.field(1, "bytes")
    addrs: list[bytes] = pb.field(2, "bytes", repeated=True)
    # decoded as a plain int: an unknown connection type must not void the whole message
    connection: int | None = pb.field(3, "enum")


@dataclass
class MessagePB(pb.Message):
    type: int | None = pb.field(1, "enum")
    key: bytes | None = pb.field(2, "bytes")
    record: RecordPB | None = pb.field(3, "message", message=RecordPB)
    closer_peers: list[PeerPB] = pb.field(8, "message", repeated=True, message=PeerPB)
    provider_peers: list[PeerPB] = pb.field(9, "message", repeated=True, message=PeerPB)
    cluster_level_raw: int | None = pb.field(10, "int32")

    @property
    def msg_type(self) -> MessageType:
        raw = 0 if self.type is None else self.type
        try:
            return MessageType(raw)
        except ValueError:
            raise ProtocolError(f"kad: unknown message type {raw}") from None


def decode_message(data: bytes, max_size: int = MAX_MESSAGE_SIZE) -> MessagePB:
    msg = MessagePB.decode(data, max_size=max_size)
    msg.msg_type  # raises ProtocolError for an unknown type
    return msg


# Answers repeat the same peers and addresses over and over; parsing a peer id (which
# checks its embedded key) and a multiaddr costs more than the rest of a message. Both
# are immutable, so parsed values are memoized in small bounded caches (cleared when full).
_CACHE_SIZE = 8192
_peer_cache: dict[bytes, PeerId] = {}
_addr_cache: dict[bytes, Multiaddr | None] = {}


def _parse_peer(raw: bytes) -> PeerId:
    pid = _peer_cache.get(raw)
    if pid is None:
        pid = PeerId.from_bytes(raw)  # raises on invalid input: nothing cached then
        if len(_peer_cache) >= _CACHE_SIZE:
            _peer_cache.clear()
        _peer_cache[raw] = pid
    return pid


def _parse_addr(raw: bytes) -> Multiaddr | None:
    """The transport address of ``raw`` (a trailing /p2p/ removed); None if invalid."""
    if raw in _addr_cache:
        return _addr_cache[raw]
    ma: Multiaddr | None
    try:
        ma = Multiaddr(raw)
        if ma.protocols()[-1:] == ["p2p"]:
            ma = ma.without_peer_id()
        if not ma:
            ma = None
    except PywasmError:
        ma = None
    if len(_addr_cache) >= _CACHE_SIZE:
        _addr_cache.clear()
    _addr_cache[raw] = ma
    return ma


@dataclass(frozen=True)
class PeerInfo:
    """A peer as carried in closerPeers/providerPeers, parsed and bounded."""

    peer_id: PeerId
    addrs: tuple[Multiaddr, ...] = ()


def encode_peer(info: PeerInfo, connection: ConnectionType = ConnectionType.NOT_CONNECTED) -> PeerPB:
    return PeerPB(
        id=info.peer_id.to_bytes(),
        addrs=[a.to_bytes() for a in info.addrs[:MAX_ADDRS_PER_PEER]],
        connection=int(connection),
    )


def decode_peers(peers: list[PeerPB]) -> list[PeerInfo]:
    """Valid entries of a peers list; malformed ids or addresses are dropped one by one
    (one bad entry from a remote must not void the others)."""
    out: list[PeerInfo] = []
    seen: set[PeerId] = set()
    for p in peers[:MAX_PEERS_PER_MESSAGE]:
        if not p.id:
            continue
        try:
            pid = _parse_peer(p.id)
        except PywasmError:
            continue
        if pid in seen:
            continue
        seen.add(pid)
        addrs: list[Multiaddr] = []
        for raw in p.addrs[:MAX_ADDRS_PER_PEER]:
            ma = _parse_addr(raw)
            if ma is not None and ma not in addrs:
                addrs.append(ma)
        out.append(PeerInfo(pid, tuple(addrs)))
    return out


__all__ = [
    "KAD_SUFFIX",
    "DEFAULT_PREFIX",
    "LAN_PREFIX",
    "MAX_MESSAGE_SIZE",
    "protocol_id",
    "MessageType",
    "ConnectionType",
    "RecordPB",
    "PeerPB",
    "MessagePB",
    "PeerInfo",
    "decode_message",
    "encode_peer",
    "decode_peers",
]
