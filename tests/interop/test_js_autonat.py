"""AutoNAT v2: pywasm <-> js-libp2p 3.3 with @libp2p/autonat-v2, both roles.

AutoNAT v2 only concerns public addresses (js's client skips private ones, js's server
refuses to dial them), so each scenario runs in its own network namespace (``unshare -n``,
root) where ``lo`` carries two public-looking addresses; see autonat_netns_driver.py.
The namespace and every process in it end with the driver.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from tests.interop.harness import ROOT, PeerMissing

pytestmark = pytest.mark.interop


def _run(scenario: str) -> dict[str, Any]:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        raise PeerMissing("AutoNAT interop needs `unshare -n` as root (util-linux) to build its network namespace")
    proc = subprocess.run(
        [unshare, "-n", sys.executable, "-m", "tests.interop.autonat_netns_driver", scenario],
        cwd=str(ROOT), capture_output=True, text=True, timeout=180,
    )
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    assert proc.returncode == 0 and lines, f"driver failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return json.loads(lines[-1])


def test_js_client_verifies_its_address_with_our_server() -> None:
    out = _run("js-client")
    stats = out["stats"]
    # js sent a valid DialRequest, paid the dial data we asked for (another IP than the
    # one it connected from), answered our dial-back nonce, and got our DialResponse
    assert stats["requests"] >= 1 and stats["malformed"] == 0, out
    assert stats["dial_data_requests"] >= 1 and stats["dial_ok"] >= 1, out
    # ... and js's client took our answer as proof: its address is now verified
    assert out["js_confirmed"], out["js_log"]


def test_our_client_asks_js_server() -> None:
    out = _run("js-server")
    ok, bad = out["reachable"], out["unreachable"]
    assert ok.get("reachability") == "reachable", out
    assert ok["dial_back_received"] and ok["dial_status"] == 200 and ok["response_status"] == 200
    # js charged dial data (our listen IP differs from the IP we dialed it from)
    assert 30_000 <= ok["dial_data_sent"] <= 100_000 + 4096
    assert bad.get("reachability") == "unreachable" and bad["dial_status"] == 100, out
