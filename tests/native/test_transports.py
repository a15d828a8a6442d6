"""TCP and WebSocket transports on real loopback sockets (127.0.0.1 only).

The Stream contract is checked with the shared conformance suite (tests/conformance);
WebSocket skips the two checks that need a true half-close (it has none: see
pywasm/transports/websocket.py) and gets its own versions of them below.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from typing import Any, AsyncIterator, Callable

import pytest

from pywasm.errors import ConfigError, DialError, PywasmError, StreamClosedError, StreamResetError, TransportError
from pywasm.interfaces import RawConnection
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.streams import Stream
from pywasm.transports import default_native_transports
from pywasm.transports.addrs import parse_tcp, parse_ws
from pywasm.transports.tcp import TCPTransport
from pywasm.transports.websocket import WebSocketTransport, server_tls_context
from tests._certs import self_signed
from tests.conformance.stream_suite import (
    STREAM_CHECKS,
    StreamTraits,
    _pattern,
    _with_timeout,
    check_half_close,
    check_large_transfer_both_directions,
    read_all,
    read_exactly,
)

TIMEOUT = 30.0


async def _pair(transport: Any, listen: str) -> tuple[Any, Any, Any]:
    """(dialer end, listener end, listener) over ``transport``."""
    accepted: asyncio.Queue[Any] = asyncio.Queue()
    gone = asyncio.Event()

    async def handler(conn: RawConnection) -> None:
        await accepted.put(conn)
        # hold the handler open like an upgrader would, until the test ends
        await gone.wait()

    listener = await transport.listen(Multiaddr(listen), handler)
    listener._test_gone = gone  # released in teardown
    dialed = await transport.dial(listener.addrs[0])
    inbound = await asyncio.wait_for(accepted.get(), 5)
    return dialed, inbound, listener


def pair_factory(make: Callable[[], Any], listen: str) -> Any:
    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[tuple[Stream, Stream]]:
        a, b, listener = await _pair(make(), listen)
        try:
            yield a, b
        finally:
            for end in (a, b):
                with contextlib.suppress(PywasmError):
                    await end.close()
            listener._test_gone.set()
            await listener.close()

    return factory


tcp_pair = pair_factory(TCPTransport, "/ip4/127.0.0.1/tcp/0")
ws_pair = pair_factory(WebSocketTransport, "/ip4/127.0.0.1/tcp/0/ws")

# What a writer may get accepted while the reader reads nothing: our receive queue and
# write buffer (1 MiB each), plus the kernel's socket buffers (loopback autotuning can
# grow them to several MiB), plus websockets' frame queue for ws.
TCP_TRAITS = StreamTraits(max_unread_bytes=16 * 1024 * 1024)
WS_TRAITS = StreamTraits(max_unread_bytes=16 * 1024 * 1024)

_WS_SKIP = {check_half_close, check_large_transfer_both_directions}


@pytest.mark.parametrize("check", STREAM_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_tcp_stream_conformance(check: Any) -> None:
    await _with_timeout(check(tcp_pair, TCP_TRAITS))


@pytest.mark.parametrize(
    "check",
    [c for c in STREAM_CHECKS if c not in _WS_SKIP],
    ids=lambda c: c.__name__.removeprefix("check_"),
)
async def test_ws_stream_conformance(check: Any) -> None:
    await _with_timeout(check(ws_pair, WS_TRAITS))


# --- echo, large transfers ---------------------------------------------------------------
@pytest.mark.parametrize("factory", [tcp_pair, ws_pair], ids=["tcp", "ws"])
async def test_echo(factory: Any) -> None:
    async with factory() as (a, b):
        for msg in (b"x", b"hello world", bytes(range(256)) * 1000):
            await a.write(msg)
            got = await asyncio.wait_for(read_exactly(b, len(msg)), TIMEOUT)
            await b.write(got)
            assert await asyncio.wait_for(read_exactly(a, len(msg)), TIMEOUT) == msg


@pytest.mark.parametrize("factory", [tcp_pair, ws_pair], ids=["tcp", "ws"])
async def test_16_mib_byte_exact_each_way(factory: Any) -> None:
    """One direction at a time, so it also holds for WebSocket (close_write ends it)."""
    size = 16 * 1024 * 1024
    for direction in (0, 1):
        data = _pattern(10 + direction, size)
        async with factory() as ends:
            src, dst = ends if direction == 0 else ends[::-1]

            async def send() -> None:
                view = memoryview(data)
                for pos in range(0, size, 300_000):
                    await src.write(view[pos : pos + 300_000])
                await src.close_write()

            _, got = await asyncio.wait_for(asyncio.gather(send(), read_all(dst, 1 << 20)), TIMEOUT)
            assert len(got) == size
            assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


async def test_tcp_one_big_write_and_big_reads() -> None:
    """A 16 MiB single write (sliced internally) reaches the reader byte-exact."""
    data = _pattern(7, 16 * 1024 * 1024)
    async with tcp_pair() as (a, b):

        async def send() -> None:
            await a.write(data)
            await a.close_write()

        _, got = await asyncio.wait_for(asyncio.gather(send(), read_all(b, 4 << 20)), TIMEOUT)
        assert got == data


async def test_tcp_write_copies_mutable_buffers() -> None:
    """Mutating a bytearray after write() returns must not change what is sent."""
    async with tcp_pair() as (a, b):
        buf = bytearray(b"A" * 65536)
        writes = 64

        async def send() -> None:
            for _ in range(writes):
                await a.write(buf)
                buf[:] = b"B" * 65536  # the next write sends B; anything queued must stay A
                await a.write(buf)
                buf[:] = b"A" * 65536
            await a.close_write()

        _, got = await asyncio.wait_for(asyncio.gather(send(), read_all(b)), TIMEOUT)
        assert got == (b"A" * 65536 + b"B" * 65536) * writes


# --- half-close and reset as seen by the other side ---------------------------------------
async def test_tcp_half_close_then_reply() -> None:
    async with tcp_pair() as (a, b):
        await a.write(b"question")
        await a.close_write()
        assert await read_all(b) == b"question"
        await b.write(b"answer")
        await b.close_write()
        assert await read_all(a) == b"answer"
        with pytest.raises(StreamClosedError):
            await a.write(b"late")


async def test_ws_close_write_gives_eof_to_peer() -> None:
    async with ws_pair() as (a, b):
        await a.write(b"last words")
        await a.close_write()
        assert await asyncio.wait_for(read_all(b), TIMEOUT) == b"last words"
        # no half-close in WebSocket: after the Close handshake a reads EOF too
        assert await asyncio.wait_for(a.read(), TIMEOUT) == b""
        with pytest.raises(StreamClosedError):
            await a.write(b"late")


@pytest.mark.parametrize("factory", [tcp_pair, ws_pair], ids=["tcp", "ws"])
async def test_reset_is_seen_as_reset_not_eof(factory: Any) -> None:
    async with factory() as (a, b):
        await a.write(b"x")
        assert await read_exactly(b, 1) == b"x"
        await a.reset()
        with pytest.raises(StreamResetError):
            await asyncio.wait_for(b.read(), 5)


async def test_tcp_close_with_unread_input_still_delivers_our_data() -> None:
    """close() lingers for the peer's FIN instead of an RST that would drop our last bytes."""
    async with tcp_pair() as (a, b):
        await b.write(b"\x00" * (512 * 1024))  # a never reads this
        await a.write(b"bye")
        await a.close()
        assert await asyncio.wait_for(read_all(b), TIMEOUT) == b"bye"
        await b.close()
        await asyncio.wait_for(a.wait_closed(), 5)
        assert a.is_closed


