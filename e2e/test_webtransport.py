"""WebTransport with certhash (libp2p webtransport spec) between Chromium and pywasm-relay.

* js-libp2p in Chromium (e2e/js-page, @libp2p/webtransport) dials the relay's
  ``/udp/<port>/quic-v1/webtransport/certhash/.../certhash/...`` address: ping, echo.
* the pywasm page (Pyodide + browser/src/webtransport.mjs) dials the same address.
* bad input from the page: an unknown certhash, a wrong peer id: clear errors, and the
  relay keeps serving.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.conftest import _start_relay, _stop_relay
from e2e.harness import Relay, must, run_js

WT_LISTEN = "/ip4/127.0.0.1/udp/0/quic-v1/webtransport"

JS_ECHO = """
const [addr, size] = arg
const n = await window.jsp2p.start()
await window.jsp2p.dial(addr, 20000)
const signal = AbortSignal.timeout(60000)
const conn = n.getConnections().find(c => c.remoteAddr.toString().includes('/webtransport'))
if (!conn) throw new Error('no WebTransport connection after dialing ' + addr)
const payload = new Uint8Array(size)
for (let i = 0; i < size; i += 65536) crypto.getRandomValues(payload.subarray(i, Math.min(size, i + 65536)))
const got = new Uint8Array(size)
const t0 = performance.now()
const stream = await conn.newStream('/echo/1.0.0', { signal })
let received = 0
const reader = (async () => {
  for await (const c of stream) {
    const buf = c instanceof Uint8Array ? c : c.subarray()
    got.set(buf.subarray(0, Math.max(0, size - received)), received)
    received += buf.byteLength
  }
})()
for (let off = 0; off < size; off += 65536) {
  if (!stream.send(payload.subarray(off, Math.min(size, off + 65536)))) await stream.onDrain({ signal })
}
await stream.close({ signal })
await reader
const ms = performance.now() - t0
let equal = received === size
for (let i = 0; equal && i < size; i++) if (got[i] !== payload[i]) equal = false
return { received, equal, ms, remote: conn.remotePeer.toString(), addr: conn.remoteAddr.toString() }
"""


def wt_addr(relay: Relay) -> str:
    for a in relay.addrs:
        if "/webtransport/" in a and "/p2p/" in a:
            return a
    raise AssertionError(f"relay printed no WebTransport address among {relay.addrs}")


@pytest.fixture(scope="module")
def wt_relay() -> Iterator[Relay]:
    r = _start_relay(extra_args=["--listen", WT_LISTEN])
    try:
        yield r
    finally:
        _stop_relay(r)


def _open_js(page, server) -> None:
    page.goto(server.url)
    must(page, "while (!window.jsp2p) await new Promise(r => setTimeout(r, 20)); return true", timeout=20)


def test_relay_advertises_two_certhashes(wt_relay):
    addr = wt_addr(wt_relay)
    assert addr.count("/certhash/u") == 2, addr
    assert "/udp/" in addr and "/quic-v1/webtransport/" in addr


def test_js_page_dials_relay_over_webtransport(page, js_page_server, wt_relay):
    addr = wt_addr(wt_relay)
    _open_js(page, js_page_server)
    res = must(page, "return await window.jsp2p.dial(arg, 20000)", addr, timeout=30)
    assert res["remotePeer"] == wt_relay.peer_id
    assert res["pingMs"] >= 0
    assert "/ipfs/ping/1.0.0" in res["protocols"], res
    echo = must(page, JS_ECHO, [addr, 1 << 20], timeout=90)
    assert echo["equal"] and echo["received"] == 1 << 20, echo
    assert "/webtransport" in echo["addr"], echo
    print(f"E2E-WT js-page echo 1 MiB: {echo['ms']:.0f} ms ({(1 << 20) / 1024 / 1024 / (echo['ms'] / 1000):.1f} MiB/s)")


# the pywasm page: dial, ping, echo (byte-exact) from Python in Pyodide over WebTransport
PY_ECHO = """
import hashlib, time
from pywasm.multiformats.multiaddr import Multiaddr
addr, size = arg
conn = await host.dial(Multiaddr(addr))
data = hashlib.shake_256(b"wt-e2e").digest(size)
t0 = time.perf_counter()
got = await host.services["echo"].echo(conn, data)
ms = (time.perf_counter() - t0) * 1000
result = {"equal": got == data, "received": len(got), "ms": ms, "muxer": conn.muxer_protocol,
          "security": conn.security_protocol, "remote": str(conn.remote_peer)}
