"""Services (identify, ping, echo, perf) and the plug-in contract, over the memory transport."""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import pytest

from pywasm.errors import (
    LimitExceededError,
    NegotiationError,
    ProtobufError,
    ProtocolError,
    StreamResetError,
)
from pywasm.host import Host
from pywasm.identity import KeyType, PrivateKey
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.services import (
    ECHO,
    IDENTIFY,
    IDENTIFY_PUSH,
    PERF,
    PING,
    EchoService,
    IdentifyService,
    PerfResult,
    PerfService,
    PingService,
    Service,
    default_services,
    run_together,
)
from pywasm.services.identify import MAX_MESSAGE_SIZE, MAX_MESSAGES, IdentifyPB, read_identify, to_info
from pywasm.streams import encode_lp
from pywasm.transports.memory import MemoryTransport
from tests._helpers import wait_until

TIMEOUT = 20.0


async def bounded(aw: Any, timeout: float = TIMEOUT) -> Any:
    return await asyncio.wait_for(aw, timeout)


async def new_host(services: Any = None) -> Host:
    return await Host.create(listen=["/memory/0"], transports=[MemoryTransport()], services=services)


@asynccontextmanager
async def pair(server_services: Any = None, client_services: Any = None) -> AsyncIterator[tuple[Host, Host]]:
    server = await new_host(server_services)
    client = await new_host(client_services)
    try:
        yield server, client
    finally:
        await bounded(client.stop())
        await bounded(server.stop())


async def read_all(stream: Any) -> bytes:
    out = bytearray()
    while True:
        chunk = await bounded(stream.read())
        if not chunk:
            return bytes(out)
        out += chunk


# --------------------------------------------------------------------- identify: wire format
def test_identify_field_numbers() -> None:
    msg = IdentifyPB(
        public_key=b"K",
        listen_addrs=[b"A"],
        protocols=["p"],
        observed_addr=b"O",
        protocol_version="v",
        agent_version="g",
        signed_peer_record=b"S",
    )
    raw = msg.encode()
    # tag = field << 3 | 2 (length-delimited), each value one byte long
    assert raw == b"\x0a\x01K\x12\x01A\x1a\x01p\x22\x01O\x2a\x01v\x32\x01g\x42\x01S"
    assert IdentifyPB.decode(raw) == msg
    with pytest.raises(ProtobufError):
        IdentifyPB.decode(b"\x0a\x05ab")


class _FakeConn:
    def __init__(self, key: PrivateKey) -> None:
        self.remote_peer = key.to_peer_id()
        self.remote_public_key = key.public_key


async def test_identify_rejects_foreign_key_and_skips_bad_addrs() -> None:
    key = await PrivateKey.generate(KeyType.Ed25519)
    other = await PrivateKey.generate(KeyType.Ed25519)
    conn: Any = _FakeConn(key)
    msg = IdentifyPB(
        public_key=key.public_key.to_protobuf(),
        listen_addrs=[Multiaddr("/ip4/1.2.3.4/tcp/1").to_bytes(), b"\xff\xff\xff"],
        protocols=["/a", "/a", "/b"],
    )
    info = to_info(msg, conn)
    assert info.listen_addrs == [Multiaddr("/ip4/1.2.3.4/tcp/1")]
    assert info.protocols == ["/a", "/b"]
    assert info.public_key == key.public_key
    with pytest.raises(ProtocolError):
        to_info(IdentifyPB(public_key=other.public_key.to_protobuf()), conn)
    # no key in the message: the one Noise authenticated stands
    assert to_info(IdentifyPB(), conn).public_key == key.public_key


