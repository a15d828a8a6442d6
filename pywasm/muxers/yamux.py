"""asyncio driver for yamux: :class:`YamuxMuxer` (a MuxerFactory) and its connection."""

from __future__ import annotations

import asyncio
from typing import Any, Hashable

from ..errors import ConnectionClosedError, MuxerError
from ..protocols import yamux as core
from .base import MuxedConnectionBase, MuxedStreamBase, MuxerFactoryBase

# How long ping() waits for the answer.
DEFAULT_PING_TIMEOUT = 10.0


class YamuxStream(MuxedStreamBase):
    pass


class YamuxConnection(MuxedConnectionBase):
    """``YamuxConnection(conn, is_initiator, config: YamuxConfig | None = None, *, ...)``."""

    stream_class = YamuxStream
    session: core.YamuxSession

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._pings: dict[int, asyncio.Future[None]] = {}
        super().__init__(*args, **kwargs)

    # --- core hooks ----------------------------------------------------------------------
    def _c_session(self, is_initiator: bool, config: core.YamuxConfig | None) -> core.YamuxSession:
        return core.YamuxSession(is_client=is_initiator, config=config)

    def _c_open(self) -> tuple[Hashable, int]:
        sid = self.session.open_stream()
        return sid, sid

    def _c_send_window(self, key: Hashable) -> int:
        return self.session.send_window(key)  # type: ignore[arg-type]

    def _c_output_parts(self) -> list[bytes | memoryview]:
        return self.session.data_to_send_parts()

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


class YamuxMuxer(MuxerFactoryBase):
    """MuxerFactory for ``/yamux/1.0.0``: ``YamuxMuxer(config=None, **driver_options)``."""

    protocol_id = core.PROTOCOL_ID
    connection_class = YamuxConnection
    config_class = core.YamuxConfig


__all__ = ["YamuxMuxer", "YamuxConnection", "YamuxStream", "DEFAULT_PING_TIMEOUT"]