async def test_tcp_close_linger_is_bounded() -> None:
    """A peer that never closes its side: the socket is aborted after close_linger."""
    a, b, listener = await _pair(TCPTransport(close_linger=0.1), "/ip4/127.0.0.1/tcp/0")
    try:
        await a.close()
        assert await asyncio.wait_for(b.read(), 5) == b""  # b saw our FIN, stays open
        await asyncio.wait_for(a.wait_closed(), 5)  # a gave up waiting for b's FIN
    finally:
        await b.reset()
        listener._test_gone.set()
        await listener.close()


async def test_tcp_close_is_bounded_when_peer_stops_reading() -> None:
    """The peer half-closed and stopped reading, our buffer is full: close() must not
    leave a writer blocked on drain nor the socket open forever waiting for the flush."""
    a, b, listener = await _pair(
        TCPTransport(close_linger=0.2, write_high_water=64 * 1024), "/ip4/127.0.0.1/tcp/0"
    )
    try:
        await b.close_write()
        assert await asyncio.wait_for(a.read(), 5) == b""  # a has the peer's FIN
        counter = [0]
        task = asyncio.ensure_future(_write_forever(a, counter))
        await _until_stalled(counter, task)
        assert not task.done()  # blocked: kernel buffers and ours are full
        await a.close()
        with pytest.raises(StreamClosedError):
            await asyncio.wait_for(task, 5)  # close() wakes the blocked writer
        await a.wait_closed(5)  # flush never finishes: aborted after close_linger
        assert a.is_closed
    finally:
        await b.reset()
        listener._test_gone.set()
        await listener.close()


