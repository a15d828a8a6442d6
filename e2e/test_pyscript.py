"""The PyScript demo page (web/pyscript.html, served as /pyscript.html) installs pywasm
under PyScript, dials the relay serving it (from /relay.json) and shows a ping RTT.

Page contract (web/pyscript.html): body[data-state] goes booting -> dialing -> connected
(or error, with the message in #error); #peer-id, #relay-peer and #rtt ("9.5 ms") are filled in.
"""

from __future__ import annotations

import time

import pytest

from e2e.harness import must

WAIT_FOR_PING = """
const $ = (id) => document.getElementById(id)
for (;;) {
  const state = document.body.dataset.state
  if (state === 'error') throw new Error('page error: ' + $('error').textContent)
  const m = ($('rtt').textContent || '').match(/^(\\d+(?:\\.\\d+)?) ms$/)
  if (m) return { rtt: Number(m[1]), state, peerId: $('peer-id').textContent,
                  relayPeer: $('relay-peer').textContent, t: performance.now() }
  await new Promise(r => setTimeout(r, 50))
}
"""


@pytest.mark.browser_feature("PyScript page: install pywasm, dial the relay, show a ping", needs=("WebAssembly", "WebSocket"))
def test_pyscript_page_reports_ping(page, live_relay):
    t0 = time.monotonic()
    resp = page.goto(live_relay.url + "pyscript.html")
    assert resp is not None and resp.ok, f"GET /pyscript.html -> {resp and resp.status} (is web/pyscript.html in the site?)"
    res = must(page, WAIT_FOR_PING, timeout=120)
    print(
        f"E2E-TIMING pyscript nav->first ping shown {res['t']:.0f} ms "
        f"(wall {1000 * (time.monotonic() - t0):.0f} ms), rtt {res['rtt']} ms"
    )
    assert res["rtt"] > 0, res
    assert res["state"] == "connected", res
    assert res["relayPeer"] == live_relay.peer_id, res
    assert res["peerId"].startswith(("12D3Koo", "Qm")) and res["peerId"] != live_relay.peer_id, res
