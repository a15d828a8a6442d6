"""echo (``/echo/1.0.0``): every byte comes back until the client half-closes; then
the server closes its side too."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..errors import LimitExceededError
from .base import Service, run_together

if TYPE_CHECKING:
    from ..host.connection import Connection, HostStream

ECHO = "/echo/1.0.0"
# Large reads: fewer trips through the muxer per byte echoed.
READ_CHUNK = 1024 * 1024
# A client that sends nothing for this long loses its stream.
DEFAULT_IDLE_TIMEOUT = 60.0
# echo() collects at most this much (the client helper, not the server)
DEFAULT_MAX_ECHO = 256 * 1024 * 1024


class EchoService(Service):
    name = "echo"
    protocols = (ECHO,)

    def __init__(self, idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        super().__init__()
        self.idle_timeout = idle_timeout

    async def handle(self, stream: "HostStream", conn: "Connection") -> None:
        while True:
            try:
                chunk = await asyncio.wait_for(stream.read(READ_CHUNK), self.idle_timeout)
            except asyncio.TimeoutError:
                await stream.reset()
                return
            if not chunk:
                break
            # backpressure: we read no more until the client takes this back
            await stream.write(chunk)
        await stream.close()

    async def echo(self, target: Any, data: bytes, max_bytes: int = DEFAULT_MAX_ECHO) -> bytes:
        """Send ``data``, half-close, and return everything echoed back."""
        if len(data) > max_bytes:
            raise LimitExceededError(f"echo of {len(data)} bytes exceeds {max_bytes}")
        stream = await self.host.new_stream(target, [ECHO])
        received = bytearray()

        async def writer() -> None:
            view = memoryview(data)
            for off in range(0, len(view), READ_CHUNK):
                await stream.write(view[off : off + READ_CHUNK])
            await stream.close_write()

        async def reader() -> None:
            while True:
                chunk = await stream.read(READ_CHUNK)
                if not chunk:
                    return
                received.extend(chunk)
                if len(received) > max_bytes:
                    raise LimitExceededError(f"echo returned more than {max_bytes} bytes")

        try:
            # read while writing, or both sides stall once the windows fill up
            await run_together(writer(), reader())
        except BaseException:
            await stream.reset()
            raise
        await stream.close()
        return bytes(received)


__all__ = ["ECHO", "EchoService"]
