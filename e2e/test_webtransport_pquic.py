"""Headless Chromium against ``pywasm-relay --webtransport-backend aiopquic``.

aiopquic binds its UDP port on every address, so the relay, the page servers and Chromium
all run in a private network namespace with only ``lo`` (``unshare -n``, root):
e2e/pquic_browser.py drives them there and reports JSON; the assertions are here. Needs
.cache/venv-relay-pquic (``bash scripts/setup_pquic.sh``) and .cache/site.

* the js-libp2p page (@libp2p/webtransport) dials the relay's ``/webtransport/certhash/...``
  address: identify + ping, then a byte-exact 4 MiB echo;
* the pywasm page (Pyodide) refuses an unknown certhash, then dials, pings and echoes 4 MiB.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from e2e.harness import SITE, require
from tests.native.pquic_scenarios import PQUIC_PYTHON, ROOT

SIZE = 4 << 20


def test_chromium_pages_over_webtransport_to_the_aiopquic_relay(tmp_path: Path) -> None:
    assert os.geteuid() == 0 and shutil.which("unshare"), "needs root and unshare (a network namespace)"
    assert PQUIC_PYTHON.exists(), f"{PQUIC_PYTHON} missing: run `bash scripts/setup_pquic.sh`"
    require(SITE / "pywasm.mjs", "site bundle (.cache/site/pywasm.mjs)")
    proc = subprocess.run(["unshare", "-n", "--", sys.executable, "-m", "e2e.pquic_browser", str(tmp_path), str(SIZE)],
                          cwd=ROOT, capture_output=True, text=True, timeout=400)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    r = json.loads(lines[-1])
    peer = r["addr"].rsplit("/p2p/", 1)[1]
    assert r["addr"].count("/certhash/") == 2

    js = r["js"]
    assert "error" not in js, js
    assert js["dial"]["remotePeer"] == peer and js["dial"]["pingMs"] >= 0
    assert "/ipfs/ping/1.0.0" in js["dial"]["protocols"], js
    assert js["echo"]["equal"] and js["echo"]["received"] == SIZE, js["echo"]
    assert "/webtransport" in js["echo"]["addr"]

    py = r["pywasm"]
    assert "error" not in py, py
    assert not py["bad_certhash"]["ok"] and "certhash" in py["bad_certhash"]["error"], py["bad_certhash"]
    assert py["remote"] == peer and py["rtt"] >= 0
    assert any(c["muxer"] == "webtransport" and c["security"] == "/noise" for c in py["conns"]), py["conns"]
    assert py["echo"]["equal"] and py["echo"]["received"] == SIZE and py["echo"]["remote"] == peer, py["echo"]

    assert r["relay_alive"] and r["relay_rc"] == 0, r["relay_log_tail"]
    mib = SIZE / 2**20
    print(f"E2E-WT-PQUIC {r['version']}: js page {mib / (js['echo']['ms'] / 1000):.1f} MiB/s, "
          f"pywasm page {mib / (py['echo']['ms'] / 1000):.1f} MiB/s")
