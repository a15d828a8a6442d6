"""Browsers dial pywasm-relay over webrtc-direct (libp2p/specs webrtc/webrtc-direct.md).

* a pywasm page (Pyodide, browser/src/webrtc.mjs + pywasm/transports/browser_webrtc_direct.py):
  ping, identify and a byte-exact 1 MiB echo, Noise with the spec's prologue, streams over
  data channels with the spec's framing;
* a js-libp2p page (@libp2p/webrtc's webRTCDirect): ping and a byte-exact 1 MiB echo;
* many handshakes at once from several pages while the relay keeps serving others.

The relay's listener is aiortc (relay-server/pywasm_relay/webrtc_direct.py).
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

import pytest

from e2e.harness import Relay, boot_node, must, must_py, run_js

MIB = 1024 * 1024
FEATURE_NEEDS = ("WebAssembly", "RTCPeerConnection")


@pytest.fixture(scope="module")
def rtc_relay() -> Iterator[Relay]:
    """A relay of this module's own with a webrtc-direct listener on an ephemeral port."""
    from e2e.conftest import _start_relay, _stop_relay

    r = _start_relay(extra_args=["--listen", "/ip4/127.0.0.1/udp/0/webrtc-direct"])
    try:
        yield r
    finally:
        _stop_relay(r)


def _rtc_addr(relay: Relay) -> str:
    for a in relay.addrs:
        if "/webrtc-direct/certhash/" in a and "/p2p/" in a:
            return a
    raise AssertionError(f"relay printed no webrtc-direct address: {relay.addrs}")


@pytest.fixture(scope="module")
def rtc_page(module_pages: Any, rtc_relay: Relay) -> Iterator[Any]:
    page = module_pages("webrtc-direct")
    boot_node(page, rtc_relay.url)
    yield page
    run_js(page, "await window.e2eNode.stop()", timeout=15)


@pytest.mark.browser_feature("webrtc-direct: pywasm page -> relay, ping + identify + 1 MiB echo", needs=FEATURE_NEEDS)
def test_pywasm_page_dials_relay_over_webrtc_direct(rtc_page: Any, rtc_relay: Relay) -> None:
    addr = _rtc_addr(rtc_relay)
    t0 = time.perf_counter()
    out = must_py(
        rtc_page,
        """
import time
from pywasm.browser_node import BrowserNode
node = BrowserNode(host, dial_timeout=15.0, ping_timeout=10.0)
t0 = time.perf_counter()
peer = await node.dial(arg)
dial_ms = (time.perf_counter() - t0) * 1000
rtt = await node.ping(arg)
info = await node.identify(arg)
echo = await node.echo(arg, 1024 * 1024)
result = {"peer": peer, "dial_ms": dial_ms, "rtt": rtt, "info": info, "echo": echo,
          "connections": node.connections()}
""",
        addr,
        timeout=120,
    )
    print("E2E-WEBRTC-DIRECT-PYWASM " + json.dumps({
        "dial_ms": round(out["dial_ms"], 1), "rtt_ms": round(out["rtt"], 2),
        "echo_1mib_ms": round(out["echo"]["ms"], 1), "total_s": round(time.perf_counter() - t0, 2)}))
    assert out["peer"] == rtc_relay.peer_id
    assert out["rtt"] > 0
    assert out["info"]["peer"] == rtc_relay.peer_id
    assert out["info"]["agent_version"].startswith("pywasm/")
    assert "/ipfs/ping/1.0.0" in out["info"]["protocols"]
    assert "/webrtc-direct/" in out["info"]["observed_addr"], out["info"]["observed_addr"]
    e = out["echo"]
    assert e["sent"] == e["received"] == MIB and e["equal"], e
    assert (e["security"], e["muxer"]) == ("/noise", "/webrtc")
    conns = [c for c in out["connections"] if c["peer"] == rtc_relay.peer_id]
    assert conns and conns[0]["addr"].startswith(addr.split("/p2p/")[0]), conns


