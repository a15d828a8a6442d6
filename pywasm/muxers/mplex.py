"""asyncio driver for mplex: :class:`MplexMuxer` (a MuxerFactory) and its connection.

mplex has no flow control, so ``write`` is only slowed down by the connection below;
a stream whose reader falls more than ``MplexConfig.max_stream_buffer`` bytes behind is
reset by the receiving side (see :mod:`pywasm.protocols.mplex`).
"""

from __future__ import annotations

from typing import Hashable

from ..protocols import mplex as core
from ..streams import Stream
from .base import (
    DEFAULT_READ_SIZE,
    DEFAULT_STREAM_CLOSE_TIMEOUT,
    DEFAULT_WRITE_BATCH,
    MuxedConnectionBase,
    MuxedStreamBase,
)

# mplex never limits a write by a window; the driver asks "how much may I send?"
_UNLIMITED = 1 << 62


class MplexStream(MuxedStreamBase):
    pass


class MplexConnection(MuxedConnectionBase):
    stream_class = MplexStream

    def __init__(
        self,
        conn: Stream,
        is_initiator: bool,
        config: core.MplexConfig | None = None,
        *,
        read_size: int = DEFAULT_READ_SIZE,
        write_batch: int = DEFAULT_WRITE_BATCH,
        stream_close_timeout: float = DEFAULT_STREAM_CLOSE_TIMEOUT,
    ) -> None:
        self.session = core.MplexSession(config)
        super().__init__(
            conn,
            is_initiator,
            read_size=read_size,
            write_batch=write_batch,
            stream_close_timeout=stream_close_timeout,
        )

    def _c_open(self) -> tuple[Hashable, int]:
        key = self.session.open_stream()
        return key, key[0]

    def _c_send(self, key: Hashable, data: memoryview) -> int:
        return self.session.send_data(key, data)  # type: ignore[arg-type]

    def _c_send_window(self, key: Hashable) -> int:
        return _UNLIMITED

    def _c_close_write(self, key: Hashable) -> None:
        self.session.close_write(key)  # type: ignore[arg-type]

    def _c_reset(self, key: Hashable) -> None:
        self.session.reset_stream(key)  # type: ignore[arg-type]

    def _c_consume(self, key: Hashable, n: int) -> None:
        self.session.consume(key, n)  # type: ignore[arg-type]

    def _c_output(self) -> bytes:
        return self.session.data_to_send()

    def _c_has_output(self) -> bool:
        return self.session.has_output

    def _c_go_away(self) -> None:
        self.session.close()

    def _c_receive(self, data: bytes) -> None:
        session = self.session
        try:
            session.receive_data(data)
        finally:
            for ev in session.next_events():
                kind = type(ev)
                if kind is core.DataReceived:
                    self._on_data(ev.key, ev.data)  # type: ignore[attr-defined]
                elif kind is core.StreamOpened:
                    key = ev.key  # type: ignore[attr-defined]
                    self._on_open(key, key[0])
                elif kind is core.StreamEnded:
                    self._on_eof(ev.key)  # type: ignore[attr-defined]
                elif kind is core.StreamReset:
                    self._on_reset(ev.key)  # type: ignore[attr-defined]


class MplexMuxer:
    """MuxerFactory for ``/mplex/6.7.0``."""

    protocol_id = core.PROTOCOL_ID

    def __init__(self, config: core.MplexConfig | None = None, **driver_options: object) -> None:
        self.config = config or core.MplexConfig()
        self._driver_options = driver_options

    def create(self, conn: Stream, is_initiator: bool) -> MplexConnection:
        return MplexConnection(conn, is_initiator, self.config, **self._driver_options)  # type: ignore[arg-type]


__all__ = ["MplexMuxer", "MplexConnection", "MplexStream"]
