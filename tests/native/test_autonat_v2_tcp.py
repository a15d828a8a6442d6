"""AutoNAT v2 over real TCP on loopback: same-IP (no dial data), other-IP (127.0.0.2:
dial data), closed port (E_DIAL_ERROR), and the relay application's server."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from pywasm.host import Host
from pywasm.services.autonat_v2 import AutoNATv2Service, Reachability
from pywasm.protocols.autonat_v2_pb import DialStatus, ResponseStatus
from pywasm.services.identify import IdentifyService

T = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _host(listen: list[str], svc: AutoNATv2Service) -> Host:
    return await Host.create(listen=listen, services=[IdentifyService(), svc])


async def test_tcp_reachable_same_ip_without_dial_data_and_closed_port() -> None:
    server = await _host(["/ip4/127.0.0.1/tcp/0"], AutoNATv2Service(client=False, allow_private=True))
    client = await _host(["/ip4/127.0.0.1/tcp/0"], AutoNATv2Service(server=False))
    try:
        svc: Any = client.services["autonat"]
        res = await asyncio.wait_for(svc.check(server.addrs()[0], client.listen_addrs()), T)
        assert res.reachability == Reachability.REACHABLE and res.dial_back_received
        # the requester's observed IP is 127.0.0.1 too: no amplification cost
        assert res.dial_data_sent == 0
        closed = f"/ip4/127.0.0.1/tcp/{_free_port()}"
        res = await asyncio.wait_for(svc.check(server.addrs()[0], [closed]), T)
        assert res.reachability == Reachability.UNREACHABLE and res.dial_status == DialStatus.E_DIAL_ERROR
        assert server.services["autonat"].stats["dial_data_requests"] == 0
    finally:
        await client.stop()
        await server.stop()


async def test_tcp_other_ip_costs_dial_data() -> None:
    server = await _host(["/ip4/127.0.0.1/tcp/0"], AutoNATv2Service(client=False, allow_private=True))
    # the client dials out from 127.0.0.1 but asks about 127.0.0.2 (also loopback on Linux)
    client = await _host(["/ip4/127.0.0.2/tcp/0"], AutoNATv2Service(server=False))
    try:
        svc: Any = client.services["autonat"]
        res = await asyncio.wait_for(svc.check(server.addrs()[0], client.listen_addrs()), T)
        assert res.reachability == Reachability.REACHABLE
        assert 30_000 <= res.dial_data_sent <= 100_000 + 4096
        assert server.services["autonat"].stats["dial_data_requests"] == 1
    finally:
        await client.stop()
        await server.stop()


async def test_tcp_default_server_refuses_loopback() -> None:
    server = await _host(["/ip4/127.0.0.1/tcp/0"], AutoNATv2Service(client=False))
    client = await _host(["/ip4/127.0.0.1/tcp/0"], AutoNATv2Service(server=False))
    try:
        res = await asyncio.wait_for(client.services["autonat"].check(server.addrs()[0], client.listen_addrs()), T)
        assert res.response_status == ResponseStatus.E_DIAL_REFUSED
    finally:
        await client.stop()
        await server.stop()


# --- the relay application's AutoNAT v2 server ---------------------------------------------
from pathlib import Path  # noqa: E402

from tests.native.test_relay import PORTS_0, StartRelay, relay, site  # noqa: E402,F401


async def test_relay_app_serves_autonat(relay: StartRelay, site: Path, tmp_path: Path) -> None:  # noqa: F811
    r = relay(*PORTS_0, "--site", str(site), "--data-dir", str(tmp_path / "data"))
    _, addrs = r.startup(2)
    tcp = next(a for a in addrs if "/ws/" not in a)
    client = await _host(["/ip4/127.0.0.1/tcp/0"], AutoNATv2Service(server=False))
    try:
        svc: Any = client.services["autonat"]
        # a relay on loopback only is a test deployment: it dials loopback back
        res = await asyncio.wait_for(svc.check(tcp, client.listen_addrs()), T)
        assert res.reachability == Reachability.REACHABLE and res.dial_back_received
        res = await asyncio.wait_for(svc.check(tcp, [f"/ip4/127.0.0.1/tcp/{_free_port()}"]), T)
        assert res.reachability == Reachability.UNREACHABLE
    finally:
        await client.stop()
