"""What the benchmark peers share (ceiling.py, peers/pywasm_bench.py, peers/py_bench.py).

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


__all__ = ["emit", "parse_args", "wait_for_stop"]
