"""Kademlia DHT interop with js-libp2p 3.3 + @libp2p/kad-dht 16 (tests/interop/peers/js_kad_peer.mjs).

Topology: pywasm servers A (the hub), B and C on loopback TCP; B and C bootstrap from A;
the js node dials only A. So whatever js learns about B and C, and whatever B and C learn
about js, comes through Kademlia messages answered by the other implementation.
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
from pywasm.errors import PywasmError
from pywasm.identity import PeerId
from pywasm.multiformats import multihash
from pywasm.multiformats.cid import CID, RAW
from pywasm.protocols.kad_pb import MessagePB, MessageType, RecordPB
from pywasm.services import default_services
from tests.interop.harness import PEERS, PeerProcess, node_command
from tests.interop.pw import bounded, pywasm_host
from tests._helpers import wait_until

T = 60.0


class JsKad:
    """The js peer, driven by JSON commands on its stdin."""

    def __init__(self, *args: str) -> None:
        self.proc = PeerProcess("js-kad", [*node_command(), str(PEERS / "js_kad_peer.mjs"), "listen", *args])
        self._ids = itertools.count(1)

    async def start(self) -> None:
        await asyncio.to_thread(self.proc.wait_ready)

    @property
    def peer_id(self) -> PeerId:
        return PeerId.from_string(self.proc.peer_id)

    async def call(self, cmd: str, timeout: float = T, **kw: Any) -> dict[str, Any]:
        n = next(self._ids)
        assert self.proc.proc.stdin is not None
        self.proc.proc.stdin.write((json.dumps({"id": n, "cmd": cmd, "timeout_ms": int(timeout * 1000), **kw}) + "\n").encode())
        self.proc.proc.stdin.flush()
        ev = await asyncio.to_thread(self.proc.wait_event, lambda e: e.get("id") == n, timeout + 10)
        if not ev.get("ok"):
            raise AssertionError(f"js {cmd} failed: {ev.get('error')}\n{self.proc.describe()}")
        return ev

    def stop(self) -> None:
        self.proc.stop()


async def _setup(stack: AsyncExitStack) -> tuple[Any, Any, Any, JsKad]:
    hosts = []
    for _ in range(3):
        svc = [*default_services(), KadDHT(mode="server", refresh_interval=0)]
        hosts.append(await stack.enter_async_context(pywasm_host(services=svc)))
    a, b, c = hosts
    for h in (b, c):
        await bounded(h.services["dht"].bootstrap([a.addrs()[0]]), T)
    js = JsKad()
    stack.callback(js.stop)
    await js.start()
    res = await js.call("connect", addr=str(a.addrs()[0]))
    assert str(a.peer_id) in res["table"]
    # A adds js once identify shows js serves /ipfs/kad/1.0.0
    await wait_until(lambda: js.peer_id in a.services["dht"].routing_table, 20)
    return a, b, c, js


async def test_find_node_both_ways_with_js() -> None:
    async with AsyncExitStack() as stack:
        a, b, c, js = await _setup(stack)
        assert not b.is_connected(js.peer_id)
        # js finds pywasm B through A's FIND_NODE answer
        res = await js.call("find_peer", peer=str(b.peer_id))
        assert str(b.listen_addrs()[0]) in res["addrs"], res
        # pywasm C finds js through A (C never met js)
        assert not c.is_connected(js.peer_id)
        addrs = await bounded(c.services["dht"].find_peer(js.peer_id), T)
        assert any(str(x) == js.proc.addr().rsplit("/p2p/", 1)[0] for x in addrs), addrs
        # and can reach it there
        conn = await bounded(c.dial(js.peer_id), T)
        assert conn.remote_peer == js.peer_id
        # a js-side lookup of a random key gets answers from pywasm servers
        res = await bounded(c.services["dht"].find_closest_peers(os.urandom(16)), T)
        assert js.peer_id in res.peers


async def test_records_and_providers_both_ways_with_js() -> None:
    async with AsyncExitStack() as stack:
        a, b, c, js = await _setup(stack)
        pywasm_dhts = [h.services["dht"] for h in (a, b, c)]

        # js PUTs a /pk record of pywasm C; pywasm servers validate and store it; B reads it
        key_c = b"/pk/" + c.peer_id.to_bytes()
        val_c = c.private_key.public_key.to_protobuf()
        await js.call("put", key=key_c.hex(), value=val_c.hex())
        holders = [d for d in pywasm_dhts if d.records.get(key_c, d.clock()) is not None]
        assert holders, "js's PUT_VALUE reached no pywasm server"
        assert await bounded(b.services["dht"].get_value(key_c), T) == val_c

        # pywasm B PUTs its /pk record; js GETs it (js validates /pk records too)
        key_b = b"/pk/" + b.peer_id.to_bytes()
        val_b = b.private_key.public_key.to_protobuf()
        assert await bounded(b.services["dht"].put_value(key_b, val_b), T) >= 1
        res = await js.call("get", key=key_b.hex())
        assert bytes.fromhex(res["value"]) == val_b

        # js refuses an invalid /pk record sent by us (its validator, on the wire)
        bad = MessagePB(type=MessageType.PUT_VALUE, key=key_b, record=RecordPB(key=key_b, value=val_c))
        with pytest.raises(PywasmError):
            await bounded(b.services["dht"]._request(js.peer_id, bad, True), T)

        # providers: pywasm -> js
        cid1 = CID.v1(RAW, multihash.sha256(b"pywasm provides this"))
        assert await bounded(b.services["dht"].provide(cid1), T) >= 1
        res = await js.call("find_providers", cid=str(cid1))
        assert str(b.peer_id) in res["providers"], res
        assert str(b.listen_addrs()[0]) in res["providers"][str(b.peer_id)]
        # providers: js -> pywasm
        cid2 = CID.v1(RAW, multihash.sha256(b"js provides this"))
        await js.call("provide", cid=str(cid2))
        provs = await bounded(c.services["dht"].find_providers(cid2), T)
        assert js.peer_id in [p.peer_id for p in provs], provs
