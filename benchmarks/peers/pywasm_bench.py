"""pywasm benchmark peer (CPython, asyncio; runs in .venv).

    python pywasm_bench.py listen [--listen MA] [--profile FILE]
    python pywasm_bench.py perf MA --upload N --download N [--profile FILE]
    python pywasm_bench.py conn MA [--count N]

Same contract as js_bench.mjs and py_bench.py:
* ``listen`` prints its multiaddrs (ending in /p2p/<id>) one per line, then ``ready``;
  it serves identify, ping and /perf/1.0.0 (the host's own services) until SIGTERM/SIGINT
  or until stdin closes (so a crashed harness leaves no orphan).
* ``perf`` runs /perf/1.0.0 once over a new tcp/noise/yamux connection and prints one JSON
  line: ``{"ok": true, "seconds": ..., ...}``, timed from just before the dial to the last
  byte (the host's PerfService, which writes and reads in 1 MiB chunks).
* ``conn`` dials ``count`` NEW connections one after another in this one process, does
  one ping on each and closes it; prints one JSON line with the per-iteration ms
  (dial start -> ping answer; closing is not timed).

``--profile FILE`` writes cProfile stats of the whole process at exit (for
``python -m pstats`` or run.py --profile).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pywasm.host import Host  # noqa: E402
from pywasm.multiformats.multiaddr import Multiaddr  # noqa: E402


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def listen_mode(args: argparse.Namespace) -> int:
    host = await Host.create(listen=[args.listen])
    try:
        for addr in host.addrs():
            print(str(addr), flush=True)
        print("ready", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        # stdin lifeline: the harness keeps a pipe open; EOF means it is gone
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

        async def lifeline() -> None:
            while await reader.read(4096):
                pass
            stop.set()

        watcher = asyncio.ensure_future(lifeline())
        await stop.wait()
        watcher.cancel()
    finally:
        await host.stop()
    return 0


async def perf_mode(args: argparse.Namespace) -> int:
    host = await Host.create(listen=[])
    result: dict[str, Any] = {"ok": False, "impl": "pywasm"}
    try:
        res = await host.services["perf"].run(Multiaddr(args.target), args.upload, args.download)
        result.update(
            ok=True,
            upload_bytes=res.upload_bytes,
            download_bytes=res.download_bytes,
            seconds=res.seconds,
        )
    except Exception as exc:  # noqa: BLE001 - reported to the harness
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        await host.stop()
    emit(result)
    return 0 if result["ok"] else 1


async def conn_mode(args: argparse.Namespace) -> int:
    host = await Host.create(listen=[])
    target = Multiaddr(args.target)
    result: dict[str, Any] = {"ok": False, "impl": "pywasm", "ms": []}
    prev: Any = None
    reused = 0
    try:
        for _ in range(args.count):
            t0 = time.perf_counter()
            conn = await host.dial(target)
            await host.services["ping"].ping(conn)
            result["ms"].append((time.perf_counter() - t0) * 1000)
            reused += conn is prev  # must stay 0: every iteration is a new connection
            await conn.close()
            prev = conn
        result["reused_connections"] = reused
        result["ok"] = True
    except Exception as exc:  # noqa: BLE001 - reported to the harness
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        await host.stop()
    emit(result)
    return 0 if result["ok"] else 1


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["listen", "perf", "conn"])
    p.add_argument("target", nargs="?")
    p.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0")
    p.add_argument("--upload", type=int, default=0)
    p.add_argument("--download", type=int, default=0)
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--profile", metavar="FILE")
    args = p.parse_args()
    if args.mode != "listen" and not args.target:
        p.error(f"{args.mode} needs a multiaddr")
    fn = {"listen": listen_mode, "perf": perf_mode, "conn": conn_mode}[args.mode]
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        try:
            code = asyncio.run(fn(args))
        finally:
            prof.disable()
            prof.dump_stats(args.profile)
    else:
        code = asyncio.run(fn(args))
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
