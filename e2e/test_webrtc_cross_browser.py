"""Private-to-private WebRTC between two browser engines: a pywasm page in Chromium and a
pywasm page in Firefox connect directly over ``/webrtc``, pywasm-relay carrying only the
signaling (libp2p/specs webrtc/webrtc.md).

Each side dials once: Chromium listens and Firefox dials, then Firefox listens and Chromium
dials (fresh pages each time, so the second dial cannot reuse the first connection). Each
time: the connection in use is the direct one (not limited, host candidates, no relay
candidate), ping both ways, 1 MiB byte-exact echo. The checks are those of
e2e/test_webrtc_private.py (``listen_and_dial``).

Both engines meet here, with what differs between them on the wire: Chromium hides its host
addresses behind mDNS ``<uuid>.local`` names and gathers no loopback candidate, while the
test profile of Firefox (e2e/browsers.py FIREFOX_PREFS) offers plain addresses, loopback
included; SDP, candidate JSON and DTLS roles come from different stacks (libwebrtc, nICEr).

The test drives both browsers itself (``pages_in``), so it runs once, not once per
browser parameter; e2e/results_plugin.py records it under both browsers' columns.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from e2e.harness import Relay, boot_node, run_js
from e2e.test_webrtc_private import FEATURE_NEEDS, listen_and_dial

ENGINES = ("chromium", "firefox")


@pytest.mark.browser_feature(
    "webrtc: Chromium page <-> Firefox page, each dials once, direct ping + 1 MiB echo",
    needs=FEATURE_NEEDS,
    browsers=ENGINES,
)
def test_webrtc_private_chromium_firefox(pages_in: Any, live_relay: Relay) -> None:
    factories = {name: pages_in(name) for name in ENGINES}
    results: dict[str, Any] = {}
    for listener, dialer in (ENGINES, ENGINES[::-1]):
        a = factories[listener](f"webrtc-listener-{listener}")
        b = factories[dialer](f"webrtc-dialer-{dialer}")
        boot_node(a, live_relay.url)
        boot_node(b, live_relay.url)
        tag = f"{dialer.upper()}-TO-{listener.upper()}"
        results[tag] = listen_and_dial(a, b, live_relay, tag)
        for p in (a, b):
            run_js(p, "await window.e2eNode.stop()", timeout=15)
            p.context.close()  # before the next pair boots: two Pyodides at a time, not four
    print("E2E-WEBRTC-CROSS-BROWSER " + json.dumps(results))
