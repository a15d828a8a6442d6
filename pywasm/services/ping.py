"""ping (``/ipfs/ping/1.0.0``): 32 random bytes, echoed back; the round trip is the RTT.

The server echoes 32-byte payloads in a loop until the client half-closes; a client may
ping many times over one stream (:class:`PingSession`).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

from ..errors import HandshakeTimeoutError, ProtocolError
from .base import Service

if TYPE_CHECKING:
    from ..host.connection import Connection, HostStream

PING = "/ipfs/ping/1.0.0"
PING_SIZE = 32
DEFAULT_TIMEOUT = 10.0
# The server drops a stream that sends no ping for this long (go-libp2p: 60 s).
DEFAULT_SERVER_IDLE_TIMEOUT = 60.0
# Ping streams one peer connection may hold open at once on the server side.
DEFAULT_MAX_STREAMS = 64


class PingSession:
    """One ping stream; each :meth:`ping` is one round trip."""

    def __init__(self, stream: "HostStream", timeout: float) -> None:
        self.stream = stream
        self.timeout = timeout

    async def ping(self) -> float:
        payload = os.urandom(PING_SIZE)
        start = time.perf_counter()
        try:
            await asyncio.wait_for(self._round_trip(payload), self.timeout)
        except asyncio.TimeoutError:
            await self.stream.reset()
            raise HandshakeTimeoutError(f"no ping answer within {self.timeout:g} s") from None
        return time.perf_counter() - start

    async def _round_trip(self, payload: bytes) -> None:
        await self.stream.write(payload)
        answer = await self.stream.read_exactly(PING_SIZE)
        if answer != payload:
            await self.stream.reset()
            raise ProtocolError("ping answer differs from the payload sent")

    async def close(self) -> None:
        await self.stream.close()

    async def __aenter__(self) -> "PingSession":
        return self

    async def __aexit__(self, *exc: object) -> None:
        if exc[0] is None:
            await self.close()
        else:
            await self.stream.reset()


class PingService(Service):
    name = "ping"
    protocols = (PING,)
    max_inbound_streams = 1024

    def __init__(
        self, timeout: float = DEFAULT_TIMEOUT, server_idle_timeout: float = DEFAULT_SERVER_IDLE_TIMEOUT
    ) -> None:
        super().__init__()
        self.timeout = timeout
        self.server_idle_timeout = server_idle_timeout

    async def handle(self, stream: "HostStream", conn: "Connection") -> None:
        while True:
            buf = b""
            while len(buf) < PING_SIZE:
                try:
                    chunk = await asyncio.wait_for(stream.read(PING_SIZE - len(buf)), self.server_idle_timeout)
                except asyncio.TimeoutError:
                    await stream.reset()
                    return
                if not chunk:
                    if buf:
                        raise ProtocolError(f"ping stream ended inside a payload ({len(buf)} of {PING_SIZE} bytes)")
                    await stream.close()
                    return
                buf += chunk
            await stream.write(buf)

    async def session(self, target: Any) -> PingSession:
        """Open a ping stream to ``target`` (Multiaddr, str, PeerId or Connection)."""
        stream = await self.host.new_stream(target, [PING], timeout=self.timeout)
        return PingSession(stream, self.timeout)

    async def ping(self, target: Any) -> float:
        """One round trip to ``target``, in seconds."""
        async with await self.session(target) as session:
            return await session.ping()

    async def ping_many(self, target: Any, count: int, interval: float = 0.0) -> list[float]:
        """``count`` round trips over one stream."""
        rtts: list[float] = []
        async with await self.session(target) as session:
            for i in range(count):
                if i and interval > 0:
                    await asyncio.sleep(interval)
                rtts.append(await session.ping())
        return rtts


__all__ = ["PING", "PING_SIZE", "PingService", "PingSession"]
