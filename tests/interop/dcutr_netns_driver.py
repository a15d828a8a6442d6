"""Runs one DCUtR interop scenario with js-libp2p inside a private network namespace.

Started by tests/interop/test_js_dcutr.py as ``unshare -n python -m
tests.interop.dcutr_netns_driver SCENARIO``. @libp2p/dcutr only dials public addresses
(it drops private and loopback ones from CONNECT and from identify, with no option to
change that), so 127.0.0.1 cannot exercise it. In a fresh namespace nothing leaves the
machine: ``lo`` gets one globally-routable-looking address per node (pywasm, js, relay).

Scenarios (the relay is an in-process pywasm Host with RelayHopService):

* ``js-reserved-public``: js reserves on the relay; pywasm, listening on a public
  address, dials js through it. js received the relayed connection: it tries its
  "unilateral" upgrade first (a plain dial to our identify-advertised public address).
* ``js-reserved-nat``: as above, but pywasm's identify only advertises 0.0.0.0 (nothing
  public), as a node behind NAT would; its DCUtR CONNECT carries the public address the
  listener is reachable at. js must run the CONNECT/SYNC exchange as initiator and we,
  as responder, dial it when SYNC arrives.
* ``pywasm-reserved``: pywasm reserves on the relay; js dials it through the relay;
  pywasm received the relayed connection and initiates DCUtR.

Prints one JSON line (the scenario's observations) as the last line of stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from pywasm.host import Host
from pywasm.host.host import default_transports
from pywasm.identity import PeerId
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.services import (
    AutoNATv2Service,
    EchoService,
    IdentifyService,
    PerfService,
    PingService,
)
from pywasm.services.dcutr import DCUtRService
from pywasm.services.relay_client import RelayClientService
from pywasm.services.relay_hop import RelayHopService
from pywasm.transports.circuit import CircuitTransport
from tests.interop.harness import PEERS, PeerProcess, node_command
from tests.interop.pw import ECHO, bounded
from tests.interop.test_js_relay import _echo_handler

PY_IP = "5.5.5.5"
JS_IP = "6.6.6.6"
RELAY_IP = "7.7.7.7"
WAIT = 30.0


def setup_namespace() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=10)
    for ip in (PY_IP, JS_IP, RELAY_IP):
        subprocess.run(["ip", "addr", "add", f"{ip}/32", "dev", "lo"], check=True, timeout=10)


async def pywasm_host(listen: list[str], dcutr: DCUtRService | None = None, relay: bool = False) -> Host:
    """Default services (DCUtR among them) + circuit transport and relay client, or a relay."""
    services: list[Any] = [
        IdentifyService(), PingService(), EchoService(), PerfService(), dcutr or DCUtRService(),
        AutoNATv2Service(server=False),
    ]
    services.append(RelayHopService() if relay else RelayClientService())
    host = await Host.create(
        listen=listen, transports=[*default_transports(), CircuitTransport()], services=services
    )
    host.set_stream_handler(ECHO, _echo_handler, allow_limited=True)
    return host


def js_peer(*args: str) -> PeerProcess:
    os.environ["DEBUG"] = "libp2p:dcutr*"
    peer = PeerProcess("js-dcutr", [*node_command(), str(PEERS / "js_dcutr_peer.mjs"), *args])
    peer.wait_ready()
    return peer


def js_conns(peer: PeerProcess) -> list[dict[str, Any]]:
    before = sum(1 for e in peer.events() if e.get("event") == "conns")
    assert peer.proc.stdin is not None
    peer.proc.stdin.write(b"conns\n")
    peer.proc.stdin.flush()
    seen: list[dict[str, Any]] = []

    def nth(e: dict[str, Any]) -> bool:
        if e.get("event") == "conns":
            seen.append(e)
        return len(seen) > before

    peer.wait_event(nth, 10)
    return list(seen[-1]["conns"])


def conn_info(c: Any) -> dict[str, Any]:
    return {"direction": str(c.direction), "limited": bool(c.limited), "remote_addr": str(c.remote_addr)}


async def wait_direct(host: Host, peer: PeerId) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        direct = [c for c in host.connections_to(peer) if not c.limited and not c.is_closed]
        if direct:
            return direct[0]
        await asyncio.sleep(0.05)
    return None


async def use_direct(host: Host, conn: Any) -> dict[str, Any]:
    """Ping and echo over ``conn`` without opting in to limited connections."""
    out: dict[str, Any] = {}
    out["ping_ms"] = await bounded(host.services["ping"].ping(conn), 20) * 1000
    data = os.urandom(64 * 1024)
    s = await bounded(conn.new_stream([ECHO], 20), 20)
    got = bytearray()

    async def send() -> None:
        await s.write(data)
        await s.close_write()

    async def recv() -> None:
        while chunk := await s.read(65536):
            got.extend(chunk)

    await bounded(asyncio.gather(send(), recv()), 20)
    await s.close()
    out["echo_ok"] = bytes(got) == data
    return out


def js_side(js: PeerProcess, py_peer: str) -> dict[str, Any]:
    """What js saw: its "direct" check (echo + ping over a non-limited connection to us),
    its connection list, and the DCUtR lines it logged."""
    out: dict[str, Any] = {}
    try:
        out["direct"] = js.wait_event(lambda e: e.get("event") == "direct" and e.get("peer") == py_peer, WAIT)
    except AssertionError as exc:
        out["direct"] = {"error": str(exc)[-2000:]}
    # js's failed dials (see the test) take up to its 5 s DCUtR timeout: let them end
    time.sleep(1.0)
    out["conns"] = [c for c in js_conns(js) if c["peer"] == py_peer]
    log = js.stderr_text(400_000)
    out["log"] = [l for l in log.splitlines() if "dcutr" in l][-40:]
    out["unilateral_ok"] = any("unilateral connection upgrade" in l and "succeeded" in l for l in log.splitlines())
    out["dcutr_ok"] = any("DCUtR to" in l and "succeeded" in l for l in log.splitlines())
    return out


async def pywasm_side(host: Host, js_id: PeerId, relayed: Any | None, expect_result: bool) -> dict[str, Any]:
    svc: Any = host.services["dcutr"]
    direct = await wait_direct(host, js_id)
    out: dict[str, Any] = {"direct": conn_info(direct) if direct is not None else None}
    if direct is not None:
        try:
            out.update(await use_direct(host, direct))
        except Exception as exc:  # reported, asserted on by the test
            out["use_error"] = f"{type(exc).__name__}: {exc}"
    # the direct connection js dialed may be up before our own DCUtR round has ended
    deadline = time.monotonic() + WAIT
    while expect_result and js_id not in svc.results and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    out["results"] = {str(k): v for k, v in svc.results.items()}
    out["stats"] = dict(svc.stats)
    out["last_rtt_ms"] = svc.last_rtt * 1000 if svc.last_rtt is not None else None
    out["relayed_was"] = conn_info(relayed) if relayed is not None else None
    return out


async def js_reserved(nat: bool) -> dict[str, Any]:
    relay = await pywasm_host([f"/ip4/{RELAY_IP}/tcp/0"], relay=True)
    js = await asyncio.to_thread(
        js_peer, "--listen", f"/ip4/{JS_IP}/tcp/0", "--relay", str(relay.addrs()[0]), "--confirm-public"
    )
    if nat:
        # the listener accepts on every address but identify announces only 0.0.0.0 (not
        # public): the public address reaches js through DCUtR alone, as with a NAT mapping
        box: list[Host] = []
        dcutr = DCUtRService(addrs=lambda: [Multiaddr(f"/ip4/{PY_IP}/tcp/{box[0].listen_addrs()[0].value_for('tcp')}")])
        host = await pywasm_host(["/ip4/0.0.0.0/tcp/0"], dcutr)
        box.append(host)
    else:
        host = await pywasm_host([f"/ip4/{PY_IP}/tcp/0"])
    js_id = PeerId.from_string(js.peer_id)
    out: dict[str, Any] = {"js_addrs": js.addrs, "py_listen": [str(a) for a in host.listen_addrs()]}
    try:
        relayed_addr = next(a for a in js.addrs if "/p2p-circuit" in a)
        t0 = time.perf_counter()
        relayed = await bounded(host.dial(relayed_addr), 30)
        out["relayed_limited"] = relayed.limited
        out["py"] = await pywasm_side(host, js_id, relayed, expect_result=nat)
        out["py"]["direct_after_ms"] = (time.perf_counter() - t0) * 1000
        out["js"] = await asyncio.to_thread(js_side, js, str(host.peer_id))
        # after js_side's pause: js closes the relayed connection once its DCUtR dial won
        out["py"]["conns"] = [conn_info(c) for c in host.connections_to(js_id)]
        out.update(js_id=str(js_id), py_id=str(host.peer_id))
        return out
    finally:
        js.stop()
        await host.stop()
        await relay.stop()


async def pywasm_reserved() -> dict[str, Any]:
    relay = await pywasm_host([f"/ip4/{RELAY_IP}/tcp/0"], relay=True)
    host = await pywasm_host([f"/ip4/{PY_IP}/tcp/0"])
    out: dict[str, Any] = {}
    js = None
    try:
        bound = await bounded(host.listen(f"{relay.addrs()[0]}/p2p-circuit"), 30)
        out["py_relayed"] = [str(a) for a in bound]
        js = await asyncio.to_thread(
            js_peer, "--listen", f"/ip4/{JS_IP}/tcp/0", "--dial", str(bound[0]), "--confirm-public"
        )
        js_id = PeerId.from_string(js.peer_id)
        dialed = await asyncio.to_thread(js.wait_event, lambda e: e.get("event") in ("dialed", "dial-failed"), WAIT)
        # from js's report of its relayed dial (the direct one may already be up by then)
        t0 = time.perf_counter()
        out["js_dialed"] = dialed
        out["py"] = await pywasm_side(host, js_id, None, expect_result=True)
        out["py"]["direct_after_ms"] = (time.perf_counter() - t0) * 1000
        out["js"] = await asyncio.to_thread(js_side, js, str(host.peer_id))
        out["py"]["conns"] = [conn_info(c) for c in host.connections_to(js_id)]
        out.update(js_id=str(js_id), py_id=str(host.peer_id))
        return out
    finally:
        if js is not None:
            js.stop()
        await host.stop()
        await relay.stop()


def main() -> int:
    scenario = sys.argv[1]
    setup_namespace()
    run = {
        "js-reserved-public": lambda: js_reserved(nat=False),
        "js-reserved-nat": lambda: js_reserved(nat=True),
        "pywasm-reserved": pywasm_reserved,
    }[scenario]
    result = asyncio.run(run())
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
