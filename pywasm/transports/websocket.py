"""WebSocket transport (native CPython only): ``.../tcp/<port>/ws`` and ``/wss``.

Listening on ``/tls/ws`` (or ``/wss``) needs a server certificate: pass
``server_ssl_context`` (see :func:`server_tls_context`); browsers on https pages can only
dial that.

Uses the ``websockets`` library (imported lazily, inside functions: this module may be
imported anywhere, but only native code paths ever touch the dependency).

Wire behaviour matches js-libp2p's and go-libp2p's WebSocket transports so each can dial
the other: the dialer requests path ``/`` with no subprotocol; the listener accepts any
path; every write is one binary message; no permessage-deflate (the payload is Noise
ciphertext, which does not compress). ``/tls/ws`` and ``/tls/sni/<name>/ws`` are read as
``/wss``; the TLS server name comes from ``/sni/`` or else the DNS host.

Stream semantics differ from TCP in one place: WebSocket has no half-close. ``close_write``
sends the Close frame (code 1000) without waiting; the peer then reads EOF, and we keep
reading what it sent before its own Close frame, after which our reads return ``b""``.
Most peers (js-libp2p via the ``ws`` package, websockets) answer a Close at once, so in
practice ``close_write`` ends the connection, exactly as in js-libp2p. Over libp2p that
is fine: streams are half-closed by the muxer, and the raw connection is only closed as
a whole. ``reset`` aborts the TCP connection (RST); the peer sees an abnormal closure
(1006), which reads as a reset.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from ..errors import (
    ConfigError,
    ConnectionClosedError,
    DialError,
    StreamClosedError,
    StreamResetError,
    TransportError,
)
from ..muxers.bytequeue import ByteQueue
from .addrs import WsAddr, format_hostport, parse_ws, sockaddr_to_multiaddr
from .tcp import (
    SOCKET_FAMILIES,
    ServerListener,
    abort_with_rst,
    dial_deadline,
    one_line_reason,
    run_handler,
)

if TYPE_CHECKING:
    import ssl as ssl_module

    from ..interfaces import ConnectionHandler
    from ..multiformats.multiaddr import Multiaddr

log = logging.getLogger(__name__)

# Dial (TCP + TLS + HTTP upgrade) deadline.
DEFAULT_DIAL_TIMEOUT = 10.0
# Largest message we accept. libp2p peers send one Noise frame (<= 64 KiB) or a few per
# message; 4 MiB leaves room for peers that batch more, and bounds a hostile peer.
DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024
# Largest message we send: a larger write is split (peers' default receive limits are
# >= 100 MiB for js `ws`, unlimited for gorilla, 256 MiB for rust; 1 MiB is modest).
DEFAULT_MAX_SEND_MESSAGE = 1024 * 1024
# Frames websockets queues before it stops reading the socket (its low-water is 1/4).
# Receive memory is bounded by max_queue * max_message_size, typically far less.
DEFAULT_MAX_QUEUE = 8
# Bytes in the transport's write buffer above which send() waits.
DEFAULT_WRITE_LIMIT = 1024 * 1024
# Close handshake deadline before the TCP connection is aborted.
DEFAULT_CLOSE_TIMEOUT = 5.0
# listen() backlog.
DEFAULT_BACKLOG = 512


class WebSocketConnection:
    """A :class:`~pywasm.interfaces.RawConnection` over one WebSocket."""

    def __init__(
        self,
        ws: Any,
        local_addr: "Multiaddr | None",
        remote_addr: "Multiaddr",
        max_send_message: int = DEFAULT_MAX_SEND_MESSAGE,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        from websockets.exceptions import ConnectionClosed, ConnectionClosedOK

        self._ws = ws
        self._ConnectionClosed = ConnectionClosed
        self._ConnectionClosedOK = ConnectionClosedOK
        self.local_addr = local_addr
        self.remote_addr = remote_addr
        self._max_send = max_send_message
        self._close_timeout = close_timeout
        self._buf = ByteQueue()  # leftover of the last message a read did not take
        self._read_lock = asyncio.Lock()  # websockets forbids concurrent recv()
        self._write_lock = asyncio.Lock()  # split writes are not interleaved
        self._eof = False
        self._write_closed = False
        self._closed = False
        self._reset = False
        self._reset_reason = ""
        self._close_task: asyncio.Task[None] | None = None

    # --- Stream contract ------------------------------------------------------------
    async def read(self, max_bytes: int = -1) -> bytes:
        if max_bytes == 0:
            return b""
        async with self._read_lock:
            while True:
                self._check_readable()
                if self._buf:
                    return self._buf.take(max_bytes)
                if self._eof:
                    return b""
                try:
                    message = await self._ws.recv(decode=False)
                except self._ConnectionClosed as exc:
                    self._on_closed(exc)
                    continue
                except (EOFError, asyncio.IncompleteReadError):
                    self._eof = True
                    continue
                if not message:
                    continue  # an empty message carries nothing; it is not EOF
                if max_bytes < 0 or len(message) <= max_bytes:
                    self._check_readable()
                    return message  # the common case: no copy, no queue
                self._buf.append(bytes(message))

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        view = memoryview(data)
        size = view.nbytes
        if size == 0:
            return
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        async with self._write_lock:
            try:
                if size <= self._max_send:
                    self._check_writable()
                    # websockets copies into its frame: passing the caller's buffer is safe
                    await self._ws.send(data if type(data) is bytes else view)
                    return
                for start in range(0, size, self._max_send):
                    self._check_writable()
                    await self._ws.send(view[start : start + self._max_send])
            except self._ConnectionClosed as exc:
                self._on_closed(exc)
                self._check_writable()
                raise ConnectionClosedError("WebSocket connection is closed") from None

    async def close_write(self) -> None:
        if self._write_closed:
            if self._reset:
                raise StreamResetError(self._reset_message())
            return
        async with self._write_lock:  # the Close frame goes after writes in flight
            if self._write_closed:
                return
            self._write_closed = True
            # No half-close in WebSocket: start the closing handshake in the background
            # so reads can still collect what the peer sends before its Close frame.
            self._close_task = asyncio.ensure_future(self._close_handshake())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._buf.clear()
        if self._reset:
            return
        self._write_closed = True
        if self._close_task is None:
            self._close_task = asyncio.ensure_future(self._close_handshake())
        try:
            async with asyncio.timeout(self._close_timeout + 1.0):
                # Read and discard until the peer's Close arrives: if nobody reads,
                # websockets stops reading the socket and never sees that Close frame.
                if not self._read_lock.locked():
                    async with self._read_lock:
                        while True:
                            try:
                                await self._ws.recv(decode=False)
                            except (self._ConnectionClosed, EOFError):
                                break
                await asyncio.shield(self._close_task)
        except (TimeoutError, asyncio.TimeoutError):
            abort_with_rst(self._ws.transport)
        except Exception as exc:  # the handshake failed: nothing left to close cleanly
            log.debug("WebSocket close failed: %s", exc)
            abort_with_rst(self._ws.transport)

    async def reset(self) -> None:
        if self._reset:
            return
        self._reset = True
        self._reset_reason = "reset locally"
        self._write_closed = True
        self._buf.clear()
        abort_with_rst(self._ws.transport)

    # --- extras ------------------------------------------------------------------------
    @property
    def is_closed(self) -> bool:
        return self._closed or self._reset or self._ws.transport.is_closing()

    async def wait_closed(self) -> None:
        """Until the underlying TCP connection is gone."""
        await self._ws.wait_closed()

    def __repr__(self) -> str:
        return f"<WebSocketConnection {self.local_addr} -> {self.remote_addr}>"

    # --- internals ---------------------------------------------------------------------
    async def _close_handshake(self) -> None:
        try:
            # websockets bounds its wait for the peer's Close by close_timeout, but not
            # the flush of our Close frame, which sits behind whatever a peer that
            # stopped reading never takes: bound the whole handshake, then abort.
            async with asyncio.timeout(self._close_timeout + 1.0):
                await self._ws.close(1000)
        except TimeoutError:
            abort_with_rst(self._ws.transport)
        except Exception as exc:  # a failing close has nobody to report to but the log
            log.debug("WebSocket close handshake failed: %s", exc)

    def _on_closed(self, exc: Exception) -> None:
        """Map websockets' ConnectionClosed to our state: OK = EOF, else a reset."""
        if isinstance(exc, self._ConnectionClosedOK):
            self._eof = True
            return
        if not self._reset:
            self._reset = True
            rcvd = getattr(exc, "rcvd", None)
            if rcvd is not None:
                self._reset_reason = f"closed by the peer with code {rcvd.code}"
            else:
                self._reset_reason = "connection lost without a close frame"
        self._eof = True

    def _check_readable(self) -> None:
        if self._reset:
            raise StreamResetError(self._reset_message())
        if self._closed:
            raise StreamClosedError("WebSocket connection is closed")

    def _check_writable(self) -> None:
        if self._reset:
            raise StreamResetError(self._reset_message())
        if self._write_closed:
            raise StreamClosedError("write side of the WebSocket connection is closed")

    def _reset_message(self) -> str:
        return f"WebSocket connection was reset ({self._reset_reason or 'by the peer'})"


