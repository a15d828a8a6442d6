"""Two hosts over the memory transport: the whole stack, no sockets (runs in Pyodide too)."""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import pytest

from pywasm.errors import (
    ConfigError,
    DialError,
    NegotiationError,
    PywasmError,
    StreamResetError,
)
from pywasm.host import Direction, Host, HostConfig
from pywasm.identity import KeyType, PeerId, PrivateKey
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.muxers import MplexMuxer, YamuxMuxer
from pywasm.protocols.multistream import negotiate_outbound
from pywasm.security.noise import NoiseSecurity
from pywasm.services.identify import IDENTIFY, IDENTIFY_PUSH
from pywasm.services.perf import PERF
from pywasm.services.ping import PING
from pywasm.transports.memory import MemoryTransport
from tests._helpers import other_tasks, wait_until

ECHO = "/echo/1.0.0"
MIB = 1024 * 1024
TIMEOUT = 20.0

MUXERS = {"yamux": YamuxMuxer, "mplex": MplexMuxer}


async def bounded(aw: Any, timeout: float = TIMEOUT) -> Any:
    return await asyncio.wait_for(aw, timeout)


async def make_host(
    muxer: str | None = None, early: bool = True, config: HostConfig | None = None, **kw: Any
) -> Host:
    key = await PrivateKey.generate(KeyType.Ed25519)
    muxers = [MUXERS[muxer]()] if muxer else None
    security = None
    if not early:
        # no muxers in the Noise extensions: the muxer is agreed with multistream-select
        security = [NoiseSecurity(key, ())]
    return await Host.create(
        key=key,
        listen=["/memory/0"],
        transports=[MemoryTransport()],
        muxers=muxers,
        security=security,
        config=config,
        **kw,
    )


@asynccontextmanager
async def pair(
    muxer: str | None = None, early: bool = True, server_config: HostConfig | None = None
) -> AsyncIterator[tuple[Host, Host]]:
    server = await make_host(muxer, early, server_config)
    client = await make_host(None, early)  # the client offers yamux then mplex
    try:
        yield server, client
    finally:
        await bounded(client.stop())
        await bounded(server.stop())


