"""DCUtR over a real circuit-relay v2 connection (memory transport, relay in-process).

R relays; B reserves on R and also listens on a direct memory address; A dials B through
R. B received the relayed connection, so B initiates DCUtR and both end with a direct
connection that the host prefers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pywasm.host import Host
from pywasm.identity import KeyType, PrivateKey
from pywasm.services import default_services
from pywasm.services.dcutr import DCUtRService
from pywasm.services.relay_client import RelayClientService
from pywasm.services.relay_hop import RelayHopService
from pywasm.transports.circuit import CircuitTransport
from pywasm.transports.memory import MemoryTransport
from tests._helpers import wait_until

T = 20.0


async def _node(*extra: Any, listen: list[str]) -> Host:
    key = await PrivateKey.generate(KeyType.Ed25519)
    return await Host.create(
        key=key, listen=listen, transports=[MemoryTransport(), CircuitTransport(hop_timeout=5.0)],
        services=[*default_services(), *extra],
    )


async def test_dcutr_over_circuit_relay() -> None:
    r = await _node(RelayHopService(), listen=["/memory/0"])
    b = await _node(RelayClientService(), listen=["/memory/0"])
    a = await _node(RelayClientService(), listen=["/memory/0"])
    try:
        (b_relayed,) = await asyncio.wait_for(b.listen(r.addrs()[0].encapsulate("/p2p-circuit")), T)
        relayed = await asyncio.wait_for(a.dial(b_relayed), T)
        assert relayed.limited
        await wait_until(lambda: b.services["dcutr"].results.get(a.peer_id) == "upgraded", T)
        await wait_until(lambda: any(not c.limited for c in a.connections_to(b.peer_id)), T)
        assert not (await a.dial(b.peer_id)).limited
        assert await asyncio.wait_for(a.services["ping"].ping(b.peer_id), T) >= 0
        # nothing relayed was offered as a hole-punch address
        assert all("p2p-circuit" not in str(x) for x in b.services["dcutr"].own_addrs())
    finally:
        for h in (a, b, r):
            await h.stop()
