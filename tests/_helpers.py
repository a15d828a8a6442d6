"""Helpers shared by the test suites.

Pure Python and asyncio only (no sockets, no subprocesses): tests/unit imports this
module inside Pyodide too.
"""

from __future__ import annotations

import asyncio
from typing import Any


# --- asyncio -------------------------------------------------------------------------------
async def wait_until(cond: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def random_transfer(writer: Any, reader: Any, data: bytes, rng: Any, write_sizes: list[int],
                          read_sizes: list[int], read_timeout: float | None = None) -> bytes:
    """Write ``data`` in pieces of random sizes from ``write_sizes`` then half-close, while
    reading to EOF in random sizes from ``read_sizes`` (-1: whatever is there); returns what
    was read. Random sizes cross every frame and buffer boundary of the stream under test."""

    async def send() -> None:
        pos = 0
        while pos < len(data):
            n = rng.choice(write_sizes)
            await writer.write(data[pos : pos + n])
            pos += n
        await writer.close_write()

    async def recv() -> bytes:
        out = bytearray()
        while True:
            chunk = await asyncio.wait_for(reader.read(rng.choice(read_sizes)), read_timeout)
            if not chunk:
                return bytes(out)
            out += chunk

    _, got = await asyncio.gather(send(), recv())
    return got


def other_tasks() -> list[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not current and not t.done()]


# --- sans-IO muxer sessions (yamux, mplex) -------------------------------------------------
def feed_bytewise(session: Any, data: bytes) -> list[Any]:
    """Feed ``data`` one byte at a time; returns the events, oldest first."""
    events: list[Any] = []
    for i in range(len(data)):
        session.receive_data(data[i : i + 1])
        events += session.next_events()
    return events


def pump(a: Any, b: Any) -> tuple[list[Any], list[Any]]:
    """Move bytes both ways until quiet; returns (events of a, events of b)."""
    ea: list[Any] = []
    eb: list[Any] = []
    while a.has_output or b.has_output:
        b.receive_data(a.data_to_send())
        eb += b.next_events()
        a.receive_data(b.data_to_send())
        ea += a.next_events()
    return ea, eb
