"""pywasm <-> js-libp2p 3.3 (Node) over ``/tls/1.0.0`` (@libp2p/tls 3.1) on TCP.

Both directions, yamux and mplex: identify, ping and a byte-exact 1 MiB echo. js reads
only the first certificate extension, so this also proves ours puts the libp2p one first;
js's certificate and ALPN are checked by our side. pywasm runs in-process with
``security=[TLSSecurity]`` (or noise + tls, as a default native host would offer).
"""

from __future__ import annotations

import asyncio
from typing import Any

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

pytestmark = pytest.mark.interop

TLS = "/tls/1.0.0"


async def tls_host_kwargs(muxer: str = "both", *, with_noise: bool = False) -> dict[str, Any]:
    from pywasm.identity import PrivateKey
    from pywasm.muxers import MplexMuxer, YamuxMuxer
    from pywasm.security.noise import NoiseSecurity
    from pywasm.security.tls import TLSSecurity

    key = await PrivateKey.generate()
    muxers = {"yamux": [YamuxMuxer()], "mplex": [MplexMuxer()], "both": [YamuxMuxer(), MplexMuxer()]}[muxer]
    ids = [m.protocol_id for m in muxers]
    security: list[Any] = [TLSSecurity(key, ids)]
    if with_noise:
        security.insert(0, NoiseSecurity(key, ids))
    return {"key": key, "security": security, "muxers": muxers}


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
async def test_pywasm_dials_js_over_tls(peers: PeerSet, muxer: str) -> None:
    js = await asyncio.to_thread(peers.listen, "js", "--security", "tls", "--muxer", muxer)
    async with pywasm_host(listen=[], **await tls_host_kwargs()) as host:
        conn = await bounded(host.dial(js.addr()), 30)
        assert str(conn.remote_peer) == js.peer_id
        assert conn.security_protocol == TLS
        assert conn.muxer_protocol == MUXER_IDS[muxer]
        # js answered our ALPN offer with the muxer: no multistream round for it
        assert conn.secure.early_muxer == MUXER_IDS[muxer]

        check_identify(await identify_remote(host, conn), "js-libp2p/")
        await ping_remote(host, conn)
        await echo_remote(host, conn, MIB)

        ev = await asyncio.to_thread(
            js.wait_event, lambda e: e.get("event") == "connection" and e.get("peer") == str(host.peer_id)
        )
        assert ev["encryption"] == TLS, ev
        ev = await asyncio.to_thread(
            js.wait_event, lambda e: e.get("event") == "identify" and e.get("peer") == str(host.peer_id)
        )
        assert {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"} <= set(ev["protocols"]), ev


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
async def test_js_dials_pywasm_over_tls(peers: PeerSet, muxer: str) -> None:
    async with pywasm_host(**await tls_host_kwargs()) as host:
        res = await asyncio.to_thread(
            peers.dial, "js", host_addr(host, "tcp"), "--security", "tls", "--muxer", muxer
        )
        assert res["ok"], res
        check_dial_report(res, host, muxer)
        assert res["encryption"] == TLS
        (conn,) = [c for c in host.connections if str(c.remote_peer) == res["local_peer"]] or [None]
        if conn is not None:  # js may have hung up already
            assert conn.security_protocol == TLS
            assert conn.secure.early_muxer == MUXER_IDS[muxer]


async def test_js_tls_only_reaches_a_host_offering_noise_and_tls(peers: PeerSet) -> None:
    """The shape of a default native host (noise first, tls second): js with tls only
    must still get in, and js with noise only keeps working."""
    async with pywasm_host(**await tls_host_kwargs(with_noise=True)) as host:
        res = await asyncio.to_thread(peers.dial, "js", host_addr(host, "tcp"), "--security", "tls")
        assert res["ok"] and res["encryption"] == TLS, res
        res = await asyncio.to_thread(peers.dial, "js", host_addr(host, "tcp"), "--security", "noise")
        assert res["ok"] and res["encryption"] == "/noise", res


@pytest.mark.parametrize("key_type", ["rsa", "secp256k1"])
async def test_js_key_types_over_tls(peers: PeerSet, key_type: str) -> None:
    """js certificates signed for RSA and secp256k1 host keys verify on our side, and ours
    (Ed25519) on theirs, in both roles."""
    js = await asyncio.to_thread(peers.listen, "js", "--security", "tls", "--key-type", key_type)
    async with pywasm_host(**await tls_host_kwargs()) as host:
        conn = await bounded(host.dial(js.addr()), 30)
        assert str(conn.remote_peer) == js.peer_id and conn.security_protocol == TLS
        await ping_remote(host, conn)
        res = await asyncio.to_thread(
            peers.dial, "js", host_addr(host, "tcp"), "--security", "tls", "--key-type", key_type, "--echo-bytes", "0"
        )
        assert res["ok"] and res["encryption"] == TLS, res