async def test_ws_close_handshake_is_bounded_when_peer_stops_reading() -> None:
    """Our Close frame queued behind data the peer never reads: the handshake that
    close_write() starts must still end (abort) instead of waiting on the flush forever."""
    a, b, listener = await _pair(WebSocketTransport(close_timeout=0.2), "/ip4/127.0.0.1/tcp/0/ws")
    try:
        counter = [0]
        task = asyncio.ensure_future(_write_forever(a, counter))
        await _until_stalled(counter, task)
        assert not task.done()  # blocked: b reads nothing
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.wait_for(a.close_write(), 5)
        await asyncio.wait_for(a.wait_closed(), 5)  # aborted after close_timeout (+1 s)
        assert a.is_closed
    finally:
        await a.reset()
        await b.reset()
        listener._test_gone.set()
        await listener.close()


async def _write_forever(stream: Any, counter: list[int]) -> None:
    chunk = b"\x00" * 65536
    while True:
        await stream.write(chunk)
        counter[0] += len(chunk)


async def _until_stalled(counter: list[int], task: "asyncio.Future[Any]") -> None:
    last = -1
    while not task.done():
        await asyncio.sleep(0.05)
        if counter[0] == last:
            return
        last = counter[0]


async def test_connection_close_cancelled_does_not_strand_other_closers() -> None:
    """A close() cancelled while the muxer closes must not leave later close() calls
    (or wait_closed) waiting forever on an event nobody sets."""
    from types import SimpleNamespace

    from pywasm.host.connection import Connection, Direction

    release = asyncio.Event()

    class SlowMuxed:
        is_closed = False

        async def close(self) -> None:
            await release.wait()

    secure = SimpleNamespace(remote_peer="peer", local_peer="me", remote_public_key=None)
    conn = Connection(
        secure,  # type: ignore[arg-type]
        SlowMuxed(),  # type: ignore[arg-type]
        security_protocol="/noise",
        muxer_protocol="/yamux/1.0.0",
        direction=Direction.OUTBOUND,
        remote_addr=None,
        local_addr=None,
    )
    first = asyncio.ensure_future(conn.close())
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(conn.close())
    await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 5)
    await asyncio.wait_for(conn.wait_closed(), 5)
    assert conn.is_closed


