"""Native QUIC-v1 transport: pywasm <-> pywasm over real UDP sockets on 127.0.0.1.

Covers the host contract (identify, ping, echo over adopted connections), the libp2p TLS
rules (mutual certificates, peer id from the certificate, wrong /p2p refused), native
stream semantics (the common conformance suite over QUIC streams), flow-control bounds,
garbage on the listening socket, and clean shutdown. Also pins the aioquic internals
pywasm/transports/quic_streams.py relies on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import socket
from typing import Any, AsyncIterator

import aioquic
import pytest

from pywasm.errors import ConnectionClosedError, DialError, StreamResetError
from pywasm.host import Host
from pywasm.identity import KeyType, PeerId, PrivateKey
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.services.echo import ECHO
from pywasm.services.ping import PING
from pywasm.transports.quic import (
    MUXER_PROTOCOL,
    SECURITY_PROTOCOL,
    QuicOptions,
    QuicTransport,
    parse_quic,
)
from tests._helpers import other_tasks, wait_until
from tests.conformance.stream_suite import (
    MUXED_CHECKS,
    STREAM_CHECKS,
    StreamTraits,
    _with_timeout,
    read_all,
)

TIMEOUT = 20.0
LISTEN = "/ip4/127.0.0.1/udp/0/quic-v1"


def test_aioquic_version_is_pinned() -> None:
    # quic_streams.py overrides private aioquic methods; re-check them on any upgrade
    assert aioquic.__version__ == "1.7.2"


async def _host(**opts: Any) -> Host:
    key = await PrivateKey.generate(KeyType.Ed25519)
    return await Host.create(key=key, listen=[LISTEN], transports=[QuicTransport(**opts)])


@contextlib.asynccontextmanager
async def two_hosts(**opts: Any) -> AsyncIterator[tuple[Host, Host]]:
    a, b = await _host(**opts), await _host(**opts)
    try:
        yield a, b
    finally:
        await a.stop()
        await b.stop()


def test_parse_quic_addresses() -> None:
    qa = parse_quic(Multiaddr("/ip4/127.0.0.1/udp/4001/quic-v1"))
    assert qa is not None and qa.port == 4001 and not qa.is_dns and qa.peer is None
    assert parse_quic(Multiaddr("/ip6/::1/udp/1/quic-v1")) is not None
    assert parse_quic(Multiaddr("/dns4/example.com/udp/1/quic-v1")).is_dns  # type: ignore[union-attr]
    assert parse_quic(Multiaddr("/ip4/127.0.0.1/udp/1/quic")) is None  # draft-29: not spoken
    assert parse_quic(Multiaddr("/ip4/127.0.0.1/tcp/1")) is None
    assert parse_quic(Multiaddr("/ip4/127.0.0.1/udp/1/quic-v1/webtransport")) is None


async def test_dial_identify_ping_echo() -> None:
    async with two_hosts() as (a, b):
        addr = b.addrs()[0]
        assert "/udp/" in str(addr) and "/udp/0/" not in str(addr), "listener reports its real port"
        conn = await asyncio.wait_for(a.dial(addr), TIMEOUT)
        assert conn.remote_peer == b.peer_id
        assert conn.security_protocol == SECURITY_PROTOCOL and conn.muxer_protocol == MUXER_PROTOCOL
        assert conn.remote_public_key == b.private_key.public_key
        # loopback: big datagrams after the handshake (the peer announced it accepts them)
        assert conn.muxed.quic._max_datagram_size == QuicOptions().loopback_datagram_size
        info = await asyncio.wait_for(a.services["identify"].identified(conn), TIMEOUT)
        assert PING in info.protocols and ECHO in info.protocols
        assert any("/quic-v1" in str(x) for x in info.listen_addrs)
        rtt = await asyncio.wait_for(a.services["ping"].ping(b.peer_id), TIMEOUT)
        assert 0 <= rtt < 1
        await wait_until(lambda: bool(b.connections_to(a.peer_id)))
        inbound = b.connections_to(a.peer_id)[0]
        assert str(inbound.direction) == "inbound" and inbound.remote_public_key == a.private_key.public_key
        # the listener side opens streams on the same connection too
        rtt = await asyncio.wait_for(b.services["ping"].ping(a.peer_id), TIMEOUT)
        assert rtt >= 0
        assert len(a.connections) == 1 and len(b.connections) == 1


async def _echo_bytes(a: Host, b: Host, data: bytes) -> bytes:
    stream = await a.new_stream(b.addrs()[0], [ECHO])
    got = bytearray()

    async def writer() -> None:
        view = memoryview(data)
        for i in range(0, len(data), 1 << 20):
            await stream.write(view[i : i + (1 << 20)])
        await stream.close_write()

    async def reader() -> None:
        while True:
            chunk = await stream.read(1 << 20)
            if not chunk:
                return
            got.extend(chunk)

    await asyncio.gather(writer(), reader())
    await stream.close()
    return bytes(got)


async def test_echo_16_mib_byte_exact() -> None:
    data = random.Random(7).randbytes(16 * 1024 * 1024)
    async with two_hosts() as (a, b):
        got = await asyncio.wait_for(_echo_bytes(a, b, data), 120)
        assert len(got) == len(data)
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


async def test_many_concurrent_streams_and_half_close() -> None:
    async with two_hosts() as (a, b):
        await asyncio.wait_for(a.dial(b.addrs()[0]), TIMEOUT)

        async def one(i: int) -> None:
            stream = await a.new_stream(b.peer_id, [ECHO])
            msg = f"stream {i};".encode() * (1 + i % 40)
            await stream.write(msg)
            await stream.close_write()  # half-close: the echo side sees EOF, answers, closes
            assert await read_all(stream) == msg
            await stream.close()

        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(150))), 60)
        assert len(a.connections) == 1, "all streams ran over the one QUIC connection"


async def test_reset_reaches_the_handler() -> None:
    seen: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def handler(stream: Any, conn: Any) -> None:
        try:
            while await stream.read():
                pass
            seen.set_result("eof")
        except StreamResetError:
            seen.set_result("reset")

    async with two_hosts() as (a, b):
        b.set_stream_handler("/test/reset/1", handler)
        stream = await a.new_stream(b.addrs()[0], ["/test/reset/1"])
        await stream.write(b"x" * 1000)
        await stream.reset()
        assert await asyncio.wait_for(seen, TIMEOUT) == "reset"
        # the connection survives a stream reset
        assert await asyncio.wait_for(a.services["ping"].ping(b.peer_id), TIMEOUT) >= 0


async def test_wrong_peer_id_is_refused() -> None:
    stranger = PeerId.from_public_key((await PrivateKey.generate(KeyType.Ed25519)).public_key)
    async with two_hosts() as (a, b):
        target = str(b.addrs()[0]).rsplit("/p2p/", 1)[0] + f"/p2p/{stranger}"
        with pytest.raises(DialError, match="wrong peer|mismatch|authenticated"):
            await asyncio.wait_for(a.dial(target), TIMEOUT)
        assert not a.connections_to(b.peer_id) and not a.connections_to(stranger)
        # the transport checks the /p2p id itself when it sees one, before the host does
        transport = a.transports[0]
        with pytest.raises(Exception, match="QUIC peer is"):
            await asyncio.wait_for(transport.dial(Multiaddr(target)), TIMEOUT)
        # and the listener is fine afterwards
        assert (await asyncio.wait_for(a.dial(b.addrs()[0]), TIMEOUT)).remote_peer == b.peer_id


async def test_dial_to_closed_port_fails_fast() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    a = await _host()
    try:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(DialError):
            await a.dial(f"/ip4/127.0.0.1/udp/{port}/quic-v1")
        assert loop.time() - t0 < 5, "ICMP port unreachable ends the dial early"
    finally:
        await a.stop()


async def test_garbage_datagrams_are_ignored_while_serving() -> None:
    async with two_hosts() as (a, b):
        addr = b.addrs()[0]
        port = int(str(addr).split("/udp/")[1].split("/")[0])
        rng = random.Random(3)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            def spray() -> None:
                for i in range(300):
                    size = rng.choice((1, 20, 600, 1200, 1400))
                    junk = bytearray(rng.randbytes(size))
                    if i % 3 == 0 and size >= 1200:
                        # looks like a QUIC v1 Initial with a random connection id
                        junk[0] = 0xC0
                        junk[1:5] = b"\x00\x00\x00\x01"
                        junk[5] = 8
                    if i % 7 == 0 and size >= 1200:
                        junk[1:5] = b"\x0a\x0a\x0a\x0a"  # unknown version: we answer VN
                    sock.sendto(bytes(junk), ("127.0.0.1", port))

            spray()
            conn = await asyncio.wait_for(a.dial(addr), TIMEOUT)
            spray()
            assert await asyncio.wait_for(a.services["ping"].ping(conn.remote_peer), TIMEOUT) >= 0
            data = os.urandom(256 * 1024)
            assert await asyncio.wait_for(_echo_bytes(a, b, data), TIMEOUT) == data
            listener = b._listeners[0]
            assert listener.endpoint.session_count == 1, "junk left no connection state behind"
        finally:
            sock.close()


async def test_listener_close_keeps_connections() -> None:
    async with two_hosts() as (a, b):
        addr = b.addrs()[0]
        conn = await asyncio.wait_for(a.dial(addr), TIMEOUT)
        listener = b._listeners[0]
        await listener.close()
        # the established connection still carries streams ...
        assert await asyncio.wait_for(a.services["ping"].ping(conn.remote_peer), TIMEOUT) >= 0
        # ... but nobody new gets in
        c = await _host()
        try:
            with pytest.raises(DialError):
                await c.dial(addr, timeout=3)
        finally:
            await c.stop()


async def test_idle_timeout_and_keep_alive() -> None:
    # a short idle timeout: with keep-alive the connection outlives it, without it dies
    async with two_hosts(idle_timeout=1.0, keep_alive=0.3) as (a, b):
        conn = await asyncio.wait_for(a.dial(b.addrs()[0]), TIMEOUT)
        await asyncio.sleep(2.0)
        assert not conn.is_closed
        assert await asyncio.wait_for(a.services["ping"].ping(b.peer_id), TIMEOUT) >= 0
    async with two_hosts(idle_timeout=1.0, keep_alive=None) as (a, b):
        conn = await asyncio.wait_for(a.dial(b.addrs()[0]), TIMEOUT)
        await wait_until(lambda: conn.muxed.is_closed, timeout=10)
        assert "Idle timeout" in (conn.muxed.close_reason or "")


async def test_host_stop_is_clean() -> None:
    before = set(other_tasks())
    a, b = await _host(), await _host()
    conn = await asyncio.wait_for(a.dial(b.addrs()[0]), TIMEOUT)
    stream = await conn.new_stream([ECHO])
    await stream.write(b"hello")
    await a.stop()
    await b.stop()
    with pytest.raises((StreamResetError, ConnectionClosedError)):
        while await stream.read():
            pass
    await asyncio.sleep(0.05)
    leaked = [t for t in other_tasks() if t not in before]
    assert not leaked, leaked


# --- the stream conformance suite over native QUIC streams ------------------------------
class _ConnPair:
    """Two ends of one QUIC connection as plain MuxedConnections.

    A QUIC stream reaches the peer with its first bytes, so ``open_stream`` here sends
    one marker byte that ``accept_stream`` consumes: the suite's checks open a stream and
    expect the peer to accept it before anything is written.
    """

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def open_stream(self) -> Any:
        stream = await self.conn.open_stream()
        await stream.write(b"\x00")
        return stream

    async def accept_stream(self) -> Any:
        stream = await self.conn.accept_stream()
        assert await stream.read(1) == b"\x00"
        return stream

    async def close(self) -> None:
        await self.conn.close()

    @property
    def is_closed(self) -> bool:
        return self.conn.is_closed


@contextlib.asynccontextmanager
async def quic_muxed_pair(**opts: Any) -> AsyncIterator[tuple[Any, Any]]:
    """A raw QUIC connection between two transports (no host services)."""
    ta, tb = QuicTransport(**opts), QuicTransport(**opts)
    ta.bind(await _Ctx.make())
    tb.bind(await _Ctx.make())
    inbound: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(up: Any) -> None:
        await inbound.put(up)

    listener = await tb.listen(Multiaddr(LISTEN), handler)
    up_a = await asyncio.wait_for(ta.dial(listener.addrs[0]), TIMEOUT)
    up_b = await asyncio.wait_for(inbound.get(), TIMEOUT)
    try:
        yield _ConnPair(up_a.muxed), _ConnPair(up_b.muxed)
    finally:
        await up_a.muxed.close()
        await up_b.muxed.close()
        await listener.close()


class _Ctx:
    def __init__(self, key: PrivateKey) -> None:
        from pywasm.host.config import HostConfig

        self.private_key = key
        self.peer_id = PeerId.from_public_key(key.public_key)
        self.config = HostConfig(max_inbound_streams_per_connection=2048)

    @classmethod
    async def make(cls) -> "_Ctx":
        return cls(await PrivateKey.generate(KeyType.Ed25519))


def _quic_streams() -> Any:
    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[tuple[Any, Any]]:
        async with quic_muxed_pair() as (ca, cb):
            sa = await ca.open_stream()
            sb = await cb.accept_stream()
            yield sa, sb

    return factory


# a writer may get the stream window (what the reader lets the peer send) plus our send
# buffer accepted while the reader reads nothing
QUIC_TRAITS = StreamTraits(
    max_unread_bytes=QuicOptions().stream_window + QuicOptions().send_buffer + 65536
)


@pytest.mark.parametrize("check", STREAM_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_quic_stream_conformance(check: Any) -> None:
    await _with_timeout(check(_quic_streams(), QUIC_TRAITS))


@pytest.mark.parametrize("check", MUXED_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_quic_muxed_conformance(check: Any) -> None:
    await _with_timeout(check(quic_muxed_pair))


async def test_receive_buffer_is_bounded_by_the_windows() -> None:
    """A reader that stops reading stops the peer within our windows: no unbounded
    buffering in aioquic or in our queues, per stream and per connection."""
    opts = {"stream_window": 256 * 1024, "connection_window": 512 * 1024, "send_buffer": 128 * 1024}
    async with quic_muxed_pair(**opts) as (ca, cb):
        streams = [await ca.open_stream() for _ in range(4)]
        peers = [await cb.accept_stream() for _ in range(4)]
        written = [0] * 4

        async def push(i: int) -> None:
            while True:
                await streams[i].write(b"\xaa" * 16384)
                written[i] += 16384

        tasks = [asyncio.ensure_future(push(i)) for i in range(4)]
        await asyncio.sleep(1.0)
        quic_b = cb.conn.quic
        buffered = sum(len(p._buf) for p in peers)
        assert buffered <= opts["connection_window"] + 16384, buffered
        assert quic_b._local_max_data.value <= quic_b.released_total + opts["connection_window"]
        for p in peers:
            assert len(p._buf) <= opts["stream_window"] + 16384
        assert sum(written) <= opts["connection_window"] + 4 * (opts["send_buffer"] + 16384)
        # reading lets everyone go on
        before = sum(written)
        for p in peers:
            while len(p._buf):
                await p.read(1 << 20)
        await wait_until(lambda: sum(written) > before + 256 * 1024, timeout=10)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
