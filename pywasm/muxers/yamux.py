"""asyncio driver for yamux: :class:`YamuxMuxer` (a MuxerFactory) and its connection."""

from __future__ import annotations

import asyncio
from typing import Hashable

from ..errors import ConnectionClosedError, MuxerError
from ..protocols import yamux as core
from ..streams import Stream
from .base import (
    DEFAULT_READ_SIZE,
    DEFAULT_STREAM_CLOSE_TIMEOUT,
    DEFAULT_WRITE_BATCH,
    MuxedConnectionBase,
    MuxedStreamBase,
)

# How long ping() waits for the answer.
DEFAULT_PING_TIMEOUT = 10.0


class YamuxStream(MuxedStreamBase):
    pass


class YamuxConnection(MuxedConnectionBase):
    stream_class = YamuxStream

    def __init__(
        self,
        conn: Stream,
        is_initiator: bool,
        config: core.YamuxConfig | None = None,
        *,
        read_size: int = DEFAULT_READ_SIZE,
        write_batch: int = DEFAULT_WRITE_BATCH,
        stream_close_timeout: float = DEFAULT_STREAM_CLOSE_TIMEOUT,
    ) -> None:
        self.session = core.YamuxSession(is_client=is_initiator, config=config)
        self._pings: dict[int, asyncio.Future[None]] = {}
        super().__init__(
            conn,
            is_initiator,
            read_size=read_size,
            write_batch=write_batch,
            stream_close_timeout=stream_close_timeout,
        )

    # --- core hooks ----------------------------------------------------------------------
    def _c_open(self) -> tuple[Hashable, int]:
        sid = self.session.open_stream()
        return sid, sid

    def _c_send(self, key: Hashable, data: memoryview) -> int:
        return self.session.send_data(key, data)  # type: ignore[arg-type]

    def _c_send_window(self, key: Hashable) -> int:
        return self.session.send_window(key)  # type: ignore[arg-type]

    def _c_close_write(self, key: Hashable) -> None:
        self.session.close_write(key)  # type: ignore[arg-type]

    def _c_reset(self, key: Hashable) -> None:
        self.session.reset_stream(key)  # type: ignore[arg-type]

    def _c_consume(self, key: Hashable, n: int) -> None:
        self.session.consume(key, n)  # type: ignore[arg-type]

    def _c_output(self) -> bytes:
        return self.session.data_to_send()

    def _c_output_parts(self) -> list[bytes | memoryview]:
        return self.session.data_to_send_parts()

    def _c_has_output(self) -> bool:
        return self.session.has_output

    def _c_go_away(self) -> None:
        self.session.go_away(core.GO_AWAY_NORMAL)

    def _c_receive(self, data: bytes) -> None:
        session = self.session
        try:
            session.receive_data(data)
        finally:
            # dispatch what happened before a protocol error too
            for ev in session.next_events():
                kind = type(ev)
                if kind is core.DataReceived:
                    self._on_data(ev.stream_id, ev.data)  # type: ignore[attr-defined]
                elif kind is core.WindowOpened:
                    self._on_writable(ev.stream_id)  # type: ignore[attr-defined]
                elif kind is core.StreamOpened:
                    sid = ev.stream_id  # type: ignore[attr-defined]
                    self._on_open(sid, sid)
                elif kind is core.StreamEnded:
                    self._on_eof(ev.stream_id)  # type: ignore[attr-defined]
                elif kind is core.StreamReset:
                    self._on_reset(ev.stream_id)  # type: ignore[attr-defined]
                elif kind is core.PingAcked:
                    fut = self._pings.pop(ev.opaque, None)  # type: ignore[attr-defined]
                    if fut is not None and not fut.done():
                        fut.set_result(None)
                elif kind is core.GoAwayReceived:
                    code = ev.code  # type: ignore[attr-defined]
                    if code != core.GO_AWAY_NORMAL:
                        raise MuxerError(f"remote sent GoAway with error code {code}")
                    # normal GoAway: existing streams go on, the remote hangs up later

    def _terminate(self, error: BaseException | None) -> None:
        super()._terminate(error)
        for fut in self._pings.values():
            if not fut.done():
                fut.set_exception(ConnectionClosedError("connection closed before the ping answer"))
        self._pings.clear()

    # --- extras ---------------------------------------------------------------------------
    async def ping(self, timeout: float = DEFAULT_PING_TIMEOUT) -> float:
        """Round-trip time in seconds of a yamux ping."""
        if self._closed:
            raise ConnectionClosedError("muxed connection is closed")
        loop = asyncio.get_running_loop()
        opaque = self.session.ping()
        fut: asyncio.Future[None] = loop.create_future()
        self._pings[opaque] = fut
        start = loop.time()
        try:
            await self._flush()
            await asyncio.wait_for(fut, timeout)
        finally:
            self._pings.pop(opaque, None)
            self.session.cancel_ping(opaque)
        return loop.time() - start


class YamuxMuxer:
    """MuxerFactory for ``/yamux/1.0.0``."""

    protocol_id = core.PROTOCOL_ID

    def __init__(self, config: core.YamuxConfig | None = None, **driver_options: object) -> None:
        self.config = config or core.YamuxConfig()
        self._driver_options = driver_options

    def create(self, conn: Stream, is_initiator: bool) -> YamuxConnection:
        return YamuxConnection(conn, is_initiator, self.config, **self._driver_options)  # type: ignore[arg-type]


__all__ = ["YamuxMuxer", "YamuxConnection", "YamuxStream", "DEFAULT_PING_TIMEOUT"]
