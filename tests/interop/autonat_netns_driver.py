"""Runs one AutoNAT v2 interop scenario with js-libp2p inside a private network namespace.

Started by tests/interop/test_js_autonat.py as ``unshare -n python -m
tests.interop.autonat_netns_driver SCENARIO``. AutoNAT v2 is about public addresses: js's
client never asks about private ones and js's server refuses to dial them, so loopback
(127.0.0.1) cannot exercise it. In a fresh namespace nothing leaves the machine, so we give
``lo`` two globally-routable-looking addresses (one per peer) and run both peers there.
The namespace disappears with this process.

Prints one JSON line (the scenario's observations) as the last line of stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

from pywasm.host import Host
from pywasm.services.autonat_v2 import AutoNATv2Service
from pywasm.services.identify import IdentifyService
from tests.interop.harness import PEERS, PeerProcess, node_command, terminate

PY_IP = "5.5.5.5"
JS_IP = "6.6.6.6"
WAIT = 30.0


def setup_namespace() -> None:
    for cmd in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "addr", "add", f"{PY_IP}/32", "dev", "lo"],
        ["ip", "addr", "add", f"{JS_IP}/32", "dev", "lo"],
    ):
        subprocess.run(cmd, check=True, timeout=10)


def js_peer(*args: str) -> PeerProcess:
    os.environ["DEBUG"] = "libp2p:auto-nat-v2*"
    peer = PeerProcess("js-autonat", [*node_command(), str(PEERS / "js_autonat_peer.mjs"), *args])
    peer.wait_ready()
    return peer


def closed_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


async def js_client() -> dict[str, Any]:
    """js asks our (default, public-only) server to verify its address."""
    server = await Host.create(
        listen=[f"/ip4/{PY_IP}/tcp/0"], services=[IdentifyService(), AutoNATv2Service(client=False)]
    )
    svc: Any = server.services["autonat"]
    peer = js_peer("--listen", f"/ip4/{JS_IP}/tcp/0", "--dial", str(server.addrs()[0]))
    try:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and svc.stats["dial_ok"] < 1:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # let js log its verdict
        log = peer.stderr_text(200_000)
        return {
            "stats": dict(svc.stats),
            "js_addr": peer.addrs[0],
            "js_confirmed": any("is externally dialable" in line for line in log.splitlines()),
            "js_log": "\n".join(l for l in log.splitlines() if "auto-nat-v2" in l)[-3000:],
        }
    finally:
        terminate(peer.proc)
        await server.stop()


async def js_server() -> dict[str, Any]:
    """Our client asks js's server about a reachable and an unreachable address."""
    peer = js_peer("--listen", f"/ip4/{JS_IP}/tcp/0")
    client = await Host.create(
        listen=[f"/ip4/{PY_IP}/tcp/0"], services=[IdentifyService(), AutoNATv2Service(server=False)]
    )
    svc: Any = client.services["autonat"]
    out: dict[str, Any] = {}
    try:
        for name, addrs in (
            ("reachable", client.listen_addrs()),
            ("unreachable", [f"/ip4/{PY_IP}/tcp/{closed_port(PY_IP)}"]),
        ):
            try:
                res = await asyncio.wait_for(svc.check(peer.addrs[0], addrs), WAIT)
                out[name] = {
                    "reachability": str(res.reachability),
                    "response_status": int(res.response_status),
                    "dial_status": int(res.dial_status),
                    "dial_data_sent": res.dial_data_sent,
                    "dial_back_received": res.dial_back_received,
                    "addr": str(res.addr),
                }
            except Exception as exc:  # reported, asserted on by the test
                out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        out["asked"] = [str(a) for a in client.listen_addrs()]
        return out
    finally:
        await client.stop()
        terminate(peer.proc)
        if "error" in json.dumps(out):
            out["js_stderr"] = peer.stderr_text(4000)


def main() -> int:
    scenario = sys.argv[1]
    setup_namespace()
    result = asyncio.run({"js-client": js_client, "js-server": js_server}[scenario]())
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
