"""pywasm <-> py-libp2p 0.8.1 (trio, its own venv): noise; yamux and mplex; tcp; both
directions, each with identify, ping and a byte-exact 1 MiB echo."""

from __future__ import annotations

import asyncio

import pytest

from tests.interop.harness import PeerSet
from tests.interop.pw import (
    ECHO,
    MIB,
    MUXER_IDS,
    NOISE,
    bounded,
    echo_remote,
    host_addr,
    identify_remote,
    ping_remote,
    pywasm_host,
)

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
async def test_pywasm_dials_py(peers: PeerSet, muxer: str) -> None:
    py = await asyncio.to_thread(peers.listen, "py", "--muxer", muxer)
    async with pywasm_host() as host:
        conn = await bounded(host.dial(py.addr()), 30)
        assert conn.security_protocol == NOISE
        assert conn.muxer_protocol == MUXER_IDS[muxer]

        info = await identify_remote(host, conn)
        assert info["agent"].startswith("py-libp2p/"), info
        assert {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO} <= set(info["protocols"]), info
        assert info["key_type"] == "Ed25519"

        await ping_remote(host, conn)
        await echo_remote(host, conn, MIB)
        await asyncio.to_thread(py.wait_event, lambda e: e.get("event") == "echo" and e.get("bytes") == MIB)


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
async def test_py_dials_pywasm(peers: PeerSet, muxer: str) -> None:
    async with pywasm_host() as host:
        res = await asyncio.to_thread(peers.dial, "py", host_addr(host, "tcp"), "--muxer", muxer)
        assert res["remote_peer"] == str(host.peer_id)
        assert res["muxer"] == MUXER_IDS[muxer]
        ident = res["identify"]
        assert {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO} <= set(ident["protocols"]), ident
        assert ident["key_type"] == "Ed25519"
        assert res["ping_ms"] >= 0
        assert res["echo"]["bytes"] == MIB and res["echo"]["ok"]
