"""Private-to-private WebRTC for Pyodide (libp2p/specs webrtc/webrtc.md): two browsers
connect directly, signaling over a circuit relay.

Addresses: ``<relay addr>/p2p/<relay>/p2p-circuit/webrtc/p2p/<peer>``.

* ``listen("<relay addr>/p2p/<relay>/p2p-circuit/webrtc")`` reserves a slot on the relay
  (through the circuit transport, so relayed connections reach the host as usual) and
  announces both the relayed address and the same address with ``/webrtc``. It also
  answers ``/webrtc-signaling/0.0.1`` on limited (relayed) connections.
* ``dial`` reaches the peer through the relay (reusing a relayed connection to it),
  opens ``/webrtc-signaling/0.0.1`` on it, sends the SDP offer, reads the answer and
  trickles ICE candidates both ways until the RTCPeerConnection is connected; then it
  closes the dialer's ``init`` data channel and the signaling stream (steps 3-8).
* The listener side answers the offer and trickles likewise, then hands the connection
  to the host's inbound path.

There is no Noise handshake: the SDPs carry both DTLS fingerprints and travelled over
the relayed connection, which Noise already authenticated, so the remote's peer id is
the relayed connection's. Every data channel after ``init`` is a libp2p stream with the
framing of webrtc/README.md (the same :class:`WebRTCMuxedConnection` as webrtc-direct).

The JS side is browser/src/webrtc.mjs ``createPeer()``; pull-based, like the rest of the
shims: Python awaits its promises (candidates, connection state), JS never calls Python.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, DialError, HandshakeTimeoutError, PywasmError, TransportError
from ..identity import PeerId
from ..multiformats.multiaddr import Multiaddr
from ..protocols.webrtc_signaling_pb import (
    SIGNALING_PROTOCOL,
    SignalingError,
    SignalingType,
    encode_signaling,
    read_signaling,
)
from .browser_webrtc_direct import DEFAULT_JS_MAX_BUFFERED, _load_js, _maybe_await, _Session
from ._jsffi import is_null
from .circuit import CIRCUIT, find_circuit_transport

if TYPE_CHECKING:
    from ..host.connection import Connection, HostStream
    from ..host.host import Host
    from ..identity import PublicKey
    from ..interfaces import ConnectionHandler
    from .circuit import CircuitListener
    from .webrtc_stream import WebRTCMuxedConnection

log = logging.getLogger(__name__)

WEBRTC = "webrtc"
#: What the host reports for these connections: DTLS secures them (fingerprints
#: exchanged over the authenticated relayed connection), data channels multiplex them.
SECURITY_PROTOCOL = "/webrtc"
MUXER_PROTOCOL = "/webrtc"
#: Relayed connection + signaling + ICE + DTLS + SCTP (seconds).
DEFAULT_DIAL_TIMEOUT = 20.0
#: Closing the signaling stream is a courtesy; never wait longer than this for it.
CLOSE_TIMEOUT = 2.0
#: Inbound signaling sessions handled at once; more are reset.
DEFAULT_MAX_INBOUND_SIGNALING = 8
#: Remote ICE candidates accepted per session (a browser sends a handful per interface).
MAX_REMOTE_CANDIDATES = 64


def split_webrtc(addr: Multiaddr) -> tuple[Multiaddr, PeerId | None] | None:
    """``<relay>/p2p/R/p2p-circuit/webrtc[/p2p/T]`` -> (``<relay>/p2p/R/p2p-circuit``, T);
    None for anything else."""
    names = addr.protocols()
    tail = names[-3:] if names[-1:] == ["p2p"] else names[-2:]
    if tail[:2] != [CIRCUIT, WEBRTC] or names.count(WEBRTC) != 1 or names.count(CIRCUIT) != 1:
        return None
    cut = names.index(CIRCUIT)
    if cut < 1 or names[cut - 1] != "p2p":
        return None
    circuit = addr.decapsulate(f"/{WEBRTC}")
    target: PeerId | None = None
    if names[-1] == "p2p":
        try:
            target = PeerId.from_string(addr.peer_id() or "")
        except PywasmError:
            return None
    return circuit, target


@dataclass
class BrowserWebRTCConnection:
    """An :class:`~pywasm.interfaces.UpgradedConnection` over a signaled RTCPeerConnection."""

    local_peer: PeerId
    remote_peer: PeerId
    remote_public_key: "PublicKey"
    local_addr: Multiaddr | None
    remote_addr: Multiaddr
    muxed: "WebRTCMuxedConnection"
    security_protocol: str = SECURITY_PROTOCOL
    muxer_protocol: str = MUXER_PROTOCOL
    tasks: set[asyncio.Future[Any]] = field(default_factory=set, repr=False)
    # the JS peer connection, for diagnostics (selectedPair())
    js: Any = field(default=None, repr=False)


class WebRTCListener:
    """One ``listen`` on ``<relay>/p2p-circuit/webrtc``: a circuit listener on that relay
    plus the ``/webrtc`` addresses derived from its reservation."""

    def __init__(self, transport: "BrowserWebRTCTransport", circuit: "CircuitListener", handler: "ConnectionHandler") -> None:
        self._transport = transport
        self.circuit = circuit
        self.handler = handler

    @property
    def addrs(self) -> list[Multiaddr]:
        relayed = self.circuit.addrs
        # the plain relayed address is announced once: by another circuit listener when
        # there is one for this relay, else here
        owner = find_circuit_transport(self._transport.host)
        shared = owner is not None and any(
            lst is not self.circuit and lst.relay_peer == self.circuit.relay_peer for lst in owner.listeners
        )
        out = [] if shared else list(relayed)
        out.extend(a.encapsulate(f"/{WEBRTC}") for a in relayed)
        return out

    async def close(self) -> None:
        self._transport._remove(self)
        await self.circuit.close()


class BrowserWebRTCTransport:
    """Private-to-private WebRTC through the browser's RTCPeerConnection (module doc)."""

    def __init__(
        self,
        dial_timeout: float = DEFAULT_DIAL_TIMEOUT,
        js_module: Any = None,
        *,
        max_inbound_signaling: int = DEFAULT_MAX_INBOUND_SIGNALING,
    ) -> None:
        if dial_timeout <= 0:
            raise ConfigError("dial_timeout must be positive")
        if max_inbound_signaling < 1:
            raise ConfigError("max_inbound_signaling must be at least 1")
        self.dial_timeout = dial_timeout
        self.max_inbound_signaling = max_inbound_signaling
        self._js_module = js_module
        self._host: "Host | None" = None
        self.listeners: list[WebRTCListener] = []
        self._inbound_sessions = 0
        self._handling = False

    def bind(self, host: "Host") -> None:
        self._host = host

    @property
    def host(self) -> "Host":
        if self._host is None:
            raise TransportError("the WebRTC transport is not bound to a host (Transport.bind)")
        return self._host

    def _js(self) -> Any:
        if self._js_module is None:
            self._js_module = _load_js()
        return self._js_module

    # --- Transport ----------------------------------------------------------------------
    def can_dial(self, addr: Multiaddr) -> bool:
        return split_webrtc(addr) is not None

    def can_listen(self, addr: Multiaddr) -> bool:
        got = split_webrtc(addr)
        return got is not None and got[1] is None

    async def listen(self, addr: Multiaddr, handler: "ConnectionHandler") -> WebRTCListener:
        got = split_webrtc(addr)
        if got is None or got[1] is not None:
            raise TransportError(f"the WebRTC transport listens on <relay>/p2p/<relay id>/p2p-circuit/webrtc, not {addr}")
        circuit_transport = find_circuit_transport(self.host)
        if circuit_transport is None:
            raise TransportError("listening on /webrtc needs the circuit relay transport (CircuitTransport) on this host")
        # relayed connections go to the host's inbound path like any circuit listener's
        circuit = await circuit_transport.listen(got[0], handler)
        self._ensure_signaling_handler()
        listener = WebRTCListener(self, circuit, handler)
        self.listeners.append(listener)
        return listener

    def _remove(self, listener: WebRTCListener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def _ensure_signaling_handler(self) -> None:
        if not self._handling:
            # the signaling stream runs on the relayed connection: limited by definition
            self.host.set_stream_handler(SIGNALING_PROTOCOL, self._on_signaling, allow_limited=True)
            self._handling = True

    async def dial(self, addr: Multiaddr) -> BrowserWebRTCConnection:
        got = split_webrtc(addr)
        if got is None or got[1] is None:
            raise DialError(f"not a dialable WebRTC address (<relay>/p2p-circuit/webrtc/p2p/<peer>): {addr}")
        circuit_addr, target = got
        host = self.host
        if target == host.peer_id:
            raise DialError("cannot dial ourselves")
        js = self._js()
        attempt = _Attempt()
        try:
            return await asyncio.wait_for(self._dial(addr, circuit_addr, target, js, attempt), self.dial_timeout)
        except asyncio.TimeoutError:
            raise HandshakeTimeoutError(
                f"WebRTC dial to {addr} timed out after {self.dial_timeout:g} s while {attempt.stage}"
                f"{await _describe(attempt.session)}"
            ) from None

    async def _relayed(self, circuit_addr: Multiaddr, target: PeerId) -> "Connection":
        host = self.host
        for conn in host.connections_to(target):
            if conn.limited:
                return conn
        # Not host.dial: this dial already runs inside the host's per-peer dial for
        # `target`, which host.dial would wait on (a deadlock until the timeout).
        return await host.dial_address(circuit_addr.encapsulate(f"/p2p/{target}"), timeout=self.dial_timeout)

    async def _dial(
        self, addr: Multiaddr, circuit_addr: Multiaddr, target: PeerId, js: Any, attempt: "_Attempt"
    ) -> BrowserWebRTCConnection:
        attempt.stage = "reaching the peer through the relay"
        relayed = await self._relayed(circuit_addr, target)
        attempt.stage = "opening the signaling stream"
        stream = await relayed.new_stream([SIGNALING_PROTOCOL], self.dial_timeout, allow_limited=True)
        session = self._new_session(js)
        attempt.session = session
        attempt.stage = "exchanging SDP"
        try:
            try:
                offer = str(await _maybe_await(session.js.makeOffer()))
            except Exception as exc:  # noqa: BLE001 - JsException
                raise DialError(f"cannot create the SDP offer: {_js_message(exc)}") from None
            await stream.write(encode_signaling(SignalingType.SDP_OFFER, offer))
            msg = await read_signaling(stream, self.dial_timeout, "SDP answer")
            if msg is None or msg.type != SignalingType.SDP_ANSWER:
                raise SignalingError(f"expected an SDP answer, got {_kind(msg)}")
            try:
                await _maybe_await(session.js.acceptAnswer(msg.data or ""))
            except Exception as exc:  # noqa: BLE001
                raise DialError(f"the remote's SDP answer was refused: {_js_message(exc)}") from None
            attempt.stage = "connecting (ICE, DTLS)"
            await self._until_connected(stream, session)
            attempt.stage = "closing the 'init' data channel"
            await _close_init(session)
            attempt.stage = "closing the signaling stream"
            await _close_quietly(stream)
        except BaseException as exc:
            await _reset_quietly(stream)
            await session.muxed.close()
            if isinstance(exc, SignalingError):
                raise DialError(f"cannot dial {addr}: {exc}") from None
            raise
        session.spawn(session.accept_loop())
        return BrowserWebRTCConnection(
            local_peer=self.host.peer_id, remote_peer=target, remote_public_key=relayed.remote_public_key,
            local_addr=None, remote_addr=addr, muxed=session.muxed, tasks=session.tasks, js=session.js,
        )

    def _new_session(self, js: Any) -> _Session:
        from pyodide.ffi import to_js  # only inside Pyodide

        from .browser_webrtc_direct import _js_object

        opts = {"maxBuffered": DEFAULT_JS_MAX_BUFFERED}
        try:
            js_pc = js.createPeer(to_js(opts, dict_converter=_js_object()))
        except Exception as exc:  # noqa: BLE001 - JsException: no RTCPeerConnection
            raise DialError(f"cannot create an RTCPeerConnection: {_js_message(exc)}") from None
        return _Session(js_pc)

    async def _until_connected(self, stream: "HostStream", session: _Session) -> None:
        """Trickle ICE both ways (step 7) until the peer connection is connected."""
        failure = str(await _maybe_await(session.js.ready()) or "")
        if failure:
            raise DialError(f"RTCPeerConnection failed: {failure}")

        writing: list[asyncio.Future[None]] = []

        async def send() -> None:
            while True:
                cand = await _maybe_await(session.js.nextCandidate())
                # null through a Promise is jsnull, not None (the trickle ends either way)
                if is_null(cand):
                    return
                # never cancelled: a yamux write cancelled mid-frame would break the
                # relayed connection (and the one to the relay under it)
                write = asyncio.ensure_future(stream.write(encode_signaling(SignalingType.ICE_CANDIDATE, str(cand))))
                writing[:] = [write]
                await asyncio.shield(write)

        async def receive() -> None:
            last = ""
            for _ in range(MAX_REMOTE_CANDIDATES):
                msg = await read_signaling(stream, self.dial_timeout, "ICE candidate")
                if msg is None:
                    return  # the remote is done trickling; ICE goes on with what it has
                if msg.type != SignalingType.ICE_CANDIDATE:
                    raise SignalingError(f"expected an ICE candidate, got {_kind(msg)}")
                last = msg.data or ""
                why = str(await _maybe_await(session.js.addCandidate(msg.data or "null")) or "")
                if why:
                    log.debug("ICE candidate %r refused: %s", msg.data, why)
            raise SignalingError(f"more than {MAX_REMOTE_CANDIDATES} ICE candidates (the last: {last[:200]!r})")

        connected = asyncio.ensure_future(_maybe_await(session.js.connected()))
        sender = asyncio.ensure_future(send())
        receiver = asyncio.ensure_future(receive())
        try:
            pending: set[asyncio.Future[Any]] = {connected, sender, receiver}
            while connected in pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not connected:
                        task.result()  # a signaling error ends the attempt; a clean end does not
            why = str(connected.result() or "")
            if why:
                raise DialError(f"WebRTC connection failed: {why}")
            # trickling is over: let a write in flight finish before the stream closes
            if writing and not writing[0].done():
                await asyncio.wait(writing, timeout=CLOSE_TIMEOUT)
        finally:
            # cancelling a read or a wait on JS is harmless; writes are shielded above
            for task in (connected, sender, receiver):
                task.cancel()

    # --- listener side ---------------------------------------------------------------------
    async def _on_signaling(self, stream: "HostStream", conn: "Connection") -> None:
        if not self.listeners:
            await _reset_quietly(stream)  # not listening on /webrtc (any more)
            return
        if self._inbound_sessions >= self.max_inbound_signaling:
            log.debug("refusing WebRTC signaling from %s: %d sessions running", conn.remote_peer, self._inbound_sessions)
            await _reset_quietly(stream)
            return
        self._inbound_sessions += 1
        attempt = _Attempt()
        try:
            up = await asyncio.wait_for(self._answer(stream, conn, attempt), self.dial_timeout)
        except (PywasmError, asyncio.TimeoutError) as exc:
            why = exc or f"timed out while {attempt.stage}{await _describe(attempt.session)}"
            log.info("WebRTC connection from %s failed: %s", conn.remote_peer, why)
            return
        finally:
            self._inbound_sessions -= 1
        handler = self.listeners[0].handler if self.listeners else None
        if handler is None:
            await up.muxed.close()
            return
        await handler(up)

    async def _answer(self, stream: "HostStream", conn: "Connection", attempt: "_Attempt") -> BrowserWebRTCConnection:
        session = self._new_session(self._js())
        attempt.session = session
        attempt.stage = "waiting for the SDP offer"
        try:
            msg = await read_signaling(stream, self.dial_timeout, "SDP offer")
            if msg is None or msg.type != SignalingType.SDP_OFFER:
                raise SignalingError(f"expected an SDP offer, got {_kind(msg)}")
            try:
                answer = str(await _maybe_await(session.js.acceptOffer(msg.data or "")))
            except Exception as exc:  # noqa: BLE001
                raise SignalingError(f"the remote's SDP offer was refused: {_js_message(exc)}") from None
            await stream.write(encode_signaling(SignalingType.SDP_ANSWER, answer))
            attempt.stage = "connecting (ICE, DTLS)"
            await self._until_connected(stream, session)
            attempt.stage = "closing the signaling stream"
            await _close_quietly(stream)
        except BaseException:
            await _reset_quietly(stream)
            await session.muxed.close()
            raise
        session.spawn(session.accept_loop())
        remote = conn.remote_peer
        ra = conn.remote_addr
        base = ra.without_peer_id() if ra is not None and ra.protocols()[-1:] == ["p2p"] else ra
        remote_addr = (base.encapsulate(f"/{WEBRTC}/p2p/{remote}") if base is not None
                       else Multiaddr(f"/{WEBRTC}/p2p/{remote}"))
        return BrowserWebRTCConnection(
            local_peer=self.host.peer_id, remote_peer=remote, remote_public_key=conn.remote_public_key,
            local_addr=None, remote_addr=remote_addr, muxed=session.muxed, tasks=session.tasks, js=session.js,
        )


@dataclass
class _Attempt:
    """How far one dial or answer got, for the error its timeout reports."""

    stage: str = "starting"
    session: _Session | None = None


#: Bound on asking the browser where a timed-out connection got to.
DESCRIBE_TIMEOUT = 2.0


async def _describe(session: _Session | None) -> str:
    """``": <states, candidate pairs, ICE trace>"`` from the JS side, or ``""``."""
    if session is None:
        return ""
    try:
        text = str(await asyncio.wait_for(_maybe_await(session.js.describe()), DESCRIBE_TIMEOUT))
    except Exception:  # noqa: BLE001 - a diagnostic must never mask the timeout itself
        return ""
    return f": {text[:4000]}"


def _kind(msg: Any) -> str:
    if msg is None:
        return "the end of the stream"
    try:
        return SignalingType(msg.type).name
    except ValueError:
        return f"message type {msg.type}"


def _js_message(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


async def _close_init(session: _Session) -> None:
    """webrtc.md step 8: the dialer closes its ``init`` channel once it opened. The JS side
    waits for the channel to open, then sends the close without waiting for the remote's
    acknowledgement (a Firefox 153 listener sometimes never sends it: that once hung every
    Chromium -> Firefox dial here until its timeout). A courtesy, so bounded too."""
    try:
        await asyncio.wait_for(_maybe_await(session.js.closeInit()), CLOSE_TIMEOUT)
    except asyncio.TimeoutError:
        try:
            session.js.note(f"init channel not open after {CLOSE_TIMEOUT:g} s: gave up on it")
        except Exception:  # noqa: BLE001 - a diagnostic only
            pass
        log.debug("the 'init' data channel did not open within %g s: %s", CLOSE_TIMEOUT, await _describe(session))
    except Exception as exc:  # noqa: BLE001 - JsException: the channel is gone either way
        log.debug("closing the 'init' data channel failed: %s", _js_message(exc))


async def _close_quietly(stream: Any) -> None:
    """Close (the connection is up: a close that hangs or fails becomes a reset)."""
    try:
        await asyncio.wait_for(stream.close(), CLOSE_TIMEOUT)
    except Exception:  # noqa: BLE001
        await _reset_quietly(stream)


async def _reset_quietly(stream: Any) -> None:
    try:
        await asyncio.wait_for(stream.reset(), CLOSE_TIMEOUT)
    except Exception:  # noqa: BLE001 - already gone
        pass


__all__ = [
    "BrowserWebRTCConnection",
    "BrowserWebRTCTransport",
    "WebRTCListener",
    "DEFAULT_DIAL_TIMEOUT",
    "split_webrtc",
]
