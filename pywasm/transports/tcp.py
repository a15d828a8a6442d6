"""TCP transport (native CPython only): ``/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>``.

Built on :class:`asyncio.Protocol` rather than ``StreamReader``/``StreamWriter``: one
object is both the protocol and the :class:`~pywasm.streams.Stream`, received chunks go
into a :class:`ByteQueue` untouched (a reader asking for at least a chunk gets the very
``bytes`` object the socket produced), and writes hit ``transport.write`` directly,
waiting only while the transport's buffer is above its high-water mark. That keeps the
per-chunk Python work to a few attribute updates, which is what bulk throughput through
Noise+yamux needs (benchmarks/raw_transport.py measures it against raw asyncio).

Bounds: the receive queue pauses the socket above ``recv_high_water`` and resumes below
a quarter of it; the send side pauses writers above ``write_high_water`` bytes queued in
the transport. Beyond those only the kernel's socket buffers hold data.

Stream semantics (pywasm/streams.py): ``close_write`` is a TCP half-close (FIN);
``close`` sends FIN, discards what still arrives, and closes the socket once the peer
half-closes too and our last bytes are flushed, so data we sent just before is not
destroyed by an RST; a peer that does neither within ``close_linger`` seconds (it never
sends its FIN, or stops reading so our buffer never drains) gets the socket aborted.
``reset`` aborts with SO_LINGER 0, which sends an RST the peer sees as a reset.

Every wait is bounded by connection loss: ``connection_lost`` wakes blocked readers and
writers, and ``close``/``reset`` wake them too (they then raise instead of waiting on).

Port reuse (``TCPTransport(port_reuse=True)``, off by default): listeners set SO_REUSEPORT
and dials leave from a listener's port (SO_REUSEADDR + SO_REUSEPORT, bound to it), as
go-libp2p's TCP transport does. Behind a port-preserving NAT the address peers observe for
our dials is then the one our listener is reachable at once a hole is punched: identify's
observed address becomes a usable DCUtR address, and a hole-punching dial from that port
meets the peer's dial as one TCP connection (simultaneous open). A dial whose 4-tuple is
taken (we already hold a connection from that port to that address) falls back to an
ephemeral port.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

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
from .addrs import (
    FAMILY_IP4,
    FAMILY_IP6,
    HostPort,
    format_hostport,
    parse_tcp,
    sockaddr_to_multiaddr,
)

if TYPE_CHECKING:
    from ..interfaces import ConnectionHandler
    from ..multiformats.multiaddr import Multiaddr

log = logging.getLogger(__name__)

# How long dial() waits for DNS + TCP connect before giving up.
DEFAULT_DIAL_TIMEOUT = 10.0
# Received bytes queued before we stop reading the socket. 1 MiB keeps a 256 KiB-chunk
# reader (Noise reads 256 KiB) always fed while bounding memory per connection.
DEFAULT_RECV_HIGH_WATER = 1024 * 1024
# Bytes queued in the asyncio transport above which write() waits (then the kernel
# buffer is full too). Big enough that a bulk writer rarely pauses, small enough to bound.
DEFAULT_WRITE_HIGH_WATER = 1024 * 1024
# One write() larger than this is fed to the transport in slices of this size, so a
# huge write does not sit in the transport buffer all at once.
WRITE_SLICE = 1024 * 1024
# After close(): how long we wait for the peer's FIN before aborting the socket.
DEFAULT_CLOSE_LINGER = 5.0
# listen() backlog: pending connections the kernel keeps before refusing new ones.
DEFAULT_BACKLOG = 512
# Handler tasks of one listener still running at once (beyond this, new connections
# are refused by resetting them: bounded work for a flood of dials).
DEFAULT_MAX_PENDING_HANDLERS = 4096

# Shared with websocket.py (the other socket-based transport).
SOCKET_FAMILIES = {FAMILY_IP4: socket.AF_INET, FAMILY_IP6: socket.AF_INET6}
_LINGER_ZERO = struct.pack("ii", 1, 0)


def abort_with_rst(transport: asyncio.BaseTransport | None) -> None:
    """Abort with an RST (SO_LINGER 0) so the peer sees a reset, not a clean EOF."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        except OSError:
            pass
    transport.abort()  # type: ignore[attr-defined]


