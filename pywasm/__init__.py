"""pywasm: libp2p in pure Python, for CPython and the browser (Pyodide).

Convenience exports, loaded on first use so ``import pywasm.errors`` (or any small
module) does not pull in the whole stack::

    from pywasm import Host, Multiaddr, PeerId, PrivateKey
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "Host": "pywasm.host",
    "HostConfig": "pywasm.host",
    "Connection": "pywasm.host",
    "HostStream": "pywasm.host",
    "Peerstore": "pywasm.host",
    "Multiaddr": "pywasm.multiformats.multiaddr",
    "PeerId": "pywasm.identity",
    "PrivateKey": "pywasm.identity",
    "PublicKey": "pywasm.identity",
    "KeyType": "pywasm.identity",
    "Service": "pywasm.services",
    "IdentifyInfo": "pywasm.services",
    "PerfResult": "pywasm.services",
    "PywasmError": "pywasm.errors",
    "DialError": "pywasm.errors",
}

if TYPE_CHECKING:
    from .errors import DialError, PywasmError
    from .host import Connection, Host, HostConfig, HostStream, Peerstore
    from .identity import KeyType, PeerId, PrivateKey, PublicKey
    from .multiformats.multiaddr import Multiaddr
    from .services import IdentifyInfo, PerfResult, Service


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pywasm' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = ["__version__", *_EXPORTS]
