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
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks._common import emit, parse_args, wait_for_stop  # noqa: E402
from pywasm.host import Host  # noqa: E402
from pywasm.multiformats.multiaddr import Multiaddr  # noqa: E402


async def listen_mode(args: argparse.Namespace) -> int:
    host = await Host.create(listen=[args.listen])
    try:
        for addr in host.addrs():
            print(str(addr), flush=True)
        print("ready", flush=True)
        await wait_for_stop()
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
    args = parse_args(lambda p: p.add_argument("--profile", metavar="FILE"))
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
