"""DCUtR over real TCP on loopback.

Each host has a TCP transport that marks connections to or from its "relay" port as
limited (what a relayed connection is); DCUtR must then open a direct TCP connection to
the other listen port. Real NAT traversal is not exercised here (see the module notes in
pywasm/services/dcutr.py): on loopback both dials simply succeed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pywasm.host import Host
from pywasm.identity import KeyType, PrivateKey
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.services.dcutr import DCUtRService
from pywasm.services.identify import IdentifyService
from pywasm.services.ping import PingService
from pywasm.transports.tcp import TCPTransport
from tests._helpers import wait_until

T = 30.0


class SplitTCP(TCPTransport):
    def __init__(self, relay_ports: set[int]) -> None:
        super().__init__()
        self.relay_ports = relay_ports

    async def dial(self, addr: Multiaddr) -> Any:
        conn = await super().dial(addr)
        conn.limited = int(addr.value_for("tcp") or 0) in self.relay_ports
        return conn

    async def listen(self, addr: Multiaddr, handler: Any) -> Any:
        box: list[int] = []

        async def marked(conn: Any) -> None:
            conn.limited = box[0] in self.relay_ports
            await handler(conn)

        listener = await super().listen(addr, marked)
        box.append(int(listener.addrs[0].value_for("tcp") or 0))
        return listener


async def _host(relay_ports: set[int]) -> Host:
    key = await PrivateKey.generate(KeyType.Ed25519)
    return await Host.create(
        key=key, listen=[], transports=[SplitTCP(relay_ports)],
        services=[IdentifyService(), PingService(), DCUtRService()],
    )


async def test_dcutr_upgrades_limited_tcp_connection() -> None:
    relay_ports: set[int] = set()
    b = await _host(relay_ports)
    a = await _host(relay_ports)
    try:
        (relay_addr,) = await b.listen("/ip4/127.0.0.1/tcp/0")
        relay_ports.add(int(relay_addr.value_for("tcp") or 0))
        await b.listen("/ip4/127.0.0.1/tcp/0")
        await a.listen("/ip4/127.0.0.1/tcp/0")
        relayed = await asyncio.wait_for(a.dial(relay_addr), T)
        assert relayed.limited
        await wait_until(lambda: b.services["dcutr"].results.get(a.peer_id) == "upgraded", T)
        await wait_until(lambda: any(not c.limited for c in a.connections_to(b.peer_id)), T)
        direct = await a.dial(b.peer_id)
        assert not direct.limited and direct.remote_addr is not None
        assert "127.0.0.1" in str(direct.remote_addr)
        assert await asyncio.wait_for(a.services["ping"].ping(b.peer_id), T) >= 0
        rtt = b.services["dcutr"].last_rtt
        assert rtt is not None and rtt < 1.0
    finally:
        await a.stop()
        await b.stop()
