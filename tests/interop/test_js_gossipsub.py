"""pywasm gossipsub <-> js-libp2p 3.3 + @libp2p/gossipsub 17.1.1 (and @libp2p/floodsub).

Two js nodes (tests/interop/peers/js_pubsub_peer.mjs) and two in-process pywasm hosts share
one topic over TCP/noise/yamux. Both directions publish; every node receives every message
exactly once with the same data; the meshes contain peers of the other implementation; the
protocol agreed is /meshsub/1.2.0; message ids computed by pywasm (with the js-compatible
msg-id function) equal the ids js reports. A large message makes pywasm send IDONTWANT to
its js mesh peers. A js floodsub node exchanges messages with pywasm in both directions.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest

from pywasm.pubsub import Floodsub, GossipsubConfig, GossipsubService, MeshsubV12, js_msg_id
from pywasm.services import default_services
from tests.interop.harness import PEERS, PeerProcess, PeerSet, node_command
from tests.interop.pw import bounded, host_addr, pywasm_host

pytestmark = pytest.mark.interop

TOPIC = "universal-connectivity"


def start_js(peers: PeerSet, *args: str) -> PeerProcess:
    argv = [*node_command(), str(PEERS / "js_pubsub_peer.mjs"), "listen", "--stdin-lifeline", *args]
    p = PeerProcess("js-pubsub", argv)
    peers.peers.append(p)  # PeerSet.close stops exactly this PID
    p.wait_ready()
    return p


def send(p: PeerProcess, **cmd: Any) -> None:
    assert p.proc.stdin is not None
    p.proc.stdin.write((json.dumps(cmd) + "\n").encode())
    p.proc.stdin.flush()


async def js_cmd(p: PeerProcess, event: str, timeout: float = 30.0, **cmd: Any) -> dict[str, Any]:
    seen = len([e for e in p.events() if e.get("event") == event])
    send(p, **cmd)

    def newer(e: dict[str, Any], box: list[int] = [0]) -> bool:
        if e.get("event") == "error":
            raise AssertionError(f"{p.name}: {e['error']}")
        if e.get("event") != event:
            return False
        box[0] += 1
        return box[0] > seen

    return await asyncio.to_thread(p.wait_event, newer, timeout)


def js_messages(p: PeerProcess) -> list[dict[str, Any]]:
    return [e for e in p.events() if e.get("event") == "message"]


def pubsub_services(**cfg: Any) -> list[Any]:
    config = GossipsubConfig(heartbeat_interval=0.2, msg_id_fn=js_msg_id, **cfg)
    return [*default_services(), GossipsubService(config)]


async def wait_for(cond: Any, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = cond()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_gossipsub_two_js_two_pywasm(peers: PeerSet) -> None:
    js1 = await asyncio.to_thread(start_js, peers, "--topic", TOPIC, "--heartbeat-ms", "200")
    js2 = await asyncio.to_thread(start_js, peers, "--topic", TOPIC, "--heartbeat-ms", "200")
    async with pywasm_host(services=pubsub_services()) as p1, pywasm_host(services=pubsub_services()) as p2:
        ps1: GossipsubService = p1.services["pubsub"]  # type: ignore[assignment]
        ps2: GossipsubService = p2.services["pubsub"]  # type: ignore[assignment]
        sub1 = await ps1.subscribe(TOPIC)
        sub2 = await ps2.subscribe(TOPIC)
        # full graph among the four: pywasm dials both js, p2 dials p1, js1 dials js2
        for host in (p1, p2):
            for js in (js1, js2):
                await bounded(host.dial(js.addr()), 30)
        await bounded(p2.dial(host_addr(p1, "tcp")), 30)
        await js_cmd(js1, "dialed", cmd="dial", addr=js2.addr())

        js_ids = {js1.peer_id, js2.peer_id}
        py_ids = {str(p1.peer_id), str(p2.peer_id)}
        await wait_for(lambda: js_ids <= {str(p) for p in ps1.mesh(TOPIC)}, 30, "p1's mesh to hold both js peers")
        await wait_for(lambda: js_ids <= {str(p) for p in ps2.mesh(TOPIC)}, 30, "p2's mesh to hold both js peers")
        for js in (js1, js2):
            assert ps1.protocol_of(next(p for p in ps1.peers() if str(p) == js.peer_id)) == MeshsubV12

        async def js_mesh_has_pywasm() -> bool:
            for js in (js1, js2):
                ev = await js_cmd(js, "mesh", cmd="mesh", topic=TOPIC)
                if not py_ids <= set(ev["peers"]):
                    return False
            return True

        await wait_for(js_mesh_has_pywasm, 30, "js meshes to hold both pywasm peers")

        # pywasm -> everyone
        data = os.urandom(64)
        msg_id = await ps1.publish(TOPIC, data)
        got2 = await bounded(sub2.get(), 20)
        assert got2.data == data and got2.msg_id == msg_id
        for js in (js1, js2):
            ev = await asyncio.to_thread(js.wait_event, lambda e: e.get("event") == "message" and e["data"] == data.hex(), 20)
            assert ev["from"] == str(p1.peer_id)
            assert ev["msg_id"] == msg_id.hex(), "js and pywasm disagree on the message id"

        # js -> everyone
        data = os.urandom(100)
        await js_cmd(js1, "published", cmd="publish", topic=TOPIC, data=data.hex())
        for sub in (sub1, sub2):
            got = await bounded(sub.get(), 20)
            assert got.data == data and str(got.author) == js1.peer_id
        ev = await asyncio.to_thread(js2.wait_event, lambda e: e.get("event") == "message" and e["data"] == data.hex(), 20)
        assert ev["msg_id"] == got.msg_id.hex()

        # a large message: pywasm sends IDONTWANT to its /meshsub/1.2.0 mesh peers before
        # forwarding; everyone still gets it exactly once
        big = os.urandom(64 * 1024)
        before = ps2.stats["idontwant_sent"]
        await js_cmd(js2, "published", cmd="publish", topic=TOPIC, data=big.hex())
        for sub in (sub1, sub2):
            got = await bounded(sub.get(), 20)
            assert got.data == big
        await wait_for(lambda: ps2.stats["idontwant_sent"] + ps1.stats["idontwant_sent"] > before, 10, "IDONTWANT")

        # a burst both ways; no duplicate reaches an application
        sent = [await ps2.publish(TOPIC, b"py-%d" % i) for i in range(20)]
        for i in range(20):
            await js_cmd(js1, "published", cmd="publish", topic=TOPIC, data=(b"js-%d" % i).hex())
        expect_py1 = {b"py-%d" % i for i in range(20)} | {b"js-%d" % i for i in range(20)}
        got_data = [(await bounded(sub1.get(), 20)).data for _ in range(40)]
        assert sorted(got_data) == sorted(expect_py1)
        assert len(sub1) == 0
        await asyncio.sleep(0.5)
        assert len(sub1) == 0 and len(sub2) == 20  # the js burst, once each
        for js in (js1, js2):
            await asyncio.to_thread(js.wait_event, lambda e: e.get("data") == b"py-19".hex(), 20)
            msgs = [m for m in js_messages(js) if bytes.fromhex(m["data"]).startswith(b"py-")]
            assert len(msgs) == 20 and {m["msg_id"] for m in msgs} == {s.hex() for s in sent}


async def test_floodsub_js_and_pywasm(peers: PeerSet) -> None:
    js = await asyncio.to_thread(start_js, peers, "--floodsub", "--topic", TOPIC)
    async with pywasm_host(services=pubsub_services()) as host:
        ps: GossipsubService = host.services["pubsub"]  # type: ignore[assignment]
        sub = await ps.subscribe(TOPIC)
        await bounded(host.dial(js.addr()), 30)
        await wait_for(lambda: any(str(p) == js.peer_id for p in ps.peers(TOPIC)), 30, "js floodsub subscription")
        peer = next(p for p in ps.peers(TOPIC) if str(p) == js.peer_id)
        assert ps.protocol_of(peer) == Floodsub
        assert ps.mesh(TOPIC) == []  # floodsub peers are never in a mesh

        data = os.urandom(32)
        await ps.publish(TOPIC, data)
        ev = await asyncio.to_thread(js.wait_event, lambda e: e.get("event") == "message" and e["data"] == data.hex(), 20)
        assert ev["from"] == str(host.peer_id)

        data = os.urandom(32)
        await js_cmd(js, "published", cmd="publish", topic=TOPIC, data=data.hex())
        got = await bounded(sub.get(), 20)
        assert got.data == data and str(got.author) == js.peer_id
