"""Private-to-private WebRTC (libp2p/specs webrtc/webrtc.md) between a js-libp2p page
(@libp2p/webrtc's ``webRTC()`` + ``circuitRelayTransport()``) and a pywasm page, each side
dialing, with pywasm-relay carrying the relayed connection the signaling runs on.

* js listens (a reservation on the relay, listen address ``/webrtc``); the pywasm page
  dials js's ``/webrtc`` address: pywasm opens ``/webrtc-signaling/0.0.1`` and offers.
* pywasm listens (``node.listen('<relay>/p2p-circuit/webrtc')``); the js page dials its
  ``/webrtc`` address: js offers, pywasm answers.

Either way the test checks the connection in use is the direct one (not the limited
relayed one: on the pywasm side its security/muxer are ``/webrtc`` and the browser's
selected ICE pair has no relay candidate; on the js side its address holds ``/webrtc``),
then pings and echoes 1 MiB byte-exact over it, from the dialing side and back.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from e2e.harness import Relay, boot_node, must, must_py, run_js

MIB = 1024 * 1024
FEATURE_NEEDS = ("WebAssembly", "RTCPeerConnection")

DIAL_PY = """
import time
from pywasm.browser_node import BrowserNode
node = BrowserNode(host, dial_timeout=30.0, ping_timeout=10.0)
t0 = time.perf_counter()
conn = await node.connect(arg)
dial_ms = (time.perf_counter() - t0) * 1000
rtt = await node.ping(arg)
echo = await node.echo(arg, 1024 * 1024)
pair = await conn.secure.js.selectedPair()
pair = pair.to_py() if pair is not None else None
result = {
    "peer": str(conn.remote_peer), "dial_ms": dial_ms, "rtt": rtt, "echo": echo, "pair": pair,
    "limited": conn.limited, "addr": str(conn.remote_addr), "direction": str(conn.direction.value),
    "security": conn.security_protocol, "muxer": conn.muxer_protocol,
}
"""

CONNS_PY = """
out = []
for c in host.connections:
    pair = None
    if not c.limited and getattr(c.secure, "js", None) is not None:
        p = await c.secure.js.selectedPair()
        pair = p.to_py() if p is not None else None
    out.append({"peer": str(c.remote_peer), "limited": c.limited, "muxer": c.muxer_protocol,
                "security": c.security_protocol, "direction": str(c.direction.value),
                "addr": str(c.remote_addr), "pair": pair})
