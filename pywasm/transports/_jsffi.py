"""What the browser transports share at the Python/JS boundary (Pyodide only at run time).

The JS shims (browser/src/*.mjs) are registered with ``pyodide.registerJsModule`` by the
bootstrap and are pull-based: Python calls them and awaits what they return, and they
never call back into Python.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import TransportError


def load_js_module(name: str, what: str) -> Any:
    """The registered JS module ``name``, or a TransportError saying the bootstrap missed it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise TransportError(
            f"the JS {what} module is not registered: the bootstrap must call "
            f'pyodide.registerJsModule("{name}", module) before dialing'
        ) from None


async def maybe_await(value: Any) -> Any:
    """A shim answers synchronously when it can; only Promises (thenables) are awaited."""
    if hasattr(value, "then"):
        return await value
    return value


def is_null(value: Any) -> bool:
    """JS null arrives as None, or as ``pyodide.ffi.jsnull`` when it comes through a Promise."""
    return value is None or type(value).__name__ == "JsNull"


__all__ = ["load_js_module", "maybe_await", "is_null"]