# --- listener addresses ----------------------------------------------------------------
async def test_tcp_listener_reports_real_port_and_addrs() -> None:
    t = TCPTransport()

    async def handler(conn: RawConnection) -> None:
        await conn.close()

    listener = await t.listen(Multiaddr("/ip4/127.0.0.1/tcp/0"), handler)
    try:
        (addr,) = listener.addrs
        assert addr.value_for("ip4") == "127.0.0.1"
        port = int(addr.value_for("tcp") or 0)
        assert port > 0
        assert str(addr) == f"/ip4/127.0.0.1/tcp/{port}"
        conn = await t.dial(Multiaddr(f"/ip4/127.0.0.1/tcp/{port}"))
        assert conn.remote_addr == addr
        assert conn.local_addr is not None and conn.local_addr.value_for("ip4") == "127.0.0.1"
        assert isinstance(conn, RawConnection)
        await conn.close()
    finally:
        await listener.close()
    # closed: the port no longer accepts
    with pytest.raises(DialError):
        await t.dial(addr)


async def test_ws_listener_reports_real_port_and_addrs() -> None:
    t = WebSocketTransport()
    seen: list[Any] = []

    async def handler(conn: RawConnection) -> None:
        seen.append(conn)

    listener = await t.listen(Multiaddr("/ip4/127.0.0.1/tcp/0/ws"), handler)
    try:
        (addr,) = listener.addrs
        assert addr.protocols() == ["ip4", "tcp", "ws"]
        assert int(addr.value_for("tcp") or 0) > 0
        conn = await t.dial(addr.encapsulate("/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"))
        assert conn.remote_addr == addr
        assert isinstance(conn, RawConnection)
        await conn.close()
    finally:
        await listener.close()


async def test_listener_close_keeps_accepted_connections() -> None:
    t = TCPTransport()
    accepted: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(conn: RawConnection) -> None:
        await accepted.put(conn)

    listener = await t.listen(Multiaddr("/ip4/127.0.0.1/tcp/0"), handler)
    a = await t.dial(listener.addrs[0])
    b = await asyncio.wait_for(accepted.get(), 5)
    await listener.close()
    await a.write(b"still here")
    assert await read_exactly(b, 10) == b"still here"
    await a.close()
    await b.close()


async def test_listen_on_busy_port_is_transport_error() -> None:
    t = TCPTransport()

    async def handler(conn: RawConnection) -> None:
        await conn.close()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(TransportError, match="cannot listen on 127.0.0.1"):
            await t.listen(Multiaddr(f"/ip4/127.0.0.1/tcp/{port}"), handler)


# --- dial errors -----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "transport,suffix", [(TCPTransport, ""), (WebSocketTransport, "/ws")], ids=["tcp", "ws"]
)
async def test_dial_refused_port(transport: Any, suffix: str) -> None:
    port = _free_port()
    with pytest.raises(DialError) as info:
        await transport().dial(Multiaddr(f"/ip4/127.0.0.1/tcp/{port}{suffix}"))
    msg = str(info.value)
    assert msg == f"connection refused by 127.0.0.1:{port}"
    assert "\n" not in msg


async def test_dial_timeout_is_dial_error() -> None:
    # a listening socket whose backlog is full and never accepted: connect() hangs (SYNs
    # dropped) on Linux once the queue is full; use a tiny timeout either way
    t = TCPTransport(dial_timeout=0.2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(0)
        port = s.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):
                f = socket.socket()
                f.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    f.connect(("127.0.0.1", port))
                fillers.append(f)
            try:
                conn = await t.dial(Multiaddr(f"/ip4/127.0.0.1/tcp/{port}"))
            except DialError as exc:
                assert "timed out after 0.2 s" in str(exc)
            else:  # the kernel accepted anyway (backlog semantics vary): nothing to test
                await conn.reset()
        finally:
            for f in fillers:
                f.close()


async def test_dial_dns_failure_is_dial_error() -> None:
    with pytest.raises(DialError, match="cannot resolve"):
        await TCPTransport(dial_timeout=5).dial(Multiaddr("/dns4/name.invalid/tcp/1"))


