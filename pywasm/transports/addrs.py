"""Multiaddr <-> socket address helpers shared by the native transports.

Kept free of socket and asyncio imports so the pure core (and Pyodide) can use the
parsing half: a browser node also needs to know whether ``/dns4/x/tcp/443/wss`` is a
WebSocket address it could hand to its JS shim.

The "thin waist" of an IP transport address is ``/<ip4|ip6|dns|dns4|dns6>/<host>/tcp/<port>``;
transports add their own suffix (``/ws``, ``/tls/ws`` ...) and ignore a trailing
``/p2p/<peer id>``, which the host checks after the security handshake.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..errors import MultiaddrError
from ..multiformats.multiaddr import Multiaddr

# Address families, spelled as in the socket module (socket.AF_INET == 2, AF_INET6 == 10
# on Linux but differs elsewhere), so we keep our own names and map them where sockets are.
FAMILY_ANY = "any"
FAMILY_IP4 = "ip4"
FAMILY_IP6 = "ip6"

_HOST_PROTOCOLS = {
    "ip4": FAMILY_IP4,
    "ip6": FAMILY_IP6,
    "dns": FAMILY_ANY,
    "dns4": FAMILY_IP4,
    "dns6": FAMILY_IP6,
}
_IP_PROTOCOLS = ("ip4", "ip6")


@dataclass(frozen=True)
class HostPort:
    """The IP/TCP part of a multiaddr."""

    host: str
    port: int
    # FAMILY_IP4 / FAMILY_IP6 / FAMILY_ANY (``/dns/...`` resolves to either)
    family: str
    # True for /dns*/ names (resolved at dial time), False for literal IPs
    is_dns: bool


@dataclass(frozen=True)
class WsAddr:
    """A parsed WebSocket multiaddr."""

    hostport: HostPort
    secure: bool
    # TLS server name: /sni/ when given, else the DNS name; None for a bare IP over ws
    sni: str | None


def strip_peer_id(addr: Multiaddr) -> list[tuple[str, str | None]]:
    """Components of ``addr`` without one trailing ``/p2p/<id>``."""
    comps = addr.components()
    if comps and comps[-1][0] in ("p2p", "ipfs"):
        comps = comps[:-1]
    return comps


def _hostport(comps: list[tuple[str, str | None]]) -> HostPort | None:
    """The thin waist from the first two components, or None if they are not one."""
    if len(comps) < 2:
        return None
    (hproto, host), (tproto, port) = comps[0], comps[1]
    family = _HOST_PROTOCOLS.get(hproto)
    if family is None or tproto != "tcp" or host is None or port is None:
        return None
    return HostPort(host=host, port=int(port), family=family, is_dns=hproto not in _IP_PROTOCOLS)


def parse_tcp(addr: Multiaddr) -> HostPort | None:
    """``/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>[/p2p/<id>]`` -> HostPort, else None."""
    comps = strip_peer_id(addr)
    if len(comps) != 2:
        return None
    return _hostport(comps)


def parse_ws(addr: Multiaddr) -> WsAddr | None:
    """A WebSocket address -> WsAddr, else None.

    Accepted suffixes after the thin waist: ``/ws``, ``/wss``, ``/tls/ws``,
    ``/tls/sni/<name>/ws`` (the last two are the newer spelling of wss).
    """
    comps = strip_peer_id(addr)
    hp = _hostport(comps)
    if hp is None:
        return None
    rest = comps[2:]
    names = [name for name, _ in rest]
    sni: str | None = hp.host if hp.is_dns else None
    if names == ["ws"]:
        secure = False
    elif names == ["wss"] or names == ["tls", "ws"]:
        secure = True
    elif names == ["tls", "sni", "ws"]:
        secure = True
        sni = rest[1][1]
    else:
        return None
    return WsAddr(hostport=hp, secure=secure, sni=sni)


def is_listenable_ip(hp: HostPort) -> bool:
    """Listeners bind literal IPs only: a DNS name has no single socket to bind."""
    return not hp.is_dns


def sockaddr_to_multiaddr(sockaddr: tuple[object, ...] | str | None, suffix: str = "") -> Multiaddr | None:
    """``(host, port[, flow, scope])`` from getsockname/getpeername -> ``/ip4|ip6/.../tcp/<port>``.

    Returns None for what has no IP multiaddr (unix sockets, missing info).
    """
    if not isinstance(sockaddr, tuple) or len(sockaddr) < 2:
        return None
    host, port = sockaddr[0], sockaddr[1]
    if not isinstance(host, str) or not isinstance(port, int):
        return None
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; say what they are
        ip = ip.ipv4_mapped
    proto = "ip4" if ip.version == 4 else "ip6"
    try:
        return Multiaddr(f"/{proto}/{ip}/tcp/{port}{suffix}")
    except MultiaddrError:
        return None


def format_hostport(host: str, port: int) -> str:
    """``host:port`` for messages and URIs (IPv6 literals in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


__all__ = [
    "FAMILY_ANY",
    "FAMILY_IP4",
    "FAMILY_IP6",
    "HostPort",
    "WsAddr",
    "strip_peer_id",
    "parse_tcp",
    "parse_ws",
    "is_listenable_ip",
    "sockaddr_to_multiaddr",
    "format_hostport",
]
