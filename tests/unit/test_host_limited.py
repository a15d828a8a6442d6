"""Limited (relayed) connections: only protocols that opt in open or answer streams.

A circuit-relay connection is a raw connection with ``limited = True``; the relay caps
its data and duration, so bulk protocols must not use it by accident (js-libp2p's
``runOnLimitedConnection``). This transport marks every memory pipe as limited.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pywasm.errors import LimitedConnectionError, NegotiationError
from pywasm.host import Host
from pywasm.identity import KeyType, PrivateKey
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.services.identify import IDENTIFY
from pywasm.services.ping import PING
from pywasm.transports.memory import MemoryTransport

TIMEOUT = 20.0


class LimitedMemoryTransport(MemoryTransport):
    async def dial(self, addr: Multiaddr) -> Any:
        conn = await super().dial(addr)
        conn.limited = True
        return conn

    async def listen(self, addr: Multiaddr, handler: Any) -> Any:
        async def marked(conn: Any) -> None:
            conn.limited = True
            await handler(conn)

        return await super().listen(addr, marked)


async def _host(transport: MemoryTransport) -> Host:
    key = await PrivateKey.generate(KeyType.Ed25519)
    return await Host.create(key=key, listen=["/memory/0"], transports=[transport])


async def test_limited_connection_runs_only_opted_in_protocols() -> None:
    a, b = await _host(LimitedMemoryTransport()), await _host(LimitedMemoryTransport())
    got: list[bytes] = []

    async def bulk(stream: Any, conn: Any) -> None:
        got.append(await stream.read(10))
        await stream.close()

    b.set_stream_handler("/test/bulk", bulk)
    b.set_stream_handler("/test/small", bulk, allow_limited=True)
    try:
        conn = await asyncio.wait_for(a.dial(b.addrs()[0]), TIMEOUT)
        assert conn.limited and "limited" in repr(conn)
        # ping did not opt in: refused locally with a typed error, nothing sent
        with pytest.raises(LimitedConnectionError, match="limited"):
            await a.new_stream(b.peer_id, [PING])
        # asked anyway (allow_limited on our side): the remote refuses a protocol it
        # did not open to limited connections, as if it did not speak it
        with pytest.raises(NegotiationError, match="none of"):
            await asyncio.wait_for(a.new_stream(b.peer_id, ["/test/bulk"], allow_limited=True), TIMEOUT)
        s = await asyncio.wait_for(a.new_stream(b.peer_id, ["/test/small"], allow_limited=True), TIMEOUT)
        await s.write(b"hello")
        await s.close_write()
        for _ in range(200):
            if got:
                break
            await asyncio.sleep(0.01)
        assert got == [b"hello"]
        # identify opted in: it ran over the limited connection by itself
        ident = await asyncio.wait_for(a.services["identify"].identify(conn), TIMEOUT)
        assert ident.peer_id == b.peer_id
        assert IDENTIFY in b.registry.protocols(limited=True)
        assert PING not in b.registry.protocols(limited=True)
    finally:
        await a.stop()
        await b.stop()


async def test_direct_connection_is_preferred_over_limited() -> None:
    limited, direct = LimitedMemoryTransport(), MemoryTransport()
    a = await _host(limited)
    key = await PrivateKey.generate(KeyType.Ed25519)
    b = await Host.create(key=key, listen=["/memory/0"], transports=[MemoryTransport()])
    try:
        relayed = await asyncio.wait_for(a.dial(b.addrs()[0]), TIMEOUT)
        assert relayed.limited
        a.transports.insert(0, direct)
        fresh = await asyncio.wait_for(a._dial_addr(b.addrs()[0], b.peer_id, TIMEOUT), TIMEOUT)
        assert not fresh.limited
        # with both open, streams go over the direct one
        rtt = await asyncio.wait_for(a.services["ping"].ping(b.peer_id), TIMEOUT)
        assert rtt >= 0
        assert (await a.dial(b.peer_id)) is fresh
    finally:
        await a.stop()
        await b.stop()


async def test_dial_to_a_direct_address_does_not_return_the_limited_connection() -> None:
    a = await _host(LimitedMemoryTransport())
    key = await PrivateKey.generate(KeyType.Ed25519)
    b = await Host.create(key=key, listen=["/memory/0"], transports=[MemoryTransport()])
    try:
        relayed = await asyncio.wait_for(a.dial(b.addrs()[0]), TIMEOUT)
        assert relayed.limited
        a.transports.insert(0, MemoryTransport())
        # same /p2p id, but the caller asks for this (direct) address: a new connection
        direct = await asyncio.wait_for(a.dial(b.addrs()[0]), TIMEOUT)
        assert direct is not relayed and not direct.limited
        # and from now on, by id or address, the direct one
        assert (await a.dial(b.peer_id)) is direct
        assert (await a.dial(b.addrs()[0])) is direct
    finally:
        await a.stop()
        await b.stop()
