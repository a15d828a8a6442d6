"""WebTransport side by side in one run: pywasm page vs js-libp2p page, tuned vs naive relay
(and the aiopquic backend with ``--netns``).

    .venv/bin/python benchmarks/webtransport_run.py [--rounds N] [--size MiB]
    .venv/bin/python benchmarks/webtransport_run.py --netns [--rounds N] [--size MiB]   # root

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
  concurrently and compared byte for byte; MiB/s = SIZE / (stream open .. last byte);
* relay CPU: the relay process's user+system CPU time during the echo (from /proc), as
  CPU ms per MiB echoed. The relay is CPU-bound, so its throughput is the inverse of
  this, and it moves far less than wall-clock MiB/s when other jobs load the cores
  (measured for the tuned relay: ~59 ms/MiB at load 5-10 and 72-86 at load 19-32, while
  its MiB/s fell from 7.5-11 to 1.6-2.5).

``--netns`` (root) re-runs the whole benchmark under ``unshare -n`` with only ``lo`` up and
adds a third relay, ``aiopquic`` (``--webtransport-backend aiopquic`` from
.cache/venv-relay-pquic, scripts/setup_pquic.sh): aiopquic binds its UDP port on every
address, so it is measured only where nothing else can reach it. Ratios then include
aiopquic/naive.

``--relays``/``--pages`` pick a subset; ``--variant NAME:VAR=VALUE`` adds a tuned relay
started with extra environment variables (an A/B of a change behind a switch, in the same
run); ``--profile DIR`` records each relay with py-spy (collapsed stacks,
``DIR/<relay>.txt``) for the whole run.

Prints medians and ratios (tuned/naive and aiopquic/naive per page, pywasm/js per relay)
and writes benchmarks/results/webtransport_latest.json (``--out`` elsewhere). No exit code
depends on a figure.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import subprocess
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


def _relay(naive: bool, env: dict[str, str] | None = None) -> Relay:
    """A relay with WebTransport; ``env`` adds variables for this relay only (A/B variants)."""
    extra = {"PYWASM_RELAY_WT_NAIVE": "1"} if naive else {}
    extra.update(env or {})
    keys = set(extra) | {"PYWASM_RELAY_WT_NAIVE"}
    before = {k: os.environ.get(k) for k in keys}
    os.environ.pop("PYWASM_RELAY_WT_NAIVE", None)
    os.environ.update(extra)
    try:
        return Relay(extra_args=["--listen", WT_LISTEN]).start()  # Relay passes os.environ on
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _pquic_relay(work: Path) -> Any:
    """The relay with ``--webtransport-backend aiopquic`` (only inside the --netns namespace)."""
    from tests.native.pquic_scenarios import PQUIC_PYTHON, Relay as PquicRelay

    if not PQUIC_PYTHON.exists():
        raise SystemExit(f"{PQUIC_PYTHON} missing: run `bash scripts/setup_pquic.sh` (needs a CPython >= 3.12)")
    r = PquicRelay(work, site=SITE, listen=("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws", WT_LISTEN), name="aiopquic")
    r.startup()
    return r


def _reexec_in_netns(argv: list[str]) -> int:
    """Run this benchmark again in a private network namespace (only lo), as root."""
    if os.geteuid() != 0:
        raise SystemExit("--netns needs root (unshare -n)")
    rest = [a for a in argv if a != "--netns"]
    return subprocess.call(["unshare", "-n", "--", sys.executable, str(Path(__file__).resolve()), "--in-netns", *rest])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=float, default=8.0, help="echo size in MiB (default 8)")
    ap.add_argument("--relays", default="", help="comma-separated subset of naive,tuned,aiopquic "
                    "(default naive,tuned; with --netns also aiopquic)")
    ap.add_argument("--netns", action="store_true", help="run in a private network namespace (root) with the aiopquic relay too")
    ap.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(RESULTS / "webtransport_latest.json"), help="results JSON (default %(default)s)")
    ap.add_argument("--pages", default="pywasm,js", help="comma-separated subset of pywasm,js")
    ap.add_argument("--profile", default="", help="directory for py-spy profiles of the relays")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:VAR=VALUE[,VAR=VALUE]",
                    help="also measure a tuned relay started with these environment variables (A/B)")
    args = ap.parse_args(argv)
    if args.netns:
        return _reexec_in_netns(list(sys.argv[1:] if argv is None else argv))
    if args.in_netns:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    relay_names = args.relays or ("naive,tuned,aiopquic" if args.in_netns else "naive,tuned")
    want_relays = [r for r in ("naive", "tuned", "aiopquic") if r in relay_names.split(",")]
    if "aiopquic" in want_relays and not args.in_netns:
        raise SystemExit("the aiopquic relay binds every address: measure it with --netns")
    want_pages = [p for p in ("pywasm", "js") if p in args.pages.split(",")]
    size = int(args.size * MIB)
    require(SITE / "pywasm.mjs", "site bundle (run bash scripts/build_site.sh)")
    from playwright.sync_api import sync_playwright

    js_server = StaticServer(build_js_page())
    import tempfile

    pquic_work = tempfile.TemporaryDirectory(prefix="wt-bench-pquic-")
    relays = {name: (_pquic_relay(Path(pquic_work.name)) if name == "aiopquic" else _relay(name == "naive"))
              for name in want_relays}
    for spec in args.variant:
        name, _, assigns = spec.partition(":")
        relays[name] = _relay(False, dict(a.split("=", 1) for a in assigns.split(",") if a))
    samples: dict[str, dict[str, list[float]]] = {}
    spies: list[subprocess.Popen[bytes]] = []
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        for rname, relay in relays.items():
            assert relay.proc is not None
            spies.append(subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(relay.proc.pid), "--format", "raw",
                 "--rate", "200", "--nonblocking", "--output", str(Path(args.profile) / f"{rname}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            pages: dict[tuple[str, str], Any] = {}
            for rname, relay in relays.items():
                if "pywasm" in want_pages:
                    pg = browser.new_context().new_page()
                    boot_node(pg, relay.url)
                    pages[(rname, "pywasm")] = pg
                if "js" in want_pages:
                    pg = browser.new_context().new_page()
                    pg.goto(js_server.url)
                    must(pg, "while (!window.jsp2p) await new Promise(r => setTimeout(r, 20)); return true", timeout=30)
                    pages[(rname, "js")] = pg
            for rnd in range(args.rounds):
                for (rname, impl), pg in pages.items():
                    addr = wt_addr(relays[rname])
                    key = f"{rname}/{impl}"
                    s = samples.setdefault(key, {"setup_ms": [], "echo_mib_s": [], "relay_cpu_ms_per_mib": []})
                    pid = relays[rname].proc.pid  # type: ignore[union-attr]
                    if impl == "pywasm":
                        setup = must_py(pg, PY_SETUP, addr, timeout=60)
                        cpu0 = _cpu_seconds(pid)
                        echo = must_py(pg, PY_ECHO, [addr, size], timeout=600)
                    else:
                        setup = must(pg, JS_SETUP, addr, timeout=60)
                        cpu0 = _cpu_seconds(pid)
                        echo = must(pg, JS_ECHO, [addr, size], timeout=600)
                    # the window also covers the page preparing its payload (before its t0),
                    # while the relay idles: its CPU is the echo's
                    s["relay_cpu_ms_per_mib"].append((_cpu_seconds(pid) - cpu0) * 1000 / (size / MIB))
                    if not (echo["equal"] and echo["received"] == size):
                        raise AssertionError(f"{key}: echo came back wrong: {echo}")
                    s["setup_ms"].append(float(setup))
                    s["echo_mib_s"].append(size / MIB / (echo["ms"] / 1000))
                    print(f"round {rnd + 1} {key:14s} setup {setup:7.1f} ms  echo {s['echo_mib_s'][-1]:6.2f} MiB/s"
                          f"  relay CPU {s['relay_cpu_ms_per_mib'][-1]:6.1f} ms/MiB", flush=True)
            browser.close()
    finally:
        for spy in spies:
            spy.send_signal(2)  # SIGINT: py-spy writes its profile and exits
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
        for r in relays.values():
            r.stop()
        js_server.close()
        pquic_work.cleanup()

    med = {k: {m: _median(v) for m, v in d.items()} for k, d in samples.items()}
    print(f"\nWebTransport, {args.rounds} rounds, echo {args.size:g} MiB, medians (same run, same Chromium)")
    print(f"{'relay/page':16s} {'setup ms':>9s} {'echo MiB/s':>11s} {'relay CPU ms/MiB':>17s}")
    for k, d in med.items():
        print(f"{k:16s} {d['setup_ms']:9.1f} {d['echo_mib_s']:11.2f} {d['relay_cpu_ms_per_mib']:17.1f}")
    ratios: dict[str, float] = {}
    fast = [r for r in want_relays if r != "naive"] if "naive" in want_relays else []
    for impl in want_pages:
        for r in fast:
            ratios[f"{impl}: {r}/naive echo"] = med[f"{r}/{impl}"]["echo_mib_s"] / med[f"naive/{impl}"]["echo_mib_s"]
            ratios[f"{impl}: naive/{r} relay CPU per MiB"] = (med[f"naive/{impl}"]["relay_cpu_ms_per_mib"]
                                                             / med[f"{r}/{impl}"]["relay_cpu_ms_per_mib"])
    for rname in want_relays if len(want_pages) == 2 else ():
        ratios[f"{rname}: pywasm/js echo"] = med[f"{rname}/pywasm"]["echo_mib_s"] / med[f"{rname}/js"]["echo_mib_s"]
        ratios[f"{rname}: pywasm/js setup"] = med[f"{rname}/pywasm"]["setup_ms"] / med[f"{rname}/js"]["setup_ms"]
    for k, v in ratios.items():
        print(f"  {k:38s} {v:5.2f}x")
    for impl in want_pages:
        for rn in fast:
            r = ratios[f"{impl}: {rn}/naive echo"]
            print(f"relay speedup target >= {TARGET_SPEEDUP:g}x, {rn}, {impl} page: "
                  f"{'PASS' if r >= TARGET_SPEEDUP else 'MISS'} "
                  f"({r:.2f}x; relay CPU per MiB {ratios[f'{impl}: naive/{rn} relay CPU per MiB']:.2f}x less)")
    out = {
        "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "rounds": args.rounds, "size_bytes": size, "samples": samples, "medians": med, "ratios": ratios,
        "load_avg": os.getloadavg(), "relays": want_relays,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
