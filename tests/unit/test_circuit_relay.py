"""Circuit relay v2 end to end over the memory transport: A dials B through relay R.

R runs the hop service, A and B the relay client (stop handler, reservations) and the
circuit transport. Everything is real: Noise and yamux run inside the relayed streams.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from pywasm.errors import DialError, LimitedConnectionError, NegotiationError, TransportError
from pywasm.host import Host
from pywasm.identity import KeyType, PeerId, PrivateKey
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.protocols.circuit_pb import (
    HOP,
    STOP,
    HopMessage,
    HopType,
    RelayStatusError,
    Status,
    StopMessage,
    StopType,
    VoucherPB,
)
from pywasm.services import default_services
from pywasm.services.ping import PING
from pywasm.services.relay_client import RelayClientService
from pywasm.services.relay_hop import RelayHopService, RelayLimits
from pywasm.streams import encode_lp
from pywasm.transports.circuit import CircuitTransport
from pywasm.transports.memory import MemoryTransport
from tests._helpers import wait_until

T = 20.0
ECHO = "/test/relayed-echo/1.0.0"


async def _node(*extra: Any, listen: list[str] | None = None) -> Host:
    key = await PrivateKey.generate(KeyType.Ed25519)
    host = await Host.create(
        key=key,
        listen=["/memory/0"] if listen is None else listen,
        transports=[MemoryTransport(), CircuitTransport(hop_timeout=5.0)],
        # without DCUtR: it would move A and B to a direct memory connection, and these
        # tests are about the relayed one (tests/unit/test_dcutr_relayed.py covers both)
        services=[*(svc for svc in default_services() if svc.name != "dcutr"), *extra],
    )

    async def echo(stream: Any, conn: Any) -> None:
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                break
            await stream.write(chunk)
        await stream.close()

    # opts in to limited connections, unlike ping/echo/perf
    host.set_stream_handler(ECHO, echo, allow_limited=True)
    return host


class Trio:
    def __init__(self, limits: RelayLimits | None = None, **client: Any) -> None:
        self.limits = limits or RelayLimits()
        self.client_kw = client

    async def __aenter__(self) -> "Trio":
        self.hop = RelayHopService(self.limits)
        self.r = await _node(self.hop)
        self.a = await _node(RelayClientService(**self.client_kw))
        # B is reachable only through R (as a browser would be)
        self.b = await _node(RelayClientService(**self.client_kw), listen=[])
        self.hosts = [self.a, self.b, self.r]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for h in self.hosts:
            await h.stop()

    def relay_addr(self) -> Multiaddr:
        return self.r.addrs()[0]

    async def listen_b(self) -> Multiaddr:
        """B reserves on R; returns B's full relayed address."""
        bound = await asyncio.wait_for(self.b.listen(self.relay_addr().encapsulate("/p2p-circuit")), T)
        assert len(bound) == 1
        return bound[0]

    async def extra(self) -> Host:
        h = await _node(RelayClientService(**self.client_kw))
        self.hosts.append(h)
        return h


async def _echo(conn: Any, data: bytes) -> bytes:
    s = await conn.new_stream([ECHO], timeout=T, allow_limited=True)

    async def send() -> None:
        for off in range(0, len(data), 65536):
            await s.write(data[off : off + 65536])
        await s.close_write()

    out = bytearray()

    async def recv() -> None:
        while True:
            chunk = await s.read(65536)
            if not chunk:
                return
            out.extend(chunk)

    await asyncio.wait_for(asyncio.gather(send(), recv()), T)
    await s.close()
    return bytes(out)


async def test_reserve_dial_limited_identify_echo() -> None:
    async with Trio() as t:
        addr = await t.listen_b()
        r, b = t.r.peer_id, t.b.peer_id
        assert str(addr) == f"{t.relay_addr()}/p2p-circuit/p2p/{b}"
        # the relayed address is a listen address: identify announces it
        assert t.relay_addr().encapsulate("/p2p-circuit") in t.b.listen_addrs()
        res = t.b.services["relay-client"].reservation(r)
        assert res is not None and res.voucher is not None and res.voucher.signer == r
        v = VoucherPB.decode(res.voucher.payload)
        assert (v.relay, v.peer, v.expiration) == (r.to_bytes(), b.to_bytes(), res.expire)
        assert (res.limit_duration, res.limit_data) == (120, 1 << 17)
        assert b in t.hop.reservations

        conn = await asyncio.wait_for(t.a.dial(addr), T)
        assert conn.limited and conn.remote_peer == b
        assert conn.remote_addr == addr
        # ping did not opt in to limited connections: refused locally, and remotely
        with pytest.raises(LimitedConnectionError):
            await t.a.new_stream(b, [PING])
        with pytest.raises(NegotiationError):
            await asyncio.wait_for(conn.new_stream([PING], timeout=T, allow_limited=True), T)
        data = os.urandom(50_000)
        assert await _echo(conn, data) == data
        info = await asyncio.wait_for(t.a.services["identify"].identify(conn), T)
        assert info.peer_id == b
        assert t.relay_addr().encapsulate("/p2p-circuit") in info.listen_addrs
        # B sees the circuit too, from A, limited
        await wait_until(lambda: any(c.limited for c in t.b.connections_to(t.a.peer_id)), T)
        assert t.b.services["relay-client"].accepted == 1
        assert t.hop.stats.circuits_opened == 1 and t.hop.circuits == 1

        # dial by peer id: the relayed address learned from identify is enough
        await conn.close()
        await wait_until(lambda: t.hop.circuits == 0, T)
        again = await asyncio.wait_for(t.a.dial(b), T)
        assert again.limited and again is not conn
        assert await _echo(again, b"x" * 10) == b"x" * 10


