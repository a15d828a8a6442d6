"""Run a coroutine to completion on a private, blocking event loop.

Inside Pyodide the default loop (WebLoop) is driven by the JS event loop: it cannot block,
so a synchronous pytest hook cannot wait on it. Tests do not need JS to make progress,
though: I/O is in-memory, and under Node the crypto module answers synchronously. So we
run each test on our own :class:`asyncio.BaseEventLoop` whose "selector" has no file
descriptors: ``select(timeout)`` just sleeps until the next timer is due (the shape of
CPython's ``test.test_asyncio.utils.TestLoop``, but with real monotonic time). Everything
built on the loop's ready queue and timers works: ``create_task``, ``call_later``,
``wait_for``, ``Queue``, ``Event``, ``gather``, ``sleep``.

What cannot work here: awaiting a JS Promise (it settles only when control returns to
JS), sockets, subprocesses, threads (``run_in_executor``). A test that awaits a Promise
would wait forever, so ``run_sync`` takes a wall-clock ``timeout``.

Natively ``run_sync`` works too: tests/pyodide/test_sync_loop.py checks it on both.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from asyncio import events
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")

#: Default wall-clock bound for one coroutine (a test), in seconds.
DEFAULT_TIMEOUT = 120.0
#: Longest single sleep, so a hung loop still notices its deadline promptly.
_MAX_SLEEP = 0.05


class _NoSelector(selectors.BaseSelector):
    """A selector with nothing to select: waiting is sleeping."""

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        raise NotImplementedError("the synchronous test loop has no file descriptors")

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        raise NotImplementedError("the synchronous test loop has no file descriptors")

    def select(self, timeout: float | None = None) -> list[Any]:
        # timeout None means "no timers and nothing ready": only a JS callback could make
        # progress, and none can run while we block. Sleep briefly; run_sync's deadline
        # ends the wait.
        delay = _MAX_SLEEP if timeout is None else min(max(timeout, 0.0), _MAX_SLEEP)
        if delay > 0:
            time.sleep(delay)
        return []

    def get_map(self) -> Any:
        return {}

    def close(self) -> None:
        pass


class SyncLoop(asyncio.BaseEventLoop):
    """An asyncio loop that blocks by sleeping; no I/O, real monotonic time."""

    def __init__(self) -> None:
        super().__init__()
        self._selector = _NoSelector()

    def _process_events(self, event_list: list[Any]) -> None:
        pass

    def _write_to_self(self) -> None:
        # Nobody else can wake us (no threads): nothing to do.
        pass

    def time(self) -> float:
        return time.monotonic()


def run_sync(coro: Coroutine[Any, Any, T], *, timeout: float | None = DEFAULT_TIMEOUT) -> T:
    """Run ``coro`` on a fresh :class:`SyncLoop` and return its result.

    Like :func:`asyncio.run`: the loop is closed afterwards, leftover tasks cancelled and
    async generators finalized. It may be called while another loop (Pyodide's WebLoop)
    is marked running; that loop is restored afterwards. Raises :class:`TimeoutError`
    when ``coro`` is still running after ``timeout`` seconds.
    """
    # Pyodide marks its WebLoop as running even in synchronous code; BaseEventLoop refuses
    # to run while another loop runs, so step it aside and restore it afterwards.
    outer = events._get_running_loop()
    loop = SyncLoop()
    events._set_running_loop(None)
    expired: list[bool] = []
    try:
        asyncio.set_event_loop(loop)
        task = loop.create_task(coro)
        if timeout is not None:
            handle = loop.call_later(timeout, _expire, task, expired)
            task.add_done_callback(lambda _t: handle.cancel())
        try:
            return loop.run_until_complete(task)
        except asyncio.CancelledError:
            if expired:
                raise TimeoutError(
                    f"run_sync: coroutine still running after {timeout} s "
                    "(is it awaiting a JS Promise? those cannot settle on this loop)"
                ) from None
            raise
    finally:
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            events._set_running_loop(None)
            asyncio.set_event_loop(outer)
            loop.close()
            events._set_running_loop(outer)


def _expire(task: asyncio.Task[Any], expired: list[bool]) -> None:
    if not task.done():
        expired.append(True)
        task.cancel()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if not pending:
        return
    for t in pending:
        t.cancel()
    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    for t in pending:
        if not t.cancelled() and t.exception() is not None:
            loop.call_exception_handler(
                {"message": "unhandled exception during run_sync() shutdown", "exception": t.exception(), "task": t}
            )


__all__ = ["SyncLoop", "run_sync", "DEFAULT_TIMEOUT"]
