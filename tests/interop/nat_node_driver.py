"""A pywasm node inside one namespace of the NAT topology (nat_topology.py).

Started by tests/interop/test_nat_holepunch.py through ``nsenter``; follows the peer
contract of tests/interop/harness.py (address lines, ``ready``, then one JSON event per
line; it exits when stdin closes).

``relay --listen MA``
    A public relay: Host with RelayHopService (circuit relay v2 hop).
``peer --port P --relay MA [--reserve] [--dial MA]``
    A node behind a NAT: TCP with port reuse, listening on 0.0.0.0:P, so its dials leave
    from P and the relay observes the router's mapping of P (identify). It connects to
    the relay and waits for that observation (event ``observed``); ``--reserve``
    reserves a slot (printing the relayed address); ``--dial`` dials that relayed address
    after ``ready`` (event ``dialed``). DCUtR runs automatically on the side that received
    the relayed connection. Every direct (non-limited) connection to a peer other than
    the relay is used for ping and echo without opting in to limited connections (event
    ``direct``); DCUtR outcomes are reported as they change (event ``dcutr``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import threading
import time
from typing import Any

from pywasm.host import Host
from pywasm.identity import PeerId
from pywasm.services import EchoService, IdentifyService, PingService
from pywasm.services.dcutr import DCUtRService
from pywasm.services.relay_client import RelayClientService
from pywasm.services.relay_hop import RelayHopService
from pywasm.transports.circuit import CircuitTransport
from pywasm.transports.tcp import TCPTransport

ECHO = "/echo/1.0.0"
STEP = 20.0


# events before "ready" are held back: the harness reads only addresses until "ready"
_early: list[dict[str, Any]] | None = []


def emit(obj: dict[str, Any]) -> None:
    if _early is not None:
        _early.append(obj)
        return
    print(json.dumps(obj), flush=True)


def ready() -> None:
    global _early
    print("ready", flush=True)
    held, _early = _early or [], None
    for obj in held:
        emit(obj)


async def _echo_handler(stream: Any, conn: Any) -> None:
    while chunk := await stream.read(65536):
        await stream.write(chunk)
    await stream.close()


def conn_info(c: Any) -> dict[str, Any]:
    return {"peer": str(c.remote_peer), "direction": str(c.direction), "limited": bool(c.limited),
            "remote_addr": str(c.remote_addr), "local_addr": str(getattr(c, "local_addr", None)),
            "closed": bool(c.is_closed),
            # which side drove the handshakes (after a simultaneous open both are "outbound")
            "security_initiator": getattr(c.secure, "is_initiator", None),
            "muxer_initiator": getattr(c.muxed, "is_initiator", None)}


def stdin_lifeline(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, host_box: list[Host]) -> None:
    for line in sys.stdin:
        if line.strip() == "conns" and host_box:
            h = host_box[0]
            loop.call_soon_threadsafe(lambda: emit({"event": "conns", "conns": [conn_info(c) for c in h.connections]}))
    loop.call_soon_threadsafe(stop.set)


async def use_direct(host: Host, conn: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        out["ping_ms"] = await asyncio.wait_for(host.services["ping"].ping(conn), STEP) * 1000
        data = os.urandom(64 * 1024)
        s = await asyncio.wait_for(conn.new_stream([ECHO], STEP), STEP)
        got = bytearray()

        async def send() -> None:
            await s.write(data)
            await s.close_write()

        async def recv() -> None:
            while chunk := await s.read(65536):
                got.extend(chunk)

        await asyncio.wait_for(asyncio.gather(send(), recv()), STEP)
        await s.close()
        out["echo_ok"] = bytes(got) == data
    except Exception as exc:  # reported; the test asserts on it
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


async def watch(host: Host, relay_peer: PeerId | None, t0: float, stop: asyncio.Event) -> None:
    seen: set[int] = set()
    relayed_at: dict[PeerId, float] = {}  # when we first saw a relayed connection per peer
    last: Any = None
    svc: Any = host.services.get("dcutr")
    while not stop.is_set():
        for c in host.connections:
            if c.limited and c.remote_peer not in relayed_at:
                relayed_at[c.remote_peer] = time.monotonic()
            if c.limited or c.remote_peer == relay_peer or id(c) in seen or c.is_closed:
                continue
            seen.add(id(c))
            info = conn_info(c)
            info["after_ms"] = (time.monotonic() - t0) * 1000
            if c.remote_peer in relayed_at:
                # relayed connection seen -> direct one seen (both polled every 20 ms)
                info["since_relayed_ms"] = (time.monotonic() - relayed_at[c.remote_peer]) * 1000
            info.update(await use_direct(host, c))
            emit({"event": "direct", **info})
        if svc is not None:
            now = ({str(k): v for k, v in svc.results.items()}, dict(svc.stats))
            if now != last:
                last = now
                emit({"event": "dcutr", "results": now[0], "stats": now[1],
                      "last_rtt_ms": svc.last_rtt * 1000 if svc.last_rtt is not None else None})
        try:
            await asyncio.wait_for(stop.wait(), 0.02)
        except asyncio.TimeoutError:
            pass


async def run_relay(args: argparse.Namespace, stop: asyncio.Event, box: list[Host]) -> None:
    host = await Host.create(
        listen=[args.listen], transports=[TCPTransport()],
        services=[IdentifyService(), PingService(), RelayHopService()],
    )
    box.append(host)
    for a in host.addrs():
        print(a, flush=True)
    ready()
    try:
        await stop.wait()
    finally:
        await host.stop()


async def run_peer(args: argparse.Namespace, stop: asyncio.Event, box: list[Host]) -> None:
    ident = IdentifyService()
    host = await Host.create(
        listen=[f"/ip4/0.0.0.0/tcp/{args.port}"],
        transports=[TCPTransport(port_reuse=True), CircuitTransport()],
        services=[ident, PingService(), EchoService(), DCUtRService(), RelayClientService()],
    )
    box.append(host)
    host.set_stream_handler(ECHO, _echo_handler, allow_limited=True)
    try:
        relay_conn = await asyncio.wait_for(host.dial(args.relay), STEP)
        deadline = time.monotonic() + STEP
        while not ident.observed_addrs and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        emit({"event": "observed", "addrs": [str(a) for a in ident.observed_addrs],
              "relay_conn": conn_info(relay_conn)})
        if args.reserve:
            bound = await asyncio.wait_for(host.listen(f"{args.relay}/p2p-circuit"), STEP)
            for a in bound:
                print(a, flush=True)
        for a in host.addrs():
            if "p2p-circuit" not in str(a):
                print(a, flush=True)
        ready()
        t0 = time.monotonic()
        watcher = asyncio.get_running_loop().create_task(watch(host, relay_conn.remote_peer, t0, stop))
        if args.dial:
            try:
                c = await asyncio.wait_for(host.dial(args.dial), STEP)
                emit({"event": "dialed", **conn_info(c)})
            except Exception as exc:
                emit({"event": "dial-failed", "error": f"{type(exc).__name__}: {exc}"})
        await stop.wait()
        await watcher
    finally:
        await host.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["relay", "peer"])
    ap.add_argument("--listen")
    ap.add_argument("--port", type=int, default=4001)
    ap.add_argument("--relay")
    ap.add_argument("--reserve", action="store_true")
    ap.add_argument("--dial")
    args = ap.parse_args()
    # DCUtR's own log (its failures say why) always; PYWASM_NAT_DEBUG=1 for everything
    logging.basicConfig(level=logging.DEBUG if os.environ.get("PYWASM_NAT_DEBUG") else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("pywasm.services.dcutr").setLevel(logging.DEBUG)

    async def amain() -> None:
        stop = asyncio.Event()
        box: list[Host] = []
        threading.Thread(target=stdin_lifeline, args=(asyncio.get_running_loop(), stop, box), daemon=True).start()
        await (run_relay if args.mode == "relay" else run_peer)(args, stop, box)

    asyncio.run(amain())
    return 0


if __name__ == "__main__":
    sys.exit(main())
