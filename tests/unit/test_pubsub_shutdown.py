"""Stopping a host while its gossipsub link is still opening is quiet (runs in Pyodide too).

The bug: ``_run_link`` opened its stream under ``asyncio.wait_for``, which (on CPython
3.11) runs ``new_stream`` in a task of its own. When ``stop()`` cancelled the link just as
that task failed (the peer reset the stream while it stopped too), wait_for waited for the
task but never read its error, and asyncio reported "Task exception was never retrieved"
through the loop's exception handler. Over the memory transport the scheduling is
deterministic, so stepping the stop through every point of the stream opening hits the
race every run.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from tests.unit._gossip_net import TIMEOUT, GossipNet

STEPS = 30  # loop iterations between the dial and the stop; the window is inside this


async def _stop_at(step: int) -> bool:
    """Dial, let ``step`` loop iterations pass, stop A then B; True if A's link to B
    was still opening when A's stop began."""
    net = GossipNet()
    a, b = await net.add(2)
    dial = asyncio.ensure_future(a.dial(b.addrs()[0]))
    for _ in range(step):
        await asyncio.sleep(0)
    link = net.ps(a)._links.get(b.peer_id)
    opening = link is not None and link.opening
    await asyncio.wait_for(a.stop(), TIMEOUT)
    await asyncio.wait_for(b.stop(), TIMEOUT)
    try:
        await dial
    except BaseException:  # noqa: BLE001 - the stop may cut the dial short; not under test
        pass
    return opening


async def test_stop_during_link_negotiation_reports_no_unretrieved_error() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
    try:
        in_flight = 0
        for step in range(STEPS):
            in_flight += await _stop_at(step)
            # unretrieved task errors are reported when the task is collected
            gc.collect()
            await asyncio.sleep(0)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert in_flight >= 3, f"the stop never landed while a link was opening ({in_flight})"
    assert not reported, [f"{c.get('message')}: {c.get('exception')!r} {c.get('future')!r}" for c in reported]
