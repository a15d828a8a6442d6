"""WebRTC-direct dialer for Pyodide: the browser's RTCPeerConnection through a JS shim.

browser/src/webrtc.mjs (registered as ``pywasm_webrtc_js``) builds the peer connection:
a fresh ECDSA certificate, the offer munged so ufrag == password == our random
``libp2p+webrtc+v1/...`` string, and the server's answer made up from the multiaddr
(libp2p/specs webrtc/webrtc-direct.md steps 3-5). Everything after that is here:

* the handshake channel (negotiated, id 0) becomes a :class:`WebRTCStream`; the server
  starts Noise on it, so we are the Noise *responder*, with the prologue
  ``"libp2p-webrtc-noise:" + our fingerprint + the certhash``. The server's peer id is
  checked against ``/p2p/`` when the address has one; DTLS already checked the certhash.
* every other data channel is a libp2p stream (:class:`WebRTCMuxedConnection`).

Pull-based like the WebSocket shim: one small Python task per channel awaits the shim's
``read()`` and feeds the stream's state machine (so FIN_ACK and RESET are handled even
when the application is not reading), and one task awaits ``accept()`` for channels the
remote opens. Browsers cannot listen: ``can_listen`` is False.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._jsffi import is_null, load_js_module, maybe_await
from ..errors import ConfigError, DialError, HandshakeTimeoutError, PeerIdMismatchError, PywasmError, TransportError
from ..multiformats.multiaddr import Multiaddr
from .webrtc_direct_addr import (
    MUXER_PROTOCOL,
    SECURITY_PROTOCOL,
    fingerprint_to_multihash,
    multihash_to_fingerprint,
    noise_prologue,
    parse_webrtc_direct,
    random_ufrag,
)
from .webrtc_stream import WebRTCMuxedConnection, WebRTCStream

if TYPE_CHECKING:
    from ..identity import PeerId, PrivateKey, PublicKey
    from ..interfaces import ConnectionHandler, Listener

log = logging.getLogger(__name__)

#: Name under which the bootstrap registers browser/src/webrtc.mjs.
JS_MODULE_NAME = "pywasm_webrtc_js"
#: ICE + DTLS + SCTP + Noise (seconds).
DEFAULT_DIAL_TIMEOUT = 10.0
#: Unread bytes the shim keeps per channel before failing it (Python drains it at once).
DEFAULT_JS_MAX_BUFFERED = 32 * 1024 * 1024


def _load_js() -> Any:
    return load_js_module(JS_MODULE_NAME, "WebRTC")


_maybe_await = maybe_await


class _JsChannel:
    """:class:`~pywasm.transports.webrtc_stream.DataChannel` over the shim's Channel."""

    def __init__(self, js_channel: Any) -> None:
        from pyodide.ffi import to_js  # only exists inside Pyodide

        self._js = js_channel
        self._to_js = to_js

    @property
    def id(self) -> int:
        return int(self._js.id)

    @property
    def buffered_amount(self) -> int:
        return int(self._js.bufferedAmount)

    def send(self, message: bytes) -> None:
        # to_js copies into a JS Uint8Array: the channel never aliases wasm memory
        self._js.send(self._to_js(message))

    async def wait_buffered_below(self, limit: int) -> None:
        await _maybe_await(self._js.waitBufferedBelow(limit))

    def close(self) -> None:
        self._js.close()

    async def pump(self, stream: WebRTCStream) -> None:
        """Feed everything the channel receives into ``stream`` until it closes."""
        try:
            while True:
                chunk = await _maybe_await(self._js.read())
                if is_null(chunk):  # JS null is jsnull in Pyodide 314, not None
                    break
                stream.feed(chunk.to_bytes())
        except Exception as exc:  # noqa: BLE001 - a JS failure ends the channel
            log.debug("data channel %s read failed: %s", self.id, exc)
        finally:
            stream.channel_closed()


@dataclass
class BrowserWebRTCDirectConnection:
    """An :class:`~pywasm.interfaces.UpgradedConnection` over the browser's WebRTC."""

    local_peer: "PeerId"
    remote_peer: "PeerId"
    remote_public_key: "PublicKey"
    local_addr: Multiaddr | None
    remote_addr: Multiaddr
    muxed: WebRTCMuxedConnection
    security_protocol: str = SECURITY_PROTOCOL
    muxer_protocol: str = MUXER_PROTOCOL
    tasks: set[asyncio.Future[Any]] = field(default_factory=set, repr=False)


class _Session:
    """One RTCPeerConnection: its pump tasks and its muxed connection."""

    def __init__(self, js_pc: Any) -> None:
        self.js = js_pc
        self.tasks: set[asyncio.Future[Any]] = set()
        self.muxed = WebRTCMuxedConnection(self._open_channel, self._close)

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def attach(self, js_channel: Any, *, inbound: bool | None) -> WebRTCStream | None:
        ch = _JsChannel(js_channel)
        if inbound is None:
            stream: WebRTCStream | None = WebRTCStream(ch)
        elif inbound:
            stream = self.muxed.add_inbound(ch)
        else:
            stream = self.muxed.make_stream(ch)
        if stream is not None:
            self.spawn(ch.pump(stream))
        return stream

    async def _open_channel(self) -> WebRTCStream:
        try:
            js_channel = self.js.createChannel()
        except Exception as exc:  # noqa: BLE001 - JsException: the connection is gone
            raise DialError(f"cannot open a data channel: {getattr(exc, 'message', None) or exc}") from None
        stream = self.attach(js_channel, inbound=False)
        assert stream is not None
        return stream

    async def accept_loop(self) -> None:
        try:
            while True:
                js_channel = await _maybe_await(self.js.accept())
                if is_null(js_channel):
                    break
                self.attach(js_channel, inbound=True)
        except Exception as exc:  # noqa: BLE001
            log.debug("accepting data channels failed: %s", exc)
        finally:
            self.muxed.transport_closed()

    async def _close(self) -> None:
        try:
            self.js.close()
        except Exception:  # noqa: BLE001 - already closed
            pass
        for task in list(self.tasks):
            if task is not asyncio.current_task():
                task.cancel()


