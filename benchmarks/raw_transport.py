"""Raw transport throughput: 256 MiB one way over pywasm's TCP transport on loopback.

Prints MiB/s for our transport and, in the same run, for plain asyncio streams
(StreamReader/StreamWriter) so the overhead of the transport layer is visible without
comparing against numbers from another machine or another moment.

    .venv/bin/python benchmarks/raw_transport.py [--mib 256] [--chunk 262144] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pywasm.multiformats.multiaddr import Multiaddr  # noqa: E402
from pywasm.transports.tcp import TCPTransport, TcpConnection  # noqa: E402


async def pywasm_tcp(total: int, chunk: int, read_size: int) -> float:
    transport = TCPTransport()
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def sink(conn: TcpConnection) -> None:
        got = 0
        while True:
            data = await conn.read(read_size)
            if not data:
                break
            got += len(data)
        await conn.close()
        done.set_result(got)

    listener = await transport.listen(Multiaddr("/ip4/127.0.0.1/tcp/0"), sink)
    payload = bytes(chunk)
    start = time.perf_counter()
    conn = await transport.dial(listener.addrs[0])
    sent = 0
    while sent < total:
        await conn.write(payload)
        sent += chunk
    await conn.close_write()
    got = await done
    elapsed = time.perf_counter() - start
    await conn.close()
    await listener.close()
    assert got == sent, (got, sent)
    return sent / elapsed / (1 << 20)


async def asyncio_streams(total: int, chunk: int, read_size: int) -> float:
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = 0
        while True:
            data = await reader.read(read_size)
            if not data:
                break
            got += len(data)
        writer.close()
        done.set_result(got)

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    payload = bytes(chunk)
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent = 0
    while sent < total:
        writer.write(payload)
        await writer.drain()
        sent += chunk
    writer.write_eof()
    got = await done
    elapsed = time.perf_counter() - start
    writer.close()
    server.close()
    assert got == sent
    return sent / elapsed / (1 << 20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=256, help="MiB to send per run")
    ap.add_argument("--chunk", type=int, default=256 * 1024, help="bytes per write")
    ap.add_argument("--read", type=int, default=256 * 1024, help="bytes per read")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    total = args.mib << 20
    for name, fn in (("pywasm TCPTransport", pywasm_tcp), ("asyncio streams", asyncio_streams)):
        rates = [asyncio.run(fn(total, args.chunk, args.read)) for _ in range(args.runs)]
        print(
            f"{name:22s} {args.mib} MiB, {args.chunk}-byte writes, {args.read}-byte reads: "
            f"median {statistics.median(rates):7.0f} MiB/s  (runs: {', '.join(f'{r:.0f}' for r in rates)})"
        )


if __name__ == "__main__":
    main()
