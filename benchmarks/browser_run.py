"""pywasm vs js-libp2p in the browser, side by side in one run, in the same Chromium.

    .venv/bin/python benchmarks/browser_run.py [--rounds N] [--size MiB] [--no-warm]

One ``pywasm-relay`` (serving .cache/site/; run ``bash scripts/build_site.sh`` first) and
one headless Chromium (/usr/bin/chromium via Playwright, as in e2e/). Each round, for each
implementation in turn (interleaved, so a noisy moment hits both alike), in a NEW browser
context (cold HTTP and code caches):

* page load -> first ping: ``page.goto`` of a bench page served from the relay's origin;
  the page boots its stack (pywasm: ``createNode()`` incl. Pyodide; js-libp2p: the esbuild
  bundle of benchmarks/peers/browser_js/ + ``createLibp2p``), dials the relay over /ws and
  pings once. The figure is ``performance.now()`` when the ping resolved, i.e. ms since
  the navigation started. Then the same page is loaded again in the same context ("warm":
  HTTP cache and Chromium's compiled-wasm cache filled).
* echo throughput: in the cold page, over the already open connection, a new
  /echo/1.0.0 stream to the relay; SIZE random bytes written while the answer is read to
  EOF, compared byte for byte; MiB/s = SIZE / (stream open .. last byte). pywasm does it
  in Python (host.new_stream, write, close_write, read to EOF) through ``node.pyodide``;
  js-libp2p with ``dialProtocol`` + ``stream.send``/``close``/``for await``.
  Also the CPU time (user + system, from /proc) every process this benchmark started
  (Chromium's browser, renderer, network and GPU processes, and the relay) used during
  the echo: on a shared, loaded machine that is steadier than MiB/s, and it is what a
  stack costs whatever else runs.

Prints a table (medians, spread, ratios, PASS/MISS for the targets) and writes
benchmarks/results/browser_latest.json and .md. No exit code depends on a figure.
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
JS_SRC = HERE / "peers" / "browser_js"
JS_OUT = ROOT / ".cache" / "bench" / "browser-js"
MIB = 1 << 20

sys.path.insert(0, str(ROOT))
from benchmarks._common import page_echo  # noqa: E402
from e2e.harness import CHROMIUM, CHROMIUM_ARGS, SITE, Relay, require, run_js  # noqa: E402

# goals (reported, never gating anything)
TARGET_BOOT_MS = 3000.0   # pywasm: navigation -> first ping RTT
TARGET_TPUT_VS_JS = 1.0   # pywasm echo throughput >= js-libp2p's in the same browser

BOOT_TIMEOUT = 90.0
ECHO_TIMEOUT = float(os.environ.get("BENCH_ECHO_TIMEOUT", 120))

PYWASM_PAGE = """<!doctype html><meta charset="utf-8"><title>pywasm bench</title>
<script type="module">
import { createNode } from '/pywasm.mjs';
const addr = new URLSearchParams(location.search).get('addr');
window.benchResult = (async () => {
  const node = await createNode({ stdout: () => {}, stderr: (s) => console.warn(s) });
  const pingMs = await node.ping(addr);
  const atMs = performance.now();
  window.benchNode = node;
  return { pingMs, atMs, timings: node.timings };
})();
</script>"""

JS_PAGE = """<!doctype html><meta charset="utf-8"><title>js-libp2p bench</title>
<script type="module">
import '/bench/jsbench.mjs';
const addr = new URLSearchParams(location.search).get('addr');
window.benchResult = window.jsbench.firstPing(addr);
</script>"""

# The in-page echo (benchmarks/_common.page_echo) to the relay: dialed first (already
# connected: the page pinged it), then a new stream on that connection, timed.
ECHO_OPENER_PY = r'''
async def _bench_opener(host, addr):
    await host.dial(addr)
    return lambda: host.new_stream(addr, ["/echo/1.0.0"])
'''

JS_ECHO_JS = "return await window.jsbench.echo(arg.target, arg.size, arg.chunk)"


def build_js_page() -> Path:
    require(ROOT / "node_modules" / "esbuild" / "package.json", "esbuild (node_modules)")
    res = subprocess.run(["node", str(JS_SRC / "build.mjs"), str(JS_OUT)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise SystemExit(f"js bench page build failed:\n{res.stdout}\n{res.stderr}")
    return JS_OUT / "jsbench.mjs"


def bench_site() -> Path:
    """.cache/bench/site: .cache/site (hard-linked) plus bench/ with the two pages and
    the js bundle, so the relay serves both stacks from one origin. (Pages fulfilled by
    Playwright routes are not "local" to Chromium: their WebSockets to 127.0.0.1 are blocked
    by the local-network-access checks.)"""
    site = ROOT / ".cache" / "bench" / "site"
    if site.exists():
        shutil.rmtree(site)
    # hard links (the relay refuses symlinks that leave its root); copies if that fails
    try:
        shutil.copytree(SITE, site, copy_function=os.link)
    except OSError:
        shutil.rmtree(site, ignore_errors=True)
        shutil.copytree(SITE, site)
    bench = site / "bench"
    bench.mkdir(exist_ok=True)
    (bench / "pywasm.html").write_text(PYWASM_PAGE)
    (bench / "js.html").write_text(JS_PAGE)
    (bench / "jsbench.mjs").write_bytes(build_js_page().read_bytes())
    return site


def _descendants() -> set[int]:
    """PIDs of every process started (transitively) by this one: Chromium and the relay."""
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    parent[int(name)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    me, out = os.getpid(), set()
    for pid in parent:
        p, hops = pid, 0
        while p in parent and p > 1 and hops < 64:
            if parent[p] == me:
                out.add(pid)
                break
            p, hops = parent[p], hops + 1
    return out


def _cpu_by_pid() -> dict[int, float] | None:
    """CPU seconds (user + system) of each descendant process; None without /proc."""
    if not os.path.isdir("/proc"):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for pid in _descendants():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError, IndexError):
            pass
    return out


def _cpu_used(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
    if before is None or after is None:
        return None
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def _boot(page: Any, url: str, log: list[str]) -> dict[str, Any]:
    page.goto(url, wait_until="load", timeout=BOOT_TIMEOUT * 1000)
    page.wait_for_function("window.benchResult !== undefined", timeout=BOOT_TIMEOUT * 1000)
    res = run_js(page, "return await window.benchResult", None, BOOT_TIMEOUT)
    if not res["ok"]:
        raise RuntimeError(f"{url}: {res['error']}\n" + "\n".join(log[-30:]))
    return res["value"]


def one_round(browser: Any, impl: str, relay: Relay, size: int, chunk: int,
              warm: bool) -> dict[str, Any]:
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        log: list[str] = []
        page.on("console", lambda m: log.append(f"console.{m.type}: {m.text}"))
        page.on("pageerror", lambda e: log.append(f"PAGE ERROR: {e}"))
        url = f"{relay.url}bench/{impl}.html?addr={quote(relay.ws_addr, safe='')}"
        out: dict[str, Any] = {"cold": _boot(page, url, log)}
        body, arg = page_echo(impl, ECHO_OPENER_PY, JS_ECHO_JS, relay.ws_addr, size, chunk)
        cpu0 = _cpu_by_pid()
        res = run_js(page, body, arg, ECHO_TIMEOUT)
        cpu_s = _cpu_used(cpu0, _cpu_by_pid())
        if res["ok"]:
            echo = res["value"]
            if not echo["ok"] or echo["bytes"] != size:
                raise RuntimeError(f"{impl} echo: {echo['bytes']} bytes back, byte-exact={echo['ok']}")
            echo["mib_s"] = size / MIB / echo["seconds"]
            if cpu_s is not None:
                echo["cpu_s"] = cpu_s
        elif res.get("timeout"):
            # a stalled transfer is a result too: recorded, left out of the median
            echo = {"stalled": True, "error": res["error"]}
            if impl == "pywasm":
                echo["progress"] = page.evaluate(
                    "() => String(window.benchNode.pyodide.runPython('str(_bench_progress)'))")
        else:
            raise RuntimeError(f"{impl} echo: {res['error']}\n" + "\n".join(log[-30:]))
        out["echo"] = echo
        if warm:
            page2 = ctx.new_page()
            out["warm"] = _boot(page2, url, log)
        return out
    finally:
        ctx.close()


def _med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _spread(xs: list[float]) -> str:
    return f"{min(xs):.0f}-{max(xs):.0f}" if xs else "-"


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    s: dict[str, Any] = {}
    for impl, rs in runs.items():
        d: dict[str, Any] = {
            "boot_to_ping_ms": [r["cold"]["atMs"] for r in rs],
            "first_ping_rtt_ms": [r["cold"]["pingMs"] for r in rs],
            "echo_mib_s": [r["echo"]["mib_s"] for r in rs if "mib_s" in r["echo"]],
        }
        cpu = [r["echo"]["cpu_s"] for r in rs if "cpu_s" in r["echo"]]
        if cpu:
            d["echo_cpu_s"] = cpu
        if all("warm" in r for r in rs):
            d["warm_boot_to_ping_ms"] = [r["warm"]["atMs"] for r in rs]
        if impl == "pywasm":
            for k in ("runtimeMs", "installMs", "importMs", "hostMs", "totalMs"):
                d[f"createNode_{k}"] = [r["cold"]["timings"][k] for r in rs]
                if all("warm" in r for r in rs):
                    d[f"warm_createNode_{k}"] = [r["warm"]["timings"][k] for r in rs]
        s[impl] = {k: {"median": _med(v), "runs": v} for k, v in d.items()}
        s[impl]["echo_stalls"] = [r["echo"] for r in rs if r["echo"].get("stalled")]
    return s


def render(s: dict[str, Any], meta: dict[str, Any]) -> tuple[str, str]:
    p, j = s["pywasm"], s["js"]
    rows = [
        ("page load -> first ping (cold), ms", "boot_to_ping_ms", "{:.0f}"),
        ("page load -> first ping (warm cache), ms", "warm_boot_to_ping_ms", "{:.0f}"),
        ("first ping RTT, ms", "first_ping_rtt_ms", "{:.1f}"),
        (f"echo {meta['size_mib']} MiB page -> relay /ws, MiB/s", "echo_mib_s", "{:.1f}"),
        ("echo CPU time, all browser processes + relay, s", "echo_cpu_s", "{:.2f}"),
    ]
    head = "| metric | pywasm | js-libp2p | pywasm / js | pywasm runs | js runs |"
    lines = [head, "|---|---|---|---|---|---|"]
    for label, key, fmt in rows:
        if key not in p or key not in j:
            continue
        a, b = p[key]["median"], j[key]["median"]
        lines.append(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {a / b:.2f} | "
                     f"{', '.join(fmt.format(x) for x in p[key]['runs'])} | "
                     f"{', '.join(fmt.format(x) for x in j[key]['runs'])} |")
    stages = [k for k in ("runtimeMs", "installMs", "importMs", "hostMs", "totalMs") if f"createNode_{k}" in p]
    lines.append("")
    lines.append("pywasm createNode stages (median ms, cold" + (" / warm" if "warm_createNode_totalMs" in p else "") + "): "
                 + ", ".join(f"{k[:-2]} {p['createNode_' + k]['median']:.0f}"
                             + (f"/{p['warm_createNode_' + k]['median']:.0f}" if "warm_createNode_" + k in p else "")
                             for k in stages))
    for name, d in (("pywasm", p), ("js-libp2p", j)):
        for st in d["echo_stalls"]:
            lines.append(f"{name} echo STALLED (no progress within {ECHO_TIMEOUT:.0f} s, left out of the median)"
                         + (f": {st['progress']}" if st.get("progress") else ""))
    boot = p["boot_to_ping_ms"]["median"]
    ratio = p["echo_mib_s"]["median"] / j["echo_mib_s"]["median"]
    t1 = "PASS" if boot <= TARGET_BOOT_MS else "MISS"
    t2 = "PASS" if ratio >= TARGET_TPUT_VS_JS else "MISS"
    lines.append("")
    lines.append(f"target: pywasm page load -> first ping <= {TARGET_BOOT_MS:.0f} ms (cold): {boot:.0f} ms  {t1}")
    lines.append(f"target: pywasm echo throughput >= js-libp2p's (x{TARGET_TPUT_VS_JS:g}): x{ratio:.2f}  {t2}")
    meta["targets"] = {"boot_to_ping": t1, "throughput_vs_js": t2}
    header = (f"# Browser benchmarks ({meta['date']}, {meta['rounds']} rounds, Chromium {meta['browser_version']}, "
              f"{meta['host']}, loadavg {meta['loadavg_before']} -> {meta['loadavg_after']})\n\n"
              "Medians; cold = new browser context (empty caches); warm = the same page loaded again in "
              "that context. Generated by `benchmarks/browser_run.py`.\n\n")
    text = "\n".join(lines)
    return text, header + text + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=float, default=16, help="echo payload, MiB (default 16)")
    ap.add_argument("--chunk", type=int, default=65536, help="write size, bytes (both stacks)")
    ap.add_argument("--no-warm", action="store_true", help="skip the warm-cache reload")
    ap.add_argument("--no-write", action="store_true", help="do not write results/browser_latest.*")
    args = ap.parse_args()
    size = int(args.size * MIB)

    require(SITE / "pywasm.mjs", "site bundle (.cache/site/pywasm.mjs)")
    require(CHROMIUM, "Chromium")
    site = bench_site()
    from playwright.sync_api import sync_playwright

    meta: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "rounds": args.rounds, "size_mib": args.size, "chunk": args.chunk,
        "host": f"{platform.machine()}, {os.cpu_count()} cores", "loadavg_before": _loadavg(),
    }
    relay = Relay(site=site).start()
    runs: dict[str, list[dict[str, Any]]] = {"pywasm": [], "js": []}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            meta["browser_version"] = browser.version
            try:
                for i in range(args.rounds):
                    for impl in ("pywasm", "js"):
                        r = one_round(browser, impl, relay, size, args.chunk, not args.no_warm)
                        runs[impl].append(r)
                        w = f", warm {r['warm']['atMs']:.0f} ms" if "warm" in r else ""
                        e = (f"{r['echo']['mib_s']:.1f} MiB/s" + (f" (cpu {r['echo']['cpu_s']:.2f} s)" if "cpu_s" in r["echo"] else "")
                             if "mib_s" in r["echo"]
                             else f"STALLED {r['echo'].get('progress', '')}")
                        print(f"round {i + 1} {impl:6s}: load->ping {r['cold']['atMs']:.0f} ms "
                              f"(rtt {r['cold']['pingMs']:.1f} ms{w}), echo {e}"
                              + (f"  createNode {r['cold']['timings']}" if impl == "pywasm" else ""), flush=True)
            finally:
                browser.close()
    finally:
        relay.stop()
    meta["loadavg_after"] = _loadavg()
    s = summarize(runs)
    text, md = render(s, meta)
    print()
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "browser_latest.json").write_text(json.dumps({"meta": meta, "summary": s}, indent=2) + "\n")
        (RESULTS / "browser_latest.md").write_text(md)
        print(f"\nwrote {RESULTS / 'browser_latest.json'} and browser_latest.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