class WebSocketListener(ServerListener):
    """What :meth:`WebSocketTransport.listen` returns."""

    async def close(self) -> None:
        # Stop accepting; connections already handed to the handler live on.
        self._server.close(close_connections=False)


def server_tls_context(cert_file: str, key_file: str) -> ssl_module.SSLContext:
    """A TLS server context from PEM files (certificate chain, private key), for listening
    on ``/tls/ws``; a missing or unreadable file or a key that does not match is a
    ConfigError naming it."""
    import ssl as ssl_module

    ctx = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl_module.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except FileNotFoundError:
        # OpenSSL's error does not say which file: name the first one missing
        missing = next((f for f in (cert_file, key_file) if not os.path.exists(f)), f"{cert_file} or {key_file}")
        raise ConfigError(f"TLS certificate or key not found: {missing}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read TLS certificate {cert_file} / key {key_file}: {one_line_reason(exc)}") from None
    except ssl_module.SSLError as exc:
        raise ConfigError(f"bad TLS certificate {cert_file} or key {key_file}: {exc.reason or exc}") from None
    return ctx


class WebSocketTransport:
    """Dials ``/ws`` and ``/wss`` (``/tls/ws``) addresses; listens on ``/ws``, and on
    ``/tls/ws`` (``/wss``) when given a ``server_ssl_context``."""

    def __init__(
        self,
        dial_timeout: float = DEFAULT_DIAL_TIMEOUT,
        ssl_context: ssl_module.SSLContext | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_send_message: int = DEFAULT_MAX_SEND_MESSAGE,
        max_queue: int = DEFAULT_MAX_QUEUE,
        write_limit: int = DEFAULT_WRITE_LIMIT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        backlog: int = DEFAULT_BACKLOG,
        server_ssl_context: ssl_module.SSLContext | None = None,
    ) -> None:
        if max_send_message <= 0 or max_send_message > max_message_size:
            # we must be able to read what a peer like us sends
            raise ConfigError("max_send_message must be in 1..max_message_size")
        self.dial_timeout = dial_timeout
        # None: a default context, which verifies certificates and host names
        self._ssl_context = ssl_context
        self._server_ssl = server_ssl_context
        self._max_message = max_message_size
        self._max_send = max_send_message
        self._max_queue = max_queue
        self._write_limit = write_limit
        self._close_timeout = close_timeout
        self._backlog = backlog

    def can_dial(self, addr: "Multiaddr") -> bool:
        return parse_ws(addr) is not None

    def can_listen(self, addr: "Multiaddr") -> bool:
        wa = parse_ws(addr)
        return (wa is not None and not wa.hostport.is_dns and not (wa.secure and wa.sni)
                and (not wa.secure or self._server_ssl is not None))

    def _ws_options(self) -> dict[str, Any]:
        return {
            "compression": None,
            "max_size": self._max_message,
            "max_queue": self._max_queue,
            "write_limit": self._write_limit,
            # libp2p has its own keepalive (yamux/ping); websockets' pings would fail
            # busy connections whose pong waits behind megabytes of queued data
            "ping_interval": None,
            "close_timeout": self._close_timeout,
        }

    async def dial(self, addr: "Multiaddr") -> WebSocketConnection:
        wa = parse_ws(addr)
        if wa is None:
            raise DialError(
                f"WebSocket transport cannot dial {addr}: expected .../tcp/<port>/ws, /wss or /tls/ws"
            )
        import ssl as ssl_module

        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidURI

        hp = wa.hostport
        # The URI host is the HTTP Host header and (for wss) the TLS server name; the
        # TCP connection goes to the address's host (an IP when /sni/ names the server).
        uri_host = wa.sni if (wa.secure and wa.sni) else hp.host
        if ":" in uri_host:
            uri_host = f"[{uri_host}]"
        uri = f"{'wss' if wa.secure else 'ws'}://{uri_host}:{hp.port}/"
        kwargs: dict[str, Any] = self._ws_options()
        kwargs.update(
            host=hp.host,
            port=hp.port,
            family=SOCKET_FAMILIES.get(hp.family, socket.AF_UNSPEC),
            proxy=None,  # libp2p dials the address it was given, not an env proxy
            open_timeout=None,  # our own deadline below covers TCP + TLS + upgrade
            user_agent_header=None,
        )
        if wa.secure:
            kwargs["ssl"] = self._ssl_context or ssl_module.create_default_context()
            kwargs["server_hostname"] = wa.sni or hp.host
        async with dial_deadline(hp, self.dial_timeout, "WebSocket dial") as target:
            try:
                ws = await connect(uri, **kwargs)
            # (SSL errors are OSErrors: name them here, before dial_deadline's OSError)
            except ssl_module.SSLCertVerificationError as exc:
                raise DialError(f"TLS certificate of {target} rejected: {exc.verify_message or exc}") from None
            except ssl_module.SSLError as exc:
                raise DialError(f"TLS handshake with {target} failed: {exc.reason or exc}") from None
            except (InvalidHandshake, InvalidURI) as exc:
                raise DialError(f"WebSocket upgrade with {target} failed: {one_line_reason(exc)}") from None
        suffix = "/tls/ws" if wa.secure else "/ws"
        local = sockaddr_to_multiaddr(ws.transport.get_extra_info("sockname"), suffix)
        remote = sockaddr_to_multiaddr(ws.transport.get_extra_info("peername"), suffix)
        return WebSocketConnection(
            ws,
            local,
            remote if remote is not None else addr.without_peer_id(),
            self._max_send,
            self._close_timeout,
        )

    async def listen(self, addr: "Multiaddr", handler: "ConnectionHandler") -> WebSocketListener:
        wa = parse_ws(addr)
        if wa is None or wa.hostport.is_dns or (wa.secure and wa.sni):
            raise TransportError(
                f"WebSocket transport cannot listen on {addr}: expected /ip4|ip6/<ip>/tcp/<port>/ws or .../tls/ws"
            )
        if wa.secure and self._server_ssl is None:
            raise TransportError(f"cannot listen on {addr}: /tls/ws needs a TLS certificate (server_ssl_context)")
        from websockets.asyncio.server import serve

        max_send, close_timeout = self._max_send, self._close_timeout
        suffix = "/tls/ws" if wa.secure else "/ws"

        async def on_connection(ws: Any) -> None:
            local = sockaddr_to_multiaddr(ws.transport.get_extra_info("sockname"), suffix)
            remote = sockaddr_to_multiaddr(ws.transport.get_extra_info("peername"), suffix)
            conn = WebSocketConnection(ws, local, remote or addr, max_send, close_timeout)  # type: ignore[arg-type]
            await run_handler(handler, conn, "WebSocket")
            # websockets closes the connection when this coroutine returns; the handler
            # may have handed it to a muxer that lives on, so wait for its real end.
            await ws.wait_closed()

        hp = wa.hostport
        tls: dict[str, Any] = {}
        if wa.secure:
            # a client that opens TCP and never finishes TLS is dropped as a slow dialer
            # would be (asyncio's default would hold it for 60 s)
            tls = {"ssl": self._server_ssl, "ssl_handshake_timeout": self.dial_timeout}
        try:
            server = await serve(
                on_connection,
                hp.host,
                hp.port,
                family=SOCKET_FAMILIES.get(hp.family, socket.AF_UNSPEC),
                backlog=self._backlog,
                reuse_address=True,
                server_header=None,
                **tls,
                **self._ws_options(),
            )
        except OSError as exc:
            raise TransportError(
                f"cannot listen on {format_hostport(hp.host, hp.port)}: {one_line_reason(exc)}"
            ) from None
        return WebSocketListener(server, suffix)

    def __repr__(self) -> str:
        return "WebSocketTransport()"


__all__ = [
    "server_tls_context",
    "WebSocketTransport",
    "WebSocketConnection",
    "WebSocketListener",
    "WsAddr",
    "DEFAULT_DIAL_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_SEND_MESSAGE",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_WRITE_LIMIT",
    "DEFAULT_CLOSE_TIMEOUT",
]
