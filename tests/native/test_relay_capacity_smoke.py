"""benchmarks/relay_capacity.py stays runnable: a tiny run against pywasm-relay and a
js-libp2p relay (a few reservations, one relayed pair), checking the JSON it writes has
every figure and that the figures are sane. No absolute time is asserted."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "relay_capacity.py"


def test_relay_capacity_tiny_run(tmp_path: Path) -> None:
    out = tmp_path / "capacity.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--relays", "pywasm,js", "--steps", "4,8", "--workers", "2",
         "--concurrency", "2", "--probe", "2", "--pairs", "1,2", "--stream-mib", "0.5", "--no-write",
         "--json-out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["meta"]["command"].startswith(".venv/bin/python benchmarks/relay_capacity.py")
    assert set(doc["results"]) == {"pywasm", "js"}
    for impl, r in doc["results"].items():
        assert r["rss_idle_mib"] > 0 and r["rss_after_warmup_mib"] > 0, (impl, r)
        steps = r["reservations"]
        assert [s["target"] for s in steps] == [4, 8], (impl, steps)
        for s in steps:
            assert s["failed"] == 0 and s["held"] == s["target"] == s["still_connected"], (impl, s)
            assert s["rss_mib"] > 0 and s["kib_per_reservation"] is not None, (impl, s)
            assert 0 < s["reserve_ms_p50"] <= s["reserve_ms_p95"], (impl, s)
            assert 0 < s["connect_ms_p50"] <= s["connect_ms_p95"], (impl, s)
            assert s["probe_n"] == 2 and s["probe_reserve_ms_p50"] > 0, (impl, s)
            assert s["relay_cpu_pct"] is not None and s["relay_cpu_pct"] >= 0, (impl, s)
        streams = r["streams"]
        assert [s["pairs"] for s in streams] == [1, 2], (impl, streams)
        for s in streams:
            # every pair's bytes reached its listener through the relay (the ack checks the count)
            assert s["ok"] == s["pairs"] and s["failed"] == 0, (impl, s)
            assert s["aggregate_mib_s"] > 0 and not math.isnan(s["per_pair_mib_s_p50"]), (impl, s)
    # and the markdown table it prints names both relays and the ratios
    assert "| pywasm | 8 (8) |" in proc.stdout and "| js | 8 (8) |" in proc.stdout, proc.stdout[-2000:]
    assert "Ratios pywasm / js" in proc.stdout
