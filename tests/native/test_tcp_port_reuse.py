"""TCPTransport(port_reuse=True): dials leave from the listening port (what makes identify's
observed address usable for DCUtR behind a NAT; see tests/interop/test_nat_holepunch.py),
and a dial whose 4-tuple is taken falls back to an ephemeral port."""

from __future__ import annotations

import asyncio

from pywasm.host import Host
from pywasm.transports.tcp import TCPTransport


async def _host(port_reuse: bool) -> Host:
    return await Host.create(listen=["/ip4/127.0.0.1/tcp/0"], transports=[TCPTransport(port_reuse=port_reuse)])


def _port(ma: object) -> int:
    return int(str(ma).split("/tcp/")[1].split("/")[0])


async def test_dials_leave_from_the_listening_port_and_fall_back_when_taken() -> None:
    a, b = await _host(True), await _host(False)
    try:
        a_port = _port(a.listen_addrs()[0])
        c1 = await asyncio.wait_for(a.dial(b.addrs()[0]), 10)
        assert _port(c1.local_addr) == a_port
        # b sees the connection come from a's listening port
        await asyncio.sleep(0.1)
        (seen,) = b.connections_to(a.peer_id)
        assert _port(seen.remote_addr) == a_port
        # same source and destination again: that 4-tuple is in use, so an ephemeral port
        c2 = await asyncio.wait_for(a.dial_address(b.addrs()[0]), 10)
        assert _port(c2.local_addr) != a_port and not c2.is_closed
        # the listener still accepts while its port is shared with outgoing connections
        c3 = await asyncio.wait_for(b.dial(a.addrs()[0]), 10)
        assert c3.remote_peer == a.peer_id
    finally:
        await a.stop()
        await b.stop()


async def test_without_port_reuse_dials_use_ephemeral_ports() -> None:
    a, b = await _host(False), await _host(False)
    try:
        c = await asyncio.wait_for(a.dial(b.addrs()[0]), 10)
        assert _port(c.local_addr) != _port(a.listen_addrs()[0])
    finally:
        await a.stop()
        await b.stop()
