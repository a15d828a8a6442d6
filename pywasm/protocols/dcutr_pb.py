"""DCUtR wire message (libp2p/specs relay/DCUtR.md): one proto2 ``HolePunch`` per frame."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .. import pb
from ..errors import MultiaddrError, ProtocolError
from ..multiformats.multiaddr import Multiaddr

DCUTR = "/libp2p/dcutr"
# go-libp2p and js-libp2p cap a HolePunch at 4 KiB
MAX_MESSAGE_SIZE = 4096
# addresses taken from one CONNECT (the rest are ignored)
MAX_ADDRS = 16


class HolePunchType(enum.IntEnum):
    CONNECT = 100
    SYNC = 300


@dataclass
class HolePunch(pb.Message):
    type: int = pb.field(1, "enum", required=True, enum=HolePunchType)
    obs_addrs: list[bytes] = pb.field(2, "bytes", repeated=True)


def parse(data: bytes, expected: HolePunchType) -> HolePunch:
    msg = HolePunch.decode(data, max_size=MAX_MESSAGE_SIZE)
    if msg.type != expected:
        raise ProtocolError(f"dcutr: expected {expected.name}, got {HolePunchType(msg.type).name}")
    return msg


def direct_addrs(raw: list[bytes]) -> list[Multiaddr]:
    """The dialable direct addresses of a CONNECT: parseable, not relayed, no duplicates."""
    out: list[Multiaddr] = []
    for item in raw[:MAX_ADDRS]:
        try:
            ma = Multiaddr(item)
        except MultiaddrError:
            continue
        if "p2p-circuit" in ma.protocols():
            continue
        if ma.peer_id() is not None:
            ma = ma.without_peer_id()
        if ma not in out:
            out.append(ma)
    return out


__all__ = ["DCUTR", "MAX_MESSAGE_SIZE", "MAX_ADDRS", "HolePunchType", "HolePunch", "parse", "direct_addrs"]
