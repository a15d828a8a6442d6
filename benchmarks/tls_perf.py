"""/perf/1.0.0 over tcp/{tls,noise}/yamux, pywasm <-> pywasm, server in a second process.

    .venv/bin/python benchmarks/tls_perf.py [--size MiB] [--repeat N] [--security tls noise]

Each run is a new connection: upload SIZE (0 down), then download SIZE (0 up). Prints
MiB/s per security protocol and direction (median of N). Two processes, so each side
has its own core, as in benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIB = 1024 * 1024


async def make_host(security: str, listen: list[str]) -> Any:
    from pywasm.host import Host
    from pywasm.identity import PrivateKey
    from pywasm.muxers import YamuxMuxer
    from pywasm.security.noise import NoiseSecurity
    from pywasm.security.tls import TLSSecurity

    key = await PrivateKey.generate()
    muxers = [YamuxMuxer()]
    ids = [m.protocol_id for m in muxers]
    sec: Any = TLSSecurity(key, ids) if security == "tls" else NoiseSecurity(key, ids)
    return await Host.create(key, listen=listen, security=[sec], muxers=muxers)


async def serve(security: str) -> None:
    host = await make_host(security, ["/ip4/127.0.0.1/tcp/0"])
    print(host.addrs()[0], flush=True)
    # until the parent closes our stdin
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await host.stop()


async def client(security: str, addr: str, size: int, repeat: int) -> dict[str, float]:
    host = await make_host(security, [])
    up: list[float] = []
    down: list[float] = []
    try:
        for _ in range(repeat):
            r = await asyncio.wait_for(host.services["perf"].run(addr, size, 0), 300)
            up.append(size / MIB / r.seconds)
            for c in list(host.connections):
                await c.close()
            r = await asyncio.wait_for(host.services["perf"].run(addr, 0, size), 300)
            down.append(size / MIB / r.seconds)
            for c in list(host.connections):
                await c.close()
    finally:
        await host.stop()
    return {"upload": statistics.median(up), "download": statistics.median(down),
            "upload_min": min(up), "upload_max": max(up), "download_min": min(down), "download_max": max(down)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256, help="MiB per run and direction")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--security", nargs="+", default=["tls", "noise"], choices=["tls", "noise"])
    ap.add_argument("--serve", choices=["tls", "noise"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return 0
    size = args.size * MIB
    for security in args.security:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", security],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        try:
            assert proc.stdout is not None
            addr = proc.stdout.readline().strip()
            res = asyncio.run(client(security, addr, size, args.repeat))
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        print(
            f"tcp/{security}/yamux {args.size} MiB x{args.repeat}: "
            f"upload {res['upload']:.1f} MiB/s ({res['upload_min']:.1f}-{res['upload_max']:.1f}), "
            f"download {res['download']:.1f} MiB/s ({res['download_min']:.1f}-{res['download_max']:.1f})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
