"""pywasm in three browsers side by side: Pyodide boot and page load -> first ping.

    .venv/bin/python benchmarks/browser_matrix_run.py [--rounds N] [--browsers chromium,firefox,webkit]
                                                      [--echo MiB] [--no-warm] [--no-write]

One ``pywasm-relay`` serving .cache/site/ plus the bench page of benchmarks/browser_run.py
(its ``PYWASM_PAGE`` and ``_boot`` are reused, so the figures mean the same thing), and the
browsers of e2e/ (e2e/browsers.py: Debian Chromium and Firefox ESR through Playwright,
WebKitGTK through WebKitWebDriver). All browsers stay open and rounds interleave them
(round 1 of each browser, then round 2, ...), so a noisy moment hits them alike. Per round
and browser, in a NEW context (empty caches; in WebKitGTK a new MiniBrowser):

* page load -> first ping: ``performance.now()`` when ``node.ping(relay)`` resolved, i.e. ms
  since the navigation started; the page runs ``createNode()`` (Pyodide boot + wheel install +
  host) then pings the relay over /ws;
* Pyodide boot: createNode's ``runtimeMs`` stage (``loadPyodide()``), and its total;
* warm: the same page navigated again in that context (HTTP and compiled-wasm caches filled);
* with ``--echo N``: N MiB echoed page -> relay over /ws through Python in the page (the
  ``ECHO_OPENER_PY`` of browser_run.py with benchmarks/_common.page_echo), MiB/s.

Prints a table (medians, every run) and writes benchmarks/results/browser_matrix_latest.json
and .md. No exit code depends on a figure.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
MIB = 1 << 20
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import browser_run  # noqa: E402  (PYWASM_PAGE, ECHO_OPENER_PY, _boot)
from benchmarks._common import page_echo  # noqa: E402
from e2e import browsers  # noqa: E402
from e2e.harness import SITE, Relay, require, run_js  # noqa: E402

SITE_OUT = ROOT / ".cache" / "bench" / "site-matrix"


def bench_site() -> Path:
    """.cache/site hard-linked (the relay refuses symlinks leaving its root) + bench/pywasm.html."""
    if SITE_OUT.exists():
        shutil.rmtree(SITE_OUT)
    try:
        shutil.copytree(SITE, SITE_OUT, copy_function=os.link)
    except OSError:
        shutil.rmtree(SITE_OUT, ignore_errors=True)
        shutil.copytree(SITE, SITE_OUT)
    (SITE_OUT / "bench").mkdir(exist_ok=True)
    (SITE_OUT / "bench" / "pywasm.html").write_text(browser_run.PYWASM_PAGE)
    return SITE_OUT


def one_round(browser: Any, relay: Relay, warm: bool, echo_bytes: int) -> dict[str, Any]:
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        log: list[str] = []
        page.on("console", lambda m: log.append(f"console.{m.type}: {m.text}"))
        page.on("pageerror", lambda e: log.append(f"PAGE ERROR: {e}"))
        url = f"{relay.url}bench/pywasm.html?addr={quote(relay.ws_addr, safe='')}"
        out: dict[str, Any] = {"cold": browser_run._boot(page, url, log)}
        if echo_bytes:
            body, arg = page_echo("pywasm", browser_run.ECHO_OPENER_PY, "", relay.ws_addr, echo_bytes, 65536)
            res = run_js(page, body, arg, browser_run.ECHO_TIMEOUT)
            if res["ok"] and res["value"]["ok"] and res["value"]["bytes"] == echo_bytes:
                out["echo_mib_s"] = echo_bytes / MIB / res["value"]["seconds"]
            else:
                out["echo_error"] = res.get("error") or f"echo not byte-exact: {res.get('value')}"
        if warm:
            out["warm"] = browser_run._boot(page, url, log)
        return out
    finally:
        ctx.close()


METRICS = (
    ("page load -> first ping, cold, ms", lambda r: r["cold"]["atMs"], "{:.0f}"),
    ("page load -> first ping, warm cache, ms", lambda r: r["warm"]["atMs"], "{:.0f}"),
    ("Pyodide boot (loadPyodide), cold, ms", lambda r: r["cold"]["timings"]["runtimeMs"], "{:.0f}"),
    ("Pyodide boot (loadPyodide), warm, ms", lambda r: r["warm"]["timings"]["runtimeMs"], "{:.0f}"),
    ("createNode total, cold, ms", lambda r: r["cold"]["timings"]["totalMs"], "{:.0f}"),
    ("first ping RTT, ms", lambda r: r["cold"]["pingMs"], "{:.1f}"),
    ("echo page -> relay /ws, MiB/s", lambda r: r["echo_mib_s"], "{:.1f}"),
)


def column(runs: list[dict[str, Any]], get: Any) -> list[float]:
    out = []
    for r in runs:
        try:
            out.append(float(get(r)))
        except (KeyError, TypeError):
            pass
    return out


def render(runs: dict[str, list[dict[str, Any]]], meta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    names = list(runs)
    head = "| metric (median) | " + " | ".join(f"{browsers.LABELS[n]} {meta['versions'].get(n, '')}" for n in names)
    lines = [head + " | runs |", "|---" + "|---:" * len(names) + "|---|"]
    summary: dict[str, Any] = {}
    for label, get, fmt in METRICS:
        cols = {n: column(runs[n], get) for n in names}
        if not any(cols.values()):
            continue
        summary[label] = {n: {"median": statistics.median(v) if v else None, "runs": v} for n, v in cols.items()}
        cells = [fmt.format(statistics.median(v)) if v else "-" for v in cols.values()]
        every = "; ".join(f"{n}: " + ", ".join(fmt.format(x) for x in v) for n, v in cols.items() if v)
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {every} |")
    for n in names:
        for r in runs[n]:
            if "echo_error" in r:
                lines.append(f"\n{n} echo failed: {r['echo_error'][:200]}")
    return "\n".join(lines), summary


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--browsers", default=",".join(browsers.BROWSERS))
    ap.add_argument("--echo", type=float, default=0.0, help="also echo this many MiB per round (default 0: off)")
    ap.add_argument("--no-warm", action="store_true", help="skip the warm-cache reload")
    ap.add_argument("--no-write", action="store_true", help="do not write results/browser_matrix_latest.*")
    args = ap.parse_args()
    names = browsers.selected([args.browsers])
    require(SITE / "pywasm.mjs", "site bundle (.cache/site/pywasm.mjs)")
    site = bench_site()
    meta: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "rounds": args.rounds, "host": f"{platform.machine()}, {os.cpu_count()} cores",
        "loadavg_before": _loadavg(), "versions": {}, "echo_mib": args.echo,
    }
    pw: list[Any] = []

    def playwright() -> Any:
        if not pw:
            pw.append(browsers.start_playwright())
        return pw[0]

    relay = Relay(site=site).start()
    opened: dict[str, Any] = {}
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    try:
        for n in names:
            t0 = time.monotonic()
            opened[n] = browsers.launch(n, playwright)
            meta["versions"][n] = browsers.version_of(n, opened[n])
            print(f"{n}: {meta['versions'][n]} launched in {time.monotonic() - t0:.1f} s", flush=True)
        for i in range(args.rounds):
            for n in names:
                r = one_round(opened[n], relay, not args.no_warm, int(args.echo * MIB))
                runs[n].append(r)
                t = r["cold"]["timings"]
                w = f", warm {r['warm']['atMs']:.0f} ms (pyodide {r['warm']['timings']['runtimeMs']:.0f})" if "warm" in r else ""
                e = f", echo {r['echo_mib_s']:.1f} MiB/s" if "echo_mib_s" in r else ""
                print(f"round {i + 1} {n:8s}: load->ping {r['cold']['atMs']:.0f} ms (pyodide {t['runtimeMs']:.0f}, "
                      f"createNode {t['totalMs']:.0f}, rtt {r['cold']['pingMs']:.1f} ms){w}{e}", flush=True)
    finally:
        for b in opened.values():
            try:
                b.close()
            except Exception:
                pass
        if pw:
            pw[0].stop()
        relay.stop()
    meta["loadavg_after"] = _loadavg()
    table, summary = render(runs, meta)
    print()
    print(table)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "browser_matrix_latest.json").write_text(
            json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=1) + "\n")
        (RESULTS / "browser_matrix_latest.md").write_text(
            f"# pywasm per browser ({meta['date']}, {meta['rounds']} rounds, {meta['host']}, "
            f"loadavg {meta['loadavg_before']} -> {meta['loadavg_after']})\n\n"
            "Medians; cold = new browser context (WebKitGTK: new MiniBrowser), warm = the same page "
            "navigated again. Generated by `benchmarks/browser_matrix_run.py`.\n\n" + table + "\n")
        print(f"\nwrote {RESULTS / 'browser_matrix_latest.json'} and browser_matrix_latest.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
