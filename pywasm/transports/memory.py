"""In-process transport: byte pipes and ``/memory/<u64>`` listeners.

Used by the tests (no sockets, so they also run inside Pyodide) and in the browser for
nodes that live in one page. A pipe end implements the :class:`~pywasm.streams.Stream`
contract exactly like a TCP connection would:

* each direction has a bounded buffer (``capacity`` bytes); ``write`` waits while the
  peer's buffer is full, so a reader that stops reading stops the writer (backpressure);
* ``close_write()`` makes the peer read ``b""`` once it drained the buffer;
* ``close()`` half-closes and stops reading: buffered and later incoming bytes are
  discarded (the peer's writes still succeed, like writes into a socket whose reader is
  gone before the RST arrives), later ``read`` raises :class:`StreamClosedError`;
* ``reset()`` aborts both directions on both ends: pending and later reads and writes on
  either end raise :class:`StreamResetError`.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, StreamClosedError, StreamResetError, TransportError
from ..muxers.bytequeue import ByteQueue, QueuedReader

if TYPE_CHECKING:
    from ..interfaces import ConnectionHandler
    from ..multiformats.multiaddr import Multiaddr

# Bytes one direction of a pipe buffers before ``write`` waits. Large enough that a
# muxer moving 256 KiB frames does not stall on every frame, small enough to bound memory.
DEFAULT_PIPE_CAPACITY = 1024 * 1024
# How long close() waits for writes in flight before resetting the pipe instead.
DEFAULT_CLOSE_TIMEOUT = 10.0
# Largest value of a /memory/<id> address (a u64, as in rust-libp2p).
MAX_MEMORY_ID = (1 << 64) - 1
# How many random ids ``listen(/memory/0)`` tries before giving up (collisions are
# practically impossible; the bound only keeps the loop finite).
_MAX_ID_ATTEMPTS = 64


class MemoryStream(QueuedReader):
    """One end of a :func:`memory_pipe`."""

    def __init__(self, capacity: int, local_addr: Any = None, remote_addr: Any = None) -> None:
        if capacity <= 0:
            raise ConfigError("capacity must be positive")
        self.local_addr = local_addr
        self.remote_addr = remote_addr
        self._capacity = capacity
        self._buf = ByteQueue()  # bytes the peer wrote, not yet read by us
        self.peer: MemoryStream = self  # replaced by memory_pipe()
        self._eof = False  # the peer half-closed: no more bytes will arrive
        self._write_closed = False
        self._read_closed = False  # we called close(): we read no more
        self._reset = False
        # set when our buffer gains data or EOF/reset arrives (wakes our reader)
        self._readable = asyncio.Event()
        # set when our buffer gains room (wakes the *peer's* writer)
        self._writable = asyncio.Event()
        # one writer at a time so concurrent writes are not interleaved mid-write
        self._write_lock = asyncio.Lock()

    # --- Stream contract (read: QueuedReader) ---------------------------------
    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        if not data:
            return
        if not isinstance(data, bytes):
            # we keep a reference until the peer reads: never alias a mutable buffer
            data = bytes(data)
        peer = self.peer
        # fast path: nobody else writing and room for everything
        if not self._write_lock.locked() and self._capacity - len(peer._buf) >= len(data):
            peer._deliver(data)
            return
        async with self._write_lock:
            view = memoryview(data)
            pos = 0
            total = len(data)
            while pos < total:
                self._check_writable()
                if peer._read_closed:
                    return  # the peer discards everything now
                room = self._capacity - len(peer._buf)
                if room <= 0:
                    peer._writable.clear()
                    await peer._writable.wait()
                    continue
                n = min(room, total - pos)
                peer._deliver(data if n == total else bytes(view[pos : pos + n]))
                pos += n

    async def close_write(self) -> None:
        if self._reset:
            raise StreamResetError("memory pipe was reset")
        if self._write_closed:
            return
        if self._write_lock.locked():
            async with self._write_lock:  # EOF goes after the writes in flight
                pass
            if self._write_closed or self._reset:
                return
        self._write_closed = True
        peer = self.peer
        peer._eof = True
        peer._readable.set()

    async def close(self) -> None:
        if self._reset or self._read_closed:
            self._read_closed = True
            return
        try:
            # bounded: a writer blocked on a peer that never reads holds the write lock
            await asyncio.wait_for(self.close_write(), DEFAULT_CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            await self.reset()
            return
        except StreamResetError:
            pass
        self._read_closed = True
        self._buf.clear()
        # the peer's writer may be waiting for room: there is room now (we discard)
        self._writable.set()
        self._readable.set()

    async def reset(self) -> None:
        for end in (self, self.peer):
            if not end._reset:
                end._reset = True
                end._buf.clear()
                end._readable.set()
                end._writable.set()

    # --- internals -------------------------------------------------------------
    def _reset_error(self) -> Exception:
        return StreamResetError("memory pipe was reset")

    def _closed_error(self) -> Exception:
        return StreamClosedError("memory pipe is closed")

    def _taken(self, n: int) -> None:
        self._writable.set()  # the peer's writer may have room now

    def _check_writable(self) -> None:
        if self._reset:
            raise StreamResetError("memory pipe was reset")
        if self._write_closed:
            raise StreamClosedError("write side of the memory pipe is closed")

    def _deliver(self, data: bytes) -> None:
        if self._read_closed or self._reset:
            return
        self._buf.append(data)
        self._readable.set()

    @property
    def is_closed(self) -> bool:
        return self._reset or (self._read_closed and self._eof)

    def __repr__(self) -> str:
        return f"<MemoryStream {self.local_addr} -> {self.remote_addr}>"


def memory_pipe(
    capacity: int = DEFAULT_PIPE_CAPACITY, addr_a: Any = None, addr_b: Any = None
) -> tuple[MemoryStream, MemoryStream]:
    """Two connected pipe ends; what one writes the other reads.

    ``capacity`` bounds each direction's buffer. The asyncio primitives inside bind to
    the running loop on first use, so the pipe may be created outside a coroutine.
    """
    a = MemoryStream(capacity, addr_a, addr_b)
    b = MemoryStream(capacity, addr_b, addr_a)
    a.peer = b
    b.peer = a
    return a, b


# --- transport -------------------------------------------------------------------
# Process-global registry: /memory/<id> -> listener. Memory addresses are only reachable
# from the same process (same Pyodide instance), like rust-libp2p's MemoryTransport.
_LISTENERS: dict[int, "MemoryListener"] = {}
# ids for the dialing side of connections (never listened on; used as remote_addr)
_dial_ids = itertools.count(1)


def _memory_id(addr: "Multiaddr") -> int | None:
    comps = addr.components()
    if len(comps) < 1 or comps[0][0] != "memory":
        return None
    # allow a trailing /p2p/<id> only
    if len(comps) > 2 or (len(comps) == 2 and comps[1][0] != "p2p"):
        return None
    try:
        value = int(comps[0][1] or "")
    except ValueError:
        return None
    if not 0 <= value <= MAX_MEMORY_ID:
        return None
    return value


def _make_addr(mem_id: int) -> "Multiaddr":
    from ..multiformats.multiaddr import Multiaddr  # lazy: keeps this module importable alone

    return Multiaddr(f"/memory/{mem_id}")


class MemoryListener:
    def __init__(self, mem_id: int, handler: "ConnectionHandler", capacity: int) -> None:
        self.mem_id = mem_id
        self._handler = handler
        self._capacity = capacity
        self._addr = _make_addr(mem_id)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def addrs(self) -> list["Multiaddr"]:
        return [self._addr]

    def _accept(self) -> MemoryStream:
        dial_addr = _make_addr(MAX_MEMORY_ID - next(_dial_ids))
        ours, theirs = memory_pipe(self._capacity, self._addr, dial_addr)
        task = asyncio.get_running_loop().create_task(self._run_handler(ours))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        theirs.local_addr = dial_addr
        theirs.remote_addr = self._addr
        return theirs

    async def _run_handler(self, conn: MemoryStream) -> None:
        try:
            await self._handler(conn)
        except asyncio.CancelledError:
            await conn.reset()
            raise
        except Exception:
            # a failing handler closes its connection, never the listener
            await conn.reset()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if _LISTENERS.get(self.mem_id) is self:
            del _LISTENERS[self.mem_id]
        # connections already accepted live on: like a TCP listener, closing it only
        # stops new connections


class MemoryTransport:
    """Transport for ``/memory/<u64>`` addresses inside this process."""

    def __init__(self, capacity: int = DEFAULT_PIPE_CAPACITY) -> None:
        self._capacity = capacity

    def can_dial(self, addr: "Multiaddr") -> bool:
        return _memory_id(addr) is not None

    def can_listen(self, addr: "Multiaddr") -> bool:
        return _memory_id(addr) is not None

    async def dial(self, addr: "Multiaddr") -> MemoryStream:
        mem_id = _memory_id(addr)
        if mem_id is None:
            raise TransportError(f"not a memory address: {addr}")
        listener = _LISTENERS.get(mem_id)
        if listener is None or listener._closed:
            raise TransportError(f"nothing listens on /memory/{mem_id}")
        return listener._accept()

    async def listen(self, addr: "Multiaddr", handler: "ConnectionHandler") -> MemoryListener:
        mem_id = _memory_id(addr)
        if mem_id is None:
            raise TransportError(f"not a memory address: {addr}")
        if mem_id == 0:
            for _ in range(_MAX_ID_ATTEMPTS):
                candidate = random.randrange(1, 1 << 63)
                if candidate not in _LISTENERS:
                    mem_id = candidate
                    break
            else:  # pragma: no cover - 64 collisions in a 2**63 space
                raise TransportError("no free memory address")
        elif mem_id in _LISTENERS:
            raise TransportError(f"/memory/{mem_id} is already in use")
        listener = MemoryListener(mem_id, handler, self._capacity)
        _LISTENERS[mem_id] = listener
        return listener


__all__ = [
    "DEFAULT_PIPE_CAPACITY",
    "MemoryStream",
    "MemoryListener",
    "MemoryTransport",
    "memory_pipe",
]