class BrowserWebRTCDirectTransport:
    """Dial-only webrtc-direct transport for Pyodide via the JS shim (see module doc)."""

    def __init__(self, dial_timeout: float = DEFAULT_DIAL_TIMEOUT, js_module: Any = None) -> None:
        if dial_timeout <= 0:
            raise ConfigError("dial_timeout must be positive")
        self.dial_timeout = dial_timeout
        self._js_module = js_module
        self.private_key: "PrivateKey | None" = None

    def bind(self, ctx: Any) -> None:
        self.private_key = ctx.private_key

    def can_dial(self, addr: Multiaddr) -> bool:
        return parse_webrtc_direct(addr) is not None

    def can_listen(self, addr: Multiaddr) -> bool:
        return False  # browsers cannot accept connections

    async def listen(self, addr: Multiaddr, handler: "ConnectionHandler") -> "Listener":
        raise TransportError("a browser cannot listen on webrtc-direct")

    async def dial(self, addr: Multiaddr) -> BrowserWebRTCDirectConnection:
        wa = parse_webrtc_direct(addr)
        if wa is None:
            raise DialError(f"not a webrtc-direct address: {addr}")
        if self.private_key is None:
            raise ConfigError("BrowserWebRTCDirectTransport is not bound to a host (Transport.bind)")
        from ..identity import PeerId

        expected = PeerId.from_string(wa.peer_id) if wa.peer_id else None
        server_fp = wa.server_fingerprint
        if self._js_module is None:
            self._js_module = _load_js()
        from pyodide.ffi import to_js

        opts = {
            "host": wa.host, "port": wa.port, "ip6": wa.family == "ip6",
            "fingerprint": multihash_to_fingerprint(server_fp), "ufrag": random_ufrag(),
            "maxBuffered": DEFAULT_JS_MAX_BUFFERED,
        }
        try:
            js_pc = self._js_module.dialDirect(to_js(opts, dict_converter=_js_object()))
        except Exception as exc:  # noqa: BLE001 - JsException: no RTCPeerConnection
            raise DialError(f"cannot dial {addr}: {getattr(exc, 'message', None) or exc}") from None
        session = _Session(js_pc)
        try:
            return await asyncio.wait_for(self._establish(addr, session, server_fp, expected), self.dial_timeout)
        except asyncio.TimeoutError:
            await session.muxed.close()
            raise HandshakeTimeoutError(f"webrtc-direct dial to {addr} timed out after {self.dial_timeout:g} s") from None
        except BaseException:
            await session.muxed.close()
            raise

    async def _establish(
        self, addr: Multiaddr, session: _Session, server_fp: bytes, expected: "PeerId | None"
    ) -> BrowserWebRTCDirectConnection:
        from ..security.noise import NoiseSecurity

        failure = str(await _maybe_await(session.js.ready()) or "")
        if failure:
            raise DialError(f"cannot dial {addr}: {failure}")
        local_fp = str(session.js.localFingerprint() or "")
        if not local_fp:
            raise DialError(f"cannot dial {addr}: no sha-256 fingerprint in the local description")
        client_fp = fingerprint_to_multihash(local_fp)
        # remote channels are accepted from now on, before Noise ends (the spec asks it)
        session.spawn(session.accept_loop())
        hs = session.attach(session.js.handshake, inbound=None)
        assert hs is not None
        assert self.private_key is not None
        noise = NoiseSecurity(self.private_key, handshake_timeout=None)
        try:
            secured = await noise.secure_inbound(hs, prologue=noise_prologue(client_fp, server_fp))
        except PywasmError as exc:
            raise DialError(f"cannot dial {addr}: Noise failed: {exc}") from None
        if expected is not None and secured.remote_peer != expected:
            raise PeerIdMismatchError(
                f"expected peer {expected}, but the remote authenticated as {secured.remote_peer}"
            )
        session.js.handshake.close()  # the spec closes the Noise channel once done
        return BrowserWebRTCDirectConnection(
            local_peer=secured.local_peer, remote_peer=secured.remote_peer,
            remote_public_key=secured.remote_public_key, local_addr=None, remote_addr=addr,
            muxed=session.muxed, tasks=session.tasks,
        )


def _js_object() -> Any:
    from js import Object  # type: ignore[import-not-found]

    return Object.fromEntries


__all__ = [
    "JS_MODULE_NAME",
    "DEFAULT_DIAL_TIMEOUT",
    "BrowserWebRTCDirectConnection",
    "BrowserWebRTCDirectTransport",
]
