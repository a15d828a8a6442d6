"""py-libp2p 0.8.1 benchmark peer (trio; runs in .cache/venv-pylibp2p): tcp/noise/yamux.

    python py_bench.py listen [--listen MA]
    python py_bench.py perf MA --upload N --download N [--chunk BYTES]
    python py_bench.py conn MA [--count N] [--no-dial-delay]

Same contract as pywasm_bench.py / js_bench.mjs / ceiling.py:
* ``listen`` prints its multiaddrs (ending in /p2p/<id>) one per line, then ``ready``;
  serves identify, ping and /perf/1.0.0 until stdin closes or SIGTERM.
* ``perf`` one /perf/1.0.0 run over a NEW connection; one JSON line, timed from just
  before the dial to the last byte received.
* ``conn`` in this one process, ``count`` times: dial a NEW connection, one ping,
  disconnect; one JSON line with ms per iteration (dial start -> ping answer).

/perf/1.0.0 is written here (server and client) with --chunk sized writes (default
1 MiB; py-libp2p's own PerfService writes 64 KiB blocks) so the stack is what is measured.

``--no-dial-delay``: py-libp2p's ``Swarm.dial_peer`` dials addresses "happy eyeballs"
style and, after starting each one, waits ``trio.move_on_after(_HAPPY_EYEBALLS_DELAY)``
(0.250 s) for it to *fail*; a dial that succeeds does not end that wait unless the
per-peer connection cap is reached, which cancels the whole scope. So every dial costs
>= 250 ms with the default ``ConnectionConfig.max_connections_per_peer = 3``. The knob:
``new_host(connection_config=ConnectionConfig(max_connections_per_peer=1))`` (the dialer
only), which this flag sets.
"""

from __future__ import annotations

import argparse
import logging
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any

import multiaddr
import trio

from libp2p import new_host
from libp2p.crypto import ed25519
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519
from libp2p.custom_types import TProtocol
from libp2p.host.ping import ID as PING_ID
from libp2p.host.ping import perform_ping_roundtrip
from libp2p.network.config import ConnectionConfig
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

# appended, not prepended: nothing in the repository may shadow py-libp2p's venv
sys.path.append(str(Path(__file__).resolve().parents[2]))

from benchmarks._common import emit, parse_args  # noqa: E402

PERF_ID = TProtocol("/perf/1.0.0")
READ_SIZE = 1 << 20


def build_host(listen: list[str], no_dial_delay: bool = False):
    extra: dict[str, Any] = {}
    if no_dial_delay:
        # see the module docstring: the cap ends the 250 ms happy-eyeballs wait early
        extra["connection_config"] = ConnectionConfig(max_connections_per_peer=1)
    key_pair = ed25519.create_new_key_pair()
    sec = {TProtocol(NOISE_PROTOCOL_ID): NoiseTransport(key_pair, noise_privkey=new_x25519().private_key)}
    return new_host(
        key_pair=key_pair,
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        sec_opt=sec,
        listen_addrs=[multiaddr.Multiaddr(a) for a in listen] or None,
        enable_mDNS=False,
        enable_upnp=False,
        **extra,
    )


async def read_some(stream, n: int = READ_SIZE) -> bytes:
    try:
        return await stream.read(n)
    except StreamEOF:
        return b""


async def send_zeros(stream, n: int, chunk: int) -> None:
    block = bytes(chunk)
    while n > 0:
        take = min(n, chunk)
        await stream.write(block if take == chunk else block[:take])
        n -= take


def perf_handler(chunk: int):
    async def handler(stream) -> None:
        try:
            header = b""
            while len(header) < 8:
                data = await read_some(stream, 8 - len(header))
                if not data:
                    raise RuntimeError("perf: EOF before the 8-byte header")
                header += data
            while await read_some(stream):
                pass
            await send_zeros(stream, struct.unpack(">Q", header)[0], chunk)
            await stream.close()
        except Exception as exc:  # report and reset: never leave the client hanging
            print(f"perf handler: {exc!r}", file=sys.stderr)
            await stream.reset()

    return handler


async def listen_mode(args: argparse.Namespace) -> int:
    host = build_host([args.listen])
    async with host.run(listen_addrs=[multiaddr.Multiaddr(args.listen)]):
        host.set_stream_handler(PERF_ID, perf_handler(args.chunk))
        for addr in host.get_addrs():
            text = str(addr)
            if "/p2p/" not in text:
                text += f"/p2p/{host.get_id()}"
            print(text, flush=True)
        print("ready", flush=True)
        stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        while await stdin.receive_some(4096):
            pass
    return 0


async def perf_mode(args: argparse.Namespace) -> int:
    host = build_host([], args.no_dial_delay)
    result: dict[str, Any] = {"ok": False, "impl": "py-libp2p"}
    try:
        with trio.fail_after(args.timeout):
            async with host.run(listen_addrs=[]):
                info = info_from_p2p_addr(multiaddr.Multiaddr(args.target))
                start = time.perf_counter()
                await host.connect(info)
                stream = await host.new_stream(info.peer_id, [PERF_ID])
                await stream.write(struct.pack(">Q", args.download))
                await send_zeros(stream, args.upload, args.chunk)
                await stream.close_write()
                received = 0
                while True:
                    data = await read_some(stream)
                    if not data:
                        break
                    received += len(data)
                end = time.perf_counter()
                if received != args.download:
                    raise RuntimeError(f"perf: expected {args.download} bytes back, got {received}")
                result.update(ok=True, upload_bytes=args.upload, download_bytes=received, seconds=end - start)
    except Exception as exc:  # noqa: BLE001 - reported to the harness
        result["error"] = f"{type(exc).__name__}: {exc}"
    emit(result)
    return 0 if result["ok"] else 1


async def conn_mode(args: argparse.Namespace) -> int:
    host = build_host([], args.no_dial_delay)
    result: dict[str, Any] = {"ok": False, "impl": "py-libp2p", "ms": [], "dial_ms": []}
    try:
        with trio.fail_after(args.timeout):
            async with host.run(listen_addrs=[]):
                info = info_from_p2p_addr(multiaddr.Multiaddr(args.target))
                for _ in range(args.count):
                    t0 = time.perf_counter()
                    await host.connect(info)
                    t1 = time.perf_counter()
                    stream = await host.new_stream(info.peer_id, [PING_ID])
                    await perform_ping_roundtrip(stream)
                    t2 = time.perf_counter()
                    result["ms"].append((t2 - t0) * 1000)
                    result["dial_ms"].append((t1 - t0) * 1000)
                    await stream.close()
                    await host.disconnect(info.peer_id)
                result["ok"] = True
    except Exception as exc:  # noqa: BLE001 - reported to the harness
        result["error"] = f"{type(exc).__name__}: {exc}"
    emit(result)
    return 0 if result["ok"] else 1


def main() -> None:
    def options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--chunk", type=int, default=1 << 20)
        p.add_argument("--timeout", type=float, default=600.0)
        p.add_argument("--no-dial-delay", action="store_true")

    args = parse_args(options)
    logging.basicConfig(level=os.environ.get("PY_BENCH_LOG", "ERROR"), stream=sys.stderr)
    fn = {"listen": listen_mode, "perf": perf_mode, "conn": conn_mode}[args.mode]
    code = trio.run(fn, args)
    sys.stdout.flush()
    # py-libp2p can leave background tasks behind: exit hard once the result is out
    os._exit(code)


if __name__ == "__main__":
    main()