async def test_identify_reader_merges_and_bounds() -> None:
    async with pair() as (server, client):
        sent: list[bytes] = []

        async def answer(stream: Any, conn: Any) -> None:
            await stream.write(b"".join(sent))
            await stream.close()

        server.set_stream_handler("/test-id", answer)
        conn = await bounded(client.dial(server.addrs()[0]))

        sent[:] = [
            encode_lp(IdentifyPB(agent_version="first", protocols=["/a"]).encode()),
            encode_lp(IdentifyPB(agent_version="second", protocols=["/b"]).encode()),
        ]
        stream = await bounded(conn.new_stream(["/test-id"]))
        merged = await bounded(read_identify(stream))
        assert merged.agent_version == "second" and merged.protocols == ["/a", "/b"]

        sent[:] = [encode_lp(b"")] * (MAX_MESSAGES + 1)
        stream = await bounded(conn.new_stream(["/test-id"]))
        with pytest.raises(ProtocolError):
            await bounded(read_identify(stream))

        sent[:] = [encode_lp(b"\x00" * (MAX_MESSAGE_SIZE + 1))]
        stream = await bounded(conn.new_stream(["/test-id"]))
        with pytest.raises(LimitExceededError):
            await bounded(read_identify(stream))


async def test_identify_push_with_foreign_key_is_ignored() -> None:
    async with pair() as (server, client):
        conn = await bounded(client.dial(server.addrs()[0]))
        (sconn,) = server.connections
        await bounded(server.services["identify"].identified(sconn))
        before = server.peerstore.protocols(client.peer_id)
        forger = await PrivateKey.generate(KeyType.Ed25519)
        stream = await bounded(conn.new_stream([IDENTIFY_PUSH]))
        bad = IdentifyPB(public_key=forger.public_key.to_protobuf(), protocols=["/evil/1.0.0"])
        await stream.write(encode_lp(bad.encode()))
        await stream.close_write()
        with pytest.raises(StreamResetError):
            await read_all(stream)
        assert server.peerstore.protocols(client.peer_id) == before
        # a genuine push is taken
        await bounded(client.services["identify"].push(conn))
        assert set(server.peerstore.protocols(client.peer_id)) == set(client.protocols())


async def test_identify_without_auto() -> None:
    async with pair(client_services=[IdentifyService(auto_identify=False, agent_version="custom/1")]) as (
        server,
        client,
    ):
        conn = await bounded(client.dial(server.addrs()[0]))
        await asyncio.sleep(0.05)
        assert client.peerstore.protocols(server.peer_id) == []
        info = await bounded(client.services["identify"].identify(conn))
        assert PING in info.protocols
        # and the server saw our custom agent
        (sconn,) = server.connections
        theirs = await bounded(server.services["identify"].identified(sconn))
        assert theirs.agent_version == "custom/1"
        assert theirs.protocols == [IDENTIFY, IDENTIFY_PUSH]


# --------------------------------------------------------------------- ping
async def test_ping_server_loops_until_eof_and_rejects_partial() -> None:
    async with pair() as (server, client):
        stream = await bounded(client.new_stream(server.addrs()[0], [PING]))
        for _ in range(3):
            payload = os.urandom(32)
            await stream.write(payload)
            assert await bounded(stream.read_exactly(32)) == payload
        await stream.close_write()
        assert await read_all(stream) == b""

        stream = await bounded(client.new_stream(server.addrs()[0], [PING]))
        await stream.write(b"short")
        await stream.close_write()
        with pytest.raises(StreamResetError):
            await read_all(stream)


async def test_ping_session() -> None:
    async with pair() as (server, client):
        ping: PingService = client.services["ping"]  # type: ignore[assignment]
        async with await bounded(ping.session(server.addrs()[0])) as session:
            rtts = [await bounded(session.ping()) for _ in range(5)]
        assert all(0 <= r < 5 for r in rtts)


# --------------------------------------------------------------------- echo
async def test_echo_half_close() -> None:
    async with pair() as (server, client):
        stream = await bounded(client.new_stream(server.addrs()[0], [ECHO]))
        await stream.write(b"hello ")
        await stream.write(b"world")
        assert await bounded(stream.read_exactly(11)) == b"hello world"
        await stream.close_write()
        assert await read_all(stream) == b""  # server closed after our EOF
        echo: EchoService = client.services["echo"]  # type: ignore[assignment]
        assert await bounded(echo.echo(server.peer_id, b"")) == b""
        data = os.urandom(3 * 1024 * 1024 + 7)
        assert await bounded(echo.echo(server.peer_id, data)) == data


