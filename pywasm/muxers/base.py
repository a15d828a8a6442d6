"""Shared asyncio driver for the sans-IO muxer cores (yamux, mplex).

One reader task per connection reads the secured connection and feeds the core; the
core's events land in per-stream buffers. The reader never awaits anything but
``conn.read``: control frames it owes the peer (ACKs, pongs, window updates) are
flushed by a short-lived background task, so two peers whose outbound pipes are both
full can never deadlock on each other's readers.

Writes: a stream writer takes the connection write lock, lets the core frame as much as
the peer's window allows (at most ``write_batch`` bytes, so one bulk stream cannot
starve the others for long), and writes the frames, together with any control frames
queued meanwhile, in one ``conn.write``. That call's backpressure (TCP buffer, Noise,
memory pipe) thus reaches the stream writer directly.

Subclasses create their core in ``_c_session`` (stored as ``self.session``), implement
the remaining ``_c_*`` hooks around it and call the ``_on_*`` dispatchers from
``_c_receive``. The hooks every core answers the same way (send, close, reset, consume,
output) are implemented here once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Hashable

from ..errors import (
    ConnectionClosedError,
    PywasmError,
    StreamClosedError,
    StreamResetError,
)
from ..streams import Stream
from .bytequeue import ByteQueue, QueuedReader

# How much one ``conn.read`` may return (the transport may return less).
DEFAULT_READ_SIZE = 1024 * 1024
# Bytes one stream frames per turn of the write lock.
DEFAULT_WRITE_BATCH = 1024 * 1024
# After close(), how long a stream waits for the remote's FIN before resetting.
DEFAULT_STREAM_CLOSE_TIMEOUT = 60.0
# How long stream close() waits for earlier writes and its FIN to go out before resetting.
DEFAULT_CLOSE_WRITE_TIMEOUT = 10.0
# How long connection close() waits to flush its GoAway and close the transport.
DEFAULT_CONN_CLOSE_TIMEOUT = 5.0


class MuxedStreamBase(QueuedReader):
    """A muxed stream implementing the :class:`~pywasm.streams.Stream` contract."""

    def __init__(self, conn: "MuxedConnectionBase", key: Hashable, stream_id: int) -> None:
        self._conn = conn
        self._key = key
        self.stream_id = stream_id
        self.protocol: str | None = None
        self._buf = ByteQueue()
        self._eof = False  # remote half-closed
        self._write_closed = False  # we half-closed (or will not write anymore)
        self._read_closed = False  # close() was called: we read no more
        self._reset = False  # no data flows either way
        self._write_dead = False  # connection lost after remote FIN: reads drain, writes fail
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()  # send window grew, or the stream died
        self._write_lock = asyncio.Lock()
        self._close_timer: asyncio.TimerHandle | None = None
        self._released = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.stream_id} protocol={self.protocol}>"

    # --- Stream contract ------------------------------------------------------
    # read() comes from QueuedReader; these say what it raises and whom it tells
    def _reset_error(self) -> Exception:
        return StreamResetError(f"stream {self.stream_id} was reset")

    def _closed_error(self) -> Exception:
        return StreamClosedError(f"stream {self.stream_id} is closed")

    def _taken(self, n: int) -> None:
        self._conn._consumed(self, n)  # reopens the remote's send window

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        if data:
            await self._conn._write_stream(self, data)

    async def close_write(self) -> None:
        if self._reset:
            raise StreamResetError(f"stream {self.stream_id} was reset")
        if self._write_closed:
            return
        async with self._write_lock:  # after writes in flight, before nothing else
            if self._write_closed or self._reset:
                return
            self._write_closed = True
            await self._conn._close_write_stream(self)
        self._maybe_release()

    async def close(self) -> None:
        if self._reset or self._read_closed:
            self._read_closed = True
            return
        try:
            # bounded: a writer blocked on a remote that never reads holds the write lock
            await asyncio.wait_for(self.close_write(), self._conn._close_write_timeout)
        except asyncio.TimeoutError:
            await self.reset()
            return
        except PywasmError:
            pass  # the stream or connection died meanwhile: closed either way
        self._read_closed = True
        dropped = len(self._buf)
        self._buf.clear()
        if dropped:
            self._conn._consumed(self, dropped)
        self._readable.set()
        if not self._released and not self._eof and not self._reset:
            # bound how long we keep state for a remote that never half-closes
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(
                self._conn._stream_close_timeout, self._on_close_timeout
            )
        self._maybe_release()

    async def reset(self) -> None:
        if self._reset:
            return
        self._mark_reset()
        self._conn._reset_stream(self)

    # --- internals ------------------------------------------------------------
    def _check_writable(self) -> None:
        if self._reset or self._write_dead:
            raise StreamResetError(f"stream {self.stream_id} was reset")
        if self._write_closed:
            raise StreamClosedError(f"write side of stream {self.stream_id} is closed")

    def _mark_reset(self) -> None:
        self._reset = True
        self._buf.clear()
        self._readable.set()
        self._writable.set()
        self._release()

    def _on_close_timeout(self) -> None:
        self._close_timer = None
        if not self._released and not self._reset:
            self._mark_reset()
            self._conn._reset_stream(self)

    def _maybe_release(self) -> None:
        # both FINs exchanged: the protocol is done with the stream (unread bytes stay
        # readable from our buffer; the connection just stops tracking it)
        if self._write_closed and self._eof:
            self._release()

    def _release(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if not self._released:
            self._released = True
            self._conn._forget(self)


class MuxedConnectionBase:
    """Runs the reader task and owns the streams of one muxed connection."""

    stream_class: type[MuxedStreamBase] = MuxedStreamBase
    # the sans-IO core (see _c_session): send_data, close_write, reset_stream, consume,
    # data_to_send, has_output
    session: Any

    def __init__(
        self,
        conn: Stream,
        is_initiator: bool,
        config: Any = None,
        *,
        read_size: int = DEFAULT_READ_SIZE,
        write_batch: int = DEFAULT_WRITE_BATCH,
        stream_close_timeout: float = DEFAULT_STREAM_CLOSE_TIMEOUT,
    ) -> None:
        self.session = self._c_session(is_initiator, config)
        self._conn = conn
        self.is_initiator = is_initiator
        self._read_size = read_size
        self._write_batch = write_batch
        self._stream_close_timeout = stream_close_timeout
        self._close_write_timeout = DEFAULT_CLOSE_WRITE_TIMEOUT
        self._streams: dict[Hashable, MuxedStreamBase] = {}
        # bounded by the core's inbound stream limit: pending streams count as open
        self._accept_queue: deque[MuxedStreamBase] = deque()
        self._accept_event = asyncio.Event()
        self._wlock = asyncio.Lock()
        self._flush_task: asyncio.Task[None] | None = None
        self._closed = False
        self.error: BaseException | None = None  # why the connection ended, if not close()
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop())

    # --- hooks for subclasses --------------------------------------------------------
    def _c_session(self, is_initiator: bool, config: Any) -> Any:
        """Create the sans-IO core for this connection."""
        raise NotImplementedError

    def _c_open(self) -> tuple[Hashable, int]:
        raise NotImplementedError

    def _c_send_window(self, key: Hashable) -> int:
        raise NotImplementedError

    def _c_receive(self, data: bytes) -> None:
        raise NotImplementedError

    def _c_go_away(self) -> None:
        pass

    # --- hooks every core answers alike -------------------------------------------------
    def _c_send(self, key: Hashable, data: memoryview) -> int:
        return self.session.send_data(key, data)  # type: ignore[no-any-return]

    def _c_close_write(self, key: Hashable) -> None:
        self.session.close_write(key)

    def _c_reset(self, key: Hashable) -> None:
        self.session.reset_stream(key)

    def _c_consume(self, key: Hashable, n: int) -> None:
        self.session.consume(key, n)

    def _c_output(self) -> bytes:
        return self.session.data_to_send()  # type: ignore[no-any-return]

    def _c_output_parts(self) -> list[bytes | memoryview]:
        """Queued output as pieces (header, payload, ...), for a gather write."""
        out = self._c_output()
        return [out] if out else []

    def _c_has_output(self) -> bool:
        return self.session.has_output  # type: ignore[no-any-return]

    # --- MuxedConnection API ---------------------------------------------------------
    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def connection(self) -> Stream:
        return self._conn

    async def open_stream(self) -> MuxedStreamBase:
        if self._closed:
            raise ConnectionClosedError("muxed connection is closed")
        key, sid = self._c_open()
        st = self.stream_class(self, key, sid)
        self._streams[key] = st
        try:
            await self._flush()
        except StreamResetError as exc:
            raise ConnectionClosedError(f"connection failed while opening a stream: {exc}") from exc
        return st

    async def accept_stream(self) -> MuxedStreamBase:
        while True:
            if self._closed:
                raise ConnectionClosedError("muxed connection is closed")
            if self._accept_queue:
                return self._accept_queue.popleft()
            self._accept_event.clear()
            await self._accept_event.wait()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._c_go_away()
            await asyncio.wait_for(self._close_transport(), DEFAULT_CONN_CLOSE_TIMEOUT)
        except (PywasmError, OSError, asyncio.TimeoutError):
            pass
        self._terminate(None)
        task = self._reader_task
        if task is not asyncio.current_task() and not task.done():
            task.cancel()
            try:
                await task
            except BaseException:
                pass

    async def _close_transport(self) -> None:
        await self._flush()
        await self._conn.close()

    # --- reader ---------------------------------------------------------------------
    async def _read_loop(self) -> None:
        conn = self._conn
        size = self._read_size
        error: BaseException | None = None
        try:
            while True:
                data = await conn.read(size)
                if not data:
                    break
                self._c_receive(data)
                self._kick()
        except asyncio.CancelledError:
            raise
        except PywasmError as exc:
            error = exc
        except Exception as exc:  # transport failure (OSError ...): the connection is gone
            error = exc
        finally:
            if not self._closed:
                self.error = error
                self._closed = True
                self._terminate(error)
                # best effort: send what the core queued (e.g. GoAway) and hang up
                loop = asyncio.get_running_loop()
                if not loop.is_closed():
                    loop.create_task(self._final_close())

    async def _final_close(self) -> None:
        try:
            await asyncio.wait_for(self._close_transport(), DEFAULT_CONN_CLOSE_TIMEOUT)
        except BaseException:
            pass

    def _terminate(self, error: BaseException | None) -> None:
        """The connection is over: every stream is reset (or loses its write side)."""
        for st in list(self._streams.values()):
            if st._eof and not st._reset:
                st._write_dead = True  # what the remote sent before ending stays readable
                st._writable.set()
                st._release()
            else:
                st._mark_reset()
        self._streams.clear()
        self._accept_event.set()

    # --- event dispatch (called by _c_receive) -----------------------------------------
    def _on_open(self, key: Hashable, sid: int) -> None:
        st = self.stream_class(self, key, sid)
        self._streams[key] = st
        self._accept_queue.append(st)
        self._accept_event.set()

    def _on_data(self, key: Hashable, data: bytes) -> None:
        st = self._streams.get(key)
        if st is None:
            return
        if st._read_closed:
            self._c_consume(key, len(data))  # nobody reads: drop but keep credit flowing
            return
        st._buf.append(data)
        st._readable.set()

    def _on_eof(self, key: Hashable) -> None:
        st = self._streams.get(key)
        if st is None:
            return
        st._eof = True
        st._readable.set()
        st._maybe_release()

    def _on_reset(self, key: Hashable) -> None:
        st = self._streams.get(key)
        if st is not None:
            st._mark_reset()

    def _on_writable(self, key: Hashable) -> None:
        st = self._streams.get(key)
        if st is not None:
            st._writable.set()

    # --- stream operations -------------------------------------------------------------
    def _forget(self, st: MuxedStreamBase) -> None:
        if self._streams.get(st._key) is st:
            del self._streams[st._key]

    def _consumed(self, st: MuxedStreamBase, n: int) -> None:
        if self._closed:
            return
        self._c_consume(st._key, n)
        self._kick()

    def _reset_stream(self, st: MuxedStreamBase) -> None:
        if self._closed:
            return
        self._c_reset(st._key)
        self._kick()

    async def _close_write_stream(self, st: MuxedStreamBase) -> None:
        if self._closed:
            if st._write_dead:
                return
            raise StreamResetError("connection closed")
        self._c_close_write(st._key)
        await self._flush()

    async def _write_stream(self, st: MuxedStreamBase, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        total = len(view)
        batch = self._write_batch
        key = st._key
        async with st._write_lock:
            pos = 0
            while pos < total:
                st._check_writable()
                if self._closed:
                    raise StreamResetError("connection closed")
                if self._c_send_window(key) <= 0:
                    st._writable.clear()
                    await st._writable.wait()
                    continue
                async with self._wlock:
                    st._check_writable()
                    if self._closed:
                        raise StreamResetError("connection closed")
                    end = pos + batch
                    n = self._c_send(key, view[pos:end] if (pos or end < total) else view)
                    parts = self._c_output_parts()
                    if parts:
                        await self._conn_write(parts)
                pos += n

    # --- output -------------------------------------------------------------------------
    async def _conn_write(self, out: bytes | list[bytes | memoryview]) -> None:
        try:
            try:
                if isinstance(out, list):
                    # a gather write spares copying payloads into one buffer first
                    write_parts = getattr(self._conn, "write_parts", None)
                    if write_parts is not None:
                        await write_parts(out)
                    else:
                        await self._conn.write(out[0] if len(out) == 1 else b"".join(out))
                else:
                    await self._conn.write(out)
            except asyncio.CancelledError:
                # The caller was cancelled (say, wait_for around stream.write) while the
                # transport was congested: the byte stream may now hold half a frame. We
                # tear the connection down rather than leave it corrupt. (Running each
                # write as a shielded task would avoid this, but costs about half the
                # in-process throughput; cancelling inside a congested transport is rare.)
                if not self._closed:
                    self._closed = True
                    self.error = ConnectionClosedError("a write was cancelled mid-frame")
                    self._terminate(self.error)
                    asyncio.get_running_loop().create_task(self._abort_transport())
                raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self._closed:
                self.error = exc
                self._closed = True
                self._terminate(exc)
            raise StreamResetError(f"connection failed: {exc}") from exc

    async def _abort_transport(self) -> None:
        try:
            await self._conn.reset()
        except Exception:
            pass

    async def _flush(self) -> None:
        async with self._wlock:
            out = self._c_output()
            if out:
                await self._conn_write(out)

    def _kick(self) -> None:
        """Flush queued control frames soon, without blocking the caller."""
        if self._flush_task is None and self._c_has_output():
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_bg())

    async def _flush_bg(self) -> None:
        try:
            while True:
                async with self._wlock:
                    out = self._c_output()
                    if not out:
                        break
                    await self._conn_write(out)
        except Exception:
            pass  # _conn_write already tore the connection down
        finally:
            self._flush_task = None


class MuxerFactoryBase:
    """A MuxerFactory: ``create`` wraps a connection in ``connection_class``."""

    protocol_id: str
    connection_class: type[MuxedConnectionBase]
    config_class: type

    def __init__(self, config: Any = None, **driver_options: object) -> None:
        self.config = config or self.config_class()
        self._driver_options = driver_options

    def create(self, conn: Stream, is_initiator: bool) -> MuxedConnectionBase:
        return self.connection_class(conn, is_initiator, self.config, **self._driver_options)  # type: ignore[arg-type]


__all__ = [
    "MuxedStreamBase",
    "MuxedConnectionBase",
    "MuxerFactoryBase",
    "DEFAULT_READ_SIZE",
    "DEFAULT_WRITE_BATCH",
    "DEFAULT_STREAM_CLOSE_TIMEOUT",
]
