"""perf (``/perf/1.0.0``, libp2p/specs perf/perf.md).

The client opens a stream, sends the number of bytes it wants back as a u64 big-endian,
uploads its bytes and half-closes; the server reads to EOF, then sends the requested
number of bytes and closes; the client reads to EOF. Timing runs from just before the
dial to the last byte received.

Both sides move data in large writes of one preallocated buffer, so the measurement is
of the stack (transport, Noise, muxer), not of this service.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, HandshakeTimeoutError, LimitExceededError, ProtocolError
from .base import Service

if TYPE_CHECKING:
    from ..host.connection import Connection, HostStream

PERF = "/perf/1.0.0"
# One write; a multiple of the Noise frame payload is not needed (Noise splits anyway).
CHUNK_SIZE = 1024 * 1024
READ_SIZE = 1024 * 1024
# The largest download a server agrees to send (a u64 could ask for 16 EiB).
DEFAULT_MAX_DOWNLOAD = 1 << 40
# A peer that moves no byte for this long loses its stream.
DEFAULT_IDLE_TIMEOUT = 60.0
MAX_U64 = (1 << 64) - 1

_ZEROS = bytes(CHUNK_SIZE)


async def _send(stream: "HostStream", n: int) -> None:
    zeros = _ZEROS
    while n >= CHUNK_SIZE:
        await stream.write(zeros)
        n -= CHUNK_SIZE
    if n:
        await stream.write(memoryview(zeros)[:n])


async def _drain(stream: "HostStream", idle_timeout: float) -> int:
    total = 0
    while True:
        try:
            chunk = await asyncio.wait_for(stream.read(READ_SIZE), idle_timeout)
        except asyncio.TimeoutError:
            raise HandshakeTimeoutError(f"perf peer sent nothing for {idle_timeout:g} s") from None
        if not chunk:
            return total
        total += len(chunk)


@dataclass
class PerfResult:
    upload_bytes: int
    download_bytes: int
    # from just before the dial to the last byte received
    seconds: float
    # from the stream being ready to the upload handed off (half-close)
    upload_seconds: float
    # from then to the last byte received (includes the server seeing our EOF)
    download_seconds: float

    @property
    def throughput(self) -> float:
        """All bytes moved per second of the whole run."""
        return (self.upload_bytes + self.download_bytes) / self.seconds if self.seconds > 0 else 0.0

    @property
    def upload_throughput(self) -> float:
        return self.upload_bytes / self.upload_seconds if self.upload_seconds > 0 else 0.0

    @property
    def download_throughput(self) -> float:
        return self.download_bytes / self.download_seconds if self.download_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        mib = 1024 * 1024
        d = asdict(self)
        d.update(
            throughput_bytes_per_s=self.throughput,
            upload_bytes_per_s=self.upload_throughput,
            download_bytes_per_s=self.download_throughput,
            throughput_mib_per_s=self.throughput / mib,
            upload_mib_per_s=self.upload_throughput / mib,
            download_mib_per_s=self.download_throughput / mib,
        )
        return d


class PerfService(Service):
    name = "perf"
    protocols = (PERF,)
    max_inbound_streams = 64

    def __init__(
        self, max_download: int = DEFAULT_MAX_DOWNLOAD, idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    ) -> None:
        super().__init__()
        self.max_download = max_download
        self.idle_timeout = idle_timeout

    async def handle(self, stream: "HostStream", conn: "Connection") -> None:
        try:
            header = await asyncio.wait_for(stream.read_exactly(8), self.idle_timeout)
        except asyncio.TimeoutError:
            raise HandshakeTimeoutError("perf client sent no header") from None
        wanted = int.from_bytes(header, "big")
        if wanted > self.max_download:
            raise LimitExceededError(f"perf client asked for {wanted} bytes (limit {self.max_download})")
        await _drain(stream, self.idle_timeout)
        await _send(stream, wanted)
        await stream.close()

    async def run(self, target: Any, upload_bytes: int, download_bytes: int) -> PerfResult:
        """Upload ``upload_bytes``, download ``download_bytes`` from ``target``."""
        for name, value in (("upload_bytes", upload_bytes), ("download_bytes", download_bytes)):
            if not isinstance(value, int) or not 0 <= value <= MAX_U64:
                raise ConfigError(f"{name} must be an integer in 0..2**64-1, not {value!r}")
        start = time.perf_counter()
        stream = await self.host.new_stream(target, [PERF])
        try:
            ready = time.perf_counter()
            await stream.write(download_bytes.to_bytes(8, "big"))
            await _send(stream, upload_bytes)
            await stream.close_write()
            uploaded = time.perf_counter()
            received = await _drain(stream, self.idle_timeout)
            end = time.perf_counter()
        except BaseException:
            await stream.reset()
            raise
        await stream.close()
        if received != download_bytes:
            raise ProtocolError(f"perf server sent {received} bytes, {download_bytes} were asked for")
        return PerfResult(
            upload_bytes=upload_bytes,
            download_bytes=received,
            seconds=end - start,
            upload_seconds=uploaded - ready,
            download_seconds=end - uploaded,
        )


__all__ = ["PERF", "PerfResult", "PerfService", "CHUNK_SIZE"]