async def test_no_reservation_and_connection_failed() -> None:
    async with Trio() as t:
        c = await t.extra()
        await asyncio.wait_for(c.dial(t.relay_addr()), T)  # connected, but no reservation
        target = t.relay_addr().encapsulate(f"/p2p-circuit/p2p/{c.peer_id}")
        with pytest.raises(DialError, match="NO_RESERVATION"):
            await asyncio.wait_for(t.a.dial(target), T)
        # B reserved, then stopped listening on circuits: R still holds the reservation
        # (the protocol has no cancel) but B refuses the stop: CONNECTION_FAILED
        addr = await t.listen_b()
        for lst in list(t.b.transports[1].listeners):
            await lst.close()
        assert t.b.peer_id in t.hop.reservations
        with pytest.raises(DialError, match="CONNECTION_FAILED"):
            await asyncio.wait_for(t.a.dial(addr), T)
        assert t.hop.stats.circuits_refused == 2 and t.hop.circuits == 0


async def test_data_limit_cuts_circuit_and_relay_keeps_serving() -> None:
    async with Trio(RelayLimits(circuit_data=64 * 1024)) as t:
        addr = await t.listen_b()
        conn = await asyncio.wait_for(t.a.dial(addr), T)
        small = os.urandom(1000)
        assert await _echo(conn, small) == small
        with pytest.raises(Exception):
            await _echo(conn, os.urandom(256 * 1024))
        await asyncio.wait_for(conn.wait_closed(), T)
        assert t.hop.stats.circuits_cut_data == 1
        await wait_until(lambda: t.hop.circuits == 0, T)
        # R is fine: a new circuit works, and R's own services answer A
        fresh = await asyncio.wait_for(t.a.dial(addr), T)
        assert fresh is not conn and await _echo(fresh, small) == small
        assert await asyncio.wait_for(t.a.services["ping"].ping(t.r.peer_id), T) >= 0


async def test_duration_limit_cuts_circuit() -> None:
    async with Trio(RelayLimits(circuit_duration=1)) as t:
        addr = await t.listen_b()
        loop = asyncio.get_running_loop()
        start = loop.time()
        conn = await asyncio.wait_for(t.a.dial(addr), T)
        assert await _echo(conn, b"hi") == b"hi"
        await asyncio.wait_for(conn.wait_closed(), T)
        elapsed = loop.time() - start
        assert 0.9 <= elapsed < 5, elapsed
        assert t.hop.stats.circuits_cut_duration == 1
        assert await asyncio.wait_for(t.a.services["ping"].ping(t.r.peer_id), T) >= 0


async def test_reservation_and_circuit_limits() -> None:
    async with Trio(RelayLimits(max_reservations=1, max_circuits_per_peer=1)) as t:
        addr = await t.listen_b()
        c = await t.extra()
        with pytest.raises(RelayStatusError, match="RESERVATION_REFUSED") as err:
            await asyncio.wait_for(c.services["relay-client"].reserve(t.relay_addr()), T)
        assert err.value.status == Status.RESERVATION_REFUSED
        # a refresh by the holder is not a new reservation
        before = t.hop.reservations[t.b.peer_id]
        await asyncio.wait_for(t.b.services["relay-client"].reserve(t.relay_addr()), T)
        assert t.hop.reservations[t.b.peer_id] >= before
        # one circuit per peer: B is the target of A's, so C's is refused
        first = await asyncio.wait_for(t.a.dial(addr), T)
        with pytest.raises(DialError, match="RESOURCE_LIMIT_EXCEEDED"):
            await asyncio.wait_for(c.dial(addr), T)
        await first.close()
        await wait_until(lambda: t.hop.circuits == 0, T)
        assert (await asyncio.wait_for(c.dial(addr), T)).limited


async def test_refresh_before_expiry_and_after_disconnect() -> None:
    limits = RelayLimits(reservation_ttl=2, sweep_interval=0.2)
    async with Trio(limits, min_refresh_interval=0.2, backoff_initial=0.1, backoff_max=0.5) as t:
        await t.listen_b()
        client = t.b.services["relay-client"]
        relayed = t.relay_addr().encapsulate("/p2p-circuit")
        loop = asyncio.get_running_loop()
        end = loop.time() + 4.5
        gaps = 0
        while loop.time() < end:
            # never a moment without the reservation, on either side
            if relayed not in t.b.listen_addrs() or t.b.peer_id not in t.hop.reservations:
                gaps += 1
            await asyncio.sleep(0.05)
        assert gaps == 0
        assert client.reservation_count >= 4  # 2 s TTL, refreshed at ~3/4 of it
        # the relay drops reservations of peers that disconnect; the client re-reserves
        count = client.reservation_count
        await t.b.disconnect(t.r.peer_id)
        await wait_until(lambda: client.reservation_count > count and t.b.peer_id in t.hop.reservations, T)
        # relay gone: the address disappears and the keeper backs off
        await t.r.stop()
        await wait_until(lambda: relayed not in t.b.listen_addrs(), T)
        keeper = client._keepers[t.r.peer_id]
        await wait_until(lambda: keeper.failures >= 2, T)