def one_line_reason(exc: BaseException) -> str:
    """One line for an OSError-ish exception."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]


@contextlib.asynccontextmanager
async def dial_deadline(hp: HostPort, timeout: float, what: str = "dial") -> AsyncIterator[str]:
    """Bound a dial to ``hp`` by ``timeout`` seconds and turn socket errors into
    :class:`DialError` with one-line reasons. Yields ``host:port`` for messages."""
    target = format_hostport(hp.host, hp.port)
    try:
        async with asyncio.timeout(timeout):
            yield target
    except TimeoutError:
        raise DialError(f"{what} {target} timed out after {timeout:g} s") from None
    except socket.gaierror as exc:
        raise DialError(f"cannot resolve {hp.host}: {exc.strerror or exc}") from None
    except ConnectionRefusedError:
        raise DialError(f"connection refused by {target}") from None
    except OSError as exc:
        raise DialError(f"cannot connect to {target}: {one_line_reason(exc)}") from None


async def run_handler(handler: "ConnectionHandler", conn: Any, kind: str) -> None:
    """Run a listener's handler for one inbound connection; if the handler fails (or
    is cancelled), the connection is reset, never the listener."""
    try:
        await handler(conn)
    except asyncio.CancelledError:
        await conn.reset()
        raise
    except PywasmError as exc:
        log.debug("inbound %s connection from %s failed: %s", kind, conn.remote_addr, exc)
        await conn.reset()
    except Exception:
        log.exception("connection handler failed for %s", conn.remote_addr)
        await conn.reset()


class TcpConnection(asyncio.Protocol):
    """One TCP connection: asyncio protocol below, :class:`RawConnection` above."""

    local_addr: "Multiaddr | None"
    remote_addr: "Multiaddr"

    def __init__(
        self,
        recv_high_water: int = DEFAULT_RECV_HIGH_WATER,
        write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
        close_linger: float = DEFAULT_CLOSE_LINGER,
        on_connected: Callable[["TcpConnection"], None] | None = None,
        suffix: str = "",
    ) -> None:
        if recv_high_water <= 0 or write_high_water <= 0:
            raise ConfigError("high-water marks must be positive")
        self._recv_high = recv_high_water
        self._recv_low = recv_high_water // 4
        self._write_high = write_high_water
        self._close_linger = close_linger
        self._on_connected = on_connected
        self._suffix = suffix  # appended to local/remote multiaddrs (e.g. "/ws")
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._buf = ByteQueue()
        self._read_waiter: asyncio.Future[None] | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._write_lock = asyncio.Lock()
        self._reading_paused = False
        self._write_paused = False
        self._eof = False  # the peer half-closed
        self._write_closed = False  # we half-closed (or closed/reset)
        self._closed = False  # close() called: reads raise, incoming data discarded
        self._reset = False  # reset by us or by the peer (RST / socket error)
        self._lost = False  # connection_lost ran: the socket is gone
        self._lost_reason = ""
        self._linger: asyncio.TimerHandle | None = None
        self._closed_future: asyncio.Future[None] = self._loop.create_future()
        self.local_addr = None
        self.remote_addr = None  # type: ignore[assignment]  # set in connection_made

    # --- asyncio.Protocol callbacks ---------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                # asyncio already sets it for TCP; be explicit since latency of small
                # handshake messages depends on it.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        # asyncio's low mark defaults to high/4, good for us
        transport.set_write_buffer_limits(high=self._write_high)
        self.local_addr = sockaddr_to_multiaddr(transport.get_extra_info("sockname"), self._suffix)
        self.remote_addr = sockaddr_to_multiaddr(transport.get_extra_info("peername"), self._suffix)  # type: ignore[assignment]
        if self._on_connected is not None:
            self._on_connected(self)

    def data_received(self, data: bytes) -> None:
        if self._closed or self._reset:
            return  # we stopped reading: discard, like a closed socket would
        buf = self._buf
        buf.append(data)
        if len(buf) > self._recv_high and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()  # type: ignore[union-attr]
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        # Keep the transport open for our half (True) unless we are already closing:
        # then both directions are done and asyncio may close the socket (False).
        return not self._closed

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if exc is not None and not (self._closed or self._reset):
            # RST or a socket error: the peer (or the network) aborted the connection
            self._reset = True
            self._lost_reason = one_line_reason(exc)
        self._eof = True
        self._write_paused = False
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self._wake_reader()
        self._wake_writer()
        if not self._closed_future.done():
            self._closed_future.set_result(None)

    # --- Stream contract -------------------------------------------------------------
    async def read(self, max_bytes: int = -1) -> bytes:
        if max_bytes == 0:
            return b""
        while True:
            if self._reset:
                raise StreamResetError(self._reset_message())
            if self._closed:
                raise StreamClosedError("TCP connection is closed")
            buf = self._buf
            if buf:
                data = buf.take(max_bytes)
                if self._reading_paused and len(buf) <= self._recv_low and not self._lost:
                    self._reading_paused = False
                    self._transport.resume_reading()  # type: ignore[union-attr]
                return data
            if self._eof:
                return b""
            waiter = self._loop.create_future()
            self._read_waiter = waiter
            try:
                await waiter
            finally:
                if self._read_waiter is waiter:
                    self._read_waiter = None

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        if type(data) is not bytes:
            view = memoryview(data)
            if view.nbytes == 0:
                return
            # asyncio (3.12+) may keep a reference to what it could not send yet: give
            # it an immutable copy when the caller's buffer could change under it.
            if not view.readonly or not view.c_contiguous:
                data = view.tobytes()
            elif view.format != "B" or view.ndim != 1:
                data = view.cast("B")
            size = view.nbytes
        else:
            size = len(data)
            if size == 0:
                return
        async with self._write_lock:
            transport = self._transport
            if size <= WRITE_SLICE:
                await self._drain()
                transport.write(data)  # type: ignore[union-attr]
                return
            view = memoryview(data)
            for start in range(0, size, WRITE_SLICE):
                await self._drain()
                transport.write(view[start : start + WRITE_SLICE])  # type: ignore[union-attr]

    async def close_write(self) -> None:
        if self._write_closed:
            if self._reset:
                raise StreamResetError(self._reset_message())
            return
        # the FIN goes after writes in flight (they hold the lock while paused)
        async with self._write_lock:
            if self._write_closed:
                return
            self._write_closed = True
            self._send_eof()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._buf.clear()
        self._wake_reader()
        if self._lost or self._reset:
            self._write_closed = True
            return
        if not self._write_closed:
            self._write_closed = True
            self._send_eof()
        self._wake_writer()  # a writer waiting for drain raises now
        transport = self._transport
        assert transport is not None
        # Whatever we wait for below -- the peer's FIN, or the flush of what is still
        # buffered, which a peer that stopped reading never lets finish -- is bounded:
        # connection_lost cancels this, else the socket is aborted.
        self._linger = self._loop.call_later(self._close_linger, self._abort)
        if self._eof:
            # both directions done: close now (flushes what is still buffered first)
            transport.close()
            return
        # Wait (in the background) for the peer's FIN so our last bytes are not cut off
        # by the RST a close with unread incoming data would send; read and discard.
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    async def reset(self) -> None:
        if self._reset:
            return
        self._reset = True
        self._write_closed = True
        self._buf.clear()
        self._lost_reason = "reset locally"
        if not self._lost:
            self._abort()
        self._wake_reader()
        self._wake_writer()

    # --- extras ------------------------------------------------------------------------
    @property
    def is_closed(self) -> bool:
        return self._lost or self._closed or self._reset

    async def wait_closed(self, timeout: float | None = None) -> None:
        """Until the socket is gone (after close()/reset() or the peer's close)."""
        await asyncio.wait_for(asyncio.shield(self._closed_future), timeout)

    def __repr__(self) -> str:
        return f"<TcpConnection {self.local_addr} -> {self.remote_addr}>"

    # --- internals ---------------------------------------------------------------------
    def _send_eof(self) -> None:
        transport = self._transport
        if transport is None or self._lost or transport.is_closing():
            return
        if transport.can_write_eof():
            try:
                transport.write_eof()  # sent once the transport buffer is flushed
            except (OSError, RuntimeError):
                pass

    def _abort(self) -> None:
        self._linger = None
        if not self._lost:
            abort_with_rst(self._transport)

    def _check_writable(self) -> None:
        if self._reset:
            raise StreamResetError(self._reset_message())
        if self._write_closed:
            raise StreamClosedError("write side of the TCP connection is closed")
        if self._lost:
            raise ConnectionClosedError("TCP connection is closed")

    async def _drain(self) -> None:
        """Wait while the transport buffer is above its high-water mark, then check we
        may still write. Woken by resume_writing, connection_lost, close() and reset()."""
        while self._write_paused:
            self._check_writable()
            waiter = self._drain_waiter
            if waiter is None or waiter.done():
                waiter = self._loop.create_future()
                self._drain_waiter = waiter
            await waiter
        self._check_writable()

    def _wake_reader(self) -> None:
        waiter, self._read_waiter = self._read_waiter, None
        _resolve(waiter)

    def _wake_writer(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        _resolve(waiter)

    def _reset_message(self) -> str:
        return f"TCP connection was reset ({self._lost_reason or 'by the peer'})"


def _resolve(waiter: "asyncio.Future[None] | None") -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class ServerListener:
    """A listener over a server with bound ``sockets`` (asyncio's or websockets').

    ``close`` stops accepting; connections already handed to the handler live on (as
    with every libp2p transport). We do not await the server's ``wait_closed()``: since
    3.12 asyncio's also waits for those connections.
    """

    def __init__(self, server: Any, suffix: str = "") -> None:
        self._server = server
        addrs = []
        for sock in server.sockets:
            ma = sockaddr_to_multiaddr(sock.getsockname(), suffix)
            if ma is not None:
                addrs.append(ma)
        self._addrs = addrs

    @property
    def addrs(self) -> list["Multiaddr"]:
        return list(self._addrs)

    async def close(self) -> None:
        self._server.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {', '.join(map(str, self._addrs))}>"


class TcpListener(ServerListener):
    """What :meth:`TCPTransport.listen` returns."""

    def __init__(self, server: asyncio.AbstractServer, suffix: str = "") -> None:
        super().__init__(server, suffix)
        self.handler_tasks: set[asyncio.Task[None]] = set()
        # the first socket's (ip, port[, ...]): where port-reusing dials leave from
        self.bound: tuple[Any, ...] = tuple(server.sockets[0].getsockname()) if server.sockets else ("", 0)

    @property
    def is_serving(self) -> bool:
        return bool(self._server.is_serving())


class TCPTransport:
    """Dials and listens on plain TCP multiaddrs."""

    def __init__(
        self,
        dial_timeout: float = DEFAULT_DIAL_TIMEOUT,
        recv_high_water: int = DEFAULT_RECV_HIGH_WATER,
        write_high_water: int = DEFAULT_WRITE_HIGH_WATER,
        close_linger: float = DEFAULT_CLOSE_LINGER,
        backlog: int = DEFAULT_BACKLOG,
        max_pending_handlers: int = DEFAULT_MAX_PENDING_HANDLERS,
        port_reuse: bool = False,
    ) -> None:
        self.dial_timeout = dial_timeout
        self._conn_opts: dict[str, Any] = {
            "recv_high_water": recv_high_water,
            "write_high_water": write_high_water,
            "close_linger": close_linger,
        }
        self._backlog = backlog
        self._max_pending = max_pending_handlers
        self.port_reuse = port_reuse
        # with port_reuse: our live listeners, whose ports dials leave from
        self._reuse_listeners: list[TcpListener] = []

    def can_dial(self, addr: "Multiaddr") -> bool:
        return parse_tcp(addr) is not None

    def can_listen(self, addr: "Multiaddr") -> bool:
        hp = parse_tcp(addr)
        return hp is not None and not hp.is_dns

    async def dial(self, addr: "Multiaddr") -> TcpConnection:
        hp = parse_tcp(addr)
        if hp is None:
            raise DialError(
                f"TCP transport cannot dial {addr}: expected /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>"
            )
        local = self._reuse_source(hp) if self.port_reuse else None
        if local is not None:
            try:
                return await open_tcp(hp, self.dial_timeout, local=local, **self._conn_opts)
            except _SourceTaken:
                log.debug("port reuse: %s:%d to %s is taken; dialing from an ephemeral port", *local, hp.host)
        return await open_tcp(hp, self.dial_timeout, **self._conn_opts)

    def _reuse_source(self, hp: HostPort) -> tuple[str, int] | None:
        """The (ip, port) of a live listener of ``hp``'s family to dial from, if any."""
        if hp.is_dns:
            return None
        self._reuse_listeners = [l for l in self._reuse_listeners if l.is_serving]
        target_loopback = _is_loopback(hp.host)
        for listener in self._reuse_listeners:
            ip, port = listener.bound[:2]
            if hp.family == FAMILY_IP4 and ":" in ip or hp.family == FAMILY_IP6 and ":" not in ip:
                continue
            # a listener bound to one address can only source dials that address can reach
            if ip in ("0.0.0.0", "::") or _is_loopback(ip) == target_loopback:
                return ip, port
        return None

    async def listen(self, addr: "Multiaddr", handler: "ConnectionHandler") -> TcpListener:
        hp = parse_tcp(addr)
        if hp is None or hp.is_dns:
            raise TransportError(f"TCP transport cannot listen on {addr}: expected /ip4|ip6/<ip>/tcp/<port>")
        listener = await serve_tcp(
            hp, handler, self._backlog, self._max_pending, reuse_port=self.port_reuse, **self._conn_opts
        )
        if self.port_reuse:
            self._reuse_listeners.append(listener)
        return listener

    def __repr__(self) -> str:
        return "TCPTransport()"


class _SourceTaken(Exception):
    """The local (ip, port) to dial from cannot be used for this dial."""


def _is_loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip == "::1"


async def _open_from(hp: HostPort, timeout: float, local: tuple[str, int], suffix: str, **conn_opts: Any) -> TcpConnection:
    """Connect from the bound ``local`` (ip, port), shared with a listener via SO_REUSEPORT."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(SOCKET_FAMILIES[hp.family], socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind(local)
        except OSError as exc:
            raise _SourceTaken(str(exc)) from None
        async with dial_deadline(hp, timeout):
            try:
                await loop.sock_connect(sock, (hp.host, hp.port))
            except OSError as exc:
                # the 4-tuple is in use (another connection from this port to there)
                if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
                    raise _SourceTaken(str(exc)) from None
                raise
            _, conn = await loop.create_connection(lambda: TcpConnection(suffix=suffix, **conn_opts), sock=sock)
    except BaseException:
        sock.close()
        raise
    return conn


async def open_tcp(
    hp: HostPort, timeout: float, suffix: str = "", *, local: tuple[str, int] | None = None, **conn_opts: Any
) -> TcpConnection:
    """Connect to ``hp`` within ``timeout`` seconds; :class:`DialError` with one-line reasons.
    ``local``: dial from this bound (ip, port) with SO_REUSEPORT (literal IPs only);
    :class:`_SourceTaken` when it cannot be used."""
    if local is not None and not hp.is_dns:
        return await _open_from(hp, timeout, local, suffix, **conn_opts)
    loop = asyncio.get_running_loop()
    kwargs: dict[str, Any] = {"family": SOCKET_FAMILIES.get(hp.family, socket.AF_UNSPEC)}
    if hp.is_dns:
        # several A/AAAA records: race them (RFC 8305) rather than wait per address
        kwargs["happy_eyeballs_delay"] = 0.25
    async with dial_deadline(hp, timeout):
        _, conn = await loop.create_connection(
            lambda: TcpConnection(suffix=suffix, **conn_opts), hp.host, hp.port, **kwargs
        )
    return conn


async def serve_tcp(
    hp: HostPort,
    handler: "ConnectionHandler",
    backlog: int = DEFAULT_BACKLOG,
    max_pending: int = DEFAULT_MAX_PENDING_HANDLERS,
    suffix: str = "",
    reuse_port: bool = False,
    **conn_opts: Any,
) -> TcpListener:
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    def on_connected(conn: TcpConnection) -> None:
        if len(tasks) >= max_pending:
            log.warning("too many connections being handled (%d): refusing one", len(tasks))
            conn._abort()
            return
        task = loop.create_task(run_handler(handler, conn, "TCP"))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        server = await loop.create_server(
            lambda: TcpConnection(on_connected=on_connected, suffix=suffix, **conn_opts),
            hp.host,
            hp.port,
            family=SOCKET_FAMILIES.get(hp.family, socket.AF_UNSPEC),
            backlog=backlog,
            reuse_address=True,
            reuse_port=reuse_port or None,
        )
    except OSError as exc:
        raise TransportError(
            f"cannot listen on {format_hostport(hp.host, hp.port)}: {one_line_reason(exc)}"
        ) from None
    listener = TcpListener(server, suffix)
    listener.handler_tasks = tasks
    return listener


__all__ = [
    "TCPTransport",
    "TcpConnection",
    "TcpListener",
    "open_tcp",
    "serve_tcp",
    "DEFAULT_DIAL_TIMEOUT",
    "DEFAULT_RECV_HIGH_WATER",
    "DEFAULT_WRITE_HIGH_WATER",
    "DEFAULT_CLOSE_LINGER",
]
