"""Memory pipes and the /memory transport."""

from __future__ import annotations

import asyncio

import pytest

from pywasm.errors import TransportError
from pywasm.transports.memory import MemoryTransport, memory_pipe


async def test_pipe_capacity_bounds_buffer() -> None:
    a, b = memory_pipe(capacity=10)
    task = asyncio.ensure_future(a.write(b"0123456789abcdef"))
    await asyncio.sleep(0.01)
    assert not task.done()  # 10 bytes buffered, 6 waiting
    assert await b.read(4) == b"0123"
    assert await b.read() == b"456789"
    await asyncio.wait_for(task, 1)
    assert await b.read() == b"abcdef"


async def test_read_after_peer_close_and_discard() -> None:
    a, b = memory_pipe(capacity=4)
    await a.write(b"abcd")
    await b.close()  # b stops reading: a's blocked writes complete (data discarded)
    await asyncio.wait_for(a.write(b"efgh" * 10), 1)
    assert await a.read() == b""  # b's close half-closed its side


async def test_transport_listen_dial() -> None:
    multiaddr = pytest.importorskip("pywasm.multiformats.multiaddr")
    Multiaddr = multiaddr.Multiaddr
    transport = MemoryTransport()
    accepted: asyncio.Queue = asyncio.Queue(maxsize=4)

    async def handler(conn) -> None:  # type: ignore[no-untyped-def]
        data = await conn.read()
        await conn.write(data.upper())
        await conn.close()
        await accepted.put(conn)

    listener = await transport.listen(Multiaddr("/memory/0"), handler)
    (addr,) = listener.addrs
    assert addr.protocols() == ["memory"] and addr.value_for("memory") != "0"
    assert transport.can_dial(addr) and not transport.can_dial(Multiaddr("/ip4/1.2.3.4/tcp/1"))
    conn = await transport.dial(addr)
    assert conn.remote_addr == addr
    await conn.write(b"hi")
    assert await conn.read() == b"HI"
    server_side = await asyncio.wait_for(accepted.get(), 1)
    assert server_side.remote_addr == conn.local_addr
    with pytest.raises(TransportError):
        await transport.listen(addr, handler)
    await listener.close()
    with pytest.raises(TransportError):
        await transport.dial(addr)
