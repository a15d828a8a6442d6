"""asyncio drivers turning a sans-IO muxer core and a secured connection into a
:class:`~pywasm.interfaces.MuxedConnection`."""

from __future__ import annotations

from .mplex import MplexConnection, MplexMuxer, MplexStream
from .yamux import YamuxConnection, YamuxMuxer, YamuxStream

__all__ = [
    "YamuxMuxer",
    "YamuxConnection",
    "YamuxStream",
    "MplexMuxer",
    "MplexConnection",
    "MplexStream",
]