class Records(logging.Handler):
    """Collects log records of one logger during a test (no caplog: Pyodide-safe)."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.logger = logging.getLogger(name)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> "Records":
        self.old_level = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.old_level)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


# --------------------------------------------------------------------- full session
@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
@pytest.mark.parametrize("early", [True, False], ids=["early-muxer", "multistream-muxer"])
async def test_full_session(muxer: str, early: bool) -> None:
    async with pair(muxer, early) as (server, client):
        (addr,) = server.addrs()
        assert str(addr).endswith(f"/p2p/{server.peer_id}")
        conn = await bounded(client.dial(addr))
        assert conn.remote_peer == server.peer_id
        assert conn.security_protocol == "/noise"
        assert conn.muxer_protocol == MUXERS[muxer].protocol_id
        assert conn.direction is Direction.OUTBOUND and str(conn.direction) == "outbound"

        # identify, both directions (each side identifies every new connection)
        info = await bounded(client.services["identify"].identified(conn))
        assert info.peer_id == server.peer_id
        assert info.agent_version == "pywasm/0.1.0"
        assert info.protocol_version == "ipfs/0.1.0"
        assert {IDENTIFY, IDENTIFY_PUSH, PING, ECHO, PERF} <= set(info.protocols)
        assert info.public_key == server.private_key.public_key
        assert info.listen_addrs == server.listen_addrs()
        assert info.observed_addr is not None and info.observed_addr.protocols() == ["memory"]
        assert set(client.peerstore.protocols(server.peer_id)) == set(info.protocols)
        assert client.peerstore.get(server.peer_id).agent_version == "pywasm/0.1.0"  # type: ignore[union-attr]
        assert server.listen_addrs()[0] in client.peerstore.addrs(server.peer_id)

        (server_conn,) = server.connections
        assert server_conn.direction is Direction.INBOUND
        assert server_conn.remote_peer == client.peer_id
        back = await bounded(server.services["identify"].identified(server_conn))
        assert back.peer_id == client.peer_id
        assert server.peerstore.public_key(client.peer_id) == client.private_key.public_key

        # ping
        rtt = await bounded(client.services["ping"].ping(conn))
        assert 0 <= rtt < 5
        rtts = await bounded(client.services["ping"].ping_many(addr, 3))
        assert len(rtts) == 3

        # echo, 1 MiB byte-exact
        data = os.urandom(MIB)
        assert await bounded(client.services["echo"].echo(conn, data)) == data

        # perf, small
        result = await bounded(client.services["perf"].run(addr, 100_000, 300_001))
        assert (result.upload_bytes, result.download_bytes) == (100_000, 300_001)
        assert result.seconds > 0 and result.throughput > 0
        d = result.to_dict()
        assert {"upload_bytes", "download_bytes", "seconds", "upload_mib_per_s", "download_mib_per_s"} <= set(d)

        # all of that went over the one connection
        assert client.connections == [conn]


async def test_new_stream_sets_protocol_and_reads_leftovers() -> None:
    async with pair() as (server, client):

        async def greet(stream: Any, conn: Any) -> None:
            # written right after the multistream answer: may arrive in the same chunk
            await stream.write(b"hello")
            await stream.close()

        server.set_stream_handler("/greet/1.0.0", greet)
        stream = await bounded(client.new_stream(server.addrs()[0], ["/nope/1.0.0", "/greet/1.0.0"]))
        assert stream.protocol == "/greet/1.0.0"
        assert stream.muxed.protocol == "/greet/1.0.0"
        assert await bounded(stream.read_exactly(5)) == b"hello"
        assert await bounded(stream.read()) == b""
        await stream.close()


async def test_unknown_protocol_rejected() -> None:
    async with pair() as (server, client):
        conn = await bounded(client.dial(server.addrs()[0]))
        with pytest.raises(NegotiationError):
            await bounded(client.new_stream(conn, ["/does-not-exist/1.0.0"]))
        # the connection is fine afterwards
        assert not conn.is_closed
        await bounded(client.services["ping"].ping(conn))
        # and a removed handler is unknown too
        server.remove_stream_handler(ECHO)
        with pytest.raises(NegotiationError):
            await bounded(client.new_stream(conn, [ECHO]))


async def test_wrong_peer_id_rejected() -> None:
    async with pair() as (server, client):
        stranger = PeerId.from_public_key((await PrivateKey.generate(KeyType.Ed25519)).public_key)
        wrong = server.listen_addrs()[0].encapsulate(f"/p2p/{stranger}")
        with pytest.raises(DialError) as info:
            await bounded(client.dial(wrong))
        msg = str(info.value)
        assert "\n" not in msg
        assert str(stranger) in msg and str(server.peer_id) in msg
        assert client.connections == []
        await wait_until(lambda: not server.connections)
        # the right id still works afterwards
        await bounded(client.dial(server.addrs()[0]))


async def test_dial_errors_are_dial_errors() -> None:
    async with pair() as (server, client):
        for target in ("/memory/12345", "not a multiaddr", "/ip4/1.2.3.4/udp/1/quic-v1", 42):
            with pytest.raises(DialError) as info:
                await bounded(client.dial(target))
            assert "\n" not in str(info.value)
        with pytest.raises(DialError, match="ourselves"):
            await bounded(client.dial(client.peer_id))
        with pytest.raises(DialError, match="no dialable addresses"):
            stranger = PeerId.from_public_key((await PrivateKey.generate(KeyType.Ed25519)).public_key)
            await bounded(client.dial(stranger))


async def test_dial_reuse_and_dial_by_peer_id() -> None:
    async with pair() as (server, client):
        addr = server.addrs()[0]
        first, second = await bounded(asyncio.gather(client.dial(addr), client.dial(addr)))
        assert first is second  # concurrent dials share one attempt
        assert await bounded(client.dial(addr)) is first
        assert await bounded(client.dial(server.peer_id)) is first
        assert await bounded(client.dial(first)) is first
        await first.close()
        assert first.is_closed
        await wait_until(lambda: not client.connections and not server.connections)
        # by peer id, from the address the peerstore learnt
        again = await bounded(client.dial(server.peer_id))
        assert again is not first and not again.is_closed
        stream = await bounded(client.new_stream(server.peer_id, [ECHO]))
        assert stream.connection is again


# --------------------------------------------------------------------- misbehaving peers
async def test_garbage_sender_closed_while_others_are_served() -> None:
    async with pair() as (server, client):
        addr = server.listen_addrs()[0]
        with Records("pywasm.host") as rec:
            # 1. garbage instead of multistream-select
            raw = await MemoryTransport().dial(addr)
            await raw.write(b"\xff" * 64 + b"GET / HTTP/1.1\r\n\r\n")
            # 2. a valid security negotiation followed by garbage Noise messages (random
            # bytes pass as an ephemeral key; the third message fails to decrypt)
            raw2 = await MemoryTransport().dial(addr)
            await bounded(negotiate_outbound(raw2, ["/noise"]))
            await raw2.write(b"\x00\x20" + os.urandom(32) + b"\x00\x60" + os.urandom(96))
            # meanwhile an honest client is served
            conn = await bounded(client.dial(server.addrs()[0]))
            data = os.urandom(200_000)
            assert await bounded(client.services["echo"].echo(conn, data)) == data

            for r in (raw, raw2):
                with pytest.raises(StreamResetError):
                    while await bounded(r.read()):
                        pass
            await wait_until(lambda: sum("closed inbound connection" in m for m in rec.messages()) >= 2)
        msgs = [m for m in rec.messages() if "closed inbound connection" in m]
        assert any("multistream" in m or "varint" in m for m in msgs), msgs
        assert all("\n" not in m for m in msgs)
        assert [c.remote_peer for c in server.connections] == [client.peer_id]
        await bounded(client.services["ping"].ping(conn))


async def test_garbage_after_upgrade_closes_only_that_connection() -> None:
    async with pair("yamux") as (server, client):
        other = await make_host()
        try:
            conn = await bounded(client.dial(server.addrs()[0]))
            conn2 = await bounded(other.dial(server.addrs()[0]))
            with Records("pywasm.host") as rec:
                # a yamux frame with an invalid version, inside the encrypted channel
                await conn.muxed.connection.write(b"\x07" + b"\x00" * 11)
                await wait_until(lambda: client.peer_id not in {c.remote_peer for c in server.connections})
            assert any("closed" in m for m in rec.messages()), rec.messages()
            await bounded(other.services["ping"].ping(conn2))
        finally:
            await bounded(other.stop())


async def test_handshake_timeout() -> None:
    cfg = HostConfig(security_negotiation_timeout=0.2, security_timeout=0.2)
    async with pair(server_config=cfg) as (server, client):
        with Records("pywasm.host") as rec:
            raw = await MemoryTransport().dial(server.listen_addrs()[0])  # and say nothing
            with pytest.raises(StreamResetError):
                while await bounded(raw.read(), 5):
                    pass
        assert any("did not finish within" in m for m in rec.messages()), rec.messages()


async def test_handler_exception_resets_stream_and_is_logged() -> None:
    async with pair() as (server, client):

        async def broken(stream: Any, conn: Any) -> None:
            await stream.read(1)
            raise RuntimeError("handler bug")

        server.set_stream_handler("/broken/1.0.0", broken)
        with Records("pywasm.host") as rec:
            stream = await bounded(client.new_stream(server.addrs()[0], ["/broken/1.0.0"]))
            await stream.write(b"x")
            with pytest.raises(StreamResetError):
                while await bounded(stream.read()):
                    pass
        assert any(r.exc_info and "handler for /broken/1.0.0" in r.getMessage() for r in rec.records)
        await bounded(client.services["ping"].ping(server.peer_id))


# --------------------------------------------------------------------- limits
async def test_inbound_stream_limit_per_connection() -> None:
    cfg = HostConfig(max_inbound_streams_per_connection=2)
    async with pair(server_config=cfg) as (server, client):
        release = asyncio.Event()

        async def slow(stream: Any, conn: Any) -> None:
            await release.wait()
            await stream.close()

        server.set_stream_handler("/slow/1.0.0", slow)
        conn = await bounded(client.dial(server.addrs()[0]))
        await bounded(client.services["identify"].identified(conn))
        a = await bounded(conn.new_stream(["/slow/1.0.0"]))
        b = await bounded(conn.new_stream(["/slow/1.0.0"]))
        await wait_until(lambda: server.connections[0]._inbound_active == 2)
        with pytest.raises(PywasmError):
            await bounded(conn.new_stream(["/slow/1.0.0"]))
        release.set()
        for s in (a, b):
            assert await bounded(s.read()) == b""
            await s.close()
        await wait_until(lambda: server.connections[0]._inbound_active == 0)
        await bounded(client.services["ping"].ping(conn))


async def test_connection_limit() -> None:
    cfg = HostConfig(max_connections=1)
    async with pair(server_config=cfg) as (server, client):
        await bounded(client.dial(server.addrs()[0]))
        other = await make_host()
        try:
            with pytest.raises(DialError):
                await bounded(other.dial(server.addrs()[0]))
        finally:
            await bounded(other.stop())
        assert [c.remote_peer for c in server.connections] == [client.peer_id]


async def test_config_is_validated() -> None:
    with pytest.raises(ConfigError):
        HostConfig(max_connections=0)
    with pytest.raises(ConfigError):
        HostConfig(muxer_timeout=-1)
    host = await make_host()
    try:
        with pytest.raises(ConfigError):
            host.set_stream_handler("bad\nid", lambda s, c: None)  # type: ignore[arg-type,return-value]
    finally:
        await host.stop()


# --------------------------------------------------------------------- identify push, stop
async def test_identify_push_on_protocol_change() -> None:
    async with pair() as (server, client):
        conn = await bounded(client.dial(server.addrs()[0]))
        await bounded(client.services["identify"].identified(conn))
        (sconn,) = server.connections
        await bounded(server.services["identify"].identified(sconn))

        async def noop(stream: Any, conn: Any) -> None:
            await stream.close()

        server.set_stream_handler("/new/1.0.0", noop)
        await wait_until(lambda: client.peerstore.supports(server.peer_id, "/new/1.0.0"))
        server.remove_stream_handler("/new/1.0.0")
        await wait_until(lambda: not client.peerstore.supports(server.peer_id, "/new/1.0.0"))


async def test_stop_is_clean() -> None:
    before = set(asyncio.all_tasks())
    server = await make_host()
    client = await make_host()
    conn = await bounded(client.dial(server.addrs()[0]))
    await bounded(client.services["identify"].identified(conn))
    stream = await bounded(client.new_stream(conn, [ECHO]))  # left open on purpose
    await stream.write(b"abc")
    await bounded(client.stop())
    await bounded(server.stop())
    await bounded(server.stop())  # idempotent
    assert conn.is_closed
    assert server.connections == [] and client.connections == []
    await asyncio.sleep(0)
    leftover = [t for t in other_tasks() if t not in before]
    assert leftover == [], leftover
    with pytest.raises(DialError):
        await client.dial(server.addrs()[0] if server.addrs() else "/memory/1")


async def test_async_with_and_top_level_exports() -> None:
    import pywasm

    assert pywasm.Host is Host
    assert pywasm.Multiaddr is Multiaddr
    async with await Host.create(listen=["/memory/0"], transports=[MemoryTransport()]) as host:
        assert host.addrs()[0].peer_id() == str(host.peer_id)
    assert host.is_stopped
