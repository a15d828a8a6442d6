"""A FIFO of byte chunks: the receive buffer of memory pipes and muxed streams.

Why not one ``bytearray``: appending a received chunk to a bytearray copies it, and the
reader then copies it out again. Keeping the chunks as they arrived means a reader that
asks for at least a whole chunk gets the very same ``bytes`` object back (zero copies on
the bulk-transfer path); partial reads slice the head chunk and remember an offset, so
reading a large chunk in small pieces stays linear.

The queue itself does not enforce a bound: its owners do (a pipe's capacity, a yamux
window, an mplex per-stream limit) and use ``len()`` to check it.

:class:`QueuedReader` is the ``Stream.read`` that every owner of such a queue shares.
"""

from __future__ import annotations

import asyncio
from collections import deque


class ByteQueue:
    __slots__ = ("_chunks", "_offset", "_size")

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        # bytes of the head chunk already handed out
        self._offset = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def append(self, data: bytes) -> None:
        """Queue ``data`` (must be immutable ``bytes``: we keep a reference)."""
        if data:
            self._chunks.append(data)
            self._size += len(data)

    def clear(self) -> None:
        self._chunks.clear()
        self._offset = 0
        self._size = 0

    def take(self, max_bytes: int = -1) -> bytes:
        """Remove and return up to ``max_bytes`` bytes (all when negative); b"" if empty."""
        size = self._size
        if size == 0:
            return b""
        if max_bytes < 0 or max_bytes > size:
            max_bytes = size
        chunks = self._chunks
        head = chunks[0]
        off = self._offset
        avail = len(head) - off
        if max_bytes < avail:
            # part of the head chunk
            self._offset = off + max_bytes
            self._size = size - max_bytes
            return head[off : off + max_bytes]
        if max_bytes == avail:
            chunks.popleft()
            self._offset = 0
            self._size = size - avail
            return head if off == 0 else head[off:]
        # spans several chunks: one join (a single copy)
        parts = [head[off:] if off else head]
        chunks.popleft()
        need = max_bytes - avail
        while need:
            nxt = chunks[0]
            if len(nxt) <= need:
                parts.append(nxt)
                chunks.popleft()
                need -= len(nxt)
            else:
                parts.append(nxt[:need])
                self._offset = need
                need = 0
                break
        else:
            self._offset = 0
        self._size = size - max_bytes
        return b"".join(parts)


class QueuedReader:
    """``Stream.read`` over a :class:`ByteQueue` that someone else fills.

    The owner keeps ``_buf``, the flags ``_eof`` (no more bytes will arrive),
    ``_read_closed`` (close() was called) and ``_reset``, and the event ``_readable``,
    which it sets whenever the queue gains bytes or a flag changes. It says what read
    raises after a reset or close (``_reset_error``, ``_closed_error``) and hears of
    every read through ``_taken`` (to reopen a window or wake a writer).
    """

    __slots__ = ()

    _buf: ByteQueue
    _eof: bool
    _read_closed: bool
    _reset: bool
    _readable: asyncio.Event

    async def read(self, max_bytes: int = -1) -> bytes:
        if max_bytes == 0:
            return b""
        while True:
            if self._reset:
                raise self._reset_error()
            if self._read_closed:
                raise self._closed_error()
            buf = self._buf
            if buf:
                data = buf.take(max_bytes)
                self._taken(len(data))
                return data
            if self._eof:
                return b""
            self._readable.clear()
            await self._readable.wait()

    def _reset_error(self) -> Exception:
        raise NotImplementedError

    def _closed_error(self) -> Exception:
        raise NotImplementedError

    def _taken(self, n: int) -> None:
        """``n`` bytes just left the queue."""


__all__ = ["ByteQueue", "QueuedReader"]
