"""In-memory data channels for testing the WebRTC stream layer without a browser.

Messages are delivered in order, one event-loop turn later (as a data channel event
would be); ``close`` is delivered after the messages sent before it, like the SCTP
stream reset that closes a real channel. ``buffered_amount`` counts bytes sent and not
yet delivered. ``tap`` records every message sent, for wire-level assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any, AsyncIterator, Callable

from pywasm.transports.webrtc_stream import WebRTCMuxedConnection, WebRTCStream

_ids = itertools.count(1)


class MemoryDataChannel:
    def __init__(self, channel_id: int) -> None:
        self._id = channel_id
        self.peer: MemoryDataChannel | None = None
        self.stream: WebRTCStream | None = None
        self.buffered = 0
        self.closed = False
        self.sent: list[bytes] = []
        self.tap: Callable[[bytes], None] | None = None
        self._drained = asyncio.Event()

    @property
    def id(self) -> int:
        return self._id

    @property
    def buffered_amount(self) -> int:
        return self.buffered

    def send(self, message: bytes) -> None:
        if self.closed:
            raise ConnectionError("channel is closed")
        self.sent.append(bytes(message))
        self.buffered += len(message)
        asyncio.get_running_loop().call_soon(self._deliver, bytes(message))

    def _deliver(self, message: bytes) -> None:
        self.buffered -= len(message)
        if self.buffered <= 0:
            self._drained.set()
        peer = self.peer
        if peer is not None and not peer.closed and peer.stream is not None:
            peer.stream.feed(message)

    async def wait_buffered_below(self, limit: int) -> None:
        while self.buffered > limit and not self.closed:
            self._drained.clear()
            await self._drained.wait()

    def close(self) -> None:
        if self.closed:
            return
        asyncio.get_running_loop().call_soon(self._deliver_close)

    def _deliver_close(self) -> None:
        for ch in (self, self.peer):
            if ch is not None and not ch.closed:
                ch.closed = True
                ch._drained.set()
                if ch.stream is not None:
                    ch.stream.channel_closed()


def channel_pair() -> tuple[MemoryDataChannel, MemoryDataChannel]:
    cid = next(_ids)
    a, b = MemoryDataChannel(cid), MemoryDataChannel(cid)
    a.peer, b.peer = b, a
    return a, b


def stream_pair(**opts: Any) -> tuple[WebRTCStream, WebRTCStream]:
    a, b = channel_pair()
    sa, sb = WebRTCStream(a, **opts), WebRTCStream(b, **opts)
    a.stream, b.stream = sa, sb
    return sa, sb


def connection_pair(**opts: Any) -> tuple[WebRTCMuxedConnection, WebRTCMuxedConnection]:
    conns: list[WebRTCMuxedConnection] = []

    def opener(side: int) -> Callable[[], Any]:
        async def open_channel() -> WebRTCStream:
            a, b = channel_pair()
            local = conns[side].make_stream(a)
            a.stream = local
            remote = conns[1 - side].add_inbound(b)
            b.stream = remote
            if remote is None:
                a.close()
            return local

        return open_channel

    async def close_both() -> None:
        for c in conns:
            c.transport_closed()

    conns.append(WebRTCMuxedConnection(opener(0), close_both, stream_options=opts))
    conns.append(WebRTCMuxedConnection(opener(1), close_both, stream_options=opts))
    return conns[0], conns[1]


@contextlib.asynccontextmanager
async def memory_stream_pair(**opts: Any) -> AsyncIterator[tuple[WebRTCStream, WebRTCStream]]:
    a, b = stream_pair(**opts)
    try:
        yield a, b
    finally:
        await a.reset()
        await b.reset()


@contextlib.asynccontextmanager
async def memory_connection_pair(**opts: Any) -> AsyncIterator[tuple[WebRTCMuxedConnection, WebRTCMuxedConnection]]:
    a, b = connection_pair(**opts)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()
