"""tests/_sync_loop.run_sync: the loop that drives async tests inside Pyodide.

Plain (synchronous) tests so they check run_sync itself, natively and inside Pyodide.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests._sync_loop import SyncLoop, run_sync


def test_primitives() -> None:
    async def main() -> list[object]:
        q: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        done = asyncio.Event()
        out: list[object] = []

        async def producer() -> None:
            for i in range(3):
                await asyncio.sleep(0.005)
                await q.put(i)
            done.set()

        task = asyncio.create_task(producer())
        out += [await q.get() for _ in range(3)]
        await done.wait()
        await task
        try:
            await asyncio.wait_for(asyncio.sleep(10), 0.02)
        except asyncio.TimeoutError:
            out.append("timeout")
        loop = asyncio.get_running_loop()
        assert isinstance(loop, SyncLoop)
        fut = loop.create_future()
        loop.call_later(0.01, fut.set_result, "later")
        out.append(await fut)
        out.append(await asyncio.gather(asyncio.sleep(0.01, "a"), asyncio.sleep(0, "b")))
        return out

    t0 = time.monotonic()
    assert run_sync(main()) == [0, 1, 2, "timeout", "later", ["a", "b"]]
    assert time.monotonic() - t0 < 5


def test_exceptions_propagate_and_leftovers_are_cancelled() -> None:
    cancelled: list[bool] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> None:
        asyncio.create_task(forever())
        await asyncio.sleep(0)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_sync(main())
    assert cancelled == [True]


def test_timeout() -> None:
    async def hang() -> None:
        await asyncio.Event().wait()

    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        run_sync(hang(), timeout=0.1)
    assert time.monotonic() - t0 < 5


def test_nested_runs_restore_state() -> None:
    before = asyncio._get_running_loop()
    assert run_sync(asyncio.sleep(0, 1)) == 1
    assert run_sync(asyncio.sleep(0, 2)) == 2
    assert asyncio._get_running_loop() is before
