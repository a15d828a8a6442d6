"""The host adopts connections that a transport secured and multiplexed itself.

QUIC and WebTransport hand the host an UpgradedConnection instead of a raw one. This
test transport does Noise + yamux inside dial/listen over the memory pipe, the way those
transports do TLS or Noise inside their own handshake, so the adopt path runs without
sockets (and in Pyodide).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pywasm.errors import DialError
from pywasm.host import Host
from pywasm.identity import KeyType, PeerId, PrivateKey, PublicKey
from pywasm.interfaces import MuxedConnection, is_upgraded
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.muxers import YamuxMuxer
from pywasm.security.noise import NoiseSecurity
from pywasm.services.ping import PING
from pywasm.transports.memory import MemoryTransport

TIMEOUT = 20.0


@dataclass
class _Upgraded:
    local_peer: PeerId
    remote_peer: PeerId
    remote_public_key: PublicKey
    local_addr: Multiaddr | None
    remote_addr: Multiaddr
    muxed: MuxedConnection
    security_protocol: str = "/test-secure"
    muxer_protocol: str = "test-native-streams"


class SelfSecuringTransport:
    """Claims /memory addresses; returns connections already secured and muxed."""

    def __init__(self, lie_about_peer: PeerId | None = None) -> None:
        self.inner = MemoryTransport()
        self.ctx: Any = None
        self.lie_about_peer = lie_about_peer

    def bind(self, ctx: Any) -> None:
        self.ctx = ctx

    def can_dial(self, addr: Multiaddr) -> bool:
        return self.inner.can_dial(addr)

    def can_listen(self, addr: Multiaddr) -> bool:
        return self.inner.can_listen(addr)

    async def _secure(self, raw: Any, outbound: bool) -> _Upgraded:
        noise = NoiseSecurity(self.ctx.private_key)
        sec = await (noise.secure_outbound(raw, None) if outbound else noise.secure_inbound(raw))
        remote = self.lie_about_peer or sec.remote_peer
        return _Upgraded(sec.local_peer, remote, sec.remote_public_key, raw.local_addr,
                         raw.remote_addr, YamuxMuxer().create(sec, outbound))

    async def dial(self, addr: Multiaddr) -> _Upgraded:
        return await self._secure(await self.inner.dial(addr), True)

    async def listen(self, addr: Multiaddr, handler: Any) -> Any:
        async def on_raw(raw: Any) -> None:
            await handler(await self._secure(raw, False))

        return await self.inner.listen(addr, on_raw)


async def _host(transport: SelfSecuringTransport) -> Host:
    key = await PrivateKey.generate(KeyType.Ed25519)
    return await Host.create(key=key, listen=["/memory/0"], transports=[transport])


async def test_upgraded_connections_are_adopted_both_ways() -> None:
    ta, tb = SelfSecuringTransport(), SelfSecuringTransport()
    a, b = await _host(ta), await _host(tb)
    try:
        assert ta.ctx is a and tb.ctx is b, "the host binds self-securing transports to itself"
        conn = await asyncio.wait_for(a.dial(b.addrs()[0]), TIMEOUT)
        assert is_upgraded(conn.secure)
        assert conn.remote_peer == b.peer_id
        assert conn.security_protocol == "/test-secure"
        assert conn.muxer_protocol == "test-native-streams"
        rtt = await asyncio.wait_for(a.services["ping"].ping(b.peer_id), TIMEOUT)
        assert rtt >= 0
        # the listener side registered the adopted inbound connection too
        for _ in range(200):
            if b.connections_to(a.peer_id):
                break
            await asyncio.sleep(0.01)
        inbound = b.connections_to(a.peer_id)
        assert inbound and inbound[0].muxer_protocol == "test-native-streams"
        stream = await asyncio.wait_for(inbound[0].new_stream([PING]), TIMEOUT)
        await stream.write(b"\x01" * 32)
        assert await asyncio.wait_for(stream.read_exactly(32), TIMEOUT) == b"\x01" * 32
        await stream.close()
    finally:
        await a.stop()
        await b.stop()


async def test_transport_reporting_wrong_peer_is_refused() -> None:
    stranger = PeerId.from_public_key((await PrivateKey.generate(KeyType.Ed25519)).public_key)
    b = await _host(SelfSecuringTransport())
    a = await _host(SelfSecuringTransport(lie_about_peer=stranger))
    try:
        try:
            await asyncio.wait_for(a.dial(b.addrs()[0]), TIMEOUT)
        except DialError as exc:
            assert f"the transport authenticated {stranger}" in str(exc)
        else:
            raise AssertionError("a dial the transport authenticated as another peer must fail")
        assert not a.connections_to(b.peer_id)
    finally:
        await a.stop()
        await b.stop()
