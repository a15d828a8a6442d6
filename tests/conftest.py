"""Test configuration shared by every suite.

Async tests are plain ``async def test_...`` functions. We run them ourselves rather than
through pytest-asyncio so the same hook works inside Pyodide, where the browser-style
WebLoop cannot block: there we drive the coroutine on a private, synchronous loop
(tests/_sync_loop.py).
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from typing import Any

import pytest


def _run(coro: Any) -> Any:
    if sys.platform == "emscripten":
        from tests._sync_loop import run_sync

        return run_sync(coro)
    return asyncio.run(coro)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    func = pyfuncitem.obj
    if inspect.iscoroutinefunction(func):
        argnames = pyfuncitem._fixtureinfo.argnames
        kwargs = {name: pyfuncitem.funcargs[name] for name in argnames}
        _run(func(**kwargs))
        return True
    return None
