"""Circuit relay v2 over real TCP: per-IP reservation limits (every peer here is
127.0.0.1, which the memory transport cannot show) and the ``pywasm-relay`` relay flags."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from pywasm.host import Host
from pywasm.host.host import default_transports
from pywasm.protocols.circuit_pb import RelayStatusError, Status
from pywasm.services import default_services
from pywasm.services.relay_client import RelayClientService
from pywasm.services.relay_hop import RelayHopService, RelayLimits
from pywasm.transports.circuit import CircuitTransport

T = 20.0
ROOT = Path(__file__).resolve().parents[2]


async def _node(*services: object, listen: list[str]) -> Host:
    return await Host.create(
        listen=listen,
        transports=[*default_transports(), CircuitTransport()],
        services=[*default_services(), *services],  # type: ignore[list-item]
    )


async def test_reservations_per_ip_over_tcp() -> None:
    hop = RelayHopService(RelayLimits(max_reservations_per_ip=2))
    relay = await _node(hop, listen=["/ip4/127.0.0.1/tcp/0"])
    clients = [await _node(RelayClientService(), listen=[]) for _ in range(3)]
    try:
        addr = relay.addrs()[0]
        for c in clients[:2]:
            await asyncio.wait_for(c.services["relay-client"].reserve(addr), T)
        with pytest.raises(RelayStatusError) as err:
            await asyncio.wait_for(clients[2].services["relay-client"].reserve(addr), T)
        assert err.value.status == Status.RESERVATION_REFUSED
        assert hop.stats.reservations_refused == 1 and len(hop.reservations) == 2
        # one of them leaves: its slot frees at once (reservations die with the connection)
        await clients[0].disconnect(relay.peer_id)
        await asyncio.sleep(0.2)
        await asyncio.wait_for(clients[2].services["relay-client"].reserve(addr), T)
        # and the circuit through TCP works: client 1 reaches client 2
        target = addr.encapsulate(f"/p2p-circuit/p2p/{clients[2].peer_id}")
        await clients[2].listen(addr.encapsulate("/p2p-circuit"))
        conn = await asyncio.wait_for(clients[1].dial(target), T)
        assert conn.limited and conn.remote_peer == clients[2].peer_id
        info = await asyncio.wait_for(clients[1].services["identify"].identified(conn), T)
        assert any("p2p-circuit" in str(a) for a in info.listen_addrs)
    finally:
        for h in [*clients, relay]:
            await h.stop()


def _relay_app(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    site = tmp / "site"
    site.mkdir(exist_ok=True)
    exe = Path(sys.executable).with_name("pywasm-relay")
    return subprocess.run(
        [str(exe), "--listen", "/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0", "--site", str(site),
         "--data-dir", str(tmp / "data"), *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )


@pytest.mark.parametrize(
    "flag,value,needle",
    [
        ("--relay-circuit-data", "-1", "--relay-circuit-data"),
        ("--relay-max-reservations", "0", "--relay-max-reservations"),
        ("--relay-reservation-ttl", "abc", "--relay-reservation-ttl"),
    ],
)
def test_relay_app_rejects_bad_limits(tmp_path: Path, flag: str, value: str, needle: str) -> None:
    res = _relay_app(flag, value, tmp=tmp_path)
    assert res.returncode == 2, res
    assert needle in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_relay_app_help_lists_relay_limits(tmp_path: Path) -> None:
    res = _relay_app("--help", tmp=tmp_path)
    assert res.returncode == 0
    for flag in ("--no-relay", "--relay-circuit-data", "--relay-circuit-duration", "--relay-max-reservations-per-ip"):
        assert flag in res.stdout
