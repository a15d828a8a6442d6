"""libp2p streams over WebRTC data channels, for both WebRTC flavours.

A data channel cannot half-close or reset one direction, so libp2p frames every message
(:mod:`pywasm.protocols.webrtc_pb`) and signals with flags (libp2p/specs
webrtc/README.md): FIN ends our writes, the remote answers FIN_ACK; STOP_SENDING says we
stopped reading; RESET_STREAM aborts. This module holds that state machine as a
:class:`~pywasm.streams.Stream` (:class:`WebRTCStream`) and the connection of such streams
(:class:`WebRTCMuxedConnection`). The data channels themselves come from a backend:
aiortc natively (pywasm-relay), the browser's RTCPeerConnection through a JS shim in
Pyodide. A backend implements :class:`DataChannel` and calls :meth:`WebRTCStream.feed`
with every received message and :meth:`WebRTCStream.channel_closed` once.

Choices, and why:

* ``close_write`` returns once the FIN is acknowledged (or ``fin_ack_timeout`` passed or
  the channel closed): the spec makes FIN_ACK the proof that the remote got everything.
* ``close`` = ``close_write`` + STOP_SENDING if the remote has not finished, then it waits
  (bounded by ``close_timeout``) for the remote's FIN before closing the channel, because
  closing a channel may drop messages still queued in some WebRTC stacks.
* A channel that closes before the remote's FIN ends reads with :class:`StreamResetError`
  once the bytes received before the close are read (an orderly remote sends FIN first;
  the spec's server closes the Noise channel right after its last handshake message).
* Received bytes are not flow-controlled by WebRTC once delivered; ``max_buffered``
  unread bytes per stream is the bound, past which the stream is reset.

Pyodide-safe: asyncio only.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Protocol

from ..errors import (
    ConnectionClosedError,
    LimitExceededError,
    PywasmError,
    StreamClosedError,
    StreamResetError,
)
from ..muxers.bytequeue import ByteQueue, QueuedReader
from ..protocols.webrtc_pb import MAX_PAYLOAD, Flag, FrameDecoder, encode_message

log = logging.getLogger(__name__)

#: How long ``close_write`` waits for the remote's FIN_ACK (js-libp2p waits 10 s).
DEFAULT_FIN_ACK_TIMEOUT = 10.0
#: How long ``close`` waits for the remote's FIN after our own side is done.
DEFAULT_CLOSE_TIMEOUT = 5.0
# A send queue that does not drain for this long means the path is gone: the remote
# browser takes every message off SCTP by itself (data channels have no receive-side
# backpressure), so only the network stops it. Chromium's SCTP was seen stalling ~5 s.
DEFAULT_SEND_STALL_TIMEOUT = 60.0
#: Unread received bytes per stream before the stream is reset.
DEFAULT_MAX_BUFFERED = 16 * 1024 * 1024
#: ``write`` waits while the channel holds more than this many unsent bytes.
DEFAULT_SEND_HIGH_WATER = 1024 * 1024
#: Inbound streams accepted by the transport but not yet taken by ``accept_stream``.
DEFAULT_MAX_PENDING_INBOUND = 1024
#: Streams open at once on one connection (both directions); RFC 8831 allows 65535.
DEFAULT_MAX_STREAMS = 4096


class DataChannel(Protocol):
    """One data channel, as a backend exposes it to :class:`WebRTCStream`."""

    @property
    def id(self) -> int: ...

    @property
    def buffered_amount(self) -> int:
        """Bytes handed to ``send`` and not yet passed to the network."""
        ...

    def send(self, message: bytes) -> None:
        """Queue one data-channel message; raise if the channel is not open."""
        ...

    async def wait_buffered_below(self, limit: int) -> None:
        """Return once ``buffered_amount <= limit`` or the channel is closed."""
        ...

    def close(self) -> None:
        """Close the channel (both directions); idempotent."""
        ...


class WebRTCStream(QueuedReader):
    """A libp2p stream over one data channel (see the module doc)."""

    def __init__(
        self,
        channel: DataChannel,
        *,
        fin_ack_timeout: float = DEFAULT_FIN_ACK_TIMEOUT,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        send_high_water: int = DEFAULT_SEND_HIGH_WATER,
        send_stall_timeout: float = DEFAULT_SEND_STALL_TIMEOUT,
        on_done: Callable[["WebRTCStream"], None] | None = None,
    ) -> None:
        self.channel = channel
        self._send_stall_timeout = send_stall_timeout
        self.stream_id = channel.id
        self.protocol: str | None = None
        self._fin_ack_timeout = fin_ack_timeout
        self._close_timeout = close_timeout
        self._max_buffered = max_buffered
        self._high_water = send_high_water
        self._on_done = on_done
        self._decoder = FrameDecoder()
        self._buf = ByteQueue()
        self._readable = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._eof = False  # remote FIN received
        self._read_closed = False  # close() called: reads fail
        self._stop_sent = False  # we sent STOP_SENDING: payloads are dropped
        self._reset = False
        self._reset_reason = "stream was reset"
        self._write_closed = False  # FIN sent (or reset)
        self._remote_stopped = False  # remote sent STOP_SENDING
        self._fin_acked = asyncio.Event()
        self._changed = asyncio.Event()  # any state change, for close() waits
        self._channel_closed = False
        self._abrupt = False  # channel closed without FIN: reads fail once drained

    # --- events from the backend ----------------------------------------------------
    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """One received data-channel message (or any part of the byte stream)."""
        if self._reset or self._channel_closed or not data:
            return
        try:
            messages = self._decoder.feed(data)
        except PywasmError as exc:
            log.debug("stream %s: bad framing, resetting: %s", self.stream_id, exc)
            self._abort(f"bad data from the remote: {exc}", send_reset=True)
            return
        for msg in messages:
            if msg.message and not self._stop_sent and not self._eof:
                if len(self._buf) + len(msg.message) > self._max_buffered:
                    err = LimitExceededError(f"more than {self._max_buffered} unread bytes on stream {self.stream_id}")
                    self._abort(str(err), send_reset=True)
                    return
                self._buf.append(msg.message)
                self._readable.set()
            flag = msg.flag
            if flag is None:
                continue
            if flag == Flag.FIN:
                if not self._eof:
                    self._eof = True
                    self._send_flag(Flag.FIN_ACK)
            elif flag == Flag.FIN_ACK:
                self._fin_acked.set()
            elif flag == Flag.STOP_SENDING:
                self._remote_stopped = True
            elif flag == Flag.RESET_STREAM:
                self._abort("stream was reset by the remote", send_reset=False)
                return
            self._state_changed()
        self._maybe_finish()

    def channel_closed(self) -> None:
        """The data channel closed (either side, or the connection went away)."""
        if self._channel_closed:
            return
        self._channel_closed = True
        if not self._eof and not self._reset:
            self._eof = True  # nothing more arrives; what did arrive stays readable
            self._abrupt = True
        self._state_changed()
        if self._on_done is not None:
            cb, self._on_done = self._on_done, None
            cb(self)

    # --- Stream contract ---------------------------------------------------------------
    async def read(self, max_bytes: int = -1) -> bytes:
        data = await QueuedReader.read(self, max_bytes)
        if not data and max_bytes != 0 and self._abrupt:
            raise StreamResetError(f"stream {self.stream_id}: data channel closed before the remote finished writing")
        return data

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        if not data:
            return
        view = memoryview(data).cast("B")
        async with self._write_lock:
            for off in range(0, len(view), MAX_PAYLOAD):
                if self.channel.buffered_amount > self._high_water:
                    try:
                        async with asyncio.timeout(self._send_stall_timeout):
                            await self.channel.wait_buffered_below(self._high_water // 2)
                    except TimeoutError:
                        why = (f"data channel sent nothing for {self._send_stall_timeout:g} s "
                               f"({self.channel.buffered_amount} bytes queued)")
                        self._abort(why, send_reset=True)
                        raise StreamResetError(f"stream {self.stream_id}: {why}") from None
                self._check_writable()
                try:
                    self.channel.send(encode_message(view[off : off + MAX_PAYLOAD]))
                except Exception as exc:  # the channel closed under us
                    self._abort(f"data channel send failed: {exc}", send_reset=False)
                    raise StreamResetError(f"stream {self.stream_id}: {self._reset_reason}") from None

    async def close_write(self) -> None:
        if self._reset:
            raise StreamResetError(f"stream {self.stream_id}: {self._reset_reason}")
        if self._write_closed:
            return
        async with self._write_lock:  # the FIN goes after writes in flight
            if self._write_closed:
                return
            self._write_closed = True
            self._send_flag(Flag.FIN)
        await self._wait(lambda: self._fin_acked.is_set() or self._reset or self._channel_closed,
                         self._fin_ack_timeout)
        self._fin_acked.set()  # a timeout counts as done (the spec allows closing then)
        self._maybe_finish()

    async def close(self) -> None:
        if self._read_closed and self._write_closed:
            return
        self._read_closed = True
        self._readable.set()
        if not self._eof and not self._reset and not self._stop_sent:
            self._stop_sent = True
            self._buf.clear()
            self._send_flag(Flag.STOP_SENDING)
        try:
            await self.close_write()
        except StreamResetError:
            pass
        await self._wait(lambda: self._eof or self._reset or self._channel_closed, self._close_timeout)
        self._close_channel()

    async def reset(self) -> None:
        self._abort("stream was reset locally", send_reset=True)

    # --- QueuedReader hooks ------------------------------------------------------------
    def _reset_error(self) -> Exception:
        return StreamResetError(f"stream {self.stream_id}: {self._reset_reason}")

    def _closed_error(self) -> Exception:
        return StreamClosedError(f"stream {self.stream_id} is closed")

    # --- internals -------------------------------------------------------------------------
    @property
    def is_closed(self) -> bool:
        return self._channel_closed or self._reset

    def _check_writable(self) -> None:
        if self._reset:
            raise StreamResetError(f"stream {self.stream_id}: {self._reset_reason}")
        if self._write_closed:
            raise StreamClosedError(f"write side of stream {self.stream_id} is closed")
        if self._remote_stopped:
            raise StreamClosedError(f"stream {self.stream_id}: the remote stopped reading")
        if self._channel_closed:
            raise StreamResetError(f"stream {self.stream_id}: data channel closed")

    def _send_flag(self, flag: Flag) -> None:
        if self._channel_closed:
            return
        try:
            self.channel.send(encode_message(flag=flag))
        except Exception as exc:  # noqa: BLE001 - a closing channel: the flag is moot
            log.debug("stream %s: cannot send %s: %s", self.stream_id, flag.name, exc)

    def _abort(self, reason: str, *, send_reset: bool) -> None:
        if self._reset:
            return
        if send_reset and not self._channel_closed:
            self._send_flag(Flag.RESET_STREAM)
        self._reset = True
        self._reset_reason = reason
        self._write_closed = True
        self._buf.clear()
        self._state_changed()
        self._close_channel()

    def _maybe_finish(self) -> None:
        # both directions done: FIN acknowledged and the remote's FIN received
        if self._eof and self._write_closed and self._fin_acked.is_set():
            self._close_channel()

    def _close_channel(self) -> None:
        if not self._channel_closed:
            try:
                self.channel.close()
            except Exception as exc:  # noqa: BLE001 - already going away
                log.debug("stream %s: channel close failed: %s", self.stream_id, exc)

    def _state_changed(self) -> None:
        self._readable.set()
        self._changed.set()

    async def _wait(self, done: Callable[[], bool], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            left = deadline - loop.time()
            if left <= 0:
                return
            self._changed.clear()
            waiter = asyncio.ensure_future(self._changed.wait())
            acked = asyncio.ensure_future(self._fin_acked.wait())
            try:
                await asyncio.wait({waiter, acked}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                acked.cancel()

    def __repr__(self) -> str:
        return f"<WebRTCStream {self.stream_id}>"


class WebRTCMuxedConnection:
    """The streams of one WebRTC connection, as a :class:`~pywasm.interfaces.MuxedConnection`.

    ``open_channel`` (backend) opens a data channel and returns the stream made from it
    with :meth:`make_stream`; the backend calls :meth:`add_inbound` for each channel the
    remote opens and :meth:`transport_closed` when the peer connection ends;
    ``close_transport`` closes the peer connection.
    """

    def __init__(
        self,
        open_channel: Callable[[], Awaitable[WebRTCStream]],
        close_transport: Callable[[], Awaitable[None]],
        *,
        max_pending_inbound: int = DEFAULT_MAX_PENDING_INBOUND,
        max_streams: int = DEFAULT_MAX_STREAMS,
        stream_options: dict[str, float | int] | None = None,
    ) -> None:
        self._open_channel = open_channel
        self._close_transport = close_transport
        self._max_streams = max_streams
        self._stream_options = dict(stream_options or {})
        self._pending: asyncio.Queue[WebRTCStream | None] = asyncio.Queue(max_pending_inbound)
        self._streams: set[WebRTCStream] = set()
        self._closed = False
        self._close_task: asyncio.Future[None] | None = None

    def make_stream(self, channel: DataChannel) -> WebRTCStream:
        stream = WebRTCStream(channel, on_done=self._streams.discard, **self._stream_options)  # type: ignore[arg-type]
        self._streams.add(stream)
        return stream

    def add_inbound(self, channel: DataChannel) -> WebRTCStream | None:
        """Register a channel the remote opened; None (channel closed) when over a limit."""
        if self._closed or len(self._streams) >= self._max_streams or self._pending.full():
            log.debug("refusing inbound data channel %s: closed or over limits", channel.id)
            try:
                channel.close()
            except Exception:  # noqa: BLE001
                pass
            return None
        stream = self.make_stream(channel)
        self._pending.put_nowait(stream)
        return stream

    async def open_stream(self) -> WebRTCStream:
        if self._closed:
            raise ConnectionClosedError("WebRTC connection is closed")
        if len(self._streams) >= self._max_streams:
            raise LimitExceededError(f"more than {self._max_streams} streams on one WebRTC connection")
        return await self._open_channel()

    async def accept_stream(self) -> WebRTCStream:
        if self._closed and self._pending.empty():
            raise ConnectionClosedError("WebRTC connection is closed")
        stream = await self._pending.get()
        if stream is None:
            self._pending.put_nowait(None)  # wake the next waiter too
            raise ConnectionClosedError("WebRTC connection is closed")
        return stream

    def transport_closed(self) -> None:
        """The peer connection ended: every stream ends with it."""
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams):
            stream.channel_closed()
        self._streams.clear()
        self._wake_acceptors()

    def _wake_acceptors(self) -> None:
        try:
            self._pending.put_nowait(None)
        except asyncio.QueueFull:
            # make room: pending streams are dropped with the connection anyway
            try:
                self._pending.get_nowait()
            except asyncio.QueueEmpty:
                pass
            self._pending.put_nowait(None)

    async def close(self) -> None:
        if self._close_task is None:
            self._close_task = asyncio.ensure_future(self._do_close())
        await asyncio.shield(self._close_task)

    async def _do_close(self) -> None:
        self.transport_closed()
        try:
            await self._close_transport()
        except Exception as exc:  # noqa: BLE001 - closing anyway
            log.debug("closing the WebRTC transport failed: %s", exc)

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def stream_count(self) -> int:
        return len(self._streams)


__all__ = [
    "DEFAULT_FIN_ACK_TIMEOUT",
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_MAX_BUFFERED",
    "DataChannel",
    "WebRTCStream",
    "WebRTCMuxedConnection",
]
