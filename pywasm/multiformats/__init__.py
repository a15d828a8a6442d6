"""Multiformats used by libp2p: varint, multibase, multihash, CID and multiaddr.

Pure Python (stdlib only) so the same code runs on CPython and inside Pyodide.
"""

from __future__ import annotations

from . import cid, multiaddr, multibase, multihash, varint
from .cid import CID
from .multiaddr import Multiaddr

__all__ = ["CID", "Multiaddr", "cid", "multiaddr", "multibase", "multihash", "varint"]
