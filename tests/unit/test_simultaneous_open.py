"""Upgrader roles on a TCP simultaneous open (pywasm/host/upgrader.py, ``simultaneous_open``).

Both peers dialed, so both call ``upgrade_outbound`` on the same byte pipe; the one that
hears the other act as the dialer within its window takes the listener's roles (Noise
responder, yamux server). Runs in Pyodide too: memory pipes only.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pywasm.errors import PeerIdMismatchError, PywasmError
from pywasm.host import Host
from pywasm.host.connection import Direction
from pywasm.transports.memory import MemoryTransport, memory_pipe


async def _hosts() -> tuple[Host, Host]:
    a = await Host.create(listen=[], transports=[MemoryTransport()], services=[])
    b = await Host.create(listen=[], transports=[MemoryTransport()], services=[])
    return a, b


async def _echo_over(x: Any, y: Any) -> None:
    """A stream opened by x is accepted by y and carries bytes both ways."""
    s = await x.muxed.open_stream()
    await s.write(b"ping")
    t = await asyncio.wait_for(y.muxed.accept_stream(), 5)
    assert await t.read(4) == b"ping"
    await t.write(b"pong")
    assert await s.read(4) == b"pong"


def _roles(c: Any) -> tuple[bool, bool]:
    return bool(c.secure.is_initiator), bool(c.muxed.is_initiator)


async def test_shorter_window_becomes_the_dialer_and_both_stay_outbound() -> None:
    a, b = await _hosts()
    try:
        pa, pb = memory_pipe()
        ca, cb = await asyncio.wait_for(asyncio.gather(
            a.upgrader.upgrade_outbound(pa, b.peer_id, simultaneous_open=0.05),
            b.upgrader.upgrade_outbound(pb, a.peer_id, simultaneous_open=1.0),
        ), 10)
        assert ca.remote_peer == b.peer_id and cb.remote_peer == a.peer_id
        assert _roles(ca) == (True, True) and _roles(cb) == (False, False)
        assert ca.direction is Direction.OUTBOUND and cb.direction is Direction.OUTBOUND
        await _echo_over(ca, cb)
        await _echo_over(cb, ca)
    finally:
        await a.stop()
        await b.stop()


async def test_a_peer_that_dials_at_once_makes_us_the_listener() -> None:
    """js-libp2p's DCUtR responder, go's initiator: a plain dialer on the other end."""
    a, b = await _hosts()
    try:
        pa, pb = memory_pipe()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        ca, cb = await asyncio.wait_for(asyncio.gather(
            a.upgrader.upgrade_outbound(pa, b.peer_id, simultaneous_open=3.0),
            b.upgrader.upgrade_outbound(pb, a.peer_id),
        ), 10)
        # decided on the peer's first bytes, not at the end of the window
        assert loop.time() - t0 < 2.0
        assert _roles(ca) == (False, False) and _roles(cb) == (True, True)
        await _echo_over(ca, cb)
    finally:
        await a.stop()
        await b.stop()


async def test_a_listening_peer_makes_us_the_dialer_after_the_window() -> None:
    """go's DCUtR responder (and any listener) sends its multistream header unasked:
    a header alone is not a dialer, so we dial once the window has passed."""
    a, b = await _hosts()
    try:
        pa, pb = memory_pipe()
        ca, cb = await asyncio.wait_for(asyncio.gather(
            a.upgrader.upgrade_outbound(pa, b.peer_id, simultaneous_open=0.2),
            b.upgrader.upgrade_inbound(pb),
        ), 10)
        assert _roles(ca) == (True, True) and cb.direction is Direction.INBOUND
        await _echo_over(cb, ca)
    finally:
        await a.stop()
        await b.stop()


async def test_listener_role_still_checks_the_peer_id() -> None:
    a, b = await _hosts()
    c = await Host.create(listen=[], transports=[MemoryTransport()], services=[])
    try:
        pa, pb = memory_pipe()
        results = await asyncio.wait_for(asyncio.gather(
            # we expected c, but b is on the other end
            a.upgrader.upgrade_outbound(pa, c.peer_id, simultaneous_open=3.0),
            b.upgrader.upgrade_outbound(pb, a.peer_id),
            return_exceptions=True,
        ), 10)
        assert isinstance(results[0], PeerIdMismatchError), results
    finally:
        for h in (a, b, c):
            await h.stop()


async def test_silence_then_close_is_an_error_not_a_hang() -> None:
    a, _ = await _hosts()
    try:
        pa, pb = memory_pipe()
        await pb.close()
        with pytest.raises(PywasmError):
            await asyncio.wait_for(a.upgrader.upgrade_outbound(pa, None, simultaneous_open=0.5), 10)
    finally:
        await a.stop()
