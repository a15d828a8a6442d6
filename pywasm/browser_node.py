"""The Python side of ``createNode()`` (browser/src/index.mjs): a Host with the browser
transports and a few small async helpers that the JS wrapper (or a PyScript page) calls.

Runs inside Pyodide after the bootstrap has registered the JS shims ``pywasm_crypto_js``
and ``pywasm_websocket_js``. Importing this module needs neither; :func:`create` does.

Python callers (PyScript) use :class:`BrowserNode` directly: its methods raise pywasm's
typed errors (:class:`~pywasm.errors.DialError` and friends). The JS wrapper goes through
:func:`js_call`, which turns any failure into ``[False, error type, one-line message]`` so
JS can reject with a clean ``Error`` instead of a Python traceback.

Every network operation is bounded: dials by ``dial_timeout`` (seconds), pings by
``ping_timeout``, and the whole helper call by their sum, so nothing the page awaits hangs.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import ConfigError, DialError, PywasmError
from .host import Host, HostConfig
from .host.connection import Connection
from .identity import PeerId
from .multiformats.multiaddr import Multiaddr

#: Default bound on one dial (WebSocket open + Noise + muxer negotiation), seconds.
DEFAULT_DIAL_TIMEOUT = 10.0
#: Default bound on one ping round trip (stream open + 32 bytes each way), seconds.
DEFAULT_PING_TIMEOUT = 10.0


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


@dataclass(frozen=True)
class ConnectionInfo:
    """What the demo page shows about one live connection."""

    peer: str
    addr: str
    direction: str
    muxer: str
    security: str

    def to_dict(self) -> dict[str, str]:
        return {
            "peer": self.peer,
            "addr": self.addr,
            "direction": self.direction,
            "muxer": self.muxer,
            "security": self.security,
        }


class BrowserNode:
    """A started Host plus the helpers ``createNode()`` exposes."""

    def __init__(self, host: Host, *, dial_timeout: float, ping_timeout: float) -> None:
        self.host = host
        self.dial_timeout = dial_timeout
        self.ping_timeout = ping_timeout

    @property
    def peer_id(self) -> str:
        return str(self.host.peer_id)

    def addrs(self) -> list[str]:
        """Listen addresses (empty in a browser: it cannot listen)."""
        return [str(a) for a in self.host.addrs()]

    def connections(self) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        for c in self.host.connections:
            out.append(
                ConnectionInfo(
                    peer=str(c.remote_peer),
                    addr=str(c.remote_addr) if c.remote_addr is not None else "",
                    direction=str(getattr(c.direction, "value", c.direction)),
                    muxer=str(c.muxer_protocol or ""),
                    security=str(c.security_protocol or ""),
                ).to_dict()
            )
        return out

    def _parse(self, maddr: str) -> Multiaddr:
        if not isinstance(maddr, str) or not maddr.strip():
            raise DialError("empty multiaddr: pass e.g. /ip4/127.0.0.1/tcp/4002/ws/p2p/<peer id>")
        try:
            ma = Multiaddr(maddr.strip())
        except PywasmError as exc:
            raise DialError(f"invalid multiaddr {maddr[:200]!r}: {_one_line(exc)}") from None
        if not any(t.can_dial(ma) for t in self.host.transports):
            missing = _missing_browser_api(ma)
            if missing:
                raise DialError(f"cannot dial {ma}: {missing}; this page can dial /ws and /wss addresses")
            raise DialError(
                f"unsupported multiaddr {ma}: this node dials only /ws, /wss, /webrtc-direct and "
                "/quic-v1/webtransport/certhash/... addresses "
                "(e.g. /ip4/127.0.0.1/tcp/4002/ws/p2p/<peer id>)"
            )
        return ma

    async def connect(self, maddr: str) -> Connection:
        """Dial (or reuse a live connection to) ``maddr``; returns the Connection."""
        ma = self._parse(maddr)
        try:
            return await asyncio.wait_for(self.host.dial(ma, timeout=self.dial_timeout), self.dial_timeout + 1.0)
        except asyncio.TimeoutError:
            raise DialError(f"dial to {ma} timed out after {self.dial_timeout:g} s") from None

    async def dial(self, maddr: str) -> str:
        """Connect to ``maddr``; returns the remote peer id (base58 text)."""
        conn = await self.connect(maddr)
        return str(conn.remote_peer)

    async def ping(self, maddr: str) -> float:
        """Dial if needed, then one ping round trip; returns the RTT in milliseconds."""
        conn = await self.connect(maddr)
        try:
            rtt = await asyncio.wait_for(self.host.services["ping"].ping(conn), self.ping_timeout)
        except asyncio.TimeoutError:
            raise DialError(f"no ping answer from {conn.remote_peer} within {self.ping_timeout:g} s") from None
        return rtt * 1000.0

    async def echo(self, maddr: str, nbytes: int, *, timeout: float = 120.0) -> dict[str, Any]:
        """Dial if needed, then send ``nbytes`` of pseudo-random bytes over ``/echo/1.0.0``
        and compare what comes back; returns ``{sent, received, equal, ms, muxer}``."""
        if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 0:
            raise ConfigError(f"nbytes must be a non-negative integer, not {nbytes!r}")
        conn = await self.connect(maddr)
        # deterministic, non-repeating at small periods: the echo must be byte-exact
        data = hashlib.shake_256(b"pywasm-echo-%d" % nbytes).digest(nbytes) if nbytes else b""
        t0 = time.perf_counter()
        try:
            got = await asyncio.wait_for(self.host.services["echo"].echo(conn, data), timeout)
        except asyncio.TimeoutError:
            raise DialError(f"echo of {nbytes} bytes to {conn.remote_peer} timed out after {timeout:g} s") from None
        ms = (time.perf_counter() - t0) * 1000.0
        return {
            "sent": len(data),
            "received": len(got),
            "equal": got == data,
            "ms": ms,
            "muxer": str(conn.muxer_protocol or ""),
            "security": str(conn.security_protocol or ""),
        }

    async def identify(self, maddr: str) -> dict[str, Any]:
        """Dial if needed; the remote's identify answer as a plain dict."""
        conn = await self.connect(maddr)
        svc = self.host.services["identify"]
        try:
            info = await asyncio.wait_for(svc.identified(conn), self.dial_timeout + self.ping_timeout)
        except asyncio.TimeoutError:
            raise DialError(f"no identify answer from {conn.remote_peer}") from None
        return {
            "peer": str(info.peer_id),
            "agent_version": info.agent_version or "",
            "protocol_version": info.protocol_version or "",
            "protocols": [str(p) for p in info.protocols],
            "listen_addrs": [str(a) for a in info.listen_addrs],
            "observed_addr": str(info.observed_addr) if info.observed_addr is not None else "",
        }

    async def listen(self, maddr: str) -> list[str]:
        """Listen on ``maddr``; in a page that means through a relay:
        ``<relay addr>/p2p/<relay id>/p2p-circuit`` (a reservation) or the same with
        ``/webrtc`` appended (a reservation plus private-to-private WebRTC). Returns the
        new addresses, each ending with our ``/p2p/<id>``."""
        if not isinstance(maddr, str) or not maddr.strip():
            raise ConfigError("empty multiaddr: pass e.g. <relay addr>/p2p/<relay id>/p2p-circuit/webrtc")
        timeout = self.dial_timeout * 2 + 1.0
        try:
            bound = await asyncio.wait_for(self.host.listen(maddr.strip()), timeout)
        except asyncio.TimeoutError:
            raise DialError(f"listening on {maddr.strip()} timed out after {timeout:g} s") from None
        return [str(a) for a in bound]

    async def stop(self) -> None:
        await self.host.stop()


