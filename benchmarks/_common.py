"""What the benchmark peers share (ceiling.py, peers/pywasm_bench.py, peers/py_bench.py),
and the in-page echo of the browser benchmarks (browser_run.py, webrtc_p2p_run.py).

The peer contract (see each peer's docstring): ``listen`` / ``perf MA`` / ``conn MA`` with
the same options, one JSON line of result on stdout. Standard library only: py_bench.py
imports this from py-libp2p's venv too.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable


def emit(obj: dict[str, Any]) -> None:
    """The one JSON result line the harness reads."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def parse_args(add_options: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The contract's command line; ``add_options`` adds a peer's own options."""
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["listen", "perf", "conn"])
    p.add_argument("target", nargs="?")
    p.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    p.add_argument("--upload", type=int, default=0)
    p.add_argument("--download", type=int, default=0)
    p.add_argument("--count", type=int, default=20)
    if add_options is not None:
        add_options(p)
    args = p.parse_args()
    if args.mode != "listen" and not args.target:
        p.error(f"{args.mode} needs a multiaddr")
    return args


async def wait_for_stop() -> None:
    """asyncio peers: return on SIGINT/SIGTERM, or when stdin closes (the harness keeps a
    pipe open, so EOF means it is gone and a crashed harness leaves no orphan)."""
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def lifeline() -> None:
        while await reader.read(4096):
            pass
        stop.set()

    watcher = asyncio.ensure_future(lifeline())
    await stop.wait()
    watcher.cancel()


# Python run in a bench page's Pyodide: SIZE random bytes over a new /echo/1.0.0 stream,
# written in CHUNK pieces while the answer is read to EOF; returns [seconds from opening the
# stream to the last byte, bytes back, byte-exact]. The page's code defines
# ``_bench_opener(host, target)`` first (setup left out of the time): it returns a function
# that opens the stream. Progress stays in ``_bench_progress`` for a stalled run.
PAGE_ECHO_PY = r'''
import asyncio, random, time

_bench_progress = {"written": 0, "read": 0}

async def _bench_echo(host, target, size, chunk):
    prog = _bench_progress
    prog["written"] = prog["read"] = 0
    payload = random.randbytes(size)
    open_stream = await _bench_opener(host, target)
    t0 = time.perf_counter()
    s = await open_stream()

    async def writer():
        mv = memoryview(payload)
        for off in range(0, size, chunk):
            await s.write(mv[off:off + chunk])
            prog["written"] = min(off + chunk, size)
        await s.close_write()

    async def reader():
        parts, n = [], 0
        while True:
            b = await s.read(1 << 20)
            if not b:
                break
            parts.append(b)
            n += len(b)
            prog["read"] = n
            if n > size:
                break
        return b"".join(parts)

    _, got = await asyncio.gather(writer(), reader())
    dt = time.perf_counter() - t0
    await s.close()
    return [dt, len(got), got == payload]

_bench_echo
'''

# run_js body for the pywasm page (window.benchNode): the echo above, in its Pyodide
_PAGE_ECHO_JS = """
const node = window.benchNode;
const fn = node.pyodide.runPython(arg.code);
const r = await fn(node.host, arg.target, arg.size, arg.chunk);
const [seconds, bytes, ok] = r.toJs();
r.destroy(); fn.destroy();
return { seconds, bytes, ok };
"""


def page_echo(impl: str, opener_py: str, js_body: str, target: str, size: int,
              chunk: int) -> tuple[str, dict[str, Any]]:
    """run_js body and argument of one echo from a bench page to ``target``: for pywasm the
    Python echo with ``opener_py`` (the page's ``_bench_opener``), else ``js_body`` (which
    reads ``arg.target``, ``arg.size``, ``arg.chunk``). Both answer {seconds, bytes, ok}."""
    arg: dict[str, Any] = {"target": target, "size": size, "chunk": chunk}
    if impl == "pywasm":
        return _PAGE_ECHO_JS, {**arg, "code": opener_py + PAGE_ECHO_PY}
    return js_body, arg


__all__ = ["PAGE_ECHO_PY", "emit", "page_echo", "parse_args", "wait_for_stop"]
