"""createNode() in Chromium restores the Pyodide memory snapshot the site ships
(pyodide/pywasm-snapshot.json, built by scripts/make_snapshot.mjs from build_site.sh), and
the JS shims work after the restore: a dial + ping to the relay runs Noise through the
crypto shim over the WebSocket shim. With ``snapshot: false`` the page boots in full."""

from __future__ import annotations

import pytest

from e2e.harness import SITE, must

BOOT = """
const { createNode } = await import('/pywasm.mjs')
const node = await createNode(arg.opts)
try {
  const remote = await node.dial(arg.addr)
  const rtt = await node.ping(arg.addr)
  const rand = String(node.pyodide.runPython('import random; random.getrandbits(64)'))
  return { snapshot: node.timings.snapshot, remote: String(remote), rtt, rand, timings: node.timings,
           atMs: performance.now() }
} finally {
  await node.stop()
}
"""


@pytest.mark.browser_feature("pywasm page boots from the Pyodide memory snapshot", needs=("WebAssembly", "WebSocket"))
def test_snapshot_boot_then_dial_and_ping(page, live_relay):
    assert (SITE / "pyodide" / "pywasm-snapshot.json").exists(), "build_site.sh made no snapshot"
    page.goto(live_relay.url)
    a = must(page, BOOT, {"addr": live_relay.ws_addr, "opts": {}}, timeout=90)
    print(f"E2E-TIMING snapshot boot: {a['timings']} first ping at {a['atMs']:.0f} ms")
    assert a["snapshot"] == "used"
    assert a["remote"] == live_relay.peer_id and a["rtt"] > 0
    page.goto(live_relay.url)
    b = must(page, BOOT, {"addr": live_relay.ws_addr, "opts": {}}, timeout=90)
    assert b["snapshot"] == "used"
    assert a["rand"] != b["rand"], "the PRNG state came from the image: not reseeded"


@pytest.mark.browser_feature("pywasm page without the snapshot (snapshot: false)", needs=("WebAssembly", "WebSocket"))
def test_full_boot_when_snapshot_disabled(page, live_relay):
    page.goto(live_relay.url)
    r = must(page, BOOT, {"addr": live_relay.ws_addr, "opts": {"snapshot": False}}, timeout=90)
    assert r["snapshot"] == "unused"
    assert r["remote"] == live_relay.peer_id and r["rtt"] > 0
