"""One conformance suite for every :class:`~pywasm.streams.Stream` implementation.

Each ``check_*`` coroutine takes a *pair factory* and asserts one rule of the Stream
contract (see pywasm/streams.py). A pair factory is a zero-argument callable returning
an async context manager that yields two connected streams ``(a, b)``: what ``a``
writes ``b`` reads and vice versa; leaving the context tears everything down::

    @contextlib.asynccontextmanager
    async def noise_pair():
        raw_a, raw_b = memory_pipe()              # or a TCP socket pair
        sa, sb = await asyncio.gather(noise.secure_outbound(raw_a, None),
                                      noise.secure_inbound(raw_b))
        try:
            yield sa, sb
        finally:
            await sa.close(); await sb.close()

    STREAMS = {"noise": (noise_pair, StreamTraits())}

then parametrize over ``STREAM_CHECKS`` as tests/conformance/test_streams.py does.
Muxers additionally get ``MUXED_CHECKS``, which take a factory yielding two connected
:class:`~pywasm.interfaces.MuxedConnection` objects; :func:`streams_of` turns such a
factory into a stream pair factory.

:class:`StreamTraits` describes the allowed variation: whether a writer blocks when the
reader stops (yamux, pipes, TCP) or the receiver resets the stream instead (mplex, which
has no flow control), and how many bytes may be accepted before that happens.

Everything here runs without sockets, subprocesses or threads, so it also runs inside
Pyodide.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from dataclasses import dataclass
from typing import Any, AsyncContextManager, AsyncIterator, Awaitable, Callable

from pywasm.errors import (
    ConnectionClosedError,
    PywasmError,
    StreamClosedError,
    StreamResetError,
)
from pywasm.streams import Stream

PairFactory = Callable[[], AsyncContextManager[tuple[Stream, Stream]]]
MuxedPairFactory = Callable[[], AsyncContextManager[tuple[Any, Any]]]

# Every check finishes well within this; a hang fails instead of blocking the run.
CHECK_TIMEOUT = 30.0
LARGE_TRANSFER = 16 * 1024 * 1024
MANY_STREAMS = 1000


@dataclass(frozen=True)
class StreamTraits:
    # True: a writer waits while the reader does not read. False: the receiving side
    # resets the stream once its buffer limit is hit (mplex).
    write_blocks: bool = True
    # Most bytes ``write`` may accept while the remote reader reads nothing.
    max_unread_bytes: int = 8 * 1024 * 1024


def streams_of(muxed_factory: MuxedPairFactory) -> PairFactory:
    """A pair factory giving one stream opened on ``a`` and accepted on ``b``."""

    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[tuple[Stream, Stream]]:
        async with muxed_factory() as (ca, cb):
            sa = await ca.open_stream()
            sb = await cb.accept_stream()
            yield sa, sb

    return factory


async def _with_timeout(coro: Awaitable[None]) -> None:
    await asyncio.wait_for(coro, CHECK_TIMEOUT)


async def read_exactly(stream: Stream, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = await stream.read(n - len(out))
        assert chunk, f"EOF after {len(out)} of {n} bytes"
        out += chunk
    return bytes(out)


async def read_all(stream: Stream, chunk: int = 65536) -> bytes:
    out = bytearray()
    while True:
        data = await stream.read(chunk)
        if not data:
            return bytes(out)
        out += data


async def _eventually_raises(op: Callable[[], Awaitable[Any]], exc: type[BaseException]) -> None:
    """``op`` raises ``exc`` now or after the remote's signal arrives (bounded wait)."""
    for _ in range(200):
        try:
            await asyncio.wait_for(op(), 0.05)
        except exc:
            return
        except asyncio.TimeoutError:
            pass
        await asyncio.sleep(0.005)
    raise AssertionError(f"{exc.__name__} never raised")


# --- stream checks -----------------------------------------------------------------
async def check_small_roundtrip(factory: PairFactory, traits: StreamTraits) -> None:
    async with factory() as (a, b):
        await a.write(b"hello")
        assert await read_exactly(b, 5) == b"hello"
        await b.write(bytearray(b"world"))
        await b.write(memoryview(b"!!"))
        assert await read_exactly(a, 7) == b"world!!"


async def check_empty_write_and_zero_read(factory: PairFactory, traits: StreamTraits) -> None:
    async with factory() as (a, b):
        await a.write(b"")  # no-op, must not look like EOF to the reader
        await a.write(b"x")
        assert await b.read(0) == b""
        assert await b.read() == b"x"


async def check_read_returns_available_bytes(factory: PairFactory, traits: StreamTraits) -> None:
    async with factory() as (a, b):
        await a.write(b"abcdef")
        got = await b.read(3)
        assert 1 <= len(got) <= 3
        rest = await read_exactly(b, 6 - len(got))
        assert got + rest == b"abcdef"


async def check_half_close(factory: PairFactory, traits: StreamTraits) -> None:
    async with factory() as (a, b):
        await a.write(b"request")
        await a.close_write()
        assert await read_all(b) == b"request"
        # the other direction still works after a's half-close
        await b.write(b"response")
        await b.close_write()
        assert await read_all(a) == b"response"


