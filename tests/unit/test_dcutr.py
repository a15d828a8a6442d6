"""DCUtR at the protocol level over the memory transport (Pyodide-safe).

:class:`SplitMemoryTransport` stands in for a relay: connections to the ``/memory/<id>``
listeners registered in ``relay_ids`` are limited on both ends (as relayed connections
are); every other memory address is a direct connection. So a host that listens on one
"relayed" and one direct address can be reached both ways, and DCUtR has to pick the
direct one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pywasm.errors import StreamResetError
from pywasm.host import Host
from pywasm.identity import KeyType, PrivateKey
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.protocols.dcutr_pb import DCUTR, HolePunch, HolePunchType, direct_addrs
from pywasm.services.dcutr import DCUtRError, DCUtRService
from pywasm.services.identify import IdentifyService
from pywasm.services.ping import PingService
from pywasm.streams import encode_lp
from pywasm.transports.memory import MemoryTransport
from tests._helpers import wait_until

T = 20.0


class SplitMemoryTransport(MemoryTransport):
    def __init__(self, relay_ids: set[int]) -> None:
        super().__init__()
        self.relay_ids = relay_ids

    async def dial(self, addr: Multiaddr) -> Any:
        conn = await super().dial(addr)
        conn.limited = int(addr.value_for("memory") or 0) in self.relay_ids
        return conn

    async def listen(self, addr: Multiaddr, handler: Any) -> Any:
        box: list[Any] = []

        async def marked(conn: Any) -> None:
            conn.limited = box[0].mem_id in self.relay_ids
            await handler(conn)

        listener = await super().listen(addr, marked)
        box.append(listener)
        return listener


async def _host(relay_ids: set[int], listen: list[str], dcutr: DCUtRService | None = None) -> Host:
    key = await PrivateKey.generate(KeyType.Ed25519)
    return await Host.create(
        key=key, listen=listen, transports=[SplitMemoryTransport(relay_ids)],
        services=[IdentifyService(), PingService(), dcutr or DCUtRService()],
    )


async def _setup(a_listen: list[str] | None = None, **b_opts: Any) -> tuple[Host, Host, Any]:
    """A dials B on B's "relayed" address: B holds an inbound limited connection."""
    relay_ids: set[int] = set()
    b = await _host(relay_ids, [], DCUtRService(**b_opts))
    (relay_addr,) = await b.listen("/memory/0")
    relay_ids.add(int(relay_addr.value_for("memory") or 0))
    await b.listen("/memory/0")  # B's direct address
    a = await _host(relay_ids, ["/memory/0"] if a_listen is None else a_listen)
    relayed = await asyncio.wait_for(a.dial(relay_addr), T)
    assert relayed.limited
    return a, b, relayed


def _direct(h: Host, peer: Any) -> list[Any]:
    return [c for c in h.connections_to(peer) if not c.limited]


async def test_inbound_limited_connection_is_upgraded_to_direct() -> None:
    a, b, relayed = await _setup()
    try:
        await wait_until(lambda: b.services["dcutr"].results.get(a.peer_id) == "upgraded", T)
        # B dialed A's direct address; A dialed B's (after SYNC): both hold a direct one
        await wait_until(lambda: bool(_direct(a, b.peer_id)) and bool(_direct(b, a.peer_id)), T)
        assert b.services["dcutr"].last_rtt is not None and b.services["dcutr"].last_rtt < T
        assert a.services["dcutr"].stats["responded"] == 1
        # ping did not opt in to limited connections: it works now, over the direct one
        assert await asyncio.wait_for(a.services["ping"].ping(b.peer_id), T) >= 0
        assert not (await a.dial(b.peer_id)).limited
        # the relayed connection stays: the application decides when to drop it
        assert not relayed.is_closed
    finally:
        await a.stop()
        await b.stop()


async def test_explicit_upgrade_returns_the_direct_connection() -> None:
    a, b, relayed = await _setup(auto=False)
    try:
        (inbound,) = [c for c in b.connections_to(a.peer_id) if c.limited]
        direct = await asyncio.wait_for(b.services["dcutr"].upgrade(inbound), T)
        assert not direct.limited and direct.remote_peer == a.peer_id
    finally:
        await a.stop()
        await b.stop()


async def test_peer_without_addresses_fails_cleanly() -> None:
    # A listens nowhere and ignores what identify observed: its CONNECT carries no address
    a, b, relayed = await _setup(a_listen=[], auto=False)
    a.services["dcutr"].addr_source = lambda: []
    try:
        (inbound,) = [c for c in b.connections_to(a.peer_id) if c.limited]
        with pytest.raises(DCUtRError, match="no direct address"):
            await asyncio.wait_for(b.services["dcutr"].upgrade(inbound), T)
        assert b.services["dcutr"].results[a.peer_id] == "failed"
        assert not _direct(b, a.peer_id) and not relayed.is_closed
        # and nothing was dialed from A's side either (it never got SYNC)
        await asyncio.sleep(0.05)
        assert not _direct(a, b.peer_id)
    finally:
        await a.stop()
        await b.stop()


async def test_unreachable_addresses_fail_after_retries() -> None:
    a, b, relayed = await _setup(auto=False, max_attempts=2)
    try:
        # A advertises only an address nobody listens on
        a.services["dcutr"].addr_source = lambda: [Multiaddr("/memory/4242424242")]
        (inbound,) = [c for c in b.connections_to(a.peer_id) if c.limited]
        with pytest.raises(DCUtRError, match="attempt 2"):
            await asyncio.wait_for(b.services["dcutr"].upgrade(inbound), T)
        assert b.services["dcutr"].stats["attempts"] == 2
    finally:
        await a.stop()
        await b.stop()


async def test_bad_messages_reset_the_stream_and_service_keeps_working() -> None:
    a, b, relayed = await _setup(auto=False)
    try:
        for junk in (
            encode_lp(b"\x08"),  # truncated varint
            encode_lp(HolePunch(HolePunchType.SYNC).encode()),  # SYNC before CONNECT
            encode_lp(b"\x08\x07"),  # unknown type
            b"\xff\xff\x03",  # over the 4 KiB limit
        ):
            stream = await asyncio.wait_for(relayed.new_stream([DCUTR], allow_limited=True), T)
            await stream.write(junk)
            with pytest.raises(StreamResetError):
                while await asyncio.wait_for(stream.read(), T):
                    pass
        (inbound,) = [c for c in b.connections_to(a.peer_id) if c.limited]
        direct = await asyncio.wait_for(b.services["dcutr"].upgrade(inbound), T)
        assert not direct.limited
    finally:
        await a.stop()
        await b.stop()


def test_direct_addrs_filter() -> None:
    good = Multiaddr("/ip4/1.2.3.4/tcp/1")
    raw = [b"\x00junk", good.to_bytes(), Multiaddr("/ip4/5.6.7.8/tcp/1/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf/p2p-circuit").to_bytes(), good.to_bytes()]
    assert direct_addrs(raw) == [good]
