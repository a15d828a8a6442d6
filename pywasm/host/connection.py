"""A live, upgraded connection to one peer, and the streams the host hands out."""

from __future__ import annotations

import asyncio
import enum
import time
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import (
    ConnectionClosedError,
    LimitedConnectionError,
    PywasmError,
)
from ..protocols.multistream import negotiate_outbound
from ..streams import BufferedReader, Stream

if TYPE_CHECKING:
    from ..identity import PeerId, PublicKey
    from ..interfaces import MuxedConnection, MuxedStream, SecureConnection
    from ..multiformats.multiaddr import Multiaddr

from .config import DEFAULT_STREAM_NEGOTIATION_TIMEOUT


class Direction(str, enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"

    def __str__(self) -> str:
        return self.value


class PrefixedStream:
    """A stream that first returns bytes already read from it (by a negotiation step).

    multistream-select may read past its last message; those bytes belong to the next
    layer (Noise, the muxer), so the next layer reads through this wrapper. Every other
    attribute (addresses, peer ids, ``early_muxer`` ...) is the wrapped stream's.
    """

    def __init__(self, inner: Stream, prefix: bytes) -> None:
        self._inner = inner
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def read(self, max_bytes: int = -1) -> bytes:
        if self._prefix:
            if max_bytes == 0:
                return b""
            data = self._prefix
            if 0 < max_bytes < len(data):
                self._prefix = data[max_bytes:]
                return data[:max_bytes]
            self._prefix = b""
            return data
        return await self._inner.read(max_bytes)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await self._inner.write(data)

    async def close_write(self) -> None:
        await self._inner.close_write()

    async def close(self) -> None:
        await self._inner.close()

    async def reset(self) -> None:
        await self._inner.reset()


def with_leftover(stream: Any, reader: BufferedReader) -> Any:
    """``stream`` itself, or a :class:`PrefixedStream` if ``reader`` holds unread bytes."""
    rest = reader.take_buffer()
    return PrefixedStream(stream, rest) if rest else stream


class HostStream:
    """A muxed stream after multistream-select: what handlers and ``new_stream`` get.

    Reads go through the negotiation's reader so bytes that arrived together with the
    last multistream message are not lost. Implements the Stream contract plus exact
    and length-prefixed reads.
    """

    __slots__ = ("muxed", "protocol", "connection", "direction", "_reader", "_done")

    def __init__(
        self,
        muxed: "MuxedStream",
        protocol: str,
        reader: BufferedReader,
        connection: "Connection",
        direction: Direction,
    ) -> None:
        self.muxed = muxed
        self.protocol: str | None = protocol
        self.connection = connection
        self.direction = direction
        self._reader = reader
        self._done = False
        muxed.protocol = protocol

    @property
    def stream_id(self) -> int:
        return self.muxed.stream_id

    @property
    def remote_peer(self) -> "PeerId":
        return self.connection.remote_peer

    def __repr__(self) -> str:
        return f"<HostStream {self.protocol} id={self.stream_id} {self.direction} peer={self.connection.remote_peer}>"

    # --- Stream contract ------------------------------------------------------------------
    async def read(self, max_bytes: int = -1) -> bytes:
        return await self._reader.read(max_bytes)

    async def read_exactly(self, n: int) -> bytes:
        return await self._reader.read_exactly(n)

    async def read_lp(self, max_len: int) -> bytes | None:
        return await self._reader.read_lp(max_len)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await self.muxed.write(data)

    async def close_write(self) -> None:
        await self.muxed.close_write()

    async def close(self) -> None:
        try:
            await self.muxed.close()
        finally:
            self._finish()

    async def reset(self) -> None:
        try:
            await self.muxed.reset()
        finally:
            self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self.connection._streams.discard(self)


class Connection:
    """An upgraded connection: secure channel + muxer, to one authenticated peer."""

    def __init__(
        self,
        secure: "SecureConnection",
        muxed: "MuxedConnection",
        *,
        security_protocol: str,
        muxer_protocol: str,
        direction: Direction,
        remote_addr: "Multiaddr | None",
        local_addr: "Multiaddr | None",
        stream_negotiation_timeout: float = DEFAULT_STREAM_NEGOTIATION_TIMEOUT,
        limited: bool = False,
    ) -> None:
        self.secure = secure
        # a relayed connection whose data/time budget the relay caps: only protocols that
        # opt in (identify, DCUtR, ...) open or answer streams on it
        self.limited = limited
        self.muxed = muxed
        self.security_protocol = security_protocol
        self.muxer_protocol = muxer_protocol
        self.direction = direction
        self.remote_addr = remote_addr
        self.local_addr = local_addr
        self.remote_peer: "PeerId" = secure.remote_peer
        self.local_peer: "PeerId" = secure.local_peer
        self.remote_public_key: "PublicKey" = secure.remote_public_key
        self.opened_at = time.time()
        self.stream_negotiation_timeout = stream_negotiation_timeout
        # why the connection ended (None while open or after a clean close)
        self.close_reason: str | None = None
        self._streams: set[HostStream] = set()
        self._inbound_active = 0
        self._closed_event = asyncio.Event()
        self._closing = False

    def __repr__(self) -> str:
        return (
            f"<Connection {self.direction} peer={self.remote_peer} addr={self.remote_addr} "
            f"{self.security_protocol} {self.muxer_protocol}{' limited' if self.limited else ''}>"
        )

    @property
    def streams(self) -> list[HostStream]:
        """Streams opened on this connection that are not closed or reset yet."""
        return list(self._streams)

    @property
    def is_closed(self) -> bool:
        return self._closing or self._closed_event.is_set() or self.muxed.is_closed

    async def wait_closed(self) -> None:
        await self._closed_event.wait()

    async def new_stream(
        self, protocols: Sequence[str], timeout: float | None = None, *, allow_limited: bool = False
    ) -> HostStream:
        """Open a stream and agree on one of ``protocols`` (in order of preference).

        On a limited connection this needs ``allow_limited=True``
        (:class:`~pywasm.errors.LimitedConnectionError` otherwise)."""
        if isinstance(protocols, str):
            protocols = [protocols]
        if self.limited and not allow_limited:
            raise LimitedConnectionError(
                f"connection to {self.remote_peer} is limited (relayed); "
                f"{', '.join(protocols)} did not opt in to run on it"
            )
        if self.is_closed:
            raise ConnectionClosedError(f"connection to {self.remote_peer} is closed")
        ms = await self.muxed.open_stream()
        try:
            proto, reader = await negotiate_outbound(
                ms, list(protocols), timeout=timeout or self.stream_negotiation_timeout
            )
        except BaseException as exc:
            try:
                await ms.reset()
            except Exception:  # noqa: BLE001 - the negotiation error is the one to report
                pass
            if isinstance(exc, Exception) and not isinstance(exc, PywasmError):
                raise ConnectionClosedError(f"opening a stream failed: {exc}") from exc
            raise
        hs = HostStream(ms, proto, reader, self, Direction.OUTBOUND)
        self._streams.add(hs)
        return hs

    async def close(self) -> None:
        """Close every stream with a GoAway (yamux) and hang up; bounded by the muxer."""
        if self._closing:
            await self._closed_event.wait()
            return
        self._closing = True
        try:
            await self.muxed.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
        finally:
            # even when this close is cancelled: later close() calls wait on the event
            self._streams.clear()
            self._closed_event.set()

    def _mark_closed(self, reason: str | None) -> None:
        if self.close_reason is None:
            self.close_reason = reason
        self._streams.clear()
        self._closed_event.set()


__all__ = ["Connection", "HostStream", "Direction", "PrefixedStream", "with_leftover"]
