"""py-libp2p 0.8.1 peer for pywasm's interop tests (trio; runs in .cache/venv-pylibp2p).

    python py_peer.py listen [--listen MA]... [--muxer yamux|mplex|both]
                             [--key-type ed25519|rsa|secp256k1] [--stdin-lifeline]
    python py_peer.py dial MA [--muxer ...] [--echo-bytes N] [--perf-up N --perf-down N]
                             [--no-ping] [--no-identify] [--timeout S]
                             [--echo-protocol P] [--echo-read-before-close]

Same contract as js_peer.mjs: ``listen`` prints its multiaddrs (with /p2p/) one per line,
then ``ready``, then one JSON object per line per event; ``dial`` prints one JSON result
line and exits 0, or ``{"ok": false, "error": ...}`` and exits 1.

Security is Noise (default) or TLS (``--security tls|both``), transport TCP only. Served
protocols: identify and ping (py-libp2p defaults), /echo/1.0.0 (written here: py-libp2p ships no echo service) and /perf/1.0.0
(py-libp2p's own PerfService).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import struct
import sys
import time
from typing import Any

import multiaddr
import trio

from libp2p import new_host
from libp2p.crypto import ed25519, rsa, secp256k1
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519
from libp2p.custom_types import TProtocol
from libp2p.host.ping import ID as PING_ID
from libp2p.host.ping import perform_ping_roundtrip
from libp2p.identity.identify.identify import ID as IDENTIFY_ID
from libp2p.identity.identify.identify import parse_identify_response
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.peer.id import ID as PeerID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.perf.perf_service import PerfService
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.mplex.mplex import MPLEX_PROTOCOL_ID, Mplex
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

ECHO_ID = TProtocol("/echo/1.0.0")
PERF_ID = TProtocol("/perf/1.0.0")
CHUNK = 64 * 1024
KEY_TYPES = {0: "RSA", 1: "Ed25519", 2: "secp256k1", 3: "ECDSA"}


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def make_key_pair(kind: str):
    if kind == "ed25519":
        return ed25519.create_new_key_pair()
    if kind == "rsa":
        return rsa.create_new_key_pair(2048)
    if kind == "secp256k1":
        return secp256k1.create_new_key_pair()
    raise SystemExit(f"unknown key type {kind}")


def muxer_options(name: str) -> dict:
    # dict order is the preference order proposed when dialing
    if name == "yamux":
        return {TProtocol(YAMUX_PROTOCOL_ID): Yamux}
    if name == "mplex":
        return {TProtocol(MPLEX_PROTOCOL_ID): Mplex}
    if name == "both":
        return {TProtocol(YAMUX_PROTOCOL_ID): Yamux, TProtocol(MPLEX_PROTOCOL_ID): Mplex}
    raise SystemExit(f"unknown muxer {name}")


def build_host(args: argparse.Namespace, listen: list[str]):
    key_pair = make_key_pair(args.key_type)
    sec = {}
    if args.security in ("noise", "both"):
        sec[TProtocol(NOISE_PROTOCOL_ID)] = NoiseTransport(
            key_pair, noise_privkey=new_x25519().private_key
        )
    if args.security in ("tls", "both"):
        # imported here: only --security tls needs py-libp2p's TLS module
        from libp2p.security.tls.transport import PROTOCOL_ID as TLS_PROTOCOL_ID
        from libp2p.security.tls.transport import TLSTransport

        sec[TProtocol(TLS_PROTOCOL_ID)] = TLSTransport(key_pair)
    return new_host(
        key_pair=key_pair,
        muxer_opt=muxer_options(args.muxer),
        sec_opt=sec,
        listen_addrs=[multiaddr.Multiaddr(a) for a in listen] or None,
        enable_mDNS=False,
        enable_upnp=False,
    )


async def read_chunk(stream, n: int = CHUNK) -> bytes:
    """One read; b"" at EOF (py-libp2p raises StreamEOF instead of returning b"")."""
    try:
        return await stream.read(n)
    except StreamEOF:
        return b""


async def echo_handler(stream) -> None:
    total = 0
    try:
        while True:
            data = await read_chunk(stream)
            if not data:
                break
            total += len(data)
            await stream.write(data)
        await stream.close()
        emit({"event": "echo", "bytes": total})
    except Exception as exc:  # report and reset: never leave the remote hanging
        print(f"echo handler: {exc!r}", file=sys.stderr)
        await stream.reset()


def key_type_of(public_key_pb: bytes) -> str | None:
    # PublicKey protobuf: field 1 (varint) is the key type; it comes first in practice.
    if len(public_key_pb) >= 2 and public_key_pb[0] == 0x08:
        return KEY_TYPES.get(public_key_pb[1], str(public_key_pb[1]))
    return None


def muxer_of(host, peer_id) -> str | None:
    conns = host.get_network().get_connections(peer_id)
    if not conns:
        return None
    muxed = getattr(conns[0], "muxed_conn", None)
    if isinstance(muxed, Yamux):
        return str(YAMUX_PROTOCOL_ID)
    if isinstance(muxed, Mplex):
        return str(MPLEX_PROTOCOL_ID)
    return type(muxed).__name__


async def identify(host, peer_id) -> dict[str, Any]:
    stream = await host.new_stream(peer_id, [IDENTIFY_ID])
    data = bytearray()
    while True:
        chunk = await read_chunk(stream)
        if not chunk:
            break
        data += chunk
    await stream.close()
    msg = parse_identify_response(bytes(data))
    addrs = []
    for raw in msg.listen_addrs:
        try:
            addrs.append(str(multiaddr.Multiaddr(raw)))
        except Exception:
            addrs.append(raw.hex())
    observed = None
    if msg.HasField("observed_addr"):
        try:
            observed = str(multiaddr.Multiaddr(msg.observed_addr))
        except Exception:
            observed = msg.observed_addr.hex()
    return {
        "peer": str(peer_id),
        "agent": msg.agent_version or None,
        "protocol_version": msg.protocol_version or None,
        "protocols": sorted(msg.protocols),
        "listen_addrs": addrs,
        "observed_addr": observed,
        "key_type": key_type_of(msg.public_key),
    }


async def echo_client(
    host, peer_id, size: int, protocol: str = ECHO_ID, half_close: bool = True
) -> dict[str, Any]:
    data = secrets.token_bytes(size)
    start = time.perf_counter()
    stream = await host.new_stream(peer_id, [TProtocol(protocol)])
    received = bytearray()

    async def reader() -> None:
        while len(received) < size or half_close:
            chunk = await read_chunk(stream)
            if not chunk:
                return
            received.extend(chunk)
            if len(received) > size:
                raise RuntimeError(f"echo: overread {len(received)}/{size}")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        for off in range(0, size, CHUNK):
            await stream.write(data[off : off + CHUNK])
        if half_close:
            await stream.close_write()
    if not half_close:
        # kubo's forwarder tears the stream down at the first EOF: close only now
        await stream.close()
    ms = (time.perf_counter() - start) * 1000
    if len(received) != size:
        raise RuntimeError(f"echo: got {len(received)} of {size} bytes")
    if bytes(received) != data:
        raise RuntimeError("echo: bytes differ")
    return {"bytes": size, "ms": ms, "ok": True}


async def perf_client(host, peer_id, up: int, down: int) -> dict[str, Any]:
    start = time.perf_counter()
    stream = await host.new_stream(peer_id, [PERF_ID])
    await stream.write(struct.pack(">Q", down))
    block = bytes(CHUNK)
    left = up
    while left > 0:
        n = min(left, CHUNK)
        await stream.write(block[:n])
        left -= n
    await stream.close_write()
    upload_done = time.perf_counter()
    received = 0
    while True:
        chunk = await read_chunk(stream)
        if not chunk:
            break
        received += len(chunk)
    end = time.perf_counter()
    if received != down:
        raise RuntimeError(f"perf: expected {down} bytes back, got {received}")
    mib = 1024 * 1024
    return {
        "upload_bytes": up,
        "download_bytes": down,
        "upload_s": upload_done - start,
        "total_s": end - start,
        "upload_mib_s": up / mib / max(upload_done - start, 1e-9),
        "download_mib_s": down / mib / max(end - upload_done, 1e-9),
    }


async def listen_mode(args: argparse.Namespace) -> None:
    listen = args.listen or ["/ip4/127.0.0.1/tcp/0"]
    host = build_host(args, listen)
    async with host.run(listen_addrs=[multiaddr.Multiaddr(a) for a in listen]):
        host.set_stream_handler(ECHO_ID, echo_handler)
        if args.echo_protocol != ECHO_ID:
            host.set_stream_handler(TProtocol(args.echo_protocol), echo_handler)
        perf = PerfService(host)
        await perf.start()
        for addr in host.get_addrs():
            text = str(addr)
            if "/p2p/" not in text:
                text += f"/p2p/{host.get_id()}"
            print(text, flush=True)
        print("ready", flush=True)
        if args.stdin_lifeline:
            # exit when the harness closes our stdin (or dies)
            stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
            while await stdin.receive_some(4096):
                pass
        else:
            await trio.sleep_forever()


async def dial_mode(args: argparse.Namespace) -> int:
    host = build_host(args, [])
    result: dict[str, Any] = {"ok": False, "impl": "py-libp2p", "local_peer": str(host.get_id())}
    try:
        with trio.fail_after(args.timeout):
            async with host.run(listen_addrs=[]):
                host.set_stream_handler(ECHO_ID, echo_handler)
                info = info_from_p2p_addr(multiaddr.Multiaddr(args.target))
                t0 = time.perf_counter()
                await host.connect(info)
                result["connect_ms"] = (time.perf_counter() - t0) * 1000
                result["remote_peer"] = str(info.peer_id)
                result["muxer"] = muxer_of(host, info.peer_id)
                result["encryption"] = str(NOISE_PROTOCOL_ID)
                if args.identify:
                    result["identify"] = await identify(host, info.peer_id)
                if args.ping:
                    stream = await host.new_stream(info.peer_id, [PING_ID])
                    t = time.perf_counter()
                    await perform_ping_roundtrip(stream)
                    result["ping_ms"] = (time.perf_counter() - t) * 1000
                    await stream.close()
                if args.echo_bytes > 0:
                    result["echo"] = await echo_client(
                        host, info.peer_id, args.echo_bytes, args.echo_protocol, args.echo_half_close
                    )
                if args.perf_up is not None or args.perf_down is not None:
                    result["perf"] = await perf_client(
                        host, info.peer_id, args.perf_up or 0, args.perf_down or 0
                    )
                result["ok"] = True
    except BaseException as exc:  # noqa: BLE001 - reported to the harness, then exit 1
        if isinstance(exc, KeyboardInterrupt):
            raise
        result["error"] = f"{type(exc).__name__}: {exc}"
        import traceback

        traceback.print_exc(file=sys.stderr)
    emit(result)
    return 0 if result["ok"] else 1


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["listen", "dial"])
    p.add_argument("target", nargs="?")
    p.add_argument("--listen", action="append", default=[])
    p.add_argument("--muxer", default="both", choices=["yamux", "mplex", "both"])
    p.add_argument("--security", default="noise", choices=["noise", "tls", "both"])
    p.add_argument("--key-type", default="ed25519", choices=["ed25519", "rsa", "secp256k1"])
    p.add_argument("--echo-bytes", type=int, default=1024 * 1024)
    p.add_argument("--perf-up", type=int)
    p.add_argument("--perf-down", type=int)
    p.add_argument("--no-ping", dest="ping", action="store_false")
    p.add_argument("--no-identify", dest="identify", action="store_false")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--stdin-lifeline", action="store_true")
    p.add_argument("--echo-protocol", default=ECHO_ID, help="e.g. /x/echo for kubo")
    p.add_argument("--echo-read-before-close", dest="echo_half_close", action="store_false")
    args = p.parse_args()
    logging.basicConfig(level=os.environ.get("PY_PEER_LOG", "WARNING"), stream=sys.stderr)
    if args.mode == "dial":
        if not args.target:
            p.error("dial needs a multiaddr")
        # py-libp2p leaves background tasks behind on some errors; exit hard once the
        # result line is out so a dial can never hang the harness.
        code = trio.run(dial_mode, args)
        sys.stdout.flush()
        os._exit(code)
    try:
        trio.run(listen_mode, args)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