result = out
"""

# pywasm -> js over the direct connection (a stream the pywasm side opens)
PING_ECHO_BACK_PY = """
conn = next(c for c in host.connections if str(c.remote_peer) == arg and not c.limited)
rtt = (await host.services["ping"].ping(conn)) * 1000
data = bytes((i * 7 + 3) & 255 for i in range(65536))
got = await host.services["echo"].echo(conn, data)
result = {"rtt": rtt, "equal": bytes(got) == data, "n": len(got)}
"""


def _open_js(page: Any, server: Any) -> None:
    page.goto(server.url + "index.html")
    page.wait_for_function("window.jsp2p !== undefined", timeout=30_000)


def _relayed_webrtc(addrs: list[str], relay: Relay, peer: str) -> str:
    """The announced ``/webrtc`` address through the relay's /ws address (a page cannot
    dial its plain TCP one)."""
    want = f"{relay.ws_addr}/p2p-circuit/webrtc/p2p/{peer}"
    assert want in addrs, f"{want} not among {addrs}"
    return want


def _assert_relayed_kept(conns: list[dict[str, Any]], peer: str, relay: Relay) -> None:
    """``conns`` (either side's description) still holds the limited relayed connection to
    ``peer`` and the connection to the relay."""
    assert any(c["peer"] == peer and c["limited"] and "/p2p-circuit/p2p/" in c["addr"] for c in conns), conns
    assert any(c["peer"] == relay.peer_id and not c["limited"] for c in conns), conns


def _assert_direct_pair(pair: Any) -> None:
    assert pair and pair["local"] and pair["remote"], pair
    assert "relay" not in (pair["local"]["type"], pair["remote"]["type"]), pair


@pytest.mark.browser_feature("webrtc: pywasm page -> js-libp2p page via the relay's signaling, direct, ping + 1 MiB echo", needs=FEATURE_NEEDS)
def test_pywasm_page_dials_js_page_over_webrtc(new_page: Any, js_page_server: Any, live_relay: Relay) -> None:
    js = new_page("js-webrtc-listener")
    py = new_page("pywasm-webrtc-dialer")
    _open_js(js, js_page_server)
    boot_node(py, live_relay.url)
    py_id = must(py, "return window.e2eNode.peerId")

    t0 = time.perf_counter()
    listening = must(js, "return await window.jsp2p.listenRelayed(arg, 30000)", live_relay.ws_addr, timeout=60)
    listen_ms = (time.perf_counter() - t0) * 1000
    js_id = listening["peerId"]
    addr = _relayed_webrtc(listening["addrs"], live_relay, js_id)

    out = must_py(py, DIAL_PY, addr, timeout=120)
    print("E2E-WEBRTC-JS-PY-DIALS " + json.dumps({
        "listen_ms": round(listen_ms, 1), "dial_ms": round(out["dial_ms"], 1), "rtt_ms": round(out["rtt"], 2),
        "echo_1mib_ms": round(out["echo"]["ms"], 1), "pair": out["pair"]}))
    assert out["peer"] == js_id
    # the connection the streams ran on: direct WebRTC, not the relayed one
    assert out["limited"] is False, out
    assert (out["security"], out["muxer"]) == ("/webrtc", "/webrtc"), out
    assert out["addr"] == addr and out["direction"] == "outbound", out
    e = out["echo"]
    assert e["sent"] == e["received"] == MIB and e["equal"], e
    assert e["muxer"] == "/webrtc", e
    _assert_direct_pair(out["pair"])

    # js sees an inbound WebRTC connection from the pywasm page that is not limited
    conns = must(js, "return await window.jsp2p.connections()")
    rtc = [c for c in conns if c["peer"] == py_id and "/webrtc" in c["addr"]]
    assert rtc and not rtc[0]["limited"] and rtc[0]["direction"] == "inbound", conns
    # and js opens streams the other way over it: ping, then a 1 MiB echo served by pywasm
    back = must(js, "return await window.jsp2p.echoOver(arg, 1024 * 1024)", rtc[0]["id"], timeout=120)
    assert back["received"] == MIB and back["equal"], back
    rtt_back = must(js, "return await window.jsp2p.pingPeer(arg)", py_id, timeout=30)
    assert rtt_back >= 0
    # closing the signaling stream left the relayed connection it ran on (and each side's
    # connection to the relay) open on both sides
    _assert_relayed_kept(must(js, "return await window.jsp2p.connections()"), py_id, live_relay)
    _assert_relayed_kept(must_py(py, CONNS_PY, timeout=30), js_id, live_relay)

    for p, stop in ((py, "window.e2eNode.stop()"), (js, "window.jsp2p.stop()")):
        run_js(p, f"await {stop}", timeout=15)


@pytest.mark.browser_feature("webrtc: js-libp2p page -> pywasm page via the relay's signaling, direct, ping + 1 MiB echo", needs=FEATURE_NEEDS)
def test_js_page_dials_pywasm_page_over_webrtc(new_page: Any, js_page_server: Any, live_relay: Relay) -> None:
    py = new_page("pywasm-webrtc-listener")
    js = new_page("js-webrtc-dialer")
    boot_node(py, live_relay.url)
    _open_js(js, js_page_server)
    py_id = must(py, "return window.e2eNode.peerId")

    t0 = time.perf_counter()
    addrs = must(py, "return await window.e2eNode.listen(arg)", live_relay.ws_addr + "/p2p-circuit/webrtc", timeout=60)
    listen_ms = (time.perf_counter() - t0) * 1000
    addr = _relayed_webrtc(addrs, live_relay, py_id)

    # the js node dials /webrtc through the relay: it needs the circuit transport (and a
    # connection to the relay, which its own reservation gives it)
    js_id = must(js, "return (await window.jsp2p.listenRelayed(arg, 30000)).peerId", live_relay.ws_addr, timeout=60)
    out = must(js, "return await window.jsp2p.dialWebRTC(arg, 1024 * 1024, 60000)", addr, timeout=120)
    print("E2E-WEBRTC-JS-JS-DIALS " + json.dumps({
        "listen_ms": round(listen_ms, 1), "dial_ms": out["dialMs"], "rtt_ms": out["pingMs"], "echo_1mib_ms": out["echo"]["ms"]}))
    c = out["conn"]
    assert c["peer"] == py_id, out
    # a direct WebRTC connection: its address holds /webrtc, it is not limited (a relayed
    # one would be /p2p-circuit/p2p/<peer> with limits)
    assert "/webrtc" in c["addr"] and not c["limited"] and c["direction"] == "outbound", c
    assert out["pingMs"] >= 0
    e = out["echo"]
    assert e["sent"] == e["received"] == MIB and e["equal"], e

    # pywasm sees the same: an inbound, direct WebRTC connection from js, host-to-host ICE
    conns = must_py(py, CONNS_PY, timeout=30)
    rtc = [x for x in conns if x["peer"] == js_id and not x["limited"]]
    assert rtc and (rtc[0]["security"], rtc[0]["muxer"]) == ("/webrtc", "/webrtc"), conns
    assert rtc[0]["direction"] == "inbound", conns
    assert rtc[0]["addr"].endswith(f"/p2p-circuit/webrtc/p2p/{js_id}"), conns
    _assert_direct_pair(rtc[0]["pair"])
    # and pywasm opens streams the other way over it (js serves echo)
    back = must_py(py, PING_ECHO_BACK_PY, js_id, timeout=60)
    assert back["rtt"] > 0 and back["equal"] and back["n"] == 65536, back
    _assert_relayed_kept(must_py(py, CONNS_PY, timeout=30), js_id, live_relay)
    _assert_relayed_kept(must(js, "return await window.jsp2p.connections()"), py_id, live_relay)

    for p, stop in ((py, "window.e2eNode.stop()"), (js, "window.jsp2p.stop()")):
        run_js(p, f"await {stop}", timeout=15)