@pytest.mark.parametrize(
    "transport,addr",
    [
        (TCPTransport, "/ip4/127.0.0.1/udp/1"),
        (TCPTransport, "/ip4/127.0.0.1/tcp/1/ws"),
        (TCPTransport, "/memory/1"),
        (WebSocketTransport, "/ip4/127.0.0.1/tcp/1"),
        (WebSocketTransport, "/ip4/127.0.0.1/tcp/1/http"),
    ],
)
async def test_unsupported_multiaddr(transport: Any, addr: str) -> None:
    t = transport()
    ma = Multiaddr(addr)
    assert not t.can_dial(ma)
    assert not t.can_listen(ma)
    with pytest.raises(DialError, match="cannot dial"):
        await t.dial(ma)

    async def handler(conn: RawConnection) -> None:  # pragma: no cover - never called
        pass

    with pytest.raises(TransportError, match="cannot listen"):
        await t.listen(ma, handler)


def test_can_dial_and_listen() -> None:
    tcp, ws = TCPTransport(), WebSocketTransport()
    pid = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
    for a in ("/ip4/1.2.3.4/tcp/1", "/ip6/::1/tcp/1", "/dns/x.org/tcp/1", f"/dns4/x.org/tcp/1/p2p/{pid}"):
        assert tcp.can_dial(Multiaddr(a)), a
        assert not ws.can_dial(Multiaddr(a)), a
    assert tcp.can_listen(Multiaddr("/ip4/0.0.0.0/tcp/0"))
    assert not tcp.can_listen(Multiaddr("/dns4/x.org/tcp/1"))
    for a in ("/ip4/1.2.3.4/tcp/1/ws", "/dns4/x.org/tcp/443/wss", "/dns/x.org/tcp/443/tls/ws",
              f"/ip4/1.2.3.4/tcp/443/tls/sni/x.org/ws/p2p/{pid}"):
        assert ws.can_dial(Multiaddr(a)), a
        assert not tcp.can_dial(Multiaddr(a)), a
    assert ws.can_listen(Multiaddr("/ip4/127.0.0.1/tcp/0/ws"))
    # /tls/ws listens only with a server certificate, and never on an /sni/ name
    assert not ws.can_listen(Multiaddr("/ip4/127.0.0.1/tcp/0/wss"))
    import ssl

    wss = WebSocketTransport(server_ssl_context=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    assert wss.can_listen(Multiaddr("/ip4/127.0.0.1/tcp/0/wss"))
    assert wss.can_listen(Multiaddr("/ip4/127.0.0.1/tcp/0/tls/ws"))
    assert not wss.can_listen(Multiaddr("/ip4/127.0.0.1/tcp/0/tls/sni/x.org/ws"))


def test_address_parsing() -> None:
    hp = parse_tcp(Multiaddr("/ip6/::1/tcp/4001"))
    assert hp is not None and (hp.host, hp.port, hp.family, hp.is_dns) == ("::1", 4001, "ip6", False)
    wa = parse_ws(Multiaddr("/ip4/1.2.3.4/tcp/443/tls/sni/example.com/ws"))
    assert wa is not None and wa.secure and wa.sni == "example.com"
    wa = parse_ws(Multiaddr("/dns4/example.com/tcp/443/wss"))
    assert wa is not None and wa.secure and wa.sni == "example.com"
    wa = parse_ws(Multiaddr("/ip4/1.2.3.4/tcp/80/ws"))
    assert wa is not None and not wa.secure and wa.sni is None


async def test_wss_verification_failure_is_dial_error() -> None:
    """A plain-text server on the port: the TLS handshake fails with a one-line reason."""
    t = WebSocketTransport(dial_timeout=5)

    async def handler(conn: RawConnection) -> None:
        await conn.close()

    listener = await TCPTransport().listen(Multiaddr("/ip4/127.0.0.1/tcp/0"), handler)
    try:
        port = listener.addrs[0].value_for("tcp")
        with pytest.raises(DialError) as info:
            await t.dial(Multiaddr(f"/ip4/127.0.0.1/tcp/{port}/tls/sni/localhost/ws"))
        assert "\n" not in str(info.value)
    finally:
        await listener.close()


async def test_wss_dial_with_sni_and_custom_context(tmp_path: Any) -> None:
    """/ip4/127.0.0.1/tcp/<port>/tls/sni/<name>/ws: TCP to the IP, TLS for <name>."""
    import ssl

    from websockets.asyncio.server import serve

    cert, key = self_signed(tmp_path, ("pywasm.test",), ())
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    seen_sni: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: seen_sni.append(name)  # type: ignore[assignment,misc,return-value]

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, ssl=server_ctx, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        addr = Multiaddr(f"/ip4/127.0.0.1/tcp/{port}/tls/sni/pywasm.test/ws")
        # default context: the self-signed certificate is rejected, in one line
        with pytest.raises(DialError, match="certificate"):
            await WebSocketTransport(dial_timeout=5).dial(addr)
        client_ctx = ssl.create_default_context(cafile=cert)
        conn = await WebSocketTransport(ssl_context=client_ctx, dial_timeout=5).dial(addr)
        await conn.write(b"over tls")
        assert await asyncio.wait_for(read_exactly(conn, 8), 5) == b"over tls"
        assert conn.remote_addr.protocols()[-2:] == ["tls", "ws"]
        await conn.close()
    assert seen_sni and all(name == "pywasm.test" for name in seen_sni)


async def test_listen_on_tls_ws_and_dial_it(tmp_path: Any) -> None:
    """Our own /tls/ws listener: a dialer trusting its certificate gets a byte-exact echo;
    one with the default trust store is refused in one line; a client that opens TCP and
    never speaks TLS is dropped after the handshake timeout, and the listener serves on."""
    import ssl

    cert, key = self_signed(tmp_path)
    t = WebSocketTransport(server_ssl_context=server_tls_context(cert, key), dial_timeout=1.0)

    async def echo(conn: RawConnection) -> None:
        while data := await conn.read():
            await conn.write(data)
        await conn.close()

    listener = await t.listen(Multiaddr("/ip4/127.0.0.1/tcp/0/tls/ws"), echo)
    try:
        (addr,) = listener.addrs
        assert addr.protocols()[-2:] == ["tls", "ws"]
        with pytest.raises(DialError, match="certificate"):
            await WebSocketTransport(dial_timeout=5).dial(addr)
        port = addr.value_for("tcp")
        silent = await asyncio.open_connection("127.0.0.1", int(port))  # TCP only, no ClientHello
        client = WebSocketTransport(ssl_context=ssl.create_default_context(cafile=cert), dial_timeout=5)
        conn = await client.dial(addr)
        payload = os.urandom(300_000)
        await conn.write(payload)
        assert await asyncio.wait_for(read_exactly(conn, len(payload)), 10) == payload
        await conn.close()
        # the silent client is cut once the TLS handshake timeout (dial_timeout) passes
        assert await asyncio.wait_for(silent[0].read(), 5) == b""
        silent[1].close()
        again = await client.dial(Multiaddr(f"/ip4/127.0.0.1/tcp/{port}/wss"))
        await again.write(b"still serving")
        assert await asyncio.wait_for(read_exactly(again, 13), 5) == b"still serving"
        await again.close()
    finally:
        await listener.close()
    with pytest.raises(TransportError, match="TLS certificate"):
        await WebSocketTransport().listen(Multiaddr("/ip4/127.0.0.1/tcp/0/tls/ws"), echo)


def test_server_tls_context_errors_name_the_file(tmp_path: Any) -> None:
    cert, key = self_signed(tmp_path)
    with pytest.raises(ConfigError, match="not found: .*missing.pem"):
        server_tls_context(str(tmp_path / "missing.pem"), key)
    other_cert, _ = self_signed(tmp_path, ("x",), (), name="other")
    with pytest.raises(ConfigError) as info:
        server_tls_context(other_cert, key)  # a key that is not the certificate's
    assert "\n" not in str(info.value)


def test_default_native_transports() -> None:
    kinds = [type(t).__name__ for t in default_native_transports()]
    assert kinds == ["TCPTransport", "WebSocketTransport", "NativeWebTransportTransport", "QuicTransport"]
