"""The stream conformance suite applied to memory pipes, yamux and mplex streams.

To add an implementation, add a pair factory (see tests/conformance/stream_suite.py)
to ``STREAMS`` (and, for a muxer, a connection pair factory to ``MUXERS``).
"""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator, Callable

import pytest

from pywasm.muxers import MplexMuxer, YamuxMuxer
from pywasm.protocols.mplex import MplexConfig
from pywasm.streams import Stream
from pywasm.transports.memory import memory_pipe

from .stream_suite import (
    MUXED_CHECKS,
    STREAM_CHECKS,
    MuxedPairFactory,
    PairFactory,
    StreamTraits,
    _with_timeout,
    streams_of,
)


@contextlib.asynccontextmanager
async def memory_pair() -> AsyncIterator[tuple[Stream, Stream]]:
    a, b = memory_pipe(capacity=256 * 1024)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def muxed_over_memory(make: Callable[[], Any]) -> MuxedPairFactory:
    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[tuple[Any, Any]]:
        raw_a, raw_b = memory_pipe()
        muxer = make()
        ca = muxer.create(raw_a, True)
        cb = muxer.create(raw_b, False)
        try:
            yield ca, cb
        finally:
            await ca.close()
            await cb.close()

    return factory


MUXERS: dict[str, MuxedPairFactory] = {
    "yamux": muxed_over_memory(YamuxMuxer),
    # a smaller per-stream buffer keeps the mplex backpressure (reset) check quick
    "mplex": muxed_over_memory(lambda: MplexMuxer(MplexConfig(max_stream_buffer=2 * 1024 * 1024))),
}

STREAMS: dict[str, tuple[PairFactory, StreamTraits]] = {
    "memory": (memory_pair, StreamTraits(max_unread_bytes=256 * 1024 + 65536)),
    # yamux: the 256 KiB window (it never grows while nobody reads) plus one write
    # a stream starts with 1 MiB of credit (yamux initial_stream_window)
    "yamux": (streams_of(MUXERS["yamux"]), StreamTraits(max_unread_bytes=1024 * 1024 + 65536)),
    # mplex has no flow control: the receiver resets a stream past its buffer limit; the
    # sender may get the buffer plus what sits in the pipe accepted before the reset
    "mplex": (
        streams_of(MUXERS["mplex"]),
        StreamTraits(write_blocks=False, max_unread_bytes=8 * 1024 * 1024),
    ),
}


@pytest.mark.parametrize("check", STREAM_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("impl", list(STREAMS))
async def test_stream_conformance(impl: str, check: Any) -> None:
    factory, traits = STREAMS[impl]
    await _with_timeout(check(factory, traits))


@pytest.mark.parametrize("check", MUXED_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("impl", list(MUXERS))
async def test_muxed_conformance(impl: str, check: Any) -> None:
    await _with_timeout(check(MUXERS[impl]))