async def check_read_after_remote_fin_returns_empty(factory: PairFactory, traits: StreamTraits) -> None:
    async with factory() as (a, b):
        await a.close_write()
        assert await b.read() == b""
        assert await b.read(10) == b""  # stays at EOF
        assert await b.read() == b""


async def check_eof_wakes_blocked_reader(factory: PairFactory, traits: StreamTraits) -> None:
    async with factory() as (a, b):
        reader = asyncio.ensure_future(b.read())
        await asyncio.sleep(0.01)
        assert not reader.done()
        await a.close_write()
        assert await reader == b""


async def check_write_after_close_write_raises(factory: PairFactory, traits: StreamTraits) -> None:
    async with factory() as (a, b):
        await a.close_write()
        await a.close_write()  # idempotent
        try:
            await a.write(b"late")
        except StreamClosedError:
            pass
        else:
            raise AssertionError("write after close_write did not raise StreamClosedError")


async def check_reset_both_sides(factory: PairFactory, traits: StreamTraits) -> None:
    async with factory() as (a, b):
        await a.write(b"data")
        await a.reset()
        for op in (lambda: a.read(), lambda: a.write(b"x")):
            try:
                await op()
            except StreamResetError:
                pass
            else:
                raise AssertionError("local use after reset did not raise StreamResetError")
        await _eventually_raises(lambda: b.read(), StreamResetError)
        await _eventually_raises(lambda: b.write(b"y"), StreamResetError)
        await a.reset()  # idempotent
        await a.close()  # closing a reset stream is fine
        await b.close()


async def check_reset_wakes_blocked_reader(factory: PairFactory, traits: StreamTraits) -> None:
    async with factory() as (a, b):
        reader = asyncio.ensure_future(b.read())
        await asyncio.sleep(0.01)
        await a.reset()
        try:
            await asyncio.wait_for(reader, 5)
        except StreamResetError:
            pass
        else:
            raise AssertionError("blocked read did not raise StreamResetError")


async def _writer(stream: Stream, counter: list[int], chunk: bytes, limit: int) -> None:
    while counter[0] < limit:
        await stream.write(chunk)
        counter[0] += len(chunk)


async def _wait_stalled(counter: list[int], task: asyncio.Future[Any]) -> None:
    """Until the writer made no progress for a while (or ended)."""
    last, quiet = -1, 0
    for _ in range(1000):
        await asyncio.sleep(0.005)
        if task.done():
            return
        if counter[0] == last:
            quiet += 1
            if quiet >= 8:
                return
        else:
            last, quiet = counter[0], 0
    raise AssertionError("writer never stalled")


