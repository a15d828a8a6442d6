"""A FIFO of byte chunks: the receive buffer of memory pipes and muxed streams.

Why not one ``bytearray``: appending a received chunk to a bytearray copies it, and the
reader then copies it out again. Keeping the chunks as they arrived means a reader that
asks for at least a whole chunk gets the very same ``bytes`` object back (zero copies on
the bulk-transfer path); partial reads slice the head chunk and remember an offset, so
reading a large chunk in small pieces stays linear.

The queue itself does not enforce a bound: its owners do (a pipe's capacity, a yamux
window, an mplex per-stream limit) and use ``len()`` to check it.
"""

from __future__ import annotations

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


__all__ = ["ByteQueue"]
