"""webrtc-direct from a page to pywasm-relay: pywasm page vs js-libp2p page, same run.

    .venv/bin/python benchmarks/webrtc_direct_run.py [--rounds N] [--size MiB]

One ``pywasm-relay`` with a webrtc-direct listener (aiortc), one headless Chromium, one
pywasm page (createNode) and one js-libp2p page (e2e/js-page, @libp2p/webrtc). Each round,
for each implementation in turn (interleaved, so a noisy moment hits both):

* setup: a NEW webrtc-direct connection (pywasm: a fresh Host in the page; js: hang up,
  then dial again) up to the first ping answer, in ms (ICE + DTLS + SCTP + Noise + 1 RTT);
* echo: SIZE bytes over /echo/1.0.0 on that connection, written while the answer is read
  to EOF, compared byte for byte; MiB/s = 2 * SIZE / elapsed (both directions move SIZE).

Prints medians and ranges as JSON lines and a summary; writes
benchmarks/results/webrtc_direct_latest.json. The relay's side is pure-Python SCTP
(aiortc), which bounds both implementations alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from e2e.harness import CHROMIUM, CHROMIUM_ARGS, Relay, StaticServer, boot_node, build_js_page, must, must_py  # noqa: E402
from e2e.test_webrtc_direct import JS_ECHO  # noqa: E402

PY_ROUND = """
import asyncio, hashlib, time
from pywasm.host import Host
from pywasm.transports.browser_webrtc_direct import BrowserWebRTCDirectTransport
import pywasm_webrtc_js
h = await Host.create(listen=[], transports=[BrowserWebRTCDirectTransport(dial_timeout=30.0, js_module=pywasm_webrtc_js)])
try:
    t0 = time.perf_counter()
    conn = await h.dial(arg["addr"])
    await h.services["ping"].ping(conn)
    setup_ms = (time.perf_counter() - t0) * 1000
    data = hashlib.shake_256(b"bench").digest(arg["n"])
    t0 = time.perf_counter()
    got = await h.services["echo"].echo(conn, data)
    echo_s = time.perf_counter() - t0
    result = {"setup_ms": setup_ms, "echo_s": echo_s, "ok": got == data}
finally:
    await h.stop()
"""

JS_ROUND = """
const node = await window.jsp2p.start()
await node.hangUp(arg.peer).catch(() => {})
const t0 = performance.now()
const r = await window.jsp2p.dial(arg.addr, 30000)
const setup_ms = performance.now() - t0
return { setup_ms, ping: r.pingMs }
"""


def _stats(xs: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(xs), 2), "min": round(min(xs), 2), "max": round(max(xs), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", type=float, default=1.0, help="echo size in MiB (default 1)")
    args = ap.parse_args()
    n = int(args.size * 1024 * 1024)
    from playwright.sync_api import sync_playwright

    relay = Relay(extra_args=["--listen", "/ip4/127.0.0.1/udp/0/webrtc-direct"]).start()
    js_site = StaticServer(build_js_page())
    res: dict[str, dict[str, list[float]]] = {"pywasm": {"setup_ms": [], "mib_s": []}, "js-libp2p": {"setup_ms": [], "mib_s": []}}
    try:
        addr = next(a for a in relay.addrs if "/webrtc-direct/" in a and "/p2p/" in a)
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                py_page = b.new_context().new_page()
                boot_node(py_page, relay.url)
                js_page = b.new_context().new_page()
                js_page.goto(js_site.url + "index.html")
                js_page.wait_for_function("window.jsp2p !== undefined", timeout=30_000)
                for r in range(args.rounds + 1):  # round 0 warms up both, not counted
                    out = must_py(py_page, PY_ROUND, {"addr": addr, "n": n}, timeout=300)
                    assert out["ok"], "pywasm echo differs"
                    js = must(js_page, JS_ROUND, {"addr": addr, "peer": relay.peer_id}, timeout=60)
                    echo = must(js_page, JS_ECHO, {"peer": relay.peer_id, "n": n}, timeout=300)
                    assert echo["equal"] and echo["received"] == n, echo
                    if r == 0:
                        continue
                    res["pywasm"]["setup_ms"].append(out["setup_ms"])
                    res["pywasm"]["mib_s"].append(2 * args.size / out["echo_s"])
                    res["js-libp2p"]["setup_ms"].append(js["setup_ms"])
                    res["js-libp2p"]["mib_s"].append(2 * args.size / (echo["ms"] / 1000))
                    print(json.dumps({"round": r, "pywasm": {"setup_ms": round(out["setup_ms"], 1), "echo_s": round(out["echo_s"], 3)},
                                      "js": {"setup_ms": round(js["setup_ms"], 1), "echo_ms": echo["ms"]}}), flush=True)
            finally:
                b.close()
    finally:
        js_site.close()
        relay.stop()
    summary = {impl: {k: _stats(v) for k, v in d.items()} for impl, d in res.items()}
    summary["ratio_pywasm_over_js"] = {
        "setup_ms": round(summary["pywasm"]["setup_ms"]["median"] / summary["js-libp2p"]["setup_ms"]["median"], 2),
        "mib_s": round(summary["pywasm"]["mib_s"]["median"] / summary["js-libp2p"]["mib_s"]["median"], 2),
    }
    summary["meta"] = {"rounds": args.rounds, "size_mib": args.size, "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(json.dumps(summary, indent=1))
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "webrtc_direct_latest.json").write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
