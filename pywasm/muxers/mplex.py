"""asyncio driver for mplex: :class:`MplexMuxer` (a MuxerFactory) and its connection.

mplex has no flow control, so ``write`` is only slowed down by the connection below;
a stream whose reader falls more than ``MplexConfig.max_stream_buffer`` bytes behind is
reset by the receiving side (see :mod:`pywasm.protocols.mplex`).
"""

from __future__ import annotations

from typing import Hashable

from ..protocols import mplex as core
from .base import MuxedConnectionBase, MuxedStreamBase, MuxerFactoryBase

# mplex never limits a write by a window; the driver asks "how much may I send?"
_UNLIMITED = 1 << 62


class MplexStream(MuxedStreamBase):
    pass


class MplexConnection(MuxedConnectionBase):
    """``MplexConnection(conn, is_initiator, config: MplexConfig | None = None, *, ...)``."""

    stream_class = MplexStream
    session: core.MplexSession

    def _c_session(self, is_initiator: bool, config: core.MplexConfig | None) -> core.MplexSession:
        return core.MplexSession(config)

    def _c_open(self) -> tuple[Hashable, int]:
        key = self.session.open_stream()
        return key, key[0]

    def _c_send_window(self, key: Hashable) -> int:
        return _UNLIMITED

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


class MplexMuxer(MuxerFactoryBase):
    """MuxerFactory for ``/mplex/6.7.0``: ``MplexMuxer(config=None, **driver_options)``."""

    protocol_id = core.PROTOCOL_ID
    connection_class = MplexConnection
    config_class = core.MplexConfig


__all__ = ["MplexMuxer", "MplexConnection", "MplexStream"]
