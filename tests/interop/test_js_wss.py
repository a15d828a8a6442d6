"""js-libp2p 3.3 (Node, @libp2p/websockets over the `ws` package) dials a pywasm host
listening on ``/tls/ws``: TLS with a certificate Node trusts through NODE_EXTRA_CA_CERTS,
then Noise, yamux, identify, ping and a 1 MiB echo, as over plain ``/ws``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pywasm.transports.tcp import TCPTransport
from pywasm.transports.websocket import WebSocketTransport, server_tls_context
from tests._certs import self_signed
from tests.interop.harness import PeerSet
from tests.interop.pw import NOISE, check_dial_report, pywasm_host

pytestmark = pytest.mark.interop


async def test_js_dials_pywasm_over_tls_ws(peers: PeerSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed(tmp_path)
    ws = WebSocketTransport(server_ssl_context=server_tls_context(cert, key))
    async with pywasm_host(listen=["/ip4/127.0.0.1/tcp/0/tls/ws"], transports=[TCPTransport(), ws]) as host:
        (target,) = [str(a) for a in host.addrs() if "/tls/ws/p2p/" in str(a)]
        # without trusting the certificate, js's WebSocket refuses the connection
        with pytest.raises(AssertionError, match="js-dialer failed: .*network error"):
            await asyncio.to_thread(peers.dial, "js", target, "--timeout-ms", "10000")
        monkeypatch.setenv("NODE_EXTRA_CA_CERTS", cert)  # read by the dialer process at start
        res = await asyncio.to_thread(peers.dial, "js", target, "--muxer", "yamux")
        ident = check_dial_report(res, host, "yamux")
        assert res["encryption"] == NOISE
        assert ident["agent"], ident
        assert res["echo"]["ok"] and res["echo"]["bytes"] == 1024 * 1024, res["echo"]