async def create(
    *,
    dial_timeout: float = DEFAULT_DIAL_TIMEOUT,
    ping_timeout: float = DEFAULT_PING_TIMEOUT,
    agent_version: str | None = None,
    muxers: Sequence[str] | None = None,
) -> BrowserNode:
    """Create and start a Host for the browser: WebSocket (JS shim) transport, Noise,
    yamux/mplex, and the default services (identify, ping, echo, perf).

    ``muxers``: the stream muxers to offer, most preferred first, by name (``"yamux"``,
    ``"mplex"``) or protocol id; default (None): the Host's defaults."""
    for name, value in (("dial_timeout", dial_timeout), ("ping_timeout", ping_timeout)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{name} must be a positive number of seconds, not {value!r}")
    from .crypto import web as _web  # noqa: F401  (fails early, clearly, without the shim)
    from .transports.browser_websocket import BrowserWebSocketTransport, _load_js

    muxer_factories = _muxers(muxers) if muxers is not None else None
    _load_js()  # TransportError naming the missing registration, before any dial
    extra: dict[str, Any] = {"agent_version": agent_version} if agent_version else {}
    cfg = HostConfig(dial_timeout=float(dial_timeout), **extra)
    more: dict[str, Any] = {"muxers": muxer_factories} if muxer_factories is not None else {}
    from .services import default_services
    from .services.relay_client import RelayClientService
    from .transports.circuit import CircuitTransport

    host = await Host.create(
        listen=[],
        transports=[BrowserWebSocketTransport(dial_timeout=float(dial_timeout)), *_webrtc_direct(float(dial_timeout)),
                    *_webtransport(float(dial_timeout)), CircuitTransport(hop_timeout=float(dial_timeout)),
                    *_webrtc(float(dial_timeout))],
        # circuit relay v2 client: reserve on a relay (host.listen("<relay>/p2p-circuit")),
        # accept relayed connections (stop), dial /p2p-circuit addresses
        services=[*default_services(), RelayClientService(hop_timeout=float(dial_timeout))],
        config=cfg,
        **more,
    )
    return BrowserNode(host, dial_timeout=float(dial_timeout), ping_timeout=float(ping_timeout))


def _webtransport(dial_timeout: float) -> list[Any]:
    """The WebTransport dialer when the page has WebTransport and the shim is registered."""
    try:
        import pywasm_webtransport_js as js  # type: ignore[import-not-found]
    except ImportError:
        return []
    if not js.available():
        return []
    from .transports.browser_webtransport import BrowserWebTransportTransport

    return [BrowserWebTransportTransport(dial_timeout=dial_timeout, js_module=js)]


def _webrtc_direct(dial_timeout: float) -> list[Any]:
    """The webrtc-direct dialer when the page has RTCPeerConnection and the shim is
    registered (an older bootstrap without it still gets a WebSocket-only node)."""
    try:
        import pywasm_webrtc_js as js  # type: ignore[import-not-found]
    except ImportError:
        return []
    if not js.available():
        return []
    from .transports.browser_webrtc_direct import BrowserWebRTCDirectTransport

    return [BrowserWebRTCDirectTransport(dial_timeout=dial_timeout, js_module=js)]


def _webrtc(dial_timeout: float) -> list[Any]:
    """Private-to-private WebRTC (``<relay>/p2p-circuit/webrtc``): dial, and listen through
    a relay reservation, when the page has RTCPeerConnection and the shim has createPeer."""
    try:
        import pywasm_webrtc_js as js  # type: ignore[import-not-found]
    except ImportError:
        return []
    if not js.available() or not hasattr(js, "createPeer"):
        return []
    from .transports.browser_webrtc import BrowserWebRTCTransport

    # the whole dial covers a relayed dial, signaling and ICE: twice a plain dial's bound
    return [BrowserWebRTCTransport(dial_timeout=2 * dial_timeout, js_module=js)]


# transports that exist only when the page has the browser API behind them
_BROWSER_APIS = (
    ("webtransport", "pywasm_webtransport_js", "WebTransport"),
    ("webrtc-direct", "pywasm_webrtc_js", "RTCPeerConnection"),
    ("webrtc", "pywasm_webrtc_js", "RTCPeerConnection"),
)


def _missing_browser_api(ma: Multiaddr) -> str | None:
    """Why ``ma`` cannot be dialed here when its transport needs an API this browser lacks."""
    import importlib

    for proto, module, api in _BROWSER_APIS:
        if ma.has_protocol(proto):
            try:
                js = importlib.import_module(module)
            except ImportError:
                return f"the page registered no {module} shim"
            if not js.available():
                return f"this browser has no {api} (typeof {api} === 'undefined')"
    return None


def _muxers(names: Sequence[str]) -> list[Any]:
    """Muxer factories for ``names`` ("yamux", "mplex" or their protocol ids), in order."""
    from .muxers import MplexMuxer, YamuxMuxer

    if isinstance(names, str):
        names = [names]
    out: list[Any] = []
    for name in list(names):
        key = str(name).strip().lower()
        if key in ("yamux", "/yamux/1.0.0"):
            out.append(YamuxMuxer())
        elif key in ("mplex", "/mplex/6.7.0"):
            out.append(MplexMuxer())
        else:
            raise ConfigError(f"unknown muxer {name!r}: use 'yamux' or 'mplex'")
    if not out:
        raise ConfigError("muxers must name at least one muxer ('yamux' or 'mplex')")
    return out


async def js_call(node: BrowserNode | None, method: str, *args: Any) -> list[Any]:
    """The JS seam: run ``node.<method>(*args)`` (or :func:`create` when ``node`` is None)
    and return ``[True, value, ms]`` or ``[False, error type name, one-line message]``."""
    t0 = time.perf_counter()
    try:
        if node is None:
            if method != "create":
                raise ConfigError(f"no node: cannot call {method}")
            kwargs = dict(args[0]) if args and args[0] is not None else {}
            value: Any = await create(**kwargs)
        else:
            if method not in ("dial", "ping", "stop", "echo", "identify", "listen"):
                raise ConfigError(f"unknown node method {method!r}")
            value = await getattr(node, method)(*args)
    except Exception as exc:
        return [False, type(exc).__name__, _one_line(exc)]
    return [True, value, (time.perf_counter() - t0) * 1000.0]


def peer_id_of(maddr: str) -> str | None:
    """The /p2p/ peer id in ``maddr``, validated, or None."""
    text = Multiaddr(maddr).peer_id()
    return str(PeerId.from_string(text)) if text else None


__all__ = [
    "DEFAULT_DIAL_TIMEOUT",
    "DEFAULT_PING_TIMEOUT",
    "BrowserNode",
    "ConnectionInfo",
    "create",
    "js_call",
    "peer_id_of",
]
