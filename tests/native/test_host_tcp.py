"""Two hosts over TCP and WebSocket on 127.0.0.1: the full stack on real sockets."""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import pytest

from pywasm.errors import DialError, NegotiationError
from pywasm.host import Direction, Host
from pywasm.identity import KeyType, PeerId, PrivateKey
from pywasm.muxers import MplexMuxer, YamuxMuxer
from pywasm.services import ECHO, IDENTIFY, PERF, PING
from tests._helpers import other_tasks, wait_until

MIB = 1024 * 1024
TIMEOUT = 30.0
LISTEN = {"tcp": "/ip4/127.0.0.1/tcp/0", "ws": "/ip4/127.0.0.1/tcp/0/ws"}
MUXERS = {"yamux": YamuxMuxer, "mplex": MplexMuxer}


async def bounded(aw: Any, timeout: float = TIMEOUT) -> Any:
    return await asyncio.wait_for(aw, timeout)


@asynccontextmanager
async def pair(transport: str, muxer: str | None = None) -> AsyncIterator[tuple[Host, Host, str]]:
    server = await Host.create(listen=[LISTEN[transport]], muxers=[MUXERS[muxer]()] if muxer else None)
    client = await Host.create(listen=[])
    try:
        (addr,) = server.addrs()
        yield server, client, str(addr)
    finally:
        await bounded(client.stop())
        await bounded(server.stop())


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_full_session(transport: str, muxer: str) -> None:
    async with pair(transport, muxer) as (server, client, addr):
        assert addr.startswith("/ip4/127.0.0.1/tcp/") and addr.endswith(f"/p2p/{server.peer_id}")
        assert ("/ws/" in addr) == (transport == "ws")
        conn = await bounded(client.dial(addr))
        assert conn.direction is Direction.OUTBOUND
        assert conn.security_protocol == "/noise"
        assert conn.muxer_protocol == MUXERS[muxer].protocol_id

        info = await bounded(client.services["identify"].identified(conn))
        assert {IDENTIFY, PING, ECHO, PERF} <= set(info.protocols)
        assert info.public_key == server.private_key.public_key
        assert info.listen_addrs == server.listen_addrs()
        assert info.observed_addr is not None and str(info.observed_addr).startswith("/ip4/127.0.0.1/tcp/")

        assert 0 <= await bounded(client.services["ping"].ping(conn)) < 5
        data = os.urandom(MIB)
        assert await bounded(client.services["echo"].echo(conn, data)) == data
        result = await bounded(client.services["perf"].run(addr, MIB, 2 * MIB))
        assert (result.upload_bytes, result.download_bytes) == (MIB, 2 * MIB)

        with pytest.raises(NegotiationError):
            await bounded(client.new_stream(conn, ["/unknown/1.0.0"]))
        await bounded(client.services["ping"].ping(server.peer_id))


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_wrong_peer_id(transport: str) -> None:
    async with pair(transport) as (server, client, addr):
        stranger = PeerId.from_public_key((await PrivateKey.generate(KeyType.Ed25519)).public_key)
        wrong = addr.rsplit("/p2p/", 1)[0] + f"/p2p/{stranger}"
        with pytest.raises(DialError) as info:
            await bounded(client.dial(wrong))
        assert "\n" not in str(info.value) and str(stranger) in str(info.value)
        await bounded(client.dial(addr))


async def test_connection_refused_is_one_line() -> None:
    host = await Host.create(listen=[])
    try:
        with pytest.raises(DialError) as info:
            await bounded(host.dial("/ip4/127.0.0.1/tcp/1"))
        assert "\n" not in str(info.value) and "refused" in str(info.value)
    finally:
        await host.stop()


async def test_tcp_garbage_sender_closed_while_others_served() -> None:
    async with pair("tcp") as (server, client, addr):
        port = int(addr.split("/tcp/")[1].split("/")[0])
        records: list[str] = []

        class H(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                records.append(record.getMessage())

        logger = logging.getLogger("pywasm.host")
        handler, old = H(), logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(2000))
            await writer.drain()
            conn = await bounded(client.dial(addr))
            data = os.urandom(300_000)
            assert await bounded(client.services["echo"].echo(conn, data)) == data
            # the server hangs up on the garbage sender
            try:
                while await bounded(reader.read(65536), 10):
                    pass
            except ConnectionResetError:
                pass
            writer.close()
            await wait_until(lambda: any("closed inbound connection" in m for m in records))
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old)
        assert [c.remote_peer for c in server.connections] == [client.peer_id]


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_stop_is_clean(transport: str) -> None:
    before = set(asyncio.all_tasks())
    server = await Host.create(listen=[LISTEN[transport]])
    client = await Host.create(listen=[])
    conn = await bounded(client.dial(server.addrs()[0]))
    await bounded(client.services["identify"].identified(conn))
    stream = await bounded(client.new_stream(conn, [ECHO]))
    await stream.write(b"left open")
    await bounded(server.stop())  # the server goes first: the client sees the GoAway
    await wait_until(lambda: not client.connections)
    await bounded(client.stop())
    await asyncio.sleep(0.05)
    leftover = [t for t in other_tasks() if t not in before]
    assert leftover == [], leftover
