"""js-libp2p in the browser (an esbuild bundle of e2e/js-page/) dials over /ws."""

from __future__ import annotations

import pytest

from e2e.harness import must

pytestmark = pytest.mark.browser_feature("js-libp2p page (control) -> js Node peer / pywasm-relay over /ws", needs=("WebSocket",))

DIAL = "return await window.jsp2p.dial(arg, 20000)"


def _open(page, server) -> None:
    page.goto(server.url)
    must(page, "while (!window.jsp2p) await new Promise(r => setTimeout(r, 20)); return true", timeout=20)


def test_js_page_dials_js_node_peer(page, js_page_server, peers):
    """Control: the browser bundle and the harness work with js-libp2p on both ends."""
    js = peers.listen("js", "--listen", "/ip4/127.0.0.1/tcp/0/ws")
    _open(page, js_page_server)
    res = must(page, DIAL, js.addr(transport="ws"), timeout=30)
    assert res["remotePeer"] == js.peer_id
    assert res["pingMs"] >= 0


def test_js_page_dials_pywasm_relay(page, js_page_server, live_relay):
    _open(page, js_page_server)
    res = must(page, DIAL, live_relay.ws_addr, timeout=30)
    assert res["remotePeer"] == live_relay.peer_id
    assert res["pingMs"] >= 0
    # identify ran: the relay announced ping
    assert "/ipfs/ping/1.0.0" in res["protocols"], res
