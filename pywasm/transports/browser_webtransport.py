"""WebTransport for Pyodide: dials ``/udp/<port>/quic-v1/webtransport/certhash/...`` through JS.

The session lives in JS (browser/src/webtransport.mjs, registered by the bootstrap as
``pywasm_webtransport_js``); this module imports it lazily, so importing it never fails
natively. Dialing follows the libp2p WebTransport spec:

1. ``new WebTransport(https://<host>:<port>/.well-known/libp2p-webtransport?type=noise,
   {serverCertificateHashes})`` with the sha-256 certhashes of the address: the browser
   accepts the server's self-signed certificate only if its hash is one of them;
2. Noise XX (we are the initiator) on the first bidirectional stream, checking the peer
   id when the address names one;
3. every certhash of the address must be in the server's ``webtransport_certhashes``
   Noise extension (the browser cannot say which certificate it accepted), else
   :class:`~pywasm.transports.webtransport_addr.CerthashMismatchError`;
4. the handshake stream is closed; every later stream is a native WebTransport stream on
   which the host runs multistream-select (no muxer).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ._jsffi import is_null, load_js_module, maybe_await
from ..errors import (
    ConfigError,
    ConnectionClosedError,
    DialError,
    PywasmError,
    StreamClosedError,
    StreamResetError,
    TransportError,
)
from ..muxers.bytequeue import ByteQueue
from .webtransport_addr import (
    WebTransportConnection,
    WebTransportError,
    secure_dialed_session,
    parse_webtransport,
    validate_certhashes,
)

if TYPE_CHECKING:
    from ..interfaces import ConnectionHandler, Listener
    from ..multiformats.multiaddr import Multiaddr

#: Name under which the bootstrap registers browser/src/webtransport.mjs.
JS_MODULE_NAME = "pywasm_webtransport_js"
#: Bound on session ready + Noise (the host bounds the whole dial as well).
DEFAULT_DIAL_TIMEOUT = 10.0
#: Bytes the shim reads ahead per stream before it stops pulling (flow control does the rest).
DEFAULT_MAX_BUFFERED = 4 * 1024 * 1024
#: Largest piece handed to JS per write call (one FFI crossing and one copy each).
DEFAULT_WRITE_PIECE = 1024 * 1024
#: How long ``close`` waits for the session to end.
DEFAULT_CLOSE_TIMEOUT = 2.0


def _load_js() -> Any:
    return load_js_module(JS_MODULE_NAME, "WebTransport")


_maybe_await = maybe_await


_is_null = is_null


def _js_message(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc).splitlines()[0]


class BrowserWebTransportStream:
    """One bidirectional WebTransport stream held by the JS shim (the Stream contract)."""

    def __init__(self, js_stream: Any, stream_id: int, write_piece: int = DEFAULT_WRITE_PIECE) -> None:
        from pyodide.ffi import to_js  # only exists inside Pyodide

        self._js = js_stream
        self._to_js = to_js
        self.stream_id = stream_id
        self.protocol: str | None = None
        self._piece = write_piece
        self._buf = ByteQueue()
        self._read_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._eof = False
        self._write_closed = False
        self._closed = False
        self._reset = False

    async def read(self, max_bytes: int = -1) -> bytes:
        if max_bytes == 0:
            return b""
        async with self._read_lock:
            if self._reset:
                raise StreamResetError(f"WebTransport stream {self.stream_id} was reset")
            if not self._buf and not self._eof:
                chunk = await _maybe_await(self._js.read())
                if _is_null(chunk):
                    failure = str(self._js.failure or "")
                    if failure:
                        self._reset = True
                        raise StreamResetError(f"WebTransport stream {self.stream_id}: {failure}")
                    self._eof = True
                else:
                    self._buf.append(chunk.to_bytes())
            return self._buf.take(max_bytes) if self._buf else b""

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        if not data:
            return
        view = memoryview(data).cast("B")
        async with self._write_lock:
            for off in range(0, len(view), self._piece):
                self._check_writable()
                try:
                    await _maybe_await(self._js.write(self._to_js(view[off : off + self._piece])))
                except Exception as exc:  # JsException: the stream or session is gone
                    self._reset = True
                    raise StreamResetError(f"WebTransport stream {self.stream_id}: {_js_message(exc)}") from None

    async def close_write(self) -> None:
        if self._reset:
            raise StreamResetError(f"WebTransport stream {self.stream_id} was reset")
        if self._write_closed:
            return
        async with self._write_lock:
            self._write_closed = True
            try:
                await _maybe_await(self._js.closeWrite())
            except Exception as exc:  # noqa: BLE001 - JsException
                raise StreamResetError(f"WebTransport stream {self.stream_id}: {_js_message(exc)}") from None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._write_closed and not self._reset:
            try:
                await self.close_write()
            except PywasmError:
                pass
        self._buf.clear()

    async def reset(self) -> None:
        if self._reset:
            return
        self._reset = True
        self._write_closed = True
        self._buf.clear()
        self._js.reset(0)

    def _check_writable(self) -> None:
        if self._reset:
            raise StreamResetError(f"WebTransport stream {self.stream_id} was reset")
        if self._write_closed or self._closed:
            raise StreamClosedError(f"write side of WebTransport stream {self.stream_id} is closed")

    @property
    def is_closed(self) -> bool:
        return self._closed or self._reset


class BrowserWebTransportSession:
    """A JS WebTransport session as a :class:`~pywasm.interfaces.MuxedConnection`."""

    def __init__(self, js_session: Any, url: str) -> None:
        self._js = js_session
        self.url = url
        self._next_id = 0
        self._closed = False

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def open_stream(self) -> BrowserWebTransportStream:
        if self._closed:
            raise ConnectionClosedError(f"WebTransport session to {self.url} is closed")
        try:
            js_stream = await self._js.createStream()
        except Exception as exc:  # noqa: BLE001 - JsException
            raise ConnectionClosedError(f"cannot open a WebTransport stream: {_js_message(exc)}") from None
        return BrowserWebTransportStream(js_stream, self._id())

    async def accept_stream(self) -> BrowserWebTransportStream:
        if self._closed:
            raise ConnectionClosedError(f"WebTransport session to {self.url} is closed")
        js_stream = await _maybe_await(self._js.acceptStream())
        if _is_null(js_stream):
            self._closed = True
            why = str(self._js.failure or "") or "closed"
            raise ConnectionClosedError(f"WebTransport session to {self.url} ended: {why}")
        return BrowserWebTransportStream(js_stream, self._id())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._js.close(0, "")
        try:
            await asyncio.wait_for(_maybe_await(self._js.closed()), DEFAULT_CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            pass

    @property
    def is_closed(self) -> bool:
        return self._closed


class BrowserWebTransportTransport:
    """Dial-only WebTransport for Pyodide via the JS shim (see module doc)."""

    def __init__(self, dial_timeout: float = DEFAULT_DIAL_TIMEOUT, max_buffered: int = DEFAULT_MAX_BUFFERED,
                 js_module: Any = None) -> None:
        if dial_timeout <= 0 or max_buffered <= 0:
            raise ConfigError("timeouts and limits must be positive")
        self.dial_timeout = dial_timeout
        self.max_buffered = max_buffered
        self._js_module = js_module
        self.ctx: Any = None

    def bind(self, ctx: Any) -> None:
        self.ctx = ctx

    def can_dial(self, addr: "Multiaddr") -> bool:
        wa = parse_webtransport(addr)
        return wa is not None and bool(wa.certhashes)

    def can_listen(self, addr: "Multiaddr") -> bool:
        return False

    async def listen(self, addr: "Multiaddr", handler: "ConnectionHandler") -> "Listener":
        raise TransportError(f"browsers cannot listen: {addr}")

    async def dial(self, addr: "Multiaddr") -> WebTransportConnection:
        if self.ctx is None:
            raise TransportError("WebTransport transport is not bound to a host")
        wa = parse_webtransport(addr)
        if wa is None:
            raise DialError(f"not a WebTransport address: {addr}")
        validate_certhashes(wa.certhashes)
        if self._js_module is None:
            self._js_module = _load_js()
        from pyodide.ffi import to_js

        url = wa.url
        try:
            js_session = self._js_module.open(url, to_js(wa.sha256_digests()), self.max_buffered)
        except Exception as exc:  # noqa: BLE001 - JsException: no WebTransport
            raise WebTransportError(f"cannot dial {url}: {_js_message(exc)}") from None
        session = BrowserWebTransportSession(js_session, url)
        try:
            return await asyncio.wait_for(self._secure(session, js_session, wa, addr), self.dial_timeout)
        except asyncio.TimeoutError:
            await session.close()
            raise WebTransportError(f"WebTransport dial to {wa.authority} timed out after {self.dial_timeout:g} s") from None
        except BaseException:
            await session.close()
            raise

    async def _secure(self, session: BrowserWebTransportSession, js_session: Any, wa: Any,
                      addr: "Multiaddr") -> WebTransportConnection:
        ready = await _maybe_await(js_session.ready())
        if ready is not True:
            # the browser says only "Opening handshake failed" for a wrong hash, an expired
            # or too long-lived certificate, or nobody listening: name the likely causes
            raise WebTransportError(
                f"{str(ready).splitlines()[0]} (server unreachable, or its certificate matches none of the "
                f"{len(wa.certhashes)} certhash(es) in the address, e.g. an expired address)"
            )
        return await secure_dialed_session(session, self.ctx.private_key, wa, addr)


__all__ = [
    "JS_MODULE_NAME",
    "BrowserWebTransportSession",
    "BrowserWebTransportStream",
    "BrowserWebTransportTransport",
]
