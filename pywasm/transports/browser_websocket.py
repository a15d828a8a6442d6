"""WebSocket transport for Pyodide: dials ``.../tcp/<port>/ws`` and ``/wss`` through JS.

The socket lives in JS (browser/src/websocket.mjs, registered by the bootstrap as the JS
module ``pywasm_websocket_js``); this module imports it lazily, so importing this file never
fails natively, and constructing the transport needs no JS either (only ``dial`` does).
It needs a real JS event loop (Pyodide's WebLoop): WebSocket events are JS tasks.

Wire behaviour is the same as the native transport and js-libp2p's: path ``/``, no
subprotocol, every write is binary messages. Browsers cannot listen: ``can_listen`` is
always False.

Semantics that differ from TCP, and why:

* Reception cannot be paused (WebSocket has no flow control of its own). Received bytes
  queue in the shim up to ``max_buffered`` unread bytes; past that the shim closes the
  socket (code 1009) and reads fail with :class:`StreamResetError`. Over libp2p the muxer's
  windows (yamux: <= 16 MiB per stream) keep a well-behaved peer far below the default.
* No half-close: ``close_write`` closes the whole socket (code 1000), as js-libp2p does.
  Browsers drop messages that arrive after that, so reads then return ``b""``.
* Send backpressure: while more than ``send_high_water`` bytes are queued in the socket,
  ``write`` awaits one shim promise that resolves when ``bufferedAmount`` is back under
  half of it. Browsers give no drain event, so the shim checks on a JS timer; polling from
  Python instead (``asyncio.sleep`` of a few ms) made Pyodide's event loop spin, because it
  runs sub-threshold sleeps as immediate callbacks.
* ``reset`` closes with code :data:`RESET_CLOSE_CODE`; the native transport reads any code
  but 1000/1001 as a reset.
* ``read_deferred`` returns the shim's next read unawaited (a Promise of the next
  messages), for Noise to hand to the JS that decrypts them: one Python await per burst
  of received messages instead of one for the read and one for the decryption.
* ``write_sealed`` hands the shim a Promise of bytes (Noise frames WebCrypto is still
  sealing) to send when it resolves, so the sender never waits for the encryption; order
  with ``write`` is kept in the shim, and a clean close goes out after them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ._jsffi import is_null, load_js_module, maybe_await
from ..errors import ConfigError, DialError, StreamClosedError, StreamResetError, TransportError
from ..muxers.bytequeue import ByteQueue
from .addrs import WsAddr, format_hostport, parse_ws

if TYPE_CHECKING:
    from ..interfaces import ConnectionHandler, Listener
    from ..multiformats.multiaddr import Multiaddr

#: Name under which the bootstrap registers browser/src/websocket.mjs.
JS_MODULE_NAME = "pywasm_websocket_js"
#: Deadline for the WebSocket to open (TCP + TLS + HTTP upgrade).
DEFAULT_DIAL_TIMEOUT = 10.0
#: Received but unread bytes after which the connection is failed (see module doc).
DEFAULT_MAX_BUFFERED = 64 * 1024 * 1024
#: Largest message we send; a larger write is split (peers accept >= 4 MiB, see websocket.py).
DEFAULT_MAX_SEND_MESSAGE = 1024 * 1024
#: ``write`` waits while the socket holds more than this many unsent bytes...
DEFAULT_SEND_HIGH_WATER = 4 * 1024 * 1024
#: ...until it holds at most this fraction of them (fewer, larger wake-ups).
SEND_LOW_WATER_FRACTION = 0.5
#: How long ``close`` waits for the close handshake before returning anyway.
DEFAULT_CLOSE_TIMEOUT = 2.0
#: Close code sent by ``reset`` (4000-4999 are free for applications).
RESET_CLOSE_CODE = 4000
CLOSE_NORMAL = 1000


def ws_url(wa: WsAddr) -> str:
    """``ws://host:port/`` or ``wss://name:port/`` for a parsed WebSocket multiaddr.

    A browser cannot set the TLS server name apart from the URL host, so ``/sni/<name>``
    becomes the URL host (as in js-libp2p).
    """
    scheme = "wss" if wa.secure else "ws"
    host = wa.sni if (wa.secure and wa.sni) else wa.hostport.host
    return f"{scheme}://{format_hostport(host, wa.hostport.port)}/"


def _load_js() -> Any:
    return load_js_module(JS_MODULE_NAME, "WebSocket")


_maybe_await = maybe_await


class BrowserWebSocketConnection:
    """A :class:`~pywasm.interfaces.RawConnection` over a JS WebSocket (see module doc)."""

    def __init__(
        self,
        js_conn: Any,
        remote_addr: "Multiaddr",
        max_send_message: int = DEFAULT_MAX_SEND_MESSAGE,
        send_high_water: int = DEFAULT_SEND_HIGH_WATER,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        from pyodide.ffi import to_js  # only exists inside Pyodide

        self._js = js_conn
        self._to_js = to_js
        self.local_addr: "Multiaddr | None" = None  # browsers do not tell
        self.remote_addr = remote_addr
        self._max_send = max_send_message
        self._high_water = send_high_water
        self._low_water = int(send_high_water * SEND_LOW_WATER_FRACTION)
        self._close_timeout = close_timeout
        self._buf = ByteQueue()  # part of the last chunk a read did not take
        self._read_lock = asyncio.Lock()  # the shim serves one pending read at a time
        self._write_lock = asyncio.Lock()  # split writes are not interleaved
        self._eof = False
        self._write_closed = False
        self._closed = False
        self._reset = False

    # --- Stream contract ------------------------------------------------------------
    async def read(self, max_bytes: int = -1) -> bytes:
        if max_bytes == 0:
            return b""
        async with self._read_lock:
            self._check_readable()
            if not self._buf and not self._eof:
                chunk = await _maybe_await(self._js.read())
                self._check_readable()  # closed or reset while we waited
                if is_null(chunk):  # JS null is jsnull in Pyodide 314, not None
                    failure = str(self._js.failure or "")
                    if failure:
                        self._reset = True
                        raise StreamResetError(f"WebSocket {self.remote_addr}: {failure}")
                    self._eof = True
                else:
                    self._buf.append(chunk.to_bytes())
            if self._buf:
                return self._buf.take(max_bytes)
            return b""

    def read_deferred(self) -> Any:
        """Start the next read without awaiting or converting it, for a reader that hands
        the result to JS (Noise opening frames in JS: WebCryptoBackend.aead_open_framed).

        Returns the shim's answer boxed, ``{pending: Uint8Array | null | Promise of
        either}`` (a bare Promise would come back as a Python Future), or bytes a plain
        :meth:`read` left buffered, or None at the end. The caller must call
        :meth:`read_deferred_done` once the result has settled, and must not read in any
        other way meanwhile (the shim serves one pending read at a time).
        """
        self._check_readable()
        if self._buf:
            return self._buf.take()
        if self._eof:
            return None
        return self._js.readLater()

    def read_deferred_done(self, ended: bool) -> None:
        """After a :meth:`read_deferred` result settled (``ended``: it was the end):
        raises as :meth:`read` would (closed or reset meanwhile, or the socket failed)."""
        self._check_readable()
        if ended and not self._eof:
            failure = str(self._js.failure or "")
            if failure:
                self._reset = True
                raise StreamResetError(f"WebSocket {self.remote_addr}: {failure}")
            self._eof = True

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        if not data:
            return
        view = memoryview(data).cast("B")
        async with self._write_lock:
            for off in range(0, len(view), self._max_send):
                if self._js.bufferedAmount > self._high_water:
                    # resolves on drain or when the socket stops being open (send then fails)
                    await _maybe_await(self._js.drained(self._low_water))
                    self._check_writable()
                self._check_writable()
                # to_js copies into a JS Uint8Array: the socket never aliases wasm memory
                try:
                    self._js.send(self._to_js(view[off : off + self._max_send]))
                except Exception as exc:  # JsException: the socket closed under us
                    failure = str(self._js.failure or "") or str(getattr(exc, "message", "") or exc)
                    self._reset = True
                    raise StreamResetError(f"WebSocket {self.remote_addr}: {failure}") from None

    async def write_sealed(self, handle: Any, nbytes: int) -> None:
        """Send ``handle`` once it resolves, without waiting for it here: a JS Uint8Array,
        or a box ``{pending}`` holding a Promise of one still being computed (Noise frames
        under encryption: WebCryptoBackend.aead_seal_framed_deferred).

        The shim keeps these in call order with :meth:`write` and counts ``nbytes`` as
        buffered until they are sent, so back-pressure works as for ``write``; a rejected
        Promise fails the connection, and the next call raises StreamResetError.
        """
        self._check_writable()
        async with self._write_lock:
            if self._js.bufferedAmount > self._high_water:
                await _maybe_await(self._js.drained(self._low_water))
            self._check_writable()
            try:
                self._js.sendLater(handle, nbytes, self._max_send)
            except Exception as exc:  # JsException: the socket closed under us
                failure = str(self._js.failure or "") or str(getattr(exc, "message", "") or exc)
                self._reset = True
                raise StreamResetError(f"WebSocket {self.remote_addr}: {failure}") from None

    async def close_write(self) -> None:
        # no half-close in WebSocket: closing the write side closes the socket
        if self._reset:
            raise StreamResetError(f"WebSocket {self.remote_addr} was reset")
        if self._write_closed:
            return
        async with self._write_lock:  # the close goes after writes in flight
            pass
        if self._write_closed or self._reset:
            return
        self._write_closed = True
        self._js.close(CLOSE_NORMAL, "")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._buf.clear()
        if not self._reset:
            self._write_closed = True
            self._js.close(CLOSE_NORMAL, "")
        try:
            await asyncio.wait_for(_maybe_await(self._js.closed()), self._close_timeout)
        except asyncio.TimeoutError:
            pass  # the browser finishes the handshake (or gives up) on its own

    async def reset(self) -> None:
        if self._reset:
            return
        self._reset = True
        self._write_closed = True
        self._buf.clear()
        self._js.close(RESET_CLOSE_CODE, "reset")

    # --- internals -------------------------------------------------------------------
    def _check_readable(self) -> None:
        if self._reset:
            raise StreamResetError(f"WebSocket {self.remote_addr} was reset")
        if self._closed:
            raise StreamClosedError(f"WebSocket {self.remote_addr} is closed")

    def _check_writable(self) -> None:
        if self._reset:
            raise StreamResetError(f"WebSocket {self.remote_addr} was reset")
        if self._write_closed or self._closed:
            raise StreamClosedError(f"write side of WebSocket {self.remote_addr} is closed")

    @property
    def is_closed(self) -> bool:
        return self._reset or self._closed

    def __repr__(self) -> str:
        return f"<BrowserWebSocketConnection -> {self.remote_addr}>"


class BrowserWebSocketTransport:
    """Dial-only WebSocket transport for Pyodide (browser or Node) via the JS shim."""

    def __init__(
        self,
        dial_timeout: float = DEFAULT_DIAL_TIMEOUT,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        max_send_message: int = DEFAULT_MAX_SEND_MESSAGE,
        send_high_water: int = DEFAULT_SEND_HIGH_WATER,
        js_module: Any = None,
    ) -> None:
        if dial_timeout <= 0 or max_buffered <= 0 or max_send_message <= 0 or send_high_water <= 0:
            raise ConfigError("timeouts and limits must be positive")
        self.dial_timeout = dial_timeout
        self.max_buffered = max_buffered
        self.max_send_message = max_send_message
        self.send_high_water = send_high_water
        self._js_module = js_module

    def can_dial(self, addr: "Multiaddr") -> bool:
        return parse_ws(addr) is not None

    def can_listen(self, addr: "Multiaddr") -> bool:
        return False  # browsers cannot accept connections

    async def dial(self, addr: "Multiaddr") -> BrowserWebSocketConnection:
        wa = parse_ws(addr)
        if wa is None:
            raise DialError(f"not a WebSocket address: {addr}")
        url = ws_url(wa)
        if self._js_module is None:
            self._js_module = _load_js()
        try:
            js_conn = self._js_module.open(url, self.max_buffered)
        except Exception as exc:  # JsException: no WebSocket, bad URL
            raise DialError(f"cannot dial {url}: {getattr(exc, 'message', None) or exc}") from None
        try:
            result = await asyncio.wait_for(_maybe_await(js_conn.opened()), self.dial_timeout)
        except asyncio.TimeoutError:
            js_conn.close(CLOSE_NORMAL, "")
            raise DialError(f"cannot dial {url}: not open after {self.dial_timeout:g} s") from None
        except BaseException:
            js_conn.close(CLOSE_NORMAL, "")
            raise
        if result is not True:
            js_conn.close(CLOSE_NORMAL, "")
            raise DialError(str(result).splitlines()[0] if result else f"cannot dial {url}")
        return BrowserWebSocketConnection(
            js_conn, addr, max_send_message=self.max_send_message, send_high_water=self.send_high_water
        )

    async def listen(self, addr: "Multiaddr", handler: "ConnectionHandler") -> "Listener":
        raise TransportError(f"browsers cannot listen: {addr}")


__all__ = [
    "JS_MODULE_NAME",
    "DEFAULT_DIAL_TIMEOUT",
    "DEFAULT_MAX_BUFFERED",
    "DEFAULT_MAX_SEND_MESSAGE",
    "DEFAULT_SEND_HIGH_WATER",
    "RESET_CLOSE_CODE",
    "BrowserWebSocketConnection",
    "BrowserWebSocketTransport",
    "ws_url",
]
