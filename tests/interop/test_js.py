"""pywasm <-> js-libp2p 3.3 (Node): noise; yamux and mplex; tcp and ws; both directions.

Each direction does identify, ping and a byte-exact 1 MiB echo. pywasm runs in-process
(Host API, docs/architecture.md); js runs tests/interop/peers/js_peer.mjs.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.interop.harness import PeerSet
from tests.interop.pw import (
    LISTEN,
    MIB,
    MUXER_IDS,
    NOISE,
    bounded,
    check_dial_report,
    check_identify,
    echo_remote,
    host_addr,
    identify_remote,
    ping_remote,
    pywasm_host,
)

pytestmark = pytest.mark.interop

COMBOS = [(m, t) for m in ("yamux", "mplex") for t in ("tcp", "ws")]


@pytest.mark.parametrize("muxer,transport", COMBOS)
async def test_pywasm_dials_js(peers: PeerSet, muxer: str, transport: str) -> None:
    js = await asyncio.to_thread(peers.listen, "js", "--muxer", muxer, "--listen", LISTEN[transport])
    async with pywasm_host() as host:
        conn = await bounded(host.dial(js.addr(transport=transport)), 30)
        assert str(conn.remote_peer) == js.peer_id
        assert conn.security_protocol == NOISE
        assert conn.muxer_protocol == MUXER_IDS[muxer]

        ident = await identify_remote(host, conn)
        check_identify(ident, "js-libp2p/")
        assert ident["signed_record"], "js sends a signed peer record; it must verify"

        await ping_remote(host, conn)
        await echo_remote(host, conn, MIB)

        # js identifies every inbound connection: it must have parsed pywasm's answer
        ev = await asyncio.to_thread(
            js.wait_event, lambda e: e.get("event") == "identify" and e.get("peer") == str(host.peer_id)
        )
        assert {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"} <= set(ev["protocols"]), ev
        assert ev["key_type"] == "Ed25519"


@pytest.mark.parametrize("muxer,transport", COMBOS)
async def test_js_dials_pywasm(peers: PeerSet, muxer: str, transport: str) -> None:
    async with pywasm_host(listen=[LISTEN[transport]]) as host:
        res = await asyncio.to_thread(peers.dial, "js", host_addr(host, transport), "--muxer", muxer)
        ident = check_dial_report(res, host, muxer)
        assert res["encryption"] == NOISE
        assert ident["agent"], ident


async def test_perf_both_ways_with_js(peers: PeerSet) -> None:
    """/perf/1.0.0 interop (not a benchmark): js client -> pywasm server, then reverse."""
    async with pywasm_host() as host:
        res = await asyncio.to_thread(
            peers.dial, "js", host_addr(host, "tcp"), "--perf-up", str(MIB), "--perf-down", str(2 * MIB)
        )
        assert res["perf"]["download_bytes"] == 2 * MIB

        js = await asyncio.to_thread(peers.listen, "js")
        result = await bounded(host.services["perf"].run(js.addr(), MIB, 2 * MIB), 60)
        assert result is not None
        await asyncio.to_thread(
            js.wait_event, lambda e: e.get("event") == "perf" and e.get("uploaded") == MIB and e.get("downloaded") == 2 * MIB
        )