@pytest.mark.browser_feature("webrtc-direct: a wrong certhash or peer id fails cleanly", needs=FEATURE_NEEDS)
def test_pywasm_page_refuses_wrong_certhash_and_peer(rtc_page: Any, rtc_relay: Relay) -> None:
    addr = _rtc_addr(rtc_relay)
    # another valid sha-256 certhash (the spec's test vector fingerprint)
    forged = addr.split("/certhash/")[0] + "/certhash/uEiAw_J9GnCB0Gd_dCqtfJ6hslzyU5AVI25N1zKLpFZc7mQ/p2p/" + rtc_relay.peer_id
    wrong_peer = addr.rsplit("/p2p/", 1)[0] + "/p2p/12D3KooWGzSbmr1EUBTpeZQJHm3JC7HdQSGSKjSTY4N9TLBrTafr"
    # through the transport itself: the host would reuse its live connection to that peer
    out = must_py(
        rtc_page,
        """
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.transports.browser_webrtc_direct import BrowserWebRTCDirectTransport
import pywasm_webrtc_js
t = BrowserWebRTCDirectTransport(dial_timeout=15.0, js_module=pywasm_webrtc_js)
t.bind(host)
result = {}
for k in ("forged", "wrong_peer", "good"):
    try:
        c = await t.dial(Multiaddr(arg[k]))
        result[k] = "dialed " + str(c.remote_peer)
        await c.muxed.close()
    except Exception as e:
        result[k] = f"{type(e).__name__}: {e}"
""",
        {"forged": forged, "wrong_peer": wrong_peer, "good": addr},
        timeout=90,
    )
    print("E2E-WEBRTC-DIRECT-REFUSED " + json.dumps(out))
    # a certhash that is not the relay's: DTLS or, at the latest, the Noise prologue (it
    # binds both fingerprints) refuses it
    assert out["forged"].startswith("DialError") and "certhash match" in out["forged"], out
    assert out["wrong_peer"].startswith("PeerIdMismatchError") and "authenticated as " + rtc_relay.peer_id in out["wrong_peer"], out
    assert out["good"] == "dialed " + rtc_relay.peer_id, out
    out["after"] = must(rtc_page, "return await window.e2eNode.ping(arg)", addr, timeout=30)
    assert out["after"] > 0  # the node and the relay keep working


@pytest.mark.browser_feature("webrtc-direct: js-libp2p page -> relay, ping + 1 MiB echo", needs=FEATURE_NEEDS)
def test_js_libp2p_page_dials_relay_over_webrtc_direct(new_page: Any, js_page_server: Any, rtc_relay: Relay) -> None:
    page = new_page("js-libp2p-webrtc-direct")
    page.goto(js_page_server.url + "index.html")
    page.wait_for_function("window.jsp2p !== undefined", timeout=30_000)
    addr = _rtc_addr(rtc_relay)
    out = must(page, "return await window.jsp2p.dial(arg, 30000)", addr, timeout=60)
    assert out["remotePeer"] == rtc_relay.peer_id
    assert out["pingMs"] >= 0
    # (out["protocols"] is what js's peer store knew when the ping returned: identify may
    # still be running then, so the echo below is the proof that /echo/1.0.0 works)
    echo = must(page, JS_ECHO, {"peer": rtc_relay.peer_id, "n": MIB}, timeout=120)
    print("E2E-WEBRTC-DIRECT-JS " + json.dumps({"ping_ms": out["pingMs"], **echo}))
    assert echo["received"] == MIB and echo["equal"], echo
    assert echo["addr"].startswith(addr.split("/p2p/")[0]), echo
    run_js(page, "await window.jsp2p.stop()", timeout=15)


