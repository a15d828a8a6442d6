"""pywasm <-> py-libp2p 0.8.1 over ``/tls/1.0.0`` on TCP, both directions.

py-libp2p's certificate carries BasicConstraints and KeyUsage before the libp2p
extension, so this proves we find the extension in any position (js would refuse it).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.interop.harness import PeerSet
from tests.interop.pw import (
    MIB,
    MUXER_IDS,
    bounded,
    check_dial_report,
    check_identify,
    echo_remote,
    host_addr,
    identify_remote,
    ping_remote,
    pywasm_host,
)
from tests.interop.test_js_tls import TLS, tls_host_kwargs

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
async def test_pywasm_dials_py_over_tls(peers: PeerSet, muxer: str) -> None:
    py = await asyncio.to_thread(peers.listen, "py", "--security", "tls", "--muxer", muxer)
    async with pywasm_host(listen=[], **await tls_host_kwargs()) as host:
        conn = await bounded(host.dial(py.addr()), 30)
        assert str(conn.remote_peer) == py.peer_id
        assert conn.security_protocol == TLS
        assert conn.muxer_protocol == MUXER_IDS[muxer]

        check_identify(await identify_remote(host, conn), "py-libp2p/")
        await ping_remote(host, conn)
        await echo_remote(host, conn, MIB)
        await asyncio.to_thread(py.wait_event, lambda e: e.get("event") == "echo" and e.get("bytes") == MIB)


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
async def test_py_dials_pywasm_over_tls(peers: PeerSet, muxer: str) -> None:
    async with pywasm_host(**await tls_host_kwargs()) as host:
        res = await asyncio.to_thread(
            peers.dial, "py", host_addr(host, "tcp"), "--security", "tls", "--muxer", muxer
        )
        check_dial_report(res, host, muxer)