"""


def test_pywasm_page_dials_relay_over_webtransport(page, wt_relay):
    from e2e.harness import boot_node, must_py

    addr = wt_addr(wt_relay)
    boot_node(page, wt_relay.url)
    remote = must(page, "return await window.e2eNode.dial(arg)", addr, timeout=30)
    assert remote == wt_relay.peer_id
    rtt = must(page, "return await window.e2eNode.ping(arg)", addr, timeout=30)
    assert rtt >= 0
    conns = must(page, "return window.e2eNode.connections()", timeout=10)
    assert any(c["muxer"] == "webtransport" and c["security"] == "/noise" for c in conns), conns
    res = must_py(page, PY_ECHO, [addr, 1 << 20], timeout=90)
    assert res["equal"] and res["received"] == 1 << 20, res
    assert res["muxer"] == "webtransport" and res["remote"] == wt_relay.peer_id
    print(f"E2E-WT pywasm-page echo 1 MiB: {res['ms']:.0f} ms ({1000 / res['ms']:.1f} MiB/s)")


def _swap_certhashes(addr: str, hashes: list[str]) -> str:
    base, peer = addr.split("/p2p/")
    head = base.split("/certhash/")[0]
    return head + "".join(f"/certhash/{h}" for h in hashes) + f"/p2p/{peer}"




def _stranger_hash() -> str:
    import hashlib

    from pywasm.multiformats import multibase, multihash

    return multibase.encode("base64url", multihash.encode(multihash.SHA2_256, hashlib.sha256(b"stranger").digest()))


def test_pywasm_page_bad_webtransport_addresses_fail_clearly(page, wt_relay):
    from e2e.harness import boot_node

    addr = wt_addr(wt_relay)
    good = addr.split("/p2p/")[0].split("/certhash/")[1:]
    boot_node(page, wt_relay.url)
    # a certhash the relay's certificate does not have: the browser refuses the session
    bad = run_js(page, "return await window.e2eNode.dial(arg)", _swap_certhashes(addr, [_stranger_hash()]), timeout=30)
    assert not bad["ok"] and "certhash" in bad["error"], bad
    # the served hash plus one the relay never vouches for: the Noise extension check
    extra = run_js(page, "return await window.e2eNode.dial(arg)", _swap_certhashes(addr, [good[0], _stranger_hash()]),
                   timeout=30)
    assert not extra["ok"] and "does not vouch" in extra["error"], extra
    # a wrong peer id
    other = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
    wrong = run_js(page, "return await window.e2eNode.dial(arg)", addr.split("/p2p/")[0] + f"/p2p/{other}", timeout=30)
    assert not wrong["ok"] and "wrong peer" in wrong["error"], wrong
    # and the relay still serves this page
    assert must(page, "return await window.e2eNode.dial(arg)", addr, timeout=30) == wt_relay.peer_id
    assert wt_relay.alive()


def test_pywasm_page_dials_kubo_over_webtransport(page, live_relay, peers):
    """Bonus interop: the page dials go-libp2p (kubo 0.22) over WebTransport, not our relay."""
    from e2e.harness import boot_node

    go = peers.listen("go", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1/webtransport")
    addr = go.addr(transport="webtransport")
    boot_node(page, live_relay.url)
    assert must(page, "return await window.e2eNode.dial(arg)", addr, timeout=30) == go.peer_id
    conns = must(page, "return window.e2eNode.connections()", timeout=10)
    assert any(c["peer"] == go.peer_id and c["muxer"] == "webtransport" for c in conns), conns
    assert must(page, "return await window.e2eNode.ping(arg)", addr, timeout=30) >= 0
