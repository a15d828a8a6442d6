"""The pywasm bundle (/pywasm.mjs, Pyodide) in Chromium dials over /ws: the relay and a
js-libp2p Node peer. Also measures navigation -> first ping."""

from __future__ import annotations

import json
import time

import pytest

from e2e.harness import must

# createNode + dial + ping in one go; times are performance.now(), i.e. ms since navigation
CONNECT = """
const stages = []
const tImport0 = performance.now()
const { createNode } = await import('/pywasm.mjs')
const tImported = performance.now()
const node = await createNode({ onProgress: (s) => stages.push([String(s), Math.round(performance.now())]) })
const tNode = performance.now()
window.e2eNode = node
const remote = await node.dial(arg)
const tDialed = performance.now()
const rtt = await node.ping(arg)
const tPinged = performance.now()
const rtt2 = await node.ping(arg)
return { peerId: String(node.peerId), remote: String(remote), rtt, rtt2, stages,
         tImport0, tImported, tNode, tDialed, tPinged }
"""


def _report(name: str, res: dict, wall_s: float) -> None:
    line = {
        "test": name,
        "nav_to_first_ping_ms": round(res["tPinged"]),
        "wall_goto_to_first_ping_ms": round(wall_s * 1000),
        "import_ms": round(res["tImported"] - res["tImport0"]),
        "createNode_ms": round(res["tNode"] - res["tImported"]),
        "dial_ms": round(res["tDialed"] - res["tNode"]),
        "first_ping_rtt_ms": round(res["rtt"], 2),
        "second_ping_rtt_ms": round(res["rtt2"], 2),
        "stages": res["stages"],
    }
    print("E2E-TIMING " + json.dumps(line))


@pytest.mark.browser_feature("pywasm page -> pywasm-relay over /ws: Pyodide boot, dial, ping", needs=("WebAssembly", "WebSocket"))
def test_pywasm_page_dials_relay(page, live_relay):
    t0 = time.monotonic()
    page.goto(live_relay.url)
    res = must(page, CONNECT, live_relay.ws_addr, timeout=90)
    wall = time.monotonic() - t0
    _report("pywasm-page->relay", res, wall)
    assert res["remote"] == live_relay.peer_id
    assert res["peerId"].startswith(("12D3Koo", "Qm")) and res["peerId"] != live_relay.peer_id
    assert res["rtt"] > 0 and res["rtt2"] > 0
    # the node stops cleanly
    must(page, "await window.e2eNode.stop(); return true", timeout=15)


@pytest.mark.browser_feature("pywasm page -> js-libp2p Node peer over /ws", needs=("WebAssembly", "WebSocket"))
def test_pywasm_page_dials_js_node_peer(page, live_relay, peers):
    js = peers.listen("js", "--listen", "/ip4/127.0.0.1/tcp/0/ws")
    t0 = time.monotonic()
    page.goto(live_relay.url)
    res = must(page, CONNECT, js.addr(transport="ws"), timeout=90)
    _report("pywasm-page->js-node", res, time.monotonic() - t0)
    assert res["remote"] == js.peer_id
    assert res["rtt"] > 0
    # the js peer saw us: its inbound connection event carries our peer id
    ev = js.wait_event(lambda e: res["peerId"] in json.dumps(e), timeout=15)
    assert ev
    must(page, "await window.e2eNode.stop(); return true", timeout=15)
