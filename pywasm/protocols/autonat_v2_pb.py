"""AutoNAT v2 wire messages and the pure rules around them (libp2p/specs autonat/autonat-v2.md).

Everything here is sans-IO: message schemas (proto3, so an absent scalar means 0), the
``Message`` oneof helpers, and the server's address rules (which address to dial, whether
it costs dial data). The asyncio layer is :mod:`pywasm.services.autonat_v2`.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import Callable, Sequence

from .. import pb
from ..errors import MultiaddrError, ProtocolError
from ..multiformats.multiaddr import Multiaddr

DIAL_REQUEST = "/libp2p/autonat/2/dial-request"
DIAL_BACK = "/libp2p/autonat/2/dial-back"

# A DialDataResponse carries at most this much data (spec); a message is that plus a few
# bytes of framing, so 8 KiB bounds every message on both streams (js-libp2p uses 8192 too).
DIAL_DATA_CHUNK = 4096
MAX_MESSAGE_SIZE = 8192
# What a server may ask for before dialing another IP (spec: "SHOULD ask for 30k to 100k").
MIN_DIAL_DATA = 30_000
MAX_DIAL_DATA = 100_000


class DialStatus(enum.IntEnum):
    UNUSED = 0
    E_DIAL_ERROR = 100
    E_DIAL_BACK_ERROR = 101
    OK = 200


class ResponseStatus(enum.IntEnum):
    E_INTERNAL_ERROR = 0
    E_REQUEST_REJECTED = 100
    E_DIAL_REFUSED = 101
    OK = 200


DIAL_BACK_OK = 0


@dataclass
class DialRequest(pb.Message):
    addrs: list[bytes] = pb.field(1, "bytes", repeated=True)
    nonce: int | None = pb.field(2, "fixed64")


@dataclass
class DialResponse(pb.Message):
    status: int | None = pb.field(1, "enum")
    addr_idx: int | None = pb.field(2, "uint32")
    dial_status: int | None = pb.field(3, "enum")


@dataclass
class DialDataRequest(pb.Message):
    addr_idx: int | None = pb.field(1, "uint32")
    num_bytes: int | None = pb.field(2, "uint64")


@dataclass
class DialDataResponse(pb.Message):
    data: bytes | None = pb.field(1, "bytes")


@dataclass
class Message(pb.Message):
    """The oneof carried on ``/libp2p/autonat/2/dial-request``: exactly one field is set."""

    dial_request: DialRequest | None = pb.field(1, "message", message=DialRequest)
    dial_response: DialResponse | None = pb.field(2, "message", message=DialResponse)
    dial_data_request: DialDataRequest | None = pb.field(3, "message", message=DialDataRequest)
    dial_data_response: DialDataResponse | None = pb.field(4, "message", message=DialDataResponse)

    def which(self) -> str:
        """The name of the one field set; ProtocolError if none or several are."""
        present = [
            name
            for name in ("dial_request", "dial_response", "dial_data_request", "dial_data_response")
            if getattr(self, name) is not None
        ]
        if len(present) != 1:
            raise ProtocolError(f"autonat v2 message must carry exactly one field, got {present or 'none'}")
        return present[0]


@dataclass
class DialBack(pb.Message):
    nonce: int | None = pb.field(1, "fixed64")


@dataclass
class DialBackResponse(pb.Message):
    status: int | None = pb.field(1, "enum")


def status_name(cls: type[enum.IntEnum], value: int | None) -> str:
    try:
        return cls(value or 0).name
    except ValueError:
        return f"unknown({value})"


# --- address rules ------------------------------------------------------------------------


def ip_of(addr: Multiaddr | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The first ip4/ip6 value of ``addr`` (None for DNS, memory, ... addresses)."""
    if addr is None:
        return None
    for name, value in addr.components():
        if name in ("ip4", "ip6") and value is not None:
            try:
                return ipaddress.ip_address(value.split("%", 1)[0])
            except ValueError:
                return None
    return None


def is_public_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable: not RFC 1918, loopback, link-local, CGNAT, documentation ..."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def needs_dial_data(target: Multiaddr, observed: Multiaddr | None) -> bool:
    """Amplification rule: dialing an IP other than the requester's observed IP costs data.

    Addresses without an IP on either side (memory, DNS) count as "different": the
    server cannot prove it would only be talking back to the requester.
    """
    want, seen = ip_of(target), ip_of(observed)
    if want is None or seen is None:
        return True
    if isinstance(seen, ipaddress.IPv6Address) and seen.ipv4_mapped is not None:
        seen = seen.ipv4_mapped
    if isinstance(want, ipaddress.IPv6Address) and want.ipv4_mapped is not None:
        want = want.ipv4_mapped
    return want != seen


def select_address(
    raw_addrs: Sequence[bytes],
    can_dial: Callable[[Multiaddr], bool],
    *,
    allow_private: bool,
    max_addrs: int,
) -> tuple[int, Multiaddr] | None:
    """The server's choice: the first address (of the first ``max_addrs``) it is willing to
    dial, with its index; None when it will dial none of them (E_DIAL_REFUSED)."""
    for idx, raw in enumerate(raw_addrs[:max_addrs]):
        try:
            addr = Multiaddr(raw)
        except MultiaddrError:
            continue
        names = addr.protocols()
        # a relayed address says nothing about the client's own reachability
        if "p2p-circuit" in names:
            continue
        ip = ip_of(addr)
        if ip is not None and not allow_private and not is_public_ip(ip):
            continue
        # no IP: only a DNS name can be public (memory, unix ... are local by nature)
        if ip is None and not allow_private and not any(n in ("dns", "dns4", "dns6") for n in names):
            continue
        target = addr.without_peer_id() if addr.peer_id() is not None else addr
        if not can_dial(target):
            continue
        return idx, target
    return None


__all__ = [
    "DIAL_REQUEST",
    "DIAL_BACK",
    "DIAL_DATA_CHUNK",
    "MAX_MESSAGE_SIZE",
    "MIN_DIAL_DATA",
    "MAX_DIAL_DATA",
    "DialStatus",
    "ResponseStatus",
    "DIAL_BACK_OK",
    "DialRequest",
    "DialResponse",
    "DialDataRequest",
    "DialDataResponse",
    "Message",
    "DialBack",
    "DialBackResponse",
    "status_name",
    "ip_of",
    "is_public_ip",
    "needs_dial_data",
    "select_address",
]
