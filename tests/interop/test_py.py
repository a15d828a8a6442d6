"""pywasm <-> py-libp2p 0.8.1 (trio, its own venv): noise; yamux and mplex; tcp; both
directions, each with identify, ping and a byte-exact 1 MiB echo."""

from __future__ import annotations

import asyncio

import pytest

from tests.interop.harness import PeerSet
from tests.interop.pw import (
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


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
async def test_pywasm_dials_py(peers: PeerSet, muxer: str) -> None:
    py = await asyncio.to_thread(peers.listen, "py", "--muxer", muxer)
    async with pywasm_host() as host:
        conn = await bounded(host.dial(py.addr()), 30)
        assert conn.security_protocol == NOISE
        assert conn.muxer_protocol == MUXER_IDS[muxer]

        check_identify(await identify_remote(host, conn), "py-libp2p/")

        await ping_remote(host, conn)
        await echo_remote(host, conn, MIB)
        await asyncio.to_thread(py.wait_event, lambda e: e.get("event") == "echo" and e.get("bytes") == MIB)


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
async def test_py_dials_pywasm(peers: PeerSet, muxer: str) -> None:
    async with pywasm_host() as host:
        res = await asyncio.to_thread(peers.dial, "py", host_addr(host, "tcp"), "--muxer", muxer)
        check_dial_report(res, host, muxer)
