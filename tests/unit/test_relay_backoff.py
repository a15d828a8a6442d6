"""Reservation keep-alive: the backoff and attempt log (pywasm/services/relay_keepalive.py)
and the relay client's keeper riding out a relay restart over the memory transport.

Pyodide-safe (memory transport, no sockets). The restart here is in-process: the relay
host stops, a new one with the same key listens on the same /memory address.
tests/native/test_relay_reliability.py does the same with a real pywasm-relay process.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from pywasm.errors import ConfigError
from pywasm.host import Host
from pywasm.identity import KeyType, PrivateKey
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.services import default_services
from pywasm.services.relay_client import RelayClientService
from pywasm.services.relay_hop import RelayHopService, RelayLimits
from pywasm.services.relay_keepalive import MAX_ATTEMPTS_KEPT, AttemptLog, Backoff
from pywasm.transports.circuit import CircuitTransport
from pywasm.transports.memory import MemoryTransport
from tests._helpers import wait_until

T = 20.0
ECHO = "/test/relayed-echo/1.0.0"


# --- Backoff ---------------------------------------------------------------------------
def test_backoff_without_randomness_doubles_to_the_cap() -> None:
    b = Backoff(0.1, 1.0, rng=lambda: 0.0)
    got = [round(b.next_delay(), 6) for _ in range(7)]
    assert got == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert b.failures == 7
    b.reset()
    assert (b.failures, b.base) == (0, 0.1)
    assert b.next_delay() == pytest.approx(0.1)


def test_backoff_jitter_bounds_and_never_shrinks_before_the_cap() -> None:
    for seed in range(50):
        rng = random.Random(seed)
        b = Backoff(0.05, 2.0, jitter=0.5, rng=rng.random)
        delays = [b.next_delay() for _ in range(20)]
        bases = [min(0.05 * 2**n, 2.0) for n in range(20)]
        for d, base in zip(delays, bases):
            assert base * 0.5 <= d <= base
        # 0.05 * 2**6 = 3.2 > 2: the first 6 delays are below the cap and non-decreasing
        assert delays[:6] == sorted(delays[:6])
        assert max(delays) <= 2.0


def test_backoff_jitter_actually_spreads_clients() -> None:
    # two clients of one relay that restarted must not retry in lockstep
    a = Backoff(1.0, 60.0, rng=random.Random(1).random)
    b = Backoff(1.0, 60.0, rng=random.Random(2).random)
    pairs = [(a.next_delay(), b.next_delay()) for _ in range(5)]
    assert any(abs(x - y) > 0.01 for x, y in pairs)


def test_backoff_rejects_bad_bounds() -> None:
    for kw in ({"initial": 0, "maximum": 1}, {"initial": 2, "maximum": 1}, {"initial": 1, "maximum": 2, "factor": 1},
               {"initial": 1, "maximum": 2, "jitter": 1.0}, {"initial": 1, "maximum": 2, "jitter": -0.1}):
        with pytest.raises(ConfigError):
            Backoff(**kw)
    with pytest.raises(ConfigError):
        RelayClientService(backoff_jitter=1.5)


def test_attempt_log_is_bounded_and_counts_everything() -> None:
    log = AttemptLog()
    for i in range(MAX_ATTEMPTS_KEPT + 10):
        log.record(float(i), i + 0.5, ok=i % 3 == 0, error="x" * 1000, delay=0.25)
    assert len(log) == MAX_ATTEMPTS_KEPT
    assert log.total == MAX_ATTEMPTS_KEPT + 10
    assert log.total_failed == sum(1 for i in range(MAX_ATTEMPTS_KEPT + 10) if i % 3)
    items = log.to_list()
    assert items[0]["started"] == 10.0 and items[-1]["duration"] == 0.5
    assert all(len(a["error"]) <= 300 for a in items)
    assert [a.started for a in log.since(70.0)] == [float(i) for i in range(70, MAX_ATTEMPTS_KEPT + 10)]


# --- the keeper across a relay restart ---------------------------------------------------
async def _node(*services: Any, key: PrivateKey | None = None, listen: list[str] | None = None) -> Host:
    host = await Host.create(
        key=key or await PrivateKey.generate(KeyType.Ed25519),
        listen=listen if listen is not None else [],
        transports=[MemoryTransport(), CircuitTransport(hop_timeout=5.0)],
        services=[*(s for s in default_services() if s.name != "dcutr"), *services],
    )

    async def echo(stream: Any, conn: Any) -> None:
        while chunk := await stream.read(65536):
            await stream.write(chunk)
        await stream.close()

    host.set_stream_handler(ECHO, echo, allow_limited=True)
    return host


async def _echo(conn: Any, data: bytes) -> bytes:
    s = await conn.new_stream([ECHO], timeout=T, allow_limited=True)
    await s.write(data)
    await s.close_write()
    out = bytearray()
    while chunk := await asyncio.wait_for(s.read(65536), T):
        out += chunk
    await s.close()
    return bytes(out)


def _client() -> RelayClientService:
    return RelayClientService(backoff_initial=0.05, backoff_max=0.4, min_refresh_interval=0.2, hop_timeout=5.0)


async def test_keeper_reserves_again_after_relay_restart_with_backoff() -> None:
    relay_key = await PrivateKey.generate(KeyType.Ed25519)
    mem = f"/memory/{random.getrandbits(48) + 1}"
    hop = RelayHopService(RelayLimits())
    relay = await _node(hop, key=relay_key, listen=[mem])
    a = await _node(_client())
    b = await _node(_client())
    hosts = [a, b, relay]
    try:
        relay_addr = relay.addrs()[0]
        assert str(relay_addr).startswith(mem)
        relayed = relay_addr.encapsulate("/p2p-circuit")
        await asyncio.wait_for(b.listen(relayed), T)
        client: RelayClientService = b.services["relay-client"]  # type: ignore[assignment]
        rid = relay.peer_id
        first_expire = client.reservation(rid).expire  # type: ignore[union-attr]

        # the relay goes away: B loses the reservation and its relayed address
        down = time.monotonic()
        await relay.stop()
        hosts.remove(relay)
        await wait_until(lambda: relayed not in b.listen_addrs() and client.reservation(rid) is None, T)
        await asyncio.sleep(1.5)
        state = client.keeper_state(rid)
        assert state is not None and not state["reserved"]
        failed = [x for x in state["attempts"] if not x["ok"] and x["started"] >= down]
        # retried, but paced: 0.05, 0.1, 0.2, 0.4, 0.4 ... s (jitter halves at most) over
        # 1.5 s is at most ~11 tries; a hot loop would make thousands
        assert 3 <= len(failed) <= 12, failed
        delays = [x["delay"] for x in failed]
        below_cap = [d for d in delays if d < 0.2]
        assert below_cap == sorted(below_cap), delays
        assert all(d <= 0.4 for d in delays), delays
        assert state["failures"] == len(failed)

        # the same relay (key, address) comes back: B reserves again by itself
        hop2 = RelayHopService(RelayLimits())
        relay2 = await _node(hop2, key=relay_key, listen=[mem])
        hosts.append(relay2)
        assert relay2.peer_id == rid and relay2.addrs()[0] == relay_addr
        await wait_until(lambda: b.peer_id in hop2.reservations, T)
        await wait_until(lambda: relayed in b.listen_addrs(), T)
        state = client.keeper_state(rid)
        assert state is not None and state["reserved"] and state["failures"] == 0
        assert state["attempts"][-1]["ok"]
        assert state["expire"] >= first_expire

        # and A reaches B through the new relay process
        conn = await asyncio.wait_for(a.dial(relayed.encapsulate(f"/p2p/{b.peer_id}")), T)
        assert conn.limited and conn.remote_peer == b.peer_id
        assert await _echo(conn, b"after the restart") == b"after the restart"
        assert hop2.stats.circuits_opened == 1
    finally:
        for h in hosts:
            await h.stop()


async def test_keeper_is_cancelled_by_host_stop_while_backing_off() -> None:
    relay = await _node(RelayHopService(RelayLimits()), listen=["/memory/0"])
    b = await _node(RelayClientService(backoff_initial=5.0, backoff_max=10.0))
    try:
        await asyncio.wait_for(b.listen(relay.addrs()[0].encapsulate("/p2p-circuit")), T)
        client: RelayClientService = b.services["relay-client"]  # type: ignore[assignment]
        await relay.stop()
        await wait_until(lambda: (client.keeper_state(relay.peer_id) or {}).get("failures", 0) >= 1, T)
        keeper_task = client._keepers[relay.peer_id].task
        assert keeper_task is not None and not keeper_task.done()
    finally:
        t0 = time.monotonic()
        await asyncio.wait_for(b.stop(), T)
        # stop does not wait out the 5 s backoff sleep
        assert time.monotonic() - t0 < 2.0
        await relay.stop()
    assert keeper_task.done() and not b.services["relay-client"]._tasks  # type: ignore[attr-defined]


async def test_released_reservation_stops_retrying() -> None:
    relay = await _node(RelayHopService(RelayLimits()), listen=["/memory/0"])
    b = await _node(_client())
    try:
        addr: Multiaddr = relay.addrs()[0]
        client: RelayClientService = b.services["relay-client"]  # type: ignore[assignment]
        await asyncio.wait_for(client.reserve(addr, keep=True), T)
        rid = relay.peer_id
        await relay.stop()
        await wait_until(lambda: (client.keeper_state(rid) or {}).get("failures", 0) >= 2, T)
        await client.release(rid)
        assert client.keeper_state(rid) is None and client.reservation(rid) is None
    finally:
        await b.stop()
        await relay.stop()
