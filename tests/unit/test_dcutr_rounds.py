"""DCUtR retries (libp2p/specs relay/DCUtR.md step 6): a failed round is retried on the
same stream, and B falls back to a fresh stream when the peer answers one round per
stream (what go-libp2p and js-libp2p do). Memory transport only (Pyodide-safe); see
test_dcutr.py for the "relayed" memory addresses.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pywasm.host import Host
from pywasm.identity import KeyType, PrivateKey
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.protocols.dcutr_pb import DCUTR, MAX_MESSAGE_SIZE, HolePunch, HolePunchType, parse
from pywasm.services.dcutr import DCUtRService
from pywasm.services.identify import IdentifyService
from pywasm.services.ping import PingService
from pywasm.streams import encode_lp
from tests.unit.test_dcutr import SplitMemoryTransport

T = 20.0
# nobody listens there: a round that only offers it fails
NOWHERE = Multiaddr("/memory/987654321")


class CountingDCUtR(DCUtRService):
    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.streams = 0

    async def handle(self, stream: Any, conn: Any) -> None:
        self.streams += 1
        await super().handle(stream, conn)


def _first_round_nowhere(host_box: list[Host]) -> Any:
    """An address source that offers NOWHERE in the first CONNECT, the real one after."""
    calls = [0]

    def addrs() -> list[Multiaddr]:
        calls[0] += 1
        if calls[0] == 1:
            return [NOWHERE]
        return [a for a in host_box[0].listen_addrs() if a not in relayed_addrs]

    relayed_addrs: list[Multiaddr] = []
    addrs.relayed = relayed_addrs  # type: ignore[attr-defined]
    return addrs


async def _host(relay_ids: set[int], dcutr: DCUtRService) -> Host:
    key = await PrivateKey.generate(KeyType.Ed25519)
    return await Host.create(
        key=key, listen=[], transports=[SplitMemoryTransport(relay_ids)],
        services=[IdentifyService(), PingService(), dcutr],
    )


async def _pair(a_dcutr: DCUtRService, b_dcutr: DCUtRService) -> tuple[Host, Host, Any, Multiaddr]:
    """A dials B's "relayed" address; B (the initiator) holds the inbound limited one.
    Returns A, B, the connection as B sees it, and B's relayed address."""
    relay_ids: set[int] = set()
    b = await _host(relay_ids, b_dcutr)
    (relay_addr,) = await b.listen("/memory/0")
    relay_ids.add(int(relay_addr.value_for("memory") or 0))
    await b.listen("/memory/0")  # B's direct address
    a = await _host(relay_ids, a_dcutr)
    await a.listen("/memory/0")
    await asyncio.wait_for(a.dial(relay_addr), T)
    for _ in range(200):
        conns = [c for c in b.connections_to(a.peer_id) if c.limited]
        if conns:
            return a, b, conns[0], relay_addr
        await asyncio.sleep(0.01)
    raise AssertionError("B never saw the relayed connection")


async def test_a_failed_round_is_retried_on_the_same_stream() -> None:
    a_box: list[Host] = []
    b_box: list[Host] = []
    a_src, b_src = _first_round_nowhere(a_box), _first_round_nowhere(b_box)
    a_svc = CountingDCUtR(addrs=a_src, dial_timeout=2.0)
    b_svc = DCUtRService(auto=False, addrs=b_src, dial_timeout=2.0)
    a, b, relayed, relay_addr = await _pair(a_svc, b_svc)
    a_box.append(a)
    b_box.append(b)
    b_src.relayed.append(relay_addr.without_peer_id() if relay_addr.peer_id() else relay_addr)
    try:
        direct = await asyncio.wait_for(b_svc.upgrade(relayed), T)
        assert not direct.limited and direct.remote_peer == a.peer_id
        assert b_svc.stats["attempts"] == 2, b_svc.stats
        # both rounds went over the one stream A was handed
        await asyncio.wait_for(_until(lambda: a_svc.stats["responded"] == 2), T)
        assert a_svc.streams == 1, a_svc.streams
    finally:
        await a.stop()
        await b.stop()


async def test_initiator_opens_a_fresh_stream_when_the_peer_answers_one_round_per_stream() -> None:
    b_svc = DCUtRService(auto=False, dial_timeout=2.0)
    a_svc = DCUtRService(auto=False)
    a, b, relayed, _ = await _pair(a_svc, b_svc)
    streams: list[int] = []

    async def one_round(stream: Any, conn: Any) -> None:
        # like go-libp2p/js-libp2p: answer a single round, then close the stream
        streams.append(1)
        parse(await stream.read_lp(MAX_MESSAGE_SIZE), HolePunchType.CONNECT)
        offer = [NOWHERE] if len(streams) == 1 else [x for x in a.listen_addrs()]
        await stream.write(encode_lp(HolePunch(HolePunchType.CONNECT, [x.to_bytes() for x in offer]).encode()))
        parse(await stream.read_lp(MAX_MESSAGE_SIZE), HolePunchType.SYNC)
        await stream.close()

    a.set_stream_handler(DCUTR, one_round, allow_limited=True)
    try:
        direct = await asyncio.wait_for(b_svc.upgrade(relayed), T)
        assert not direct.limited and direct.remote_peer == a.peer_id
        assert b_svc.stats["attempts"] == 2 and len(streams) == 2, (b_svc.stats, streams)
    finally:
        await a.stop()
        await b.stop()


async def _until(cond: Any) -> None:
    while not cond():
        await asyncio.sleep(0.01)
