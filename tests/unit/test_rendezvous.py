"""Rendezvous over the memory transport: a server, several clients, real signed records."""

from __future__ import annotations

import asyncio

import pytest

from pywasm.errors import StreamResetError
from pywasm.host import Host
from pywasm.identity import KeyType, PrivateKey
from pywasm.identity.peer_record import seal_peer_record
from pywasm.protocols.rendezvous_pb import RENDEZVOUS, MessageType, RegisterPB, RendezvousPB, ResponseStatus
from pywasm.services.identify import IdentifyService
from pywasm.services.rendezvous import RendezvousError, RendezvousService
from pywasm.streams import encode_lp
from pywasm.transports.memory import MemoryTransport

T = 20.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _node(server: bool = False, **kw: object) -> Host:
    return await Host.create(
        key=await PrivateKey.generate(KeyType.Ed25519),
        listen=["/memory/0"],
        transports=[MemoryTransport()],
        services=[IdentifyService(), RendezvousService(server=server, **kw)],  # type: ignore[arg-type]
    )


def rv(h: Host) -> RendezvousService:
    svc = h.services["rendezvous"]
    assert isinstance(svc, RendezvousService)
    return svc


async def test_register_discover_cookie_unregister_and_ttl() -> None:
    clock = Clock()
    s = await _node(server=True, clock=clock)
    clients = [await _node() for _ in range(4)]
    try:
        addr = s.addrs()[0]
        assert RENDEZVOUS in s.protocols() and RENDEZVOUS not in clients[0].protocols()
        for c in clients[:3]:
            assert await asyncio.wait_for(rv(c).register(addr, "chat", ttl=300), T) == 300
        await rv(clients[3]).register(addr, "other", ttl=7200)
        d = clients[3]
        regs, cookie = await asyncio.wait_for(rv(d).discover(addr, "chat", limit=2), T)
        assert [r.peer_id for r in regs] == [c.peer_id for c in clients[:2]]
        assert regs[0].addrs == clients[0].listen_addrs() and regs[0].ttl == 300
        # the cookie pages on, then nothing new
        regs2, cookie2 = await rv(d).discover(addr, "chat", cookie=cookie)
        assert [r.peer_id for r in regs2] == [clients[2].peer_id]
        assert (await rv(d).discover(addr, "chat", cookie=cookie2))[0] == []
        # discovered addresses land in the peerstore: dial by peer id works
        assert (await d.dial(clients[0].peer_id)).remote_peer == clients[0].peer_id
        # all namespaces
        assert len((await rv(d).discover(addr))[0]) == 4
        # a cookie for another namespace is refused
        with pytest.raises(RendezvousError) as err:
            await rv(d).discover(addr, "other", cookie=cookie)
        assert err.value.status == ResponseStatus.E_INVALID_COOKIE
        # unregister (no answer on the wire), then it is gone
        await rv(clients[1]).unregister(addr, "chat")
        await asyncio.sleep(0.05)
        assert clients[1].peer_id not in rv(s).registrations("chat")
        # re-registering replaces, it does not duplicate
        await rv(clients[0]).register(addr, "chat", ttl=300)
        assert rv(s).registrations("chat").count(clients[0].peer_id) == 1
        # TTLs end
        clock.now += 301
        assert rv(s).registrations("chat") == []
        assert [r.peer_id for r in (await rv(d).discover(addr))[0]] == [clients[3].peer_id]
    finally:
        await asyncio.gather(s.stop(), *(c.stop() for c in clients))


async def test_limits_and_invalid_requests() -> None:
    s = await _node(server=True, max_per_peer=2, max_per_namespace=2)
    a, b, c = await _node(), await _node(), await _node()
    try:
        addr = s.addrs()[0]
        for bad_ttl in (5, 73 * 3600):
            with pytest.raises(RendezvousError) as err:
                await rv(a).register(addr, "ns", ttl=bad_ttl)
            assert err.value.status == ResponseStatus.E_INVALID_TTL
        with pytest.raises(RendezvousError):
            await rv(a).register(addr, "x" * 256)
        await rv(a).register(addr, "n1")
        await rv(a).register(addr, "n2")
        with pytest.raises(RendezvousError) as err:
            await rv(a).register(addr, "n3")
        assert err.value.status == ResponseStatus.E_UNAVAILABLE  # per-peer limit
        await rv(b).register(addr, "n1")
        with pytest.raises(RendezvousError) as err:
            await rv(c).register(addr, "n1")
        assert err.value.status == ResponseStatus.E_UNAVAILABLE  # per-namespace limit

        # a record signed by someone else: not authorized
        other = await PrivateKey.generate(KeyType.Ed25519)
        env = await seal_peer_record(other, c.listen_addrs())
        msg = RendezvousPB(type=int(MessageType.REGISTER), register=RegisterPB(ns="z", signed_peer_record=env.encode(), ttl=300))
        resp = await rv(c)._rpc(addr, msg, MessageType.REGISTER_RESPONSE)
        assert resp is not None and resp.register_response is not None
        assert resp.register_response.status == ResponseStatus.E_NOT_AUTHORIZED
        # a garbage record: invalid
        msg.register.signed_peer_record = b"\x0a\x03abc"  # type: ignore[union-attr]
        resp = await rv(c)._rpc(addr, msg, MessageType.REGISTER_RESPONSE)
        assert resp.register_response.status == ResponseStatus.E_INVALID_SIGNED_PEER_RECORD  # type: ignore[union-attr]
        # garbage bytes reset the stream; the server serves on
        st = await c.new_stream(s.peer_id, [RENDEZVOUS])
        await st.write(encode_lp(b"\xff\xff\xff"))
        with pytest.raises(StreamResetError):
            await asyncio.wait_for(st.read_lp(1024), T)
        assert len((await rv(c).discover(addr, "n1"))[0]) == 2
    finally:
        await asyncio.gather(s.stop(), a.stop(), b.stop(), c.stop())


async def test_refresh_keeps_a_registration_alive() -> None:
    s = await _node(server=True, min_ttl=1)
    a = await _node(min_ttl=1)
    try:
        addr = s.addrs()[0]
        await rv(a).register(addr, "live", ttl=2, refresh=True)
        seq0 = rv(s)._ns["live"][a.peer_id].seq
        await asyncio.sleep(2.5)  # past the first TTL: refreshed at 80 %
        assert a.peer_id in rv(s).registrations("live")
        assert rv(s)._ns["live"][a.peer_id].seq > seq0
        await rv(a).unregister(addr, "live")
        await asyncio.sleep(0.05)
        assert rv(s).registrations("live") == []
    finally:
        await asyncio.gather(s.stop(), a.stop())