# --------------------------------------------------------------------- perf
async def test_perf_server_wire_format() -> None:
    async with pair() as (server, client):
        stream = await bounded(client.new_stream(server.addrs()[0], [PERF]))
        await stream.write((1000).to_bytes(8, "big") + b"x" * 10)
        await stream.close_write()
        assert await read_all(stream) == b"\x00" * 1000


async def test_perf_server_limit() -> None:
    async with pair(server_services=[PerfService(max_download=100)]) as (server, client):
        stream = await bounded(client.new_stream(server.addrs()[0], [PERF]))
        await stream.write((101).to_bytes(8, "big"))
        await stream.close_write()
        with pytest.raises(StreamResetError):
            await read_all(stream)
        result = await bounded(client.services["perf"].run(server.addrs()[0], 5, 100))
        assert result.download_bytes == 100


async def test_perf_run_sizes() -> None:
    async with pair() as (server, client):
        perf: PerfService = client.services["perf"]  # type: ignore[assignment]
        for up, down in [(0, 0), (1, 0), (0, 1), (2 * 1024 * 1024 + 3, 1024 * 1024 - 1)]:
            r = await bounded(perf.run(server.addrs()[0], up, down))
            assert (r.upload_bytes, r.download_bytes) == (up, down)
        with pytest.raises(ValueError):
            await perf.run(server.addrs()[0], -1, 0)


def test_perf_result_dict() -> None:
    r = PerfResult(upload_bytes=1 << 20, download_bytes=2 << 20, seconds=2.0, upload_seconds=1.0, download_seconds=1.0)
    d = r.to_dict()
    assert d["upload_mib_per_s"] == 1.0 and d["download_mib_per_s"] == 2.0
    assert d["throughput_bytes_per_s"] == r.throughput == (3 << 20) / 2
    assert PerfResult(0, 0, 0.0, 0.0, 0.0).throughput == 0.0


# --------------------------------------------------------------------- the plug-in contract
class Recorder(Service):
    name = "recorder"
    protocols = ("/recorder/1.0.0",)
    max_inbound_streams = 1

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.release = asyncio.Event()

    async def start(self) -> None:
        self.events.append("start")
        self.spawn(asyncio.sleep(3600), "forever")

    async def stop(self) -> None:
        self.events.append("stop")
        await super().stop()

    def on_connection(self, conn: Any) -> None:
        self.events.append("connect")

    def on_disconnect(self, conn: Any) -> None:
        self.events.append("disconnect")

    def on_local_change(self) -> None:
        self.events.append("change")

    async def handle(self, stream: Any, conn: Any) -> None:
        await self.release.wait()
        await stream.write(b"done")
        await stream.close()


async def test_service_lifecycle_events_and_limit() -> None:
    rec = Recorder()
    server = await new_host([rec])
    client = await new_host()
    try:
        assert server.services == {"recorder": rec}
        assert server.protocols() == ["/recorder/1.0.0"]
        assert rec.events == ["start"]
        conn = await bounded(client.dial(server.addrs()[0]))
        await wait_until(lambda: "connect" in rec.events)
        first = await bounded(conn.new_stream(["/recorder/1.0.0"]))
        await wait_until(lambda: rec._active_streams == 1)
        second = await bounded(conn.new_stream(["/recorder/1.0.0"]))
        with pytest.raises(StreamResetError):  # over the service's limit
            await read_all(second)
        rec.release.set()
        assert await read_all(first) == b"done"
        # the host knows no service: a server without identify cannot be identified
        with pytest.raises(NegotiationError):
            await bounded(client.services["identify"].identify(conn))
        server.set_stream_handler("/extra", lambda s, c: s.close())
        assert "change" in rec.events
        await conn.close()
        await wait_until(lambda: "disconnect" in rec.events)
    finally:
        await bounded(client.stop())
        await bounded(server.stop())
    assert rec.events[-1] == "stop"
    assert not rec._tasks


