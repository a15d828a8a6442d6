"""benchmarks/webrtc_p2p_run.py stays runnable: one round of two pywasm pages and two
js-libp2p pages in Chromium connecting directly over WebRTC through pywasm-relay, then a
small echo over that connection; checks the JSON the script writes holds every figure for
both stacks (and that each dial gave a direct /webrtc connection). No time is asserted.

The pywasm round must succeed. The js-libp2p round (two js pages, the same relay) fails
now and then inside js-libp2p: "js dialer: TimeoutError: signal timed out" ~20 s into the
run, though the page's own dial signal allows 60 s, in 2 of 10 runs here (0 pywasm
failures in the same runs). Not explained yet: a later hunt with js-libp2p's webrtc,
dialer and relay debug logs on saw 0 failures in 32 js rounds (12 alone, 20 interleaved
with pywasm rounds). js-libp2p's dialer waits for the `init` channel's close to be
acknowledged, the wait that hung our own Chromium -> Firefox dials, so that is the first
suspect. The script counts such a round as failed in its output, so this test accepts one
only if it is reported as exactly that."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "webrtc_p2p_run.py"


@pytest.mark.browser_feature("bench: webrtc_p2p_run.py (pywasm vs js-libp2p pages) runs", matrix=False,
                             browsers=("chromium",))
def test_webrtc_p2p_bench_one_round(tmp_path: Path) -> None:
    out = tmp_path / "p2p.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "1", "--size", "0.5", "--no-write", "--json-out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=420,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    failed = doc["summary"]["failed_rounds"]
    assert failed["pywasm"] == [], failed
    impls = ["pywasm"]
    if failed["js"]:
        print(f"js-libp2p round failed: {failed['js']}")
        assert failed["js"] == ["js round failed: js dialer: TimeoutError: signal timed out"], failed
        assert doc["runs"]["js"] == [], doc["runs"]["js"]
    else:
        impls.append("js")
    for impl in impls:
        (r,) = doc["runs"][impl]
        assert "echo_error" not in r, r
        d = r["direct"]
        assert "/webrtc" in (d.get("addr") or "") or d.get("muxer") == "/webrtc", d
        # stage order on one timeline: booted <= listening, and the connection comes last
        assert 0 < r["a_booted_ms"] <= r["a_listening_ms"] < r["load_to_direct_ms"], r
        assert 0 < r["b_booted_ms"] < r["load_to_direct_ms"] <= r["load_to_direct_raw_ms"] + 1, r
        assert r["b_dial_ms"] > 0 and r["echo_mib_s"] > 0, r
        assert doc["summary"][impl]["load_to_direct_ms"]["median"] == r["load_to_direct_ms"]
    pywasm = doc["runs"]["pywasm"][0]
    assert pywasm["direct"]["security"] == "/webrtc" and not pywasm["direct"]["addr"].endswith("/p2p-circuit")
    labels = [s[0] for s in pywasm["dial_stages"]]
    assert "whole WebRTC dial" in labels and "relayed connection to the peer" in labels, labels
    assert "| pages loaded -> direct WebRTC connection, ms |" in proc.stdout