async def check_backpressure(factory: PairFactory, traits: StreamTraits) -> None:
    """A writer whose reader does not read is stopped, and memory stays bounded."""
    chunk = bytes(range(256)) * 256  # 64 KiB
    limit = 4 * traits.max_unread_bytes  # the writer gives up here: bound violated
    async with factory() as (a, b):
        counter = [0]
        task = asyncio.ensure_future(_writer(a, counter, chunk, limit))
        await _wait_stalled(counter, task)
        assert counter[0] <= traits.max_unread_bytes, f"{counter[0]} bytes accepted unread"
        if traits.write_blocks:
            assert not task.done(), "writer finished although nobody reads"
            # reading lets the writer go on
            before = counter[0]
            got = await read_exactly(b, before)
            assert got == chunk * (before // len(chunk))
            for _ in range(400):
                if counter[0] > before:
                    break
                await asyncio.sleep(0.005)
            assert counter[0] > before, "writer did not resume after the reader read"
            await a.reset()
            with contextlib.suppress(StreamResetError):
                await task
        else:
            # the receiver resets the stream instead of buffering without bound
            try:
                await asyncio.wait_for(task, 5)
            except StreamResetError:
                pass
            else:
                raise AssertionError("writer was neither blocked nor reset")


async def check_reset_wakes_blocked_writer(factory: PairFactory, traits: StreamTraits) -> None:
    if not traits.write_blocks:
        return
    chunk = b"\x55" * 65536
    async with factory() as (a, b):
        counter = [0]
        task = asyncio.ensure_future(_writer(a, counter, chunk, 4 * traits.max_unread_bytes))
        await _wait_stalled(counter, task)
        assert not task.done()
        await b.reset()
        try:
            await asyncio.wait_for(task, 5)
        except StreamResetError:
            pass
        else:
            raise AssertionError("blocked writer did not raise StreamResetError")


def _pattern(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


async def _send_varied(stream: Stream, data: bytes, seed: int) -> None:
    rng = random.Random(seed)
    view = memoryview(data)
    pos = 0
    while pos < len(data):
        n = rng.choice((1, 7, 1000, 65536, 300_000, 1 << 20))
        await stream.write(view[pos : pos + n])
        pos += n
    await stream.close_write()


async def _recv_digest(stream: Stream, seed: int) -> tuple[int, bytes]:
    rng = random.Random(seed)
    h = hashlib.sha256()
    total = 0
    while True:
        chunk = await stream.read(rng.choice((-1, 1, 4096, 65536, 1 << 20)))
        if not chunk:
            return total, h.digest()
        total += len(chunk)
        h.update(chunk)


async def check_large_transfer_both_directions(factory: PairFactory, traits: StreamTraits) -> None:
    size = LARGE_TRANSFER
    data_ab = _pattern(1, size)
    data_ba = _pattern(2, size)
    async with factory() as (a, b):
        results = await asyncio.gather(
            _send_varied(a, data_ab, 3),
            _send_varied(b, data_ba, 4),
            _recv_digest(b, 5),
            _recv_digest(a, 6),
        )
        assert results[2] == (size, hashlib.sha256(data_ab).digest())
        assert results[3] == (size, hashlib.sha256(data_ba).digest())


async def check_close(factory: PairFactory, traits: StreamTraits) -> None:
    async with factory() as (a, b):
        await a.write(b"bye")
        await a.close()
        assert await read_all(b) == b"bye"  # close() half-closed a's side
        try:
            await a.read()
        except StreamClosedError:
            pass
        else:
            raise AssertionError("read after close() did not raise StreamClosedError")
        try:
            await a.write(b"x")
        except (StreamClosedError, StreamResetError):
            pass
        else:
            raise AssertionError("write after close() did not raise")
        await a.close()  # idempotent
        # b may still write; the data is discarded or refused, never an unexpected error
        try:
            await b.write(b"ignored")
            await b.close()
        except PywasmError:
            pass


STREAM_CHECKS: list[Callable[[PairFactory, StreamTraits], Awaitable[None]]] = [
    check_small_roundtrip,
    check_empty_write_and_zero_read,
    check_read_returns_available_bytes,
    check_half_close,
    check_read_after_remote_fin_returns_empty,
    check_eof_wakes_blocked_reader,
    check_write_after_close_write_raises,
    check_reset_both_sides,
    check_reset_wakes_blocked_reader,
    check_backpressure,
    check_reset_wakes_blocked_writer,
    check_large_transfer_both_directions,
    check_close,
]


# --- muxed connection checks -------------------------------------------------------------
async def _echo_server(conn: Any) -> None:
    async def echo(stream: Any) -> None:
        try:
            data = await read_all(stream)
            await stream.write(data)
            await stream.close()
        except PywasmError:
            await stream.reset()

    tasks = set()
    try:
        while True:
            stream = await conn.accept_stream()
            task = asyncio.ensure_future(echo(stream))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except ConnectionClosedError:
        pass
    finally:
        for task in list(tasks):
            task.cancel()


async def check_many_concurrent_streams(muxed_factory: MuxedPairFactory) -> None:
    async with muxed_factory() as (ca, cb):
        server = asyncio.ensure_future(_echo_server(cb))

        async def one(i: int) -> None:
            stream = await ca.open_stream()
            msg = f"stream {i} ".encode() * (1 + i % 50)
            await stream.write(msg)
            await stream.close_write()
            assert await read_all(stream) == msg
            await stream.close()

        await asyncio.gather(*(one(i) for i in range(MANY_STREAMS)))
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server


async def check_streams_are_independent(muxed_factory: MuxedPairFactory) -> None:
    """A stalled stream does not stop another one on the same connection."""
    async with muxed_factory() as (ca, cb):
        s1 = await ca.open_stream()
        r1 = await cb.accept_stream()
        s2 = await ca.open_stream()
        r2 = await cb.accept_stream()
        await s1.write(b"\x00" * 100_000)  # nobody reads r1
        await s2.write(b"ping")
        assert await read_exactly(r2, 4) == b"ping"
        await r1.reset()


async def check_accept_raises_when_connection_ends(muxed_factory: MuxedPairFactory) -> None:
    async with muxed_factory() as (ca, cb):
        s = await ca.open_stream()
        peer = await cb.accept_stream()
        pending = asyncio.ensure_future(cb.accept_stream())
        await asyncio.sleep(0.01)
        await ca.close()
        try:
            await asyncio.wait_for(pending, 5)
        except ConnectionClosedError:
            pass
        else:
            raise AssertionError("accept_stream did not raise ConnectionClosedError")
        assert cb.is_closed and ca.is_closed
        # connection loss resets the streams
        await _eventually_raises(lambda: peer.read(), StreamResetError)
        try:
            await s.write(b"x")
        except StreamResetError:
            pass
        else:
            raise AssertionError("write on a stream of a closed connection did not raise")
        try:
            await ca.open_stream()
        except ConnectionClosedError:
            pass
        else:
            raise AssertionError("open_stream on a closed connection did not raise")


MUXED_CHECKS: list[Callable[[MuxedPairFactory], Awaitable[None]]] = [
    check_many_concurrent_streams,
    check_streams_are_independent,
    check_accept_raises_when_connection_ends,
]


__all__ = [
    "PairFactory",
    "MuxedPairFactory",
    "StreamTraits",
    "STREAM_CHECKS",
    "MUXED_CHECKS",
    "streams_of",
    "read_exactly",
    "read_all",
]