# a byte-exact echo over js-libp2p's own webrtc-direct connection (stream API of libp2p 3.x)
JS_ECHO = """
const node = await window.jsp2p.start()
const conn = node.getConnections().find((c) => c.remotePeer.toString() === arg.peer)
if (!conn) throw new Error('no connection to the relay')
const data = new Uint8Array(arg.n)
for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 8)) & 255
const t0 = performance.now()
const stream = await conn.newStream('/echo/1.0.0')
const parts = []
let got = 0
const reader = (async () => {
  for await (const c of stream) {
    const u8 = c.subarray ? c.subarray() : c
    parts.push(u8.slice())
    got += u8.byteLength
  }
})()
for (let off = 0; off < data.length; off += 65536) {
  if (!stream.send(data.subarray(off, off + 65536))) await stream.onDrain()
}
await stream.close()
await reader
const ms = performance.now() - t0
const back = new Uint8Array(got)
let o = 0
for (const p of parts) { back.set(p, o); o += p.byteLength }
let equal = got === data.length
for (let i = 0; equal && i < got; i++) if (back[i] !== data[i]) equal = false
return { received: got, equal, ms: Math.round(ms), addr: conn.remoteAddr.toString() }
"""


CONCURRENT_CODE = """
import asyncio, time
from pywasm.host import Host
from pywasm.transports.browser_webrtc_direct import BrowserWebRTCDirectTransport
import pywasm_webrtc_js
hosts = [await Host.create(listen=[], transports=[BrowserWebRTCDirectTransport(dial_timeout=30.0, js_module=pywasm_webrtc_js)])
         for _ in range(arg["n"])]
t0 = time.perf_counter()
try:
    conns = await asyncio.gather(*(h.dial(arg["addr"]) for h in hosts))
    setup_ms = (time.perf_counter() - t0) * 1000
    rtts = await asyncio.gather(*(h.services["ping"].ping(c) for h, c in zip(hosts, conns)))
    result = {"peers": [str(c.remote_peer) for c in conns], "rtts": rtts, "setup_ms": setup_ms}
finally:
    await asyncio.gather(*(h.stop() for h in hosts))
"""


@pytest.mark.browser_feature("webrtc-direct: many concurrent handshakes, relay keeps serving", needs=FEATURE_NEEDS)
def test_many_concurrent_handshakes_from_several_pages(new_page: Any, rtc_relay: Relay) -> None:
    addr = _rtc_addr(rtc_relay)
    pages = [new_page(f"rtc-{i}") for i in range(3)]
    for p in pages:
        boot_node(p, rtc_relay.url)
    per_page = 5
    # start every page's burst at once, then keep the relay busy over /ws meanwhile
    for p in pages:
        p.evaluate(
            """([code, arg]) => { window.burst = (async () => {
                 const py = window.e2eNode.pyodide; const ns = py.globals.get('dict')();
                 ns.set('_arg', JSON.stringify(arg));
                 await py.runPythonAsync('import json\\narg = json.loads(_arg)\\n' + code + '\\n_out = json.dumps(result)', { globals: ns });
                 return JSON.parse(ns.get('_out')) })().then((v) => ({ ok: true, v }), (e) => ({ ok: false, e: String(e) })) }""",
            [CONCURRENT_CODE, {"addr": addr, "n": per_page}],
        )
    ws_rtt = must(pages[0], "return await window.e2eNode.ping(arg)", rtc_relay.ws_addr, timeout=60)
    assert ws_rtt > 0, "the relay answers over /ws during the handshakes"
    results = [must(p, "return await window.burst", timeout=120) for p in pages]
    for r in results:
        assert r["ok"], r
        v = r["v"]
        assert v["peers"] == [rtc_relay.peer_id] * per_page, v
        assert all(x > 0 for x in v["rtts"]), v
    print("E2E-WEBRTC-DIRECT-CONCURRENT " + json.dumps({
        "pages": len(pages), "per_page": per_page, "setup_ms": [round(r["v"]["setup_ms"]) for r in results]}))
    # and it still takes a new one afterwards
    assert must(pages[1], "return await window.e2eNode.ping(arg)", addr, timeout=60) > 0
