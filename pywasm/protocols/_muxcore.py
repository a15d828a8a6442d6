"""Pieces the sans-IO muxer cores (yamux, mplex) share: the output queue and event list.

Both cores queue frames (headers as bytes, payloads as views of the caller's buffer) in
``_out`` and events in ``_events``; the asyncio driver drains them through the methods
below once per read or write, never per frame, so the shared base costs nothing on the
hot path (frame building and parsing stay inline in each core).
"""

from __future__ import annotations

from typing import Generic, TypeVar

E = TypeVar("E")


class MuxSessionBase(Generic[E]):
    """Owns ``_out`` (queued frames), ``_out_size`` (their bytes) and ``_events``."""

    def __init__(self) -> None:
        self._events: list[E] = []
        self._out: list[bytes | memoryview] = []
        self._out_size = 0

    def data_to_send(self) -> bytes:
        """All queued frames as one byte string (b"" if none); clears the queue."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 and isinstance(out[0], bytes) else b"".join(out)
        out.clear()
        self._out_size = 0
        return data

    @property
    def has_output(self) -> bool:
        return bool(self._out)

    def next_events(self) -> list[E]:
        """Events since the last call, oldest first."""
        events = self._events
        if events:
            self._events = []
        return events


__all__ = ["MuxSessionBase"]