def test_default_services() -> None:
    names = [s.name for s in default_services()]
    assert names == ["identify", "ping", "echo", "perf", "dcutr", "autonat"]
    protos = [p for s in default_services() for p in s.protocols]
    # the AutoNAT v2 client answers only dial-backs; serving dial requests is the relay's job
    assert protos == [IDENTIFY, IDENTIFY_PUSH, PING, ECHO, PERF, "/libp2p/dcutr", "/libp2p/autonat/2/dial-back"]


async def test_run_together() -> None:
    done: list[str] = []

    async def ok() -> None:
        await asyncio.sleep(0)
        done.append("ok")

    async def fails() -> None:
        raise ProtocolError("boom")

    async def slow() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            done.append("cancelled")

    await run_together(ok(), ok())
    assert done == ["ok", "ok"]
    with pytest.raises(ProtocolError):
        await run_together(fails(), slow())
    assert done[-1] == "cancelled"


# ------------------------------------------------------------------ signed peer records
async def test_identify_exchanges_verified_signed_peer_records() -> None:
    from pywasm.identity.peer_record import open_peer_record

    async with pair() as (b, a):
        conn = await bounded(a.dial(b.addrs()[0]))
        await bounded(a.services["identify"].identified(conn))
        raw = a.peerstore.signed_record(b.peer_id)
        assert raw is not None, "b's signed peer record was not kept"
        env, record = await open_peer_record(raw)
        assert env.signer == b.peer_id and record.peer_id == b.peer_id
        assert record.addrs == b.listen_addrs()
        assert a.peerstore.certified_addrs(b.peer_id) == b.listen_addrs()
        # certified addresses come first in the address book
        assert a.peerstore.addrs(b.peer_id)[: len(record.addrs)] == record.addrs


async def test_forged_signed_peer_record_is_dropped_and_identify_still_counts() -> None:
    from pywasm.identity.peer_record import seal_peer_record

    mallory = await PrivateKey.generate(KeyType.Ed25519)

    class Forger(IdentifyService):
        async def _signed_record(self) -> bytes | None:
            # a record naming someone else, signed by someone else
            env = await seal_peer_record(mallory, [Multiaddr("/ip4/6.6.6.6/tcp/1")])
            return env.encode()

    async with pair([Forger(), PingService()]) as (b, a):
        conn = await bounded(a.dial(b.addrs()[0]))
        info = await bounded(a.services["identify"].identified(conn))
        assert info.peer_id == b.peer_id and PING in info.protocols
        assert info.signed_peer_record is None
        assert a.peerstore.signed_record(b.peer_id) is None
        assert Multiaddr("/ip4/6.6.6.6/tcp/1") not in a.peerstore.addrs(b.peer_id)


def test_peerstore_keeps_only_newer_signed_records() -> None:
    from pywasm.host.peerstore import Peerstore
    from pywasm.identity import PeerId

    ps = Peerstore()
    peer = PeerId.from_string("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")
    one, two = Multiaddr("/ip4/1.1.1.1/tcp/1"), Multiaddr("/ip4/2.2.2.2/tcp/2")
    assert ps.set_signed_record(peer, b"env-5", 5, [one])
    assert not ps.set_signed_record(peer, b"env-4", 4, [two])  # older: ignored
    assert not ps.set_signed_record(peer, b"env-5b", 5, [two])  # same seq: ignored
    assert ps.signed_record(peer) == b"env-5" and ps.certified_addrs(peer) == [one]
    assert ps.set_signed_record(peer, b"env-6", 6, [two])
    assert ps.signed_record(peer) == b"env-6" and ps.certified_addrs(peer) == [two]
    assert ps.addrs(peer)[0] == two
