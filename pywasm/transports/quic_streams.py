"""Native QUIC streams over one aioquic ``QuicConnection`` (native CPython only).

:class:`QuicSession` drives one sans-IO :class:`aioquic.quic.connection.QuicConnection`
for an endpoint (pywasm/transports/quic.py owns the UDP socket): datagrams in, events
out, and one transmit per event-loop turn however many streams wrote in it. It is the
:class:`~pywasm.interfaces.MuxedConnection` the host sees; its :class:`QuicStream` objects
are native QUIC bidirectional streams (no muxer on top, as libp2p/specs quic says).

Flow control is tied to what the application *reads*. aioquic on its own doubles its
receive windows whenever data arrives, since it hands every byte to the application at
once; a peer could then make us buffer without bound when our reader is slow.
:class:`Libp2pQuicConnection` (a small subclass pinned to aioquic 1.7.2, see
tests/native/test_quic.py) instead announces ``released + window`` per stream and per
connection, where ``released`` counts bytes the application read or we discarded. So a
stream holds at most ``stream_window`` unread bytes and a connection ``connection_window``.
The send side holds at most ``send_buffer`` unacknowledged bytes per stream in aioquic
before ``write`` waits for acknowledgements.

The subclass also makes the server request the client's certificate (libp2p
authenticates both sides; aioquic 1.7.2 only has a private ``_request_client_certificate``
switch for it) and caps the streams the peer may open.

Stream semantics (pywasm/streams.py): ``close_write`` sends FIN; ``close`` sends FIN and,
unless the peer already finished, STOP_SENDING (as go-libp2p's stream Close does), then
discards what still arrives; ``reset`` sends RESET_STREAM and STOP_SENDING.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from aioquic.buffer import Buffer
from aioquic.quic import events
from aioquic.quic.connection import (
    CONNECTION_LIMIT_FRAME_CAPACITY,
    MAX_STREAM_DATA_FRAME_CAPACITY,
    QuicConnection,
    QuicFrameType,
)
from aioquic.quic.packet import pull_quic_transport_parameters
from aioquic.tls import ExtensionType

from ..errors import ConnectionClosedError, StreamClosedError, StreamResetError
from ..muxers.bytequeue import ByteQueue, QueuedReader

if TYPE_CHECKING:
    from aioquic.quic.packet_builder import QuicPacketBuilder
    from aioquic.quic.recovery import QuicPacketSpace
    from aioquic.quic.stream import QuicStream as _AioStream

log = logging.getLogger(__name__)

# application error code for RESET_STREAM / STOP_SENDING / CONNECTION_CLOSE: go-libp2p
# uses 0 for a plain reset or close
APP_ERROR_NONE = 0
# what we announce as max_udp_payload_size: asyncio reads datagrams of any size, so
# we accept the RFC 9000 maximum (aioquic would announce its own send size instead)
RECEIVE_UDP_PAYLOAD = 65527
# how many finished streams may wait for aioquic to discard its state before we prune
_PRUNE_EVERY = 64


class Libp2pQuicConnection(QuicConnection):
    """aioquic's connection with application-driven flow control, a stream cap and
    client certificates requested by the server. Touches aioquic 1.7.2 internals."""

    def __init__(
        self,
        *,
        stream_window: int,
        connection_window: int,
        max_incoming_streams: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.stream_window = stream_window
        self.connection_window = connection_window
        self.stream_released: dict[int, int] = {}
        self.released_total = 0
        # the peer may open this many bidirectional streams at once; no unidirectional
        # ones (libp2p does not use them)
        self._local_max_streams_bidi.value = max_incoming_streams
        self._local_max_streams_bidi.sent = max_incoming_streams
        self._local_max_streams_uni.value = 0
        self._local_max_streams_uni.sent = 0

    def _initialize(self, peer_cid: bytes) -> None:
        # the transport parameters are serialized here and announce _max_datagram_size
        # as what we can receive: announce the real limit, then send small again
        send_size = self._max_datagram_size
        self._max_datagram_size = RECEIVE_UDP_PAYLOAD
        try:
            super()._initialize(peer_cid)
        finally:
            self._max_datagram_size = send_size
        if not self._is_client:
            # libp2p authenticates the client too (tls.md): ask for its certificate
            self.tls._request_client_certificate = True

    # --- flow control by consumption --------------------------------------------------
    def release(self, stream_id: int, n: int) -> None:
        """``n`` received bytes of ``stream_id`` left our buffers."""
        self.stream_released[stream_id] = self.stream_released.get(stream_id, 0) + n
        self.released_total += n

    def release_rest(self, stream_id: int) -> None:
        """The stream's receive side ended (reset, or we stopped reading): credit the
        connection with everything the peer counted against it."""
        stream = self._streams.get(stream_id)
        released = self.stream_released.pop(stream_id, 0)
        if stream is not None:
            rest = stream.receiver.highest_offset - released
            if rest > 0:
                self.released_total += rest

    def window_update_due(self, stream_id: int) -> bool:
        """True when announcing more credit now keeps the peer from stalling."""
        half = self.stream_window // 2
        stream = self._streams.get(stream_id)
        if stream is not None and stream.max_stream_data_local:
            target = self.stream_released.get(stream_id, 0) + self.stream_window
            if target - stream.max_stream_data_local_sent >= half:
                return True
        target = self.released_total + self.connection_window
        return target - self._local_max_data.sent >= self.connection_window // 2

    def _write_stream_limits(
        self, builder: "QuicPacketBuilder", space: "QuicPacketSpace", stream: "_AioStream"
    ) -> None:
        if not stream.max_stream_data_local:
            return  # a locally opened unidirectional stream: nothing to receive
        target = self.stream_released.get(stream.stream_id, 0) + self.stream_window
        if target - stream.max_stream_data_local >= self.stream_window // 4:
            stream.max_stream_data_local = target
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            buf = builder.start_frame(
                QuicFrameType.MAX_STREAM_DATA,
                capacity=MAX_STREAM_DATA_FRAME_CAPACITY,
                handler=self._on_max_stream_data_delivery,
                handler_args=(stream,),
            )
            buf.push_uint_var(stream.stream_id)
            buf.push_uint_var(stream.max_stream_data_local)
            stream.max_stream_data_local_sent = stream.max_stream_data_local

    def _write_connection_limits(self, builder: "QuicPacketBuilder", space: "QuicPacketSpace") -> None:
        max_data = self._local_max_data
        target = self.released_total + self.connection_window
        if target - max_data.value >= self.connection_window // 4:
            max_data.value = target
        for limit in (max_data, self._local_max_streams_bidi, self._local_max_streams_uni):
            if limit is not max_data and limit.sent - limit.used >= limit.value - limit.sent:
                # batch MAX_STREAMS as aioquic does: only once the peer is running short
                continue
            if limit.value != limit.sent:
                buf = builder.start_frame(
                    limit.frame_type,
                    capacity=CONNECTION_LIMIT_FRAME_CAPACITY,
                    handler=self._on_connection_limit_delivery,
                    handler_args=(limit,),
                )
                buf.push_uint_var(limit.value)
                limit.sent = limit.value

    def raise_datagram_size(self, size: int) -> int:
        """After the handshake: send datagrams of up to ``size`` bytes (bounded by the
        peer's max_udp_payload_size). Only for paths known to carry them (loopback):
        there is no path MTU discovery here. Returns the size now in use."""
        peer_max = RECEIVE_UDP_PAYLOAD
        for ext_type, ext_data in self.tls.received_extensions or ():
            if ext_type == ExtensionType.QUIC_TRANSPORT_PARAMETERS:
                params = pull_quic_transport_parameters(Buffer(data=ext_data))
                if params.max_udp_payload_size is not None:
                    peer_max = params.max_udp_payload_size
        size = min(size, peer_max)
        if size > self._max_datagram_size:
            self._max_datagram_size = size
        return self._max_datagram_size

    # --- send buffer ----------------------------------------------------------------------
    def unacked(self, stream_id: int) -> int:
        """Bytes of ``stream_id`` written but not yet acknowledged (aioquic buffers them)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return sender._buffer_stop - sender._buffer_start


class QuicStream(QueuedReader):
    """One native QUIC bidirectional stream (the Stream contract of pywasm/streams.py)."""

    __slots__ = (
        "stream_id",
        "protocol",
        "_session",
        "_buf",
        "_eof",
        "_read_closed",
        "_reset",
        "_readable",
        "_write_closed",
        "_send_reset",
        "_write_waiter",
        "_write_lock",
        "_reason",
        "_done",
    )

    def __init__(self, session: "QuicSession", stream_id: int) -> None:
        self.stream_id = stream_id
        self.protocol: str | None = None
        self._session = session
        self._buf = ByteQueue()
        self._eof = False  # the peer's FIN arrived
        self._read_closed = False  # close() called: reads raise, arrivals are discarded
        self._reset = False  # receive side aborted (RESET_STREAM, our reset, connection loss)
        self._readable = asyncio.Event()
        self._write_closed = False  # FIN queued (close_write/close)
        self._send_reset = False  # send side aborted (our reset, STOP_SENDING, connection loss)
        self._write_waiter: asyncio.Future[None] | None = None
        self._write_lock = asyncio.Lock()
        self._reason = ""
        self._done = False

    def __repr__(self) -> str:
        return f"<QuicStream {self.stream_id} {self.protocol or ''}>"

    # --- Stream contract ---------------------------------------------------------------
    async def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        if view.ndim != 1 or view.format != "B":
            view = view.cast("B")
        size = view.nbytes
        if size == 0:
            self._check_writable()
            return
        session = self._session
        quic = session.quic
        limit = session.send_buffer
        async with self._write_lock:
            pos = 0
            while pos < size:
                self._check_writable()
                room = limit - quic.unacked(self.stream_id)
                if room <= 0:
                    await self._wait_writable()
                    continue
                end = min(size, pos + room)
                # aioquic copies into its own buffer, so a slice of the caller's is fine
                quic.send_stream_data(self.stream_id, view[pos:end])
                pos = end
                session.schedule_transmit()

    async def close_write(self) -> None:
        if self._write_closed:
            if self._send_reset and not self._session.closed:
                raise StreamResetError(self._reset_message())
            return
        async with self._write_lock:
            if self._send_reset:
                raise StreamResetError(self._reset_message())
            self._finish_write()

    async def close(self) -> None:
        if self._read_closed:
            return
        self._read_closed = True
        session = self._session
        if self._buf:
            session.quic.release(self.stream_id, len(self._buf))
            self._buf.clear()
        if not self._write_closed and not self._send_reset:
            # a writer waiting for acknowledgements raises; the FIN goes after its bytes
            self._finish_write()
        self._wake_writer()
        if not (self._eof or self._reset or session.closed):
            try:
                session.quic.stop_stream(self.stream_id, APP_ERROR_NONE)
            except Exception:  # noqa: BLE001 - aioquic already discarded the stream
                pass
            session.quic.release_rest(self.stream_id)
            session.schedule_transmit()
        self._readable.set()
        self._check_done()

    async def reset(self) -> None:
        if self._reset and self._send_reset:
            return
        session = self._session
        if not session.closed:
            quic = session.quic
            if not self._send_reset:
                try:
                    quic.reset_stream(self.stream_id, APP_ERROR_NONE)
                except Exception:  # noqa: BLE001 - nothing left to reset
                    pass
            if not (self._reset or self._eof or self._read_closed):
                try:
                    quic.stop_stream(self.stream_id, APP_ERROR_NONE)
                except Exception:  # noqa: BLE001
                    pass
            quic.release_rest(self.stream_id)
            session.schedule_transmit()
        self._abort("reset locally")

    # --- events from the session -----------------------------------------------------------
    def _on_data(self, data: bytes, end_stream: bool) -> None:
        if self._read_closed or self._reset:
            if data:
                self._session.quic.release(self.stream_id, len(data))
        else:
            self._buf.append(data)
        if end_stream:
            self._eof = True
        self._readable.set()
        if end_stream:
            self._check_done()

    def _on_peer_reset(self) -> None:
        if not self._reset:
            self._reset = True
            self._reason = self._reason or "reset by the peer"
            self._buf.clear()
        self._session.quic.release_rest(self.stream_id)
        self._readable.set()
        self._check_done()

    def _on_stop_sending(self) -> None:
        # aioquic answered with RESET_STREAM already; our writes fail from now on
        self._send_reset = True
        self._reason = self._reason or "the peer stopped reading (STOP_SENDING)"
        self._wake_writer()
        self._check_done()

    def _abort(self, reason: str) -> None:
        """Both directions end at once (our reset or connection loss)."""
        self._reason = self._reason or reason
        self._reset = True
        self._send_reset = True
        self._write_closed = True
        self._buf.clear()
        self._readable.set()
        self._wake_writer()
        self._check_done()

    # --- internals -------------------------------------------------------------------------
    def _finish_write(self) -> None:
        self._write_closed = True
        if self._session.closed:
            return
        try:
            self._session.quic.send_stream_data(self.stream_id, b"", end_stream=True)
        except Exception:  # noqa: BLE001 - reset under us (STOP_SENDING): nothing to finish
            return
        self._session.schedule_transmit()

    def _check_writable(self) -> None:
        if self._send_reset:
            raise StreamResetError(self._reset_message())
        if self._write_closed:
            raise StreamClosedError("write side of the QUIC stream is closed")

    async def _wait_writable(self) -> None:
        waiter = self._session.loop.create_future()
        self._write_waiter = waiter
        self._session.blocked_writers.add(self)
        try:
            await waiter
        finally:
            self._write_waiter = None
            self._session.blocked_writers.discard(self)

    def _wake_writer(self) -> None:
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _check_done(self) -> None:
        if self._done:
            return
        read_done = self._reset or self._read_closed or (self._eof and not self._buf)
        write_done = self._send_reset or self._write_closed
        if read_done and write_done:
            self._done = True
            self._session.stream_done(self)

    def _taken(self, n: int) -> None:
        session = self._session
        quic = session.quic
        quic.release(self.stream_id, n)
        if self._eof and not self._buf:
            self._check_done()
        elif not session.closed and quic.window_update_due(self.stream_id):
            session.schedule_transmit()

    def _reset_error(self) -> Exception:
        return StreamResetError(self._reset_message())

    def _closed_error(self) -> Exception:
        return StreamClosedError("QUIC stream is closed for reading")

    def _reset_message(self) -> str:
        return f"QUIC stream {self.stream_id} was reset ({self._reason or 'by the peer'})"


class QuicSession:
    """Drives one QUIC connection: the MuxedConnection of its streams.

    ``send`` puts one datagram on the wire (the endpoint's socket); ``on_terminated`` is
    called once when the connection is gone for good (closing period over), so the
    endpoint can forget its connection ids.
    """

    def __init__(
        self,
        quic: Libp2pQuicConnection,
        send: Callable[[bytes, Any], None],
        *,
        send_buffer: int,
        keep_alive: float | None,
        on_cid_issued: Callable[[bytes], None],
        on_cid_retired: Callable[[bytes], None],
        on_terminated: Callable[["QuicSession"], None],
    ) -> None:
        self.quic = quic
        self.loop = asyncio.get_running_loop()
        self.send_buffer = send_buffer
        self._send = send
        self._on_cid_issued = on_cid_issued
        self._on_cid_retired = on_cid_retired
        self._on_terminated = on_terminated
        self.streams: dict[int, QuicStream] = {}
        self._finished: set[int] = set()
        self.blocked_writers: set[QuicStream] = set()
        self._accept_queue: deque[QuicStream] = deque()
        self._accept_waiter: asyncio.Future[None] | None = None
        self.handshake: asyncio.Future[None] = self.loop.create_future()
        self.closed = False  # no more streams: closing, or terminated
        self.terminated = False  # aioquic's connection reached its end state
        self.close_reason: str | None = None
        self._terminated_future: asyncio.Future[None] = self.loop.create_future()
        self._transmit_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._keep_alive = keep_alive
        self._keep_alive_handle: asyncio.TimerHandle | None = None
        self._ping_uid = 0
        # accept inbound streams only once the host has the connection (after the
        # certificate check); until then they wait in the queue
        self.accepting = True

    # --- input ---------------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.terminated:
            return
        self.quic.receive_datagram(data, addr, self.loop.time())
        self._process_events()
        if self.blocked_writers:
            self._wake_drained_writers()
        self.schedule_transmit()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self.terminated:
            return
        self.quic.handle_timer(self.loop.time())
        self._process_events()
        if self.blocked_writers:
            self._wake_drained_writers()
        self.transmit()

    def _process_events(self) -> None:
        quic = self.quic
        while True:
            event = quic.next_event()
            if event is None:
                return
            kind = type(event)
            if kind is events.StreamDataReceived:
                stream = self.streams.get(event.stream_id)
                if stream is None:
                    stream = self._new_remote_stream(event.stream_id)
                    if stream is None:
                        quic.release(event.stream_id, len(event.data))
                        continue
                stream._on_data(event.data, event.end_stream)
            elif kind is events.StreamReset:
                stream = self.streams.get(event.stream_id)
                if stream is None:
                    stream = self._new_remote_stream(event.stream_id)
                if stream is not None:
                    stream._on_peer_reset()
                else:
                    quic.release_rest(event.stream_id)
            elif kind is events.StopSendingReceived:
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream._on_stop_sending()
            elif kind is events.HandshakeCompleted:
                if not self.handshake.done():
                    self.handshake.set_result(None)
            elif kind is events.ConnectionIdIssued:
                self._on_cid_issued(event.connection_id)
            elif kind is events.ConnectionIdRetired:
                self._on_cid_retired(event.connection_id)
            elif kind is events.ConnectionTerminated:
                reason = event.reason_phrase or f"error code {event.error_code:#x}"
                self._terminate(f"QUIC connection closed: {reason}")

    def _new_remote_stream(self, stream_id: int) -> QuicStream | None:
        """A stream the peer opened; None for what we do not take (unidirectional
        streams, streams arriving while we close)."""
        if stream_id & 2 or self.closed:
            # libp2p does not use unidirectional streams (we allow none anyway)
            try:
                self.quic.stop_stream(stream_id, APP_ERROR_NONE)
            except Exception:  # noqa: BLE001
                pass
            return None
        stream = QuicStream(self, stream_id)
        self.streams[stream_id] = stream
        self._accept_queue.append(stream)
        waiter = self._accept_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return stream

    # --- output --------------------------------------------------------------------------
    def schedule_transmit(self) -> None:
        """Send what is due at the end of this loop turn (one batch for many writes)."""
        if not self._transmit_scheduled and not self.terminated:
            self._transmit_scheduled = True
            self.loop.call_soon(self.transmit)

    def transmit(self) -> None:
        self._transmit_scheduled = False
        if self.terminated:
            return
        quic = self.quic
        send = self._send
        try:
            for data, addr in quic.datagrams_to_send(self.loop.time()):
                send(data, addr)
        except OSError as exc:  # the socket is gone: nothing more can be sent
            log.debug("QUIC send failed: %s", exc)
        # closing the connection ends in an event the caller of transmit never sees
        self._process_events()
        if self._finished:
            self._prune()
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self.terminated:
            return
        at = self.quic.get_timer()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = self.loop.call_at(at, self._on_timer)

    def start_keep_alive(self) -> None:
        if self._keep_alive and self._keep_alive_handle is None and not self.closed:
            self._keep_alive_handle = self.loop.call_later(self._keep_alive, self._send_keep_alive)

    def _send_keep_alive(self) -> None:
        """A PING the peer acknowledges keeps both idle timers from firing (go closes a
        QUIC connection after 30 s of silence)."""
        self._keep_alive_handle = None
        if self.closed:
            return
        self._ping_uid += 1
        self.quic.send_ping(self._ping_uid)
        self.schedule_transmit()
        self.start_keep_alive()

    def _wake_drained_writers(self) -> None:
        quic = self.quic
        low = self.send_buffer // 2
        for stream in list(self.blocked_writers):
            if quic.unacked(stream.stream_id) <= low:
                stream._wake_writer()

    # --- stream bookkeeping ----------------------------------------------------------------
    def stream_done(self, stream: QuicStream) -> None:
        self._finished.add(stream.stream_id)
        if len(self._finished) >= _PRUNE_EVERY:
            self._prune()

    def _prune(self) -> None:
        """Forget finished streams once aioquic forgot them too: until then a late frame
        for one must not look like a new stream from the peer."""
        live = self.quic._streams
        gone = [sid for sid in self._finished if sid not in live]
        for sid in gone:
            self._finished.discard(sid)
            self.streams.pop(sid, None)
            self.quic.stream_released.pop(sid, None)

    # --- MuxedConnection -----------------------------------------------------------------
    async def open_stream(self) -> QuicStream:
        if self.closed:
            raise ConnectionClosedError(f"QUIC connection is closed ({self.close_reason or 'closed'})")
        quic = self.quic
        stream_id = quic.get_next_available_stream_id()
        # creates aioquic's stream state (and takes the id) without sending a frame: the
        # peer learns of the stream with its first bytes, as with every QUIC stack
        quic.send_stream_data(stream_id, b"")
        stream = QuicStream(self, stream_id)
        self.streams[stream_id] = stream
        return stream

    async def accept_stream(self) -> QuicStream:
        while True:
            if self._accept_queue:
                return self._accept_queue.popleft()
            if self.closed:
                raise ConnectionClosedError(f"QUIC connection is closed ({self.close_reason or 'closed'})")
            waiter = self.loop.create_future()
            self._accept_waiter = waiter
            try:
                await waiter
            finally:
                self._accept_waiter = None

    async def close(self) -> None:
        self.close_now(APP_ERROR_NONE, "closed")
        # give the CONNECTION_CLOSE its turn of the loop (it is sent from call_soon)
        await asyncio.sleep(0)

    def close_now(self, error_code: int, reason: str, *, frame_type: int | None = None) -> None:
        """Close the connection with ``error_code`` (application error unless
        ``frame_type`` makes it a transport error) and end every stream."""
        if self.closed:
            return
        self.quic.close(error_code=error_code, frame_type=frame_type, reason_phrase=reason)
        self._shut(f"closed locally: {reason}" if reason != "closed" else "closed locally")
        self.transmit()

    @property
    def is_closed(self) -> bool:
        return self.closed

    async def wait_terminated(self, timeout: float) -> None:
        await asyncio.wait_for(asyncio.shield(self._terminated_future), timeout)

    def _shut(self, reason: str) -> None:
        """No more streams: abort the open ones, wake accept_stream."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        if self._keep_alive_handle is not None:
            self._keep_alive_handle.cancel()
            self._keep_alive_handle = None
        for stream in list(self.streams.values()):
            stream._abort(f"connection {reason}")
        self._accept_queue.clear()
        waiter = self._accept_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionClosedError(reason))
            self.handshake.exception()  # retrieved: a dial may have timed out already

    def _terminate(self, reason: str) -> None:
        if self.terminated:
            return
        self._shut(reason)
        self.terminated = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.streams.clear()
        self._finished.clear()
        self.blocked_writers.clear()
        if not self._terminated_future.done():
            self._terminated_future.set_result(None)
        self._on_terminated(self)

    def abort(self, reason: str) -> None:
        """Forget the connection without a word to the peer (its socket is gone)."""
        self._terminate(reason)


__all__ = ["Libp2pQuicConnection", "QuicSession", "QuicStream", "APP_ERROR_NONE"]
