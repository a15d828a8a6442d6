"""Private-to-private WebRTC (libp2p/specs webrtc/webrtc.md): two browser pages connect
directly, with pywasm-relay only carrying the signaling.

Page A reserves on the relay and listens on ``<relay>/p2p-circuit/webrtc``; page B dials
A's ``/webrtc`` address: a relayed connection, ``/webrtc-signaling/0.0.1`` on it (SDP
offer/answer, trickled ICE), then streams over data channels of the direct
RTCPeerConnection. The test checks the connection in use is that direct one (not the
limited relayed one, and the browser's selected ICE pair is host-to-host, no relay
candidate), then pings and echoes 1 MiB byte-exact over it.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from e2e.harness import Relay, boot_node, must, must_py, run_js

MIB = 1024 * 1024
FEATURE_NEEDS = ("WebAssembly", "RTCPeerConnection")

# In page A: listen through the relay with /webrtc; the /webrtc address it announces.
LISTEN_JS = """
const addrs = await window.e2eNode.listen(arg)
return addrs
"""

DIAL_PY = """
import time
from pywasm.browser_node import BrowserNode
node = BrowserNode(host, dial_timeout=30.0, ping_timeout=10.0)
t0 = time.perf_counter()
conn = await node.connect(arg)
dial_ms = (time.perf_counter() - t0) * 1000
relayed = [c for c in host.connections if c.remote_peer == conn.remote_peer and c.limited]
rtt = await node.ping(arg)
echo = await node.echo(arg, 1024 * 1024)
pair = await conn.secure.js.selectedPair()
pair = pair.to_py() if pair is not None else None
trace = str(await conn.secure.js.describe())
result = {
    "peer": str(conn.remote_peer), "dial_ms": dial_ms, "rtt": rtt, "echo": echo, "pair": pair,
    "trace": trace, "limited": conn.limited, "addr": str(conn.remote_addr), "direction": str(conn.direction.value),
    "security": conn.security_protocol, "muxer": conn.muxer_protocol,
    "relayed": [{"closed": c.is_closed, "reason": c.close_reason} for c in relayed],
    "conns": [{"peer": str(c.remote_peer), "limited": c.limited, "muxer": c.muxer_protocol,
               "addr": str(c.remote_addr)} for c in host.connections],
}
"""

CONNS_PY = """
result = [{"peer": str(c.remote_peer), "limited": c.limited, "muxer": c.muxer_protocol,
           "direction": str(c.direction.value), "addr": str(c.remote_addr)} for c in host.connections]
"""


def _webrtc_addr(addrs: list[str], relay_addr: str) -> str:
    """The announced /webrtc address through ``relay_addr`` (the relay's /ws one: a page
    cannot dial its plain TCP address)."""
    for a in addrs:
        if a.startswith(relay_addr + "/p2p-circuit/webrtc/p2p/"):
            return a
    raise AssertionError(f"no {relay_addr}/p2p-circuit/webrtc/p2p/ address among {addrs}")


def listen_and_dial(a: Any, b: Any, relay: Relay, tag: str) -> dict[str, Any]:
    """Booted page ``a`` listens on ``<relay ws>/p2p-circuit/webrtc``, booted page ``b`` dials
    its ``/webrtc`` address; checks the direct connection both ways (module doc) and
    returns what was measured. Prints one ``E2E-WEBRTC-PRIVATE-<tag>`` line."""
    a_id = must(a, "return window.e2eNode.peerId")
    b_id = must(b, "return window.e2eNode.peerId")

    t0 = time.perf_counter()
    addrs = must(a, LISTEN_JS, relay.ws_addr + "/p2p-circuit/webrtc", timeout=60)
    listen_ms = (time.perf_counter() - t0) * 1000
    addr = _webrtc_addr(addrs, relay.ws_addr)
    assert addr.endswith("/p2p/" + a_id), addrs
    # the plain relayed address is announced too (a peer without WebRTC can use it)
    assert relay.ws_addr + "/p2p-circuit/p2p/" + a_id in addrs, addrs

    out = must_py(b, DIAL_PY, addr, timeout=120)
    measured = {
        "listen_ms": round(listen_ms, 1), "dial_ms": round(out["dial_ms"], 1), "rtt_ms": round(out["rtt"], 2),
        "echo_1mib_ms": round(out["echo"]["ms"], 1), "pair": out["pair"]}
    print(f"E2E-WEBRTC-PRIVATE-{tag} " + json.dumps(measured))
    print(f"E2E-WEBRTC-PRIVATE-{tag}-TRACE {out['trace']}")
    # webrtc.md step 8: the dialer's 'init' channel opened and was closed
    assert "init close sent" in out["trace"], out["trace"]
    assert out["peer"] == a_id
    # the connection the streams ran on: direct WebRTC, not the relayed one
    assert out["limited"] is False, out
    assert (out["security"], out["muxer"]) == ("/webrtc", "/webrtc"), out
    assert out["addr"] == addr, out
    e = out["echo"]
    assert e["sent"] == e["received"] == MIB and e["equal"], e
    assert e["muxer"] == "/webrtc", e
    pair = out["pair"]
    assert pair and pair["local"] and pair["remote"], out
    assert "relay" not in (pair["local"]["type"], pair["remote"]["type"]), pair
    # B still holds the limited relayed connection the signaling ran on: closing the
    # signaling stream must not break it (nor B's connection to the relay under it)
    assert out["relayed"] and not any(r["closed"] for r in out["relayed"]), out["relayed"]
    assert any(c["peer"] == a_id and c["limited"] for c in out["conns"]), out["conns"]
    assert any(c["peer"] == relay.peer_id for c in out["conns"]), out["conns"]

    # A sees the same: an inbound, direct WebRTC connection from B
    conns = must_py(a, CONNS_PY)
    rtc = [c for c in conns if c["peer"] == b_id and not c["limited"]]
    assert rtc and rtc[0]["muxer"] == "/webrtc" and rtc[0]["direction"] == "inbound", conns
    assert rtc[0]["addr"].endswith(f"/p2p-circuit/webrtc/p2p/{b_id}"), conns

    # and A can open streams the other way over it
    rtt_back = must_py(a, """
conn = next(c for c in host.connections if str(c.remote_peer) == arg and not c.limited)
result = (await host.services["ping"].ping(conn)) * 1000
""", b_id, timeout=30)
    assert rtt_back > 0
    measured["rtt_back_ms"] = round(rtt_back, 2)
    return measured


@pytest.mark.browser_feature(
    "webrtc: pywasm page -> pywasm page, signaling via the relay, direct ping + 1 MiB echo", needs=FEATURE_NEEDS
)
def test_webrtc_private_pywasm_pages(new_page: Any, live_relay: Relay) -> None:
    a = new_page("webrtc-listener")
    b = new_page("webrtc-dialer")
    boot_node(a, live_relay.url)
    boot_node(b, live_relay.url)
    listen_and_dial(a, b, live_relay, "PYWASM")
    for p in (a, b):
        run_js(p, "await window.e2eNode.stop()", timeout=15)
