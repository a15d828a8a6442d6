"""Private-to-private WebRTC between two pages: pywasm pages vs js-libp2p pages, one run.

    .venv/bin/python benchmarks/webrtc_p2p_run.py [--rounds N] [--size MiB] [--browser chromium|firefox]
                                                  [--no-write]

One ``pywasm-relay`` (its circuit relay v2 hop carries the signaling; it also serves both
stacks' pages from one origin, .cache/bench/site-webrtc-p2p/) and one browser (Chromium by
default, or Firefox ESR through e2e/browsers.py). Each round, pywasm then js-libp2p
(interleaved, so a noisy moment hits both), two pages in two NEW browser contexts (empty
caches), navigated back to back:

* page A boots its stack and listens on ``<relay /ws>/p2p-circuit/webrtc`` (a reservation);
  page B boots its stack and, once the driver hands it A's ``/webrtc`` address, dials it:
  a relayed connection, ``/webrtc-signaling/0.0.1`` on it, then the direct
  RTCPeerConnection. pywasm: ``createNode()`` (Pyodide boot, wheel, host), ``node.listen``,
  ``node.dial``; js-libp2p: an esbuild bundle of e2e/js-page/p2p_bench.mjs
  (``webRTC()`` + ``circuitRelayTransport()``), ``createLibp2p``, ``dial``.
* **pages loaded -> direct connection**: from the earlier of the two navigation starts
  (``performance.timeOrigin``) to B's dial resolving, with the driver's hand-off of A's
  address left out: max(A listening, B booted) + B's dial time, in ms (the raw figure,
  hand-off included, is reported too; under load the Playwright round trips add ~0.5 s). The connection must be
  the direct one: pywasm's has security and muxer ``/webrtc`` and a ``/webrtc`` address, js's
  a ``/webrtc`` address and no limits. Stages (each page's own clock) are recorded too: boot
  done, A listening, B's dial alone.
* **throughput**: SIZE bytes over ``/echo/1.0.0`` on a new stream on that direct connection,
  written in 64 KiB pieces while the answer is read to EOF, checked; MiB/s = SIZE / (stream
  open .. last byte), so each direction moved SIZE at that rate. pywasm does it in Python in
  the page (``conn.new_stream``, write/read), js with ``newStream``/``send``/``for await``.

Prints per-round lines and a table with medians and the pywasm / js ratios; writes
benchmarks/results/webrtc_p2p_latest.md (with the command) unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
MIB = 1 << 20
SITE_OUT = ROOT / ".cache" / "bench" / "site-webrtc-p2p"
sys.path.insert(0, str(ROOT))

from benchmarks._common import page_echo  # noqa: E402
from e2e import browsers  # noqa: E402
from e2e.harness import SITE, Relay, require, run_js  # noqa: E402

STEP_TIMEOUT = 120.0

# Both pages run the same script shape: boot, then listen (A) or wait for the address and
# dial (B). Times are performance.now() of the page (ms since its navigation started).
PAGE_HEAD = """<!doctype html><meta charset="utf-8"><title>webrtc p2p bench</title>
<script type="module">
const q = new URLSearchParams(location.search);
const role = q.get('role'), relay = q.get('relay');
const marks = {};
window.bench = { timeOrigin: performance.timeOrigin, marks, role };
let gotTarget;
const target = new Promise((resolve) => { gotTarget = resolve; });
window.benchSetTarget = (a) => gotTarget(a);
"""

# Installed in the pywasm dialer before it dials: wall time of each step of the WebRTC dial
# (browser_webrtc.py), so a gap with js-libp2p can be located. Wrappers only time; they
# change nothing the dial does.
STAGES_PY = r'''
import time as _t
import pywasm.transports.browser_webrtc as _W
from pywasm.host.host import Host as _Host
_stages = []
_T0 = _t.perf_counter()

def _timed(owner, name, label):
    orig = getattr(owner, name)
    async def timed(*a, **k):
        t0 = _t.perf_counter()
        try:
            return await orig(*a, **k)
        finally:
            who = label(a) if callable(label) else label
            _stages.append([who, round((t0 - _T0) * 1000, 1), round((_t.perf_counter() - t0) * 1000, 1)])
    setattr(owner, name, timed)

import pywasm.host.upgrader as _U
import pywasm.transports.circuit as _C
_timed(_Host, "_connect", lambda a: "connect+upgrade " + type(a[1]).__name__)
_timed(_C.CircuitTransport, "dial", "  circuit: HOP CONNECT via the relay (raw relayed stream)")
_timed(_U.Upgrader, "_outbound", "  upgrade: security + muxer negotiation, outbound")
_timed(_U.Upgrader, "_simultaneous", "  upgrade: simultaneous-open probe + upgrade")
_timed(_U, "_probe_role", "  upgrade: simultaneous-open role probe")
_timed(_U.Upgrader, "_agree_muxer", "  upgrade: muxer negotiation")
import pywasm.host.connection as _HC
_timed(_HC.Connection, "new_stream", lambda a: "  new stream " + ",".join(a[1] if not isinstance(a[1], str) else [a[1]]))
_timed(_W, "read_signaling", lambda a: "  signaling: wait for " + str(a[2]))
_timed(_W.BrowserWebRTCTransport, "_relayed", "relayed connection to the peer")
_timed(_W.BrowserWebRTCTransport, "_until_connected", "ICE trickle until connected")
_timed(_W, "_close_init", "close the init data channel (awaited)")
_timed(_W, "_close_quietly", "close the signaling stream (awaited)")
_timed(_W.BrowserWebRTCTransport, "dial", "whole WebRTC dial")
'''

PYWASM_PAGE = PAGE_HEAD + """
import { createNode } from '/pywasm.mjs';
window.benchResult = (async () => {
  const node = await createNode({ dialTimeoutMs: 60000, stdout: () => {}, stderr: (s) => console.warn(s) });
  window.benchNode = node;
  marks.booted = performance.now();
  if (role === 'listen') {
    const addrs = await node.listen(relay + '/p2p-circuit/webrtc');
    const addr = addrs.find((a) => a.startsWith(relay + '/p2p-circuit/webrtc/p2p/'));
    if (!addr) throw new Error('no /webrtc address among ' + addrs);
    marks.listening = performance.now();
    window.bench.addr = addr;
    return { marks, peer: node.peerId, timings: node.timings };
  }
  if (q.get('stages')) node.pyodide.runPython(q.get('stages'));
  const addr = await target;
  marks.target = performance.now();
  const peer = await node.dial(addr);
  marks.connected = performance.now();
  if (q.get('stages')) marks.stages = JSON.parse(node.pyodide.runPython('import json; json.dumps(_stages)'));
  const conns = node.connections();
  const direct = conns.find((c) => c.peer === peer && c.muxer === '/webrtc' && c.security === '/webrtc');
  return { marks, peer, direct: direct ?? null, conns, timings: node.timings };
})();
window.benchResult.catch(() => {}).finally(() => { window.benchDone = true; });
</script>"""

JS_PAGE = PAGE_HEAD + """
import '/bench/p2pbench.mjs';
const b = window.p2pbench;
window.benchResult = (async () => {
  if (role === 'listen') {
    const addr = await b.listen(relay, 60000, () => { marks.booted = performance.now(); });
    marks.listening = performance.now();
    window.bench.addr = addr;
    return { marks };
  }
  await b.startDialer();
  marks.booted = performance.now();
  const addr = await target;
  marks.target = performance.now();
  const r = await b.dial(addr);
  marks.connected = performance.now();
  const c = r.conn;
  const direct = c.addr.includes('/webrtc') && !c.addr.endsWith('/p2p-circuit/p2p/' + c.peer) && !c.limited ? c : null;
  return { marks, peer: c.peer, direct, conns: r.conns };
})();
window.benchResult.catch(() => {}).finally(() => { window.benchDone = true; });
</script>"""

# The in-page echo (benchmarks/_common.page_echo) in page B: a new stream on the direct
# (not limited, /webrtc) connection to A.
ECHO_OPENER_PY = r'''
async def _bench_opener(host, peer):
    conn = next(c for c in host.connections
                if str(c.remote_peer) == peer and not c.limited and c.muxer_protocol == "/webrtc")
    return lambda: conn.new_stream(["/echo/1.0.0"])
'''

JS_ECHO_JS = "return await window.p2pbench.echo(arg.target, arg.size, arg.chunk)"

STOP_JS = {"pywasm": "await window.benchNode?.stop()", "js": "await window.p2pbench.stop()"}


def bench_site(src: Path) -> Path:
    """.cache/site hard-linked (the relay refuses symlinks leaving its root) + bench pages +
    the js bundle, so both stacks load from the relay's origin."""
    if SITE_OUT.exists():
        shutil.rmtree(SITE_OUT)
    try:
        shutil.copytree(src, SITE_OUT, copy_function=os.link)
    except OSError:
        shutil.rmtree(SITE_OUT, ignore_errors=True)
        shutil.copytree(src, SITE_OUT)
    bench = SITE_OUT / "bench"
    bench.mkdir(exist_ok=True)
    (bench / "p2p_pywasm.html").write_text(PYWASM_PAGE)
    (bench / "p2p_js.html").write_text(JS_PAGE)
    require(ROOT / "node_modules" / "esbuild" / "package.json", "esbuild (node_modules)")
    res = subprocess.run(["node", str(ROOT / "e2e" / "js-page" / "build_p2p_bench.mjs"), str(bench / "p2pbench.mjs")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise SystemExit(f"js bench bundle build failed:\n{res.stdout}\n{res.stderr}")
    return SITE_OUT


def _result(page: Any, log: list[str], what: str) -> dict[str, Any]:
    page.wait_for_function("window.benchResult !== undefined", timeout=STEP_TIMEOUT * 1000)
    res = run_js(page, "return await window.benchResult", None, STEP_TIMEOUT)
    if not res["ok"]:
        raise RuntimeError(f"{what}: {res['error']}\n" + "\n".join(log[-30:]))
    return res["value"]


def one_round(browser: Any, impl: str, relay: Relay, size: int, chunk: int) -> dict[str, Any]:
    ctxs = [browser.new_context(), browser.new_context()]
    log: list[str] = []
    try:
        pa, pb = (c.new_page() for c in ctxs)
        for tag, p in (("A", pa), ("B", pb)):
            p.on("console", lambda m, tag=tag: log.append(f"{tag} console.{m.type}: {m.text}"))
            p.on("pageerror", lambda e, tag=tag: log.append(f"{tag} PAGE ERROR: {e}"))
        base = f"{relay.url}bench/p2p_{impl}.html?relay={quote(relay.ws_addr, safe='')}&role="
        # both navigations start back to back; neither waits for the other's load
        pa.goto(base + "listen", wait_until="commit", timeout=STEP_TIMEOUT * 1000)
        stages = f"&stages={quote(STAGES_PY, safe='')}" if impl == "pywasm" else ""
        pb.goto(base + "dial" + stages, wait_until="commit", timeout=STEP_TIMEOUT * 1000)
        # the driver passes A's address to B; its latency is excluded from the headline figure
        pb.wait_for_function("window.benchSetTarget !== undefined", timeout=STEP_TIMEOUT * 1000, polling=5)
        addr = pa.wait_for_function("window.bench?.addr || (window.benchDone && 'failed')",
                                    timeout=STEP_TIMEOUT * 1000, polling=5).json_value()
        if addr != "failed":
            pb.evaluate("(a) => window.benchSetTarget(a)", addr)
        a = _result(pa, log, f"{impl} listener")
        b = _result(pb, log, f"{impl} dialer")
        if not b.get("direct"):
            raise RuntimeError(f"{impl}: the dial did not give a direct /webrtc connection: {b}")
        oa, ob = pa.evaluate("performance.timeOrigin"), pb.evaluate("performance.timeOrigin")
        t_start = min(oa, ob)
        a_listening = oa + a["marks"]["listening"] - t_start
        b_booted = ob + b["marks"]["booted"] - t_start
        b_dial = b["marks"]["connected"] - b["marks"]["target"]
        out: dict[str, Any] = {
            # B dials once it is booted and A listens; the driver's hand-off left out
            "load_to_direct_ms": max(a_listening, b_booted) + b_dial,
            "load_to_direct_raw_ms": ob + b["marks"]["connected"] - t_start,
            "a_booted_ms": oa + a["marks"]["booted"] - t_start,
            "b_booted_ms": ob + b["marks"]["booted"] - t_start,
            "a_listening_ms": oa + a["marks"]["listening"] - t_start,
            "b_dial_ms": b["marks"]["connected"] - b["marks"]["target"],
            # driver hand-off: A's address known in A .. B has it (polling; 0 if B booted later)
            "handoff_ms": ob + b["marks"]["target"] - (oa + a["marks"]["listening"]),
            "nav_gap_ms": abs(ob - oa),
            "direct": b["direct"],
        }
        if impl == "pywasm":
            out["timings"] = {"A": a.get("timings"), "B": b.get("timings")}
            out["dial_stages"] = b["marks"].get("stages")
        body, arg = page_echo(impl, ECHO_OPENER_PY, JS_ECHO_JS, b["peer"], size, chunk)
        res = run_js(pb, body, arg, STEP_TIMEOUT * 3)
        if not res["ok"]:
            out["echo_error"] = res["error"]
        elif not res["value"]["ok"] or res["value"]["bytes"] != size:
            out["echo_error"] = f"echo not byte-exact: {res['value']}"
        else:
            out["echo_mib_s"] = size / MIB / res["value"]["seconds"]
        for p in (pb, pa):
            run_js(p, STOP_JS[impl], None, 15)
        return out
    except Exception as exc:
        raise RuntimeError(f"{impl} round failed: {exc}\n" + "\n".join(log[-40:])) from None
    finally:
        for c in ctxs:
            c.close()


METRICS = (
    ("pages loaded -> direct WebRTC connection, ms", "load_to_direct_ms", "{:.0f}"),
    ("  the same with the driver's address hand-off included, ms", "load_to_direct_raw_ms", "{:.0f}"),
    ("  listener booted, ms", "a_booted_ms", "{:.0f}"),
    ("  listener reserved + listening on /webrtc, ms", "a_listening_ms", "{:.0f}"),
    ("  dialer booted, ms", "b_booted_ms", "{:.0f}"),
    ("  dialer's dial alone (relayed conn + signaling + ICE/DTLS/SCTP + Noise), ms", "b_dial_ms", "{:.0f}"),
    ("echo over the direct connection, MiB/s each way", "echo_mib_s", "{:.2f}"),
)


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    s: dict[str, Any] = {}
    for impl, rs in runs.items():
        s[impl] = {}
        for _, key, _ in METRICS:
            xs = [r[key] for r in rs if key in r]
            s[impl][key] = {"median": statistics.median(xs) if xs else None, "runs": xs}
        s[impl]["echo_errors"] = [r["echo_error"] for r in rs if "echo_error" in r]
    stages: dict[str, list[float]] = {}
    for r in runs.get("pywasm", []):
        for label, _start, ms in r.get("dial_stages") or []:
            stages.setdefault(label, []).append(ms)
    s["pywasm_dial_stages_ms"] = {k: {"median": statistics.median(v), "runs": v} for k, v in stages.items()}
    return s


def render(s: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [f"# Private-to-private WebRTC, two pages ({meta['date']}, {meta['browser']}, {meta['rounds']} rounds, "
             f"{meta['host']}, loadavg {meta['loadavg_before']} -> {meta['loadavg_after']})", "",
             f"Command: `{meta['command']}`", "",
             "Medians. Both pages in new browser contexts (cold caches), navigated back to back; times from "
             "the earlier navigation start; headline = max(A listening, B booted) + B's dial (the driver's "
             "hand-off of A's address excluded). Signaling through one pywasm-relay (circuit relay v2 over /ws). "
             f"Echo: {meta['size_mib']:g} MiB on a new /echo/1.0.0 stream over the direct connection, "
             "written while read back; MiB/s = size / time (each direction).", "",
             "| metric | pywasm | js-libp2p | pywasm / js | pywasm runs | js runs |", "|---|---|---|---|---|---|"]
    p, j = s["pywasm"], s["js"]
    for label, key, fmt in METRICS:
        a, b = p[key]["median"], j[key]["median"]
        if a is None and b is None:
            continue
        ratio = f"{a / b:.2f}" if a is not None and b else "-"
        lines.append(f"| {label} | {fmt.format(a) if a is not None else '-'} | {fmt.format(b) if b is not None else '-'} | "
                     f"{ratio} | {', '.join(fmt.format(x) for x in p[key]['runs'])} | "
                     f"{', '.join(fmt.format(x) for x in j[key]['runs'])} |")
    for name in ("pywasm", "js"):
        for e in s.get("failed_rounds", {}).get(name, []):
            lines.append(f"\n{name} round FAILED (left out of the medians): {e}")
        for e in s[name]["echo_errors"]:
            lines.append(f"\n{name} echo failed: {e[:300]}")
    if s.get("pywasm_dial_stages_ms"):
        lines += ["", "Where the pywasm dialer's dial goes (median ms per step; steps nest: the relayed connection "
                  "holds the connects to the relay and through it):", ""]
        for k, v in s["pywasm_dial_stages_ms"].items():
            lines.append(f"- {k}: {v['median']:.0f} ({', '.join(f'{x:.0f}' for x in v['runs'])})")
    if meta.get("snapshot"):
        lines.append(f"\npywasm createNode memory snapshot: {meta['snapshot']}")
    return "\n".join(lines) + "\n"


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", type=float, default=8.0, help="echo size, MiB (default 8)")
    ap.add_argument("--chunk", type=int, default=65536)
    ap.add_argument("--browser", default="chromium", choices=["chromium", "firefox"])
    ap.add_argument("--site", default=str(SITE), help="the built site to copy (default .cache/site)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--json-out", default=None, help="also write every round and the medians (JSON) to this file")
    ap.add_argument("--out", default=str(RESULTS / "webrtc_p2p_latest.md"), help="markdown path "
                    "(default results/webrtc_p2p_latest.md)")
    ap.add_argument("--append", action="store_true", help="append to --out instead of replacing it "
                    "(e.g. a Firefox run after the Chromium one)")
    args = ap.parse_args()
    size = int(args.size * MIB)
    src = Path(args.site)
    require(src / "pywasm.mjs", f"site bundle ({src}/pywasm.mjs)")
    site = bench_site(src)
    meta: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "rounds": args.rounds, "size_mib": args.size, "host": f"{platform.machine()}, {os.cpu_count()} cores",
        "loadavg_before": _loadavg(),
        "command": ".venv/bin/python benchmarks/webrtc_p2p_run.py " + " ".join(sys.argv[1:]),
    }
    pw: list[Any] = []

    def playwright() -> Any:
        if not pw:
            pw.append(browsers.start_playwright())
        return pw[0]

    # every round holds one reservation per stack from 127.0.0.1 (the default allows 8 per IP)
    relay = Relay(site=site, extra_args=["--relay-max-reservations-per-ip", "64"]).start()
    runs: dict[str, list[dict[str, Any]]] = {"pywasm": [], "js": []}
    failures: dict[str, list[str]] = {"pywasm": [], "js": []}
    browser = None
    try:
        browser = browsers.launch(args.browser, playwright)
        meta["browser"] = f"{browsers.LABELS[args.browser]} {browsers.version_of(args.browser, browser)}"
        for i in range(args.rounds + 1):  # round 0 warms the relay and the browser; not counted
            for impl in ("pywasm", "js"):
                tag = "warm-up" if i == 0 else f"round {i}"
                try:
                    r = one_round(browser, impl, relay, size, args.chunk)
                except RuntimeError as exc:
                    # a failed attempt is a result too: counted, reported, left out of the medians
                    print(f"{tag} {impl:6s}: FAILED {str(exc)[:1500]}", flush=True)
                    if i > 0:
                        failures[impl].append(str(exc).split("\n")[0][:300])
                    continue
                e = f"{r['echo_mib_s']:.2f} MiB/s" if "echo_mib_s" in r else f"ECHO FAILED {r.get('echo_error', '')[:200]}"
                if r.get("dial_stages"):
                    print("    pywasm dial stages [label, start ms, ms]: " + json.dumps(r["dial_stages"]), flush=True)
                print(f"{tag} {impl:6s}: load->direct {r['load_to_direct_ms']:.0f} ms (A booted {r['a_booted_ms']:.0f}, "
                      f"listening {r['a_listening_ms']:.0f}, B booted {r['b_booted_ms']:.0f}, dial {r['b_dial_ms']:.0f}, "
                      f"handoff {r['handoff_ms']:.0f}), echo {e}", flush=True)
                if impl == "pywasm" and r.get("timings", {}).get("B"):
                    meta["snapshot"] = r["timings"]["B"].get("snapshot")
                if i > 0:
                    runs[impl].append(r)
    finally:
        if browser is not None:
            browser.close()
        if pw:
            pw[0].stop()
        relay.stop()
    meta["loadavg_after"] = _loadavg()
    s = summarize(runs)
    s["failed_rounds"] = failures
    md = render(s, meta)
    print()
    print(json.dumps({"meta": meta, "summary": {k: {m: v["median"] for m, v in d.items() if isinstance(v, dict)}
                                                 for k, d in s.items()}}, indent=1))
    print(md)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"meta": meta, "summary": s, "runs": runs}, indent=1) + "\n")
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        out = Path(args.out)
        if args.append and out.exists():
            md = out.read_text() + "\n" + md
        out.write_text(md)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
