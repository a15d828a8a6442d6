"""Many large echoes from one Chromium page to pywasm-relay, with a state dump on a stall.

    .venv/bin/python benchmarks/stall_repro.py [--rounds 20] [--size 16] [--stall 5]

One ``pywasm-relay`` (serving the bench site, see browser_run.py) and one headless Chromium
page running ``createNode()``. Each round: a new /echo/1.0.0 stream over the same /ws
connection, SIZE random bytes written (in --chunk pieces) while the echo is read to EOF and
compared byte for byte. The harness polls the page's progress; when neither the written
nor the read count moves for --stall seconds it dumps

* the page side: every live muxed connection (yamux windows, queued bytes, lock states),
  its Noise and WebSocket-shim state (bufferedAmount, bytes queued in JS, pending read)
  and the stack of every asyncio task;
* the relay side: the same, printed by the relay process on SIGUSR1 (installed by a
  wrapper that runs the relay's own ``main``);

then aborts the round (new page) and goes on. Exit status 1 if any round stalled.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MIB = 1 << 20
sys.path.insert(0, str(ROOT))
import e2e.harness as harness  # noqa: E402
from benchmarks._common import PAGE_ECHO_PY  # noqa: E402
from benchmarks.browser_run import bench_site  # noqa: E402
from e2e.harness import CHROMIUM, CHROMIUM_ARGS, Relay, must, run_js  # noqa: E402

# Introspection shared by both sides (the page runs it in Pyodide, the relay on SIGUSR1).
DUMP_PY = r'''
def _stall_dump():
    import asyncio, gc, io
    from pywasm.muxers.base import MuxedConnectionBase
    out = io.StringIO()
    p = lambda *a: print(*a, file=out)
    for o in gc.get_objects():
        if not isinstance(o, MuxedConnectionBase):
            continue
        s = o.session
        p(f"muxer {type(o).__name__} closed={o._closed} wlock={o._wlock.locked()} "
          f"flush_task={o._flush_task is not None and not o._flush_task.done()} "
          f"core_out={getattr(s, '_out_size', '?')}B/{len(getattr(s, '_out', []))} parts")
        for sid, st in getattr(s, "_streams", {}).items():
            ms = o._streams.get(sid)
            p(f"  stream {sid}: send_window={st.send_window} recv_window={st.recv_window} "
              f"target={st.target} pending_credit={st.pending_credit} core_buffered={st.buffered} "
              + (f"buf={len(ms._buf)} eof={ms._eof} wclosed={ms._write_closed} writable={ms._writable.is_set()} "
                 f"stream_wlock={ms._write_lock.locked()} proto={ms.protocol}" if ms else "no driver stream"))
        n = o._conn
        p(f"  noise: rlock={n._read_lock.locked()} wlock={n._write_lock.locked()} plain={len(n._plain)} "
          f"head={len(n._head) - n._head_pos if n._head else 0} partial={len(n._t.decoder._partial)}")
        r = n.raw
        line = f"  raw {type(r).__name__}: rlock={r._read_lock.locked()} wlock={r._write_lock.locked()} buf={len(r._buf)}"
        js = getattr(r, "_js", None)
        if js is not None:
            line += (f" js.bufferedAmount={js.bufferedAmount} js._queued={js._queued} "
                     f"js._chunks={js._chunks.length} js.waiter={bool(js._waiter)} js.ended={js._ended} "
                     f"readyState={js.readyState} failure={js.failure!r}")
        ws = getattr(r, "_ws", None)
        if ws is not None:
            tr = ws.transport
            line += f" ws.state={ws.state} write_buffer={tr.get_write_buffer_size()} reading={tr.is_reading()}"
            rm = getattr(ws, "recv_messages", None)
            if rm is not None:
                line += f" recv_frames={len(getattr(rm, 'frames', []))} paused={getattr(rm, 'paused', '?')}"
        p(line)
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:
        tasks = set()
    for t in tasks:
        coro = t.get_coro()
        p(f"task {t.get_name()} {getattr(coro, '__qualname__', coro)}")
        st = io.StringIO()
        t.print_stack(limit=12, file=st)
        p("    " + st.getvalue().replace("\n", "\n    "))
    return out.getvalue()
'''

# Relay wrapper: the relay's own main, plus a SIGUSR1 handler printing _stall_dump().
RELAY_WRAPPER = f'''#!{sys.executable}
import signal, sys
{DUMP_PY}
def _on_usr1(signum, frame):
    sys.stderr.write("=== RELAY DUMP ===\\n" + _stall_dump() + "=== END RELAY DUMP ===\\n")
    sys.stderr.flush()
signal.signal(signal.SIGUSR1, _on_usr1)
from pywasm_relay.app import main
sys.exit(main(sys.argv[1:]))
'''

PAGE_PY = DUMP_PY + PAGE_ECHO_PY + r'''
import asyncio, traceback

async def _bench_opener(host, addr):
    # the page pinged the relay at boot, so the connection is there
    return lambda: host.new_stream(addr, ["/echo/1.0.0"])

# Record any exception raised while *scheduling* a callback (a Future whose set_result
# fails there never wakes its waiter).
_stall_fails = []
_loop = asyncio.get_event_loop()
_orig_call_later = type(_loop).call_later
def _probe_call_later(self, delay, callback, *args, context=None):
    try:
        return _orig_call_later(self, delay, callback, *args, context=context)
    except BaseException as exc:
        if len(_stall_fails) < 5:
            _stall_fails.append(repr(exc)[:500] + " | " + "".join(traceback.format_stack(limit=8))[-1500:])
        raise
type(_loop).call_later = _probe_call_later

_stall = {"result": None, "error": None}

async def _stall_run(host, addr, size, chunk):
    _stall.update(result=None, error=None)
    try:
        _stall["result"] = await _bench_echo(host, addr, size, chunk)
    except BaseException as exc:
        _stall["error"] = repr(exc)
        raise

def _stall_start(host, addr, size, chunk):
    asyncio.ensure_future(_stall_run(host, addr, size, chunk))

def _stall_progress():
    return repr({**_bench_progress, **_stall})
'''

BOOT_JS = """
const { createNode } = await import('/pywasm.mjs');
const node = await createNode({ stdout: () => {}, stderr: (s) => console.warn(s) });
window.reproNode = node;
await node.ping(arg.addr);
node.pyodide.runPython(arg.code);
return true;
"""
START_JS = """
const py = window.reproNode.pyodide;
py.globals.get('_stall_start')(window.reproNode.host, arg.addr, arg.size, arg.chunk);
return true;
"""
PROGRESS_JS = "() => String(window.reproNode.pyodide.runPython('_stall_progress()'))"
STATS_JS = "() => JSON.stringify(globalThis.__mcStats)"
FAILS_JS = "() => String(window.reproNode.pyodide.runPython('repr(_stall_fails)'))"
NUDGE_JS = "() => window.reproNode.pyodide.runPython('import asyncio; asyncio.get_event_loop().call_soon(print, \\'nudge\\')')"
DUMP_JS = "() => String(window.reproNode.pyodide.runPython('_stall_dump()'))"


# Counts what goes through every MessageChannel (Pyodide's WebLoop schedules call_soon on
# one): messages posted vs handled, and exceptions escaping a handler.
CHANNEL_PROBE = """
(() => {
  const MC = globalThis.MessageChannel;
  const stats = globalThis.__mcStats = { posted: 0, handled: 0, thrown: 0, lastError: '', channels: 0 };
  globalThis.MessageChannel = class extends MC {
    constructor() {
      super();
      stats.channels++;
      const post = this.port2.postMessage.bind(this.port2);
      this.port2.postMessage = (...a) => { stats.posted++; return post(...a); };
      const p1 = this.port1;
      let h = null;
      Object.defineProperty(p1, 'onmessage', {
        get: () => h,
        set: (fn) => {
          h = fn;
          MessagePort.prototype.__lookupSetter__('onmessage').call(p1, (ev) => {
            stats.handled++;
            try { return fn(ev); } catch (e) { stats.thrown++; stats.lastError = String(e && e.stack || e); throw e; }
          });
        },
      });
    }
  };
})();
"""


PROBE_CHANNEL = False


def new_page(browser: Any, relay: Relay, log: list[str]) -> tuple[Any, Any]:
    ctx = browser.new_context()
    if PROBE_CHANNEL:
        ctx.add_init_script(CHANNEL_PROBE)
    page = ctx.new_page()
    page.on("console", lambda m: log.append(f"console.{m.type}: {m.text}"))
    page.on("pageerror", lambda e: log.append(f"PAGE ERROR: {e}"))
    page.goto(f"{relay.url}bench/repro.html")
    must(page, BOOT_JS, {"addr": relay.ws_addr, "code": PAGE_PY}, timeout=90)
    return ctx, page


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--size", type=float, default=16, help="MiB per echo")
    ap.add_argument("--chunk", type=int, default=65536, help="write size, bytes")
    ap.add_argument("--stall", type=float, default=5.0, help="seconds without progress = stall")
    ap.add_argument("--timeout", type=float, default=120.0, help="per-round bound")
    ap.add_argument("--fresh", action="store_true", help="a new browser context (and connection) every round")
    ap.add_argument("--probe-channel", action="store_true", help="count MessageChannel posts/handlings")
    args = ap.parse_args()
    global PROBE_CHANNEL
    PROBE_CHANNEL = args.probe_channel
    size = int(args.size * MIB)

    site = bench_site()
    (site / "bench" / "repro.html").write_text('<!doctype html><meta charset="utf-8"><title>repro</title>')
    wrapper = ROOT / ".cache" / "bench" / "relay_debug.py"
    wrapper.write_text(RELAY_WRAPPER)
    wrapper.chmod(0o755)
    harness.RELAY_BIN = wrapper  # Relay.start runs harness.RELAY_BIN
    relay = Relay(site=site).start()
    from playwright.sync_api import sync_playwright

    stalls, speeds = 0, []
    log: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            ctx, page = new_page(browser, relay, log)
            try:
                for i in range(1, args.rounds + 1):
                    must(page, START_JS, {"addr": relay.ws_addr, "size": size, "chunk": args.chunk})
                    t0 = last_t = time.monotonic()
                    last = ""
                    while True:
                        time.sleep(0.25)
                        prog = eval(page.evaluate(PROGRESS_JS))  # a repr of a dict of literals
                        if prog["result"] is not None or prog["error"] is not None:
                            break
                        key = f"{prog['written']}/{prog['read']}"
                        now = time.monotonic()
                        if key != last:
                            last, last_t = key, now
                        elif now - last_t >= args.stall or now - t0 > args.timeout:
                            break
                    print(f"round {i} call_later failures: {page.evaluate(FAILS_JS)}"
                          + (f"; channel: {page.evaluate(STATS_JS)}" if PROBE_CHANNEL else ""), flush=True)
                    for line in log:
                        if "ERROR" in line or "console.error" in line:
                            print(f"round {i} page: {line[:2000]}", flush=True)
                    log.clear()
                    if prog["result"] is not None:
                        dt, n, ok = prog["result"]
                        if not ok or n != size:
                            print(f"round {i}: WRONG echo ({n} bytes, exact={ok})", flush=True)
                            stalls += 1
                            continue
                        speeds.append(size / MIB / dt)
                        print(f"round {i}: {speeds[-1]:.1f} MiB/s ({dt:.2f} s)", flush=True)
                        if args.fresh and i < args.rounds:
                            ctx.close()
                            ctx, page = new_page(browser, relay, log)
                        continue
                    stalls += 1
                    if prog["error"] is not None:
                        print(f"round {i}: ERROR {prog['error']}\n" + "\n".join(log[-20:]), flush=True)
                    else:
                        print(f"round {i}: STALL written={prog['written']} read={prog['read']}", flush=True)
                        print("=== PAGE DUMP ===\n" + page.evaluate(DUMP_JS) + "=== END PAGE DUMP ===", flush=True)
                        assert relay.proc is not None
                        os.kill(relay.proc.pid, signal.SIGUSR1)
                        time.sleep(1.0)
                        err = relay.stderr_text(200_000)
                        print(err[err.rfind("=== RELAY DUMP ==="):], flush=True)
                        print("call_later failures:", page.evaluate(FAILS_JS), flush=True)
                        print("--- page console (tail) ---\n" + "\n".join(log[-15:]), flush=True)
                        # Does one freshly scheduled callback get the page's event loop going again?
                        page.evaluate(NUDGE_JS)
                        time.sleep(2.0)
                        print("after a nudge:", page.evaluate(PROGRESS_JS), flush=True)
                    ctx.close()
                    ctx, page = new_page(browser, relay, log)
            finally:
                ctx.close()
                browser.close()
    finally:
        relay.stop()
    if speeds:
        print(f"\n{len(speeds)}/{args.rounds} echoes of {args.size:g} MiB completed, {stalls} stalled/failed; "
              f"MiB/s median {statistics.median(speeds):.1f} (min {min(speeds):.1f}, max {max(speeds):.1f})")
    else:
        print(f"\n0/{args.rounds} echoes completed")
    return 1 if stalls else 0


if __name__ == "__main__":
    sys.exit(main())