async def _raw(host: Host, target: Host, proto: str) -> Any:
    if target.addrs():
        conn = await host.dial(target.addrs()[0])
    else:  # B listens nowhere directly: let it connect to us
        await target.dial(host.addrs()[0])
        await wait_until(lambda: host.is_connected(target.peer_id), T)
        conn = host.connections_to(target.peer_id)[0]
    return await conn.new_stream([proto], timeout=T)


async def _status(stream: Any, cls: Any) -> int:
    data = await asyncio.wait_for(stream.read_lp(4096), T)
    assert data is not None
    return cls.decode(data).status


async def test_garbage_on_hop_and_stop_is_answered_and_relay_keeps_serving() -> None:
    async with Trio(RelayLimits(hop_timeout=0.5)) as t:
        cases = [
            (b"\x05hello", Status.MALFORMED_MESSAGE),
            (b"\xff\xff\x03", Status.MALFORMED_MESSAGE),  # 64 KiB length prefix
            (encode_lp(HopMessage(type=7).encode()), Status.UNEXPECTED_MESSAGE),
            (encode_lp(HopMessage(type=HopType.STATUS, status=100).encode()), Status.UNEXPECTED_MESSAGE),
            (encode_lp(HopMessage(type=HopType.CONNECT).encode()), Status.MALFORMED_MESSAGE),
            (encode_lp(HopMessage(type=HopType.CONNECT, peer=None).encode()[:1]), Status.MALFORMED_MESSAGE),
            (b"", Status.MALFORMED_MESSAGE),  # nothing at all: the read times out
        ]
        for payload, want in cases:
            s = await _raw(t.a, t.r, HOP)
            if payload:
                await s.write(payload)
            assert await _status(s, HopMessage) == want, payload
            await s.reset()
        assert t.hop.stats.malformed == len(cases)
        # stop garbage, from a peer playing relay to B
        for payload, want in [
            (b"\x03abc", Status.MALFORMED_MESSAGE),
            (encode_lp(StopMessage(type=StopType.STATUS).encode()), Status.UNEXPECTED_MESSAGE),
            (encode_lp(StopMessage(type=StopType.CONNECT).encode()), Status.MALFORMED_MESSAGE),
            (encode_lp(StopMessage(type=StopType.CONNECT, peer=None).encode()), Status.MALFORMED_MESSAGE),
        ]:
            s = await _raw(t.a, t.b, STOP)
            await s.write(payload)
            assert await _status(s, StopMessage) == want, payload
            await s.reset()
        # everybody still works
        addr = await t.listen_b()
        conn = await asyncio.wait_for(t.a.dial(addr), T)
        assert await _echo(conn, b"ok") == b"ok"


async def test_unlimited_relay_moves_bulk_with_backpressure() -> None:
    async with Trio(RelayLimits(circuit_data=0, circuit_duration=0, buffer_size=4096)) as t:
        addr = await t.listen_b()
        res = t.b.services["relay-client"].reservation(t.r.peer_id)
        assert res is not None and (res.limit_duration, res.limit_data) == (0, 0)
        conn = await asyncio.wait_for(t.a.dial(addr), T)
        data = os.urandom(2 * 1024 * 1024)
        assert await _echo(conn, data) == data
        assert t.hop.stats.bytes_relayed >= 2 * len(data)


async def test_address_checks() -> None:
    async with Trio() as t:
        addr = await t.listen_b()
        # a target with no reservation on R
        other = PeerId.from_public_key((await PrivateKey.generate(KeyType.Ed25519)).public_key)
        wrong = Multiaddr(str(addr).replace(str(t.b.peer_id), str(other)))
        with pytest.raises(DialError, match="NO_RESERVATION"):
            await asyncio.wait_for(t.a.dial(wrong), T)
        circuit = t.a.transports[1]
        assert circuit.can_dial(addr) and circuit.can_listen(t.relay_addr().encapsulate("/p2p-circuit"))
        assert circuit.can_listen(Multiaddr("/p2p-circuit"))
        for bad in [
            "/memory/5/p2p-circuit/p2p/" + str(t.b.peer_id),  # no relay id
            f"{addr}/p2p-circuit/p2p/{other}",  # chained circuits
            f"{addr}/tcp/5",
        ]:
            assert not circuit.can_dial(Multiaddr(bad)), bad
        with pytest.raises(TransportError, match="target"):
            await circuit.dial(t.relay_addr().encapsulate("/p2p-circuit"))
