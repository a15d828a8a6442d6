"""Bad input to a pywasm page's node: each dial rejects with a clear message within a
bounded time, and the page stays usable afterwards (never a hung page)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest

from e2e.harness import ROOT, SilentServer, boot_node, closed_port, must, run_js

pytestmark = pytest.mark.browser_feature("bad input: each bad dial rejects in bounded time, page stays usable", needs=("WebAssembly", "WebSocket"))

BOUND_S = 30.0  # no bad dial may take longer than this (the page's own deadline is above it)


@pytest.fixture(scope="module")
def other_peer_id() -> str:
    """A valid peer id that is not the relay's."""
    with tempfile.TemporaryDirectory() as d:
        out = subprocess.run(
            [str(ROOT / ".venv/bin/python"), "-m", "pywasm", "id", "--key", str(Path(d) / "k")],
            capture_output=True, text=True, timeout=60, cwd=str(ROOT),
        )
    assert out.returncode == 0, out.stderr
    pid = out.stdout.strip().splitlines()[-1].strip()
    assert pid.startswith(("12D3Koo", "Qm")), out.stdout
    return pid


@pytest.fixture(scope="module")
def node_page(module_pages, relay):
    """One page with one node for every bad-input case (createNode costs seconds)."""
    page = module_pages("bad-input")
    boot_node(page, relay.url)
    yield page
    run_js(page, "await window.e2eNode.stop()", timeout=15)


def _bad_dial(page, maddr: str) -> dict:
    res = run_js(page, "return String(await window.e2eNode.dial(arg))", maddr, timeout=BOUND_S + 15)
    assert not res["ok"], f"dial {maddr} unexpectedly succeeded: {res}"
    assert not res.get("timeout"), f"dial {maddr} hung: no rejection within {BOUND_S + 15:.0f}s"
    assert res["ms"] < BOUND_S * 1000, f"dial {maddr} took {res['ms']:.0f} ms to reject: {res['error']}"
    print(f"E2E-BAD-INPUT {maddr!r} -> {res['error']!r} in {res['ms']:.0f} ms")
    return res


def _still_works(page, relay) -> None:
    """After a failure the same node still dials and pings the relay."""
    out = must(page, "const r = await window.e2eNode.dial(arg); return [String(r), await window.e2eNode.ping(arg)]",
               relay.ws_addr, timeout=30)
    assert out[0] == relay.peer_id and out[1] > 0


# Unreachable addresses carry a peer id we are not connected to: a dial to a connected
# peer id may (like js-libp2p) reuse the live connection whatever the address says.


def test_dial_closed_port(node_page, relay, other_peer_id):
    port = closed_port()
    res = _bad_dial(node_page, f"/ip4/127.0.0.1/tcp/{port}/ws/p2p/{other_peer_id}")
    assert any(w in res["error"].lower() for w in ("connect", "refused", "closed", "websocket", "dial", "fail")), res
    _still_works(node_page, relay)


def test_dial_silent_server(node_page, relay, other_peer_id):
    """A TCP port that accepts and never answers (no WebSocket handshake)."""
    silent = SilentServer()
    try:
        res = _bad_dial(node_page, f"/ip4/127.0.0.1/tcp/{silent.port}/ws/p2p/{other_peer_id}")
    finally:
        silent.close()
    assert any(w in res["error"].lower() for w in ("timeout", "timed out", "websocket", "dial", "fail", "closed")), res
    _still_works(node_page, relay)


def test_dial_relay_http_port(node_page, relay, other_peer_id):
    """The relay's http URL's port: an HTTP server, not a libp2p /ws listener."""
    res = _bad_dial(node_page, f"/ip4/127.0.0.1/tcp/{relay.port}/ws/p2p/{other_peer_id}")
    assert res["error"], res
    _still_works(node_page, relay)


def test_dial_wrong_peer_id(node_page, relay, other_peer_id):
    addr = relay.ws_addr.rsplit("/p2p/", 1)[0] + f"/p2p/{other_peer_id}"
    res = _bad_dial(node_page, addr)
    msg = res["error"].lower()
    assert "peer" in msg or other_peer_id[-8:] in res["error"] or relay.peer_id[-8:] in res["error"], res
    _still_works(node_page, relay)


@pytest.mark.parametrize(
    "maddr",
    [
        "/ip4/127.0.0.1/udp/4001/quic-v1",   # no QUIC in the page
        "TCP_ONLY",                          # plain TCP: a browser cannot open it
        "/dns4/example.invalid/tcp/1/wss/p2p-circuit",
        "not a multiaddr",
    ],
)
def test_dial_unsupported_multiaddr(node_page, relay, other_peer_id, maddr):
    if maddr == "TCP_ONLY":
        maddr = relay.ws_addr.split("/ws/")[0] + f"/p2p/{other_peer_id}"
    res = _bad_dial(node_page, maddr)
    assert res["ms"] < 5000, f"an unsupported address should be refused at once: {res}"
    _still_works(node_page, relay)


def _certhash_addr(transport: str, peer_id: str) -> str:
    """A well-formed address of ``transport`` on a port nothing listens on."""
    import base64
    import hashlib

    mh = b"\x12\x20" + hashlib.sha256(b"e2e-no-such-certificate").digest()
    certhash = "u" + base64.urlsafe_b64encode(mh).decode().rstrip("=")
    port = closed_port()
    if transport == "webtransport":
        return f"/ip4/127.0.0.1/udp/{port}/quic-v1/webtransport/certhash/{certhash}/p2p/{peer_id}"
    return f"/ip4/127.0.0.1/udp/{port}/webrtc-direct/certhash/{certhash}/p2p/{peer_id}"


# A browser without the API (WebKitGTK 2.50: both) must refuse such a dial at once, saying
# which API is missing. Where the browser has the API, the same path is taken by hiding the
# global from the page for the duration of the dial (the shims look it up at dial time).
_WITHOUT_API = """
const [addr, api] = arg
const saved = Object.getOwnPropertyDescriptor(globalThis, api)
const hidden = saved !== undefined
if (hidden) delete globalThis[api]
try {
  if (typeof globalThis[api] !== 'undefined') throw new Error(`could not hide ${api}`)
  return String(await window.e2eNode.dial(addr))
} finally {
  if (hidden) Object.defineProperty(globalThis, api, saved)
}
"""


@pytest.mark.parametrize(("transport", "api"), [("webtransport", "WebTransport"), ("webrtc-direct", "RTCPeerConnection")])
def test_dial_without_browser_api(node_page, relay, other_peer_id, browser_caps, transport, api):
    addr = _certhash_addr(transport, other_peer_id)
    res = run_js(node_page, _WITHOUT_API, [addr, api], timeout=BOUND_S + 15)
    assert not res["ok"], f"dial {addr} without {api} succeeded: {res}"
    assert not res.get("timeout"), res
    print(f"E2E-BAD-INPUT without {api} (browser has it: {browser_caps.get(api)}): {res['error']!r} in {res['ms']:.0f} ms")
    assert res["ms"] < 5000, f"a dial needing a missing {api} should be refused at once: {res}"
    assert api in res["error"], f"the error should name the missing API {api}: {res['error']}"
    # the global is back where the browser has it, and the node still works
    assert node_page.evaluate(f"typeof globalThis.{api}") == ("function" if browser_caps.get(api) is True else "undefined")
    _still_works(node_page, relay)
