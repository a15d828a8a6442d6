"""WebTransport side by side in one run: pywasm page vs js-libp2p page, tuned vs naive relay.

    .venv/bin/python benchmarks/webtransport_run.py [--rounds N] [--size MiB]

Two ``pywasm-relay`` processes listen on ``/udp/0/quic-v1/webtransport``: the tuned one
(the default code path) and the naive baseline (``PYWASM_RELAY_WT_NAIVE=1``: aioquic's
asyncio UDP transport, one ``sendto`` per datagram, 1200-byte datagrams, 1 MiB windows).
One headless Chromium holds four pages: the pywasm page (``createNode()`` from the relay's
site) and the js-libp2p page (e2e/js-page with @libp2p/webtransport), each against each
relay. Every round measures, for each (relay, page) in turn (interleaved, so a noisy
moment of this shared machine hits all alike):

* session setup: close every connection, then time one fresh dial (QUIC + TLS with
  serverCertificateHashes, CONNECT, Noise on the first stream, certhash check);
* echo throughput: SIZE random bytes over a new /echo/1.0.0 stream, read back to EOF
  concurrently and compared byte for byte; MiB/s = SIZE / (stream open .. last byte).

Prints medians and ratios (tuned/naive per page, pywasm/js per relay) and writes
benchmarks/results/webtransport_latest.json. No exit code depends on a figure.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
MIB = 1 << 20
sys.path.insert(0, str(ROOT))

from e2e.harness import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    SITE,
    Relay,
    StaticServer,
    boot_node,
    build_js_page,
    must,
    must_py,
    require,
)
from e2e.test_webtransport import JS_ECHO, PY_ECHO, wt_addr  # noqa: E402

WT_LISTEN = "/ip4/127.0.0.1/udp/0/quic-v1/webtransport"
TARGET_SPEEDUP = 4.0  # relay WebTransport throughput, tuned vs naive (reported only)

JS_SETUP = """
const n = await window.jsp2p.start()
if (!window._wtma) {
  await window.jsp2p.dial(arg, 20000)
  window._wtma = n.getConnections().find(c => c.remoteAddr.toString().includes('/webtransport')).remoteAddr
}
for (const c of n.getConnections()) await c.close()
const t0 = performance.now()
const conn = await n.dial(window._wtma, { signal: AbortSignal.timeout(20000) })
const ms = performance.now() - t0
if (!conn.remoteAddr.toString().includes('/webtransport')) throw new Error('not a WebTransport connection')
return ms
"""

PY_SETUP = """
import time
from pywasm.multiformats.multiaddr import Multiaddr
for c in list(host.connections):
    await c.close()
t0 = time.perf_counter()
conn = await host.dial(Multiaddr(arg))
result = (time.perf_counter() - t0) * 1000
assert conn.muxer_protocol == "webtransport"
"""


def _relay(naive: bool) -> Relay:
    env_before = os.environ.get("PYWASM_RELAY_WT_NAIVE")
    if naive:
        os.environ["PYWASM_RELAY_WT_NAIVE"] = "1"
    else:
        os.environ.pop("PYWASM_RELAY_WT_NAIVE", None)
    try:
        return Relay(extra_args=["--listen", WT_LISTEN]).start()  # Relay passes os.environ on
    finally:
        if env_before is None:
            os.environ.pop("PYWASM_RELAY_WT_NAIVE", None)
        else:
            os.environ["PYWASM_RELAY_WT_NAIVE"] = env_before


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=float, default=8.0, help="echo size in MiB (default 8)")
    args = ap.parse_args(argv)
    size = int(args.size * MIB)
    require(SITE / "pywasm.mjs", "site bundle (run bash scripts/build_site.sh)")
    from playwright.sync_api import sync_playwright

    js_server = StaticServer(build_js_page())
    relays = {"naive": _relay(True), "tuned": _relay(False)}
    samples: dict[str, dict[str, list[float]]] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            pages: dict[tuple[str, str], Any] = {}
            for rname, relay in relays.items():
                pg = browser.new_context().new_page()
                boot_node(pg, relay.url)
                pages[(rname, "pywasm")] = pg
                pg = browser.new_context().new_page()
                pg.goto(js_server.url)
                must(pg, "while (!window.jsp2p) await new Promise(r => setTimeout(r, 20)); return true", timeout=30)
                pages[(rname, "js")] = pg
            for rnd in range(args.rounds):
                for (rname, impl), pg in pages.items():
                    addr = wt_addr(relays[rname])
                    key = f"{rname}/{impl}"
                    s = samples.setdefault(key, {"setup_ms": [], "echo_mib_s": []})
                    if impl == "pywasm":
                        setup = must_py(pg, PY_SETUP, addr, timeout=60)
                        echo = must_py(pg, PY_ECHO, [addr, size], timeout=600)
                    else:
                        setup = must(pg, JS_SETUP, addr, timeout=60)
                        echo = must(pg, JS_ECHO, [addr, size], timeout=600)
                    if not (echo["equal"] and echo["received"] == size):
                        raise AssertionError(f"{key}: echo came back wrong: {echo}")
                    s["setup_ms"].append(float(setup))
                    s["echo_mib_s"].append(size / MIB / (echo["ms"] / 1000))
                    print(f"round {rnd + 1} {key:14s} setup {setup:7.1f} ms  echo {s['echo_mib_s'][-1]:6.2f} MiB/s",
                          flush=True)
            browser.close()
    finally:
        for r in relays.values():
            r.stop()
        js_server.close()

    med = {k: {m: _median(v) for m, v in d.items()} for k, d in samples.items()}
    print(f"\nWebTransport, {args.rounds} rounds, echo {args.size:g} MiB, medians (same run, same Chromium)")
    print(f"{'relay/page':16s} {'setup ms':>9s} {'echo MiB/s':>11s}")
    for k, d in med.items():
        print(f"{k:16s} {d['setup_ms']:9.1f} {d['echo_mib_s']:11.2f}")
    ratios: dict[str, float] = {}
    for impl in ("pywasm", "js"):
        ratios[f"{impl}: tuned/naive echo"] = med[f"tuned/{impl}"]["echo_mib_s"] / med[f"naive/{impl}"]["echo_mib_s"]
    for rname in ("naive", "tuned"):
        ratios[f"{rname}: pywasm/js echo"] = med[f"{rname}/pywasm"]["echo_mib_s"] / med[f"{rname}/js"]["echo_mib_s"]
        ratios[f"{rname}: pywasm/js setup"] = med[f"{rname}/pywasm"]["setup_ms"] / med[f"{rname}/js"]["setup_ms"]
    for k, v in ratios.items():
        print(f"  {k:28s} {v:5.2f}x")
    for impl in ("pywasm", "js"):
        r = ratios[f"{impl}: tuned/naive echo"]
        print(f"relay speedup target >= {TARGET_SPEEDUP:g}x, {impl} page: {'PASS' if r >= TARGET_SPEEDUP else 'MISS'} "
              f"({r:.2f}x)")
    RESULTS.mkdir(exist_ok=True)
    out = {
        "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "rounds": args.rounds, "size_bytes": size, "samples": samples, "medians": med, "ratios": ratios,
        "load_avg": os.getloadavg(),
    }
    (RESULTS / "webtransport_latest.json").write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
