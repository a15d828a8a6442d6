"""WebTransport over HTTP/3 on aioquic (native only): sessions, streams and a dialer.

Native-only: imports aioquic at module import, so the browser never imports this module
(the browser dials through browser_webtransport.py and the JS shim). The relay's
listener (relay-server/pywasm_relay/webtransport.py) builds on the same classes.

Shape (one WebTransport session per QUIC connection, as libp2p uses it):

* :class:`WebTransportProtocol`: an aioquic ``QuicConnectionProtocol`` with an
  ``H3Connection(enable_webtransport=True)``; it routes H3 events to sessions and wakes
  writers when acknowledgements free send buffer.
* :class:`WebTransportSession`: a :class:`~pywasm.interfaces.MuxedConnection` whose
  streams are native WebTransport bidirectional streams; its backend-neutral part,
  :class:`WebTransportSessionBase`, also carries the relay's aiopquic sessions.
* :class:`WebTransportStream`: a :class:`~pywasm.interfaces.MuxedStream`.
* :class:`NativeWebTransportTransport`: dials ``/quic-v1/webtransport/certhash/...``:
  QUIC with the certificate checked against the certhashes (what a browser does with
  ``serverCertificateHashes``), extended CONNECT, Noise XX on the first stream, then the
  spec's check that the server vouches for every certhash in its Noise extension.

Flow control: aioquic grants the peer stream credit as data *arrives* (doubling the
window whenever half is used), so a fast sender and a slow reader would grow our buffer
without bound. For WebTransport streams we replace that rule (:func:`_install_flow_control`):
the credit is what the application has *read* plus :data:`DEFAULT_STREAM_WINDOW`, so an
unread stream stops its sender, as yamux does. ``max_stream_buffer`` stays as a safety net
(a peer that ignores the limit is reset). Sends wait while more than ``send_high_water``
bytes are unacknowledged (or not yet allowed out) on the stream.

Performance (numbers and the options weighed: docs/webtransport.md): aioquic's per-packet
Python work bounds throughput, so the I/O around it is batched (pywasm/transports/udp_batch.py
reads every waiting datagram before the connection transmits once; transmits leave as UDP
GSO batches), datagrams are 1452 bytes (Chromium's limit) and the windows are larger.

aioquic internals relied on (pinned aioquic 1.7.x; covered by tests/native/test_webtransport.py):
``QuicStreamSender._buffer`` (unacknowledged bytes), ``H3Connection._stream`` /
``_get_or_create_stream`` (marking streams we open as WebTransport streams, the receive
fast path), ``QuicConnection._write_stream_limits`` (stream credit),
``QuicConnectionProtocol._process_events`` / ``_timer``, ``tls._peer_certificate``,
``QuicServer._protocols`` (udp_batch's short-header shortcut). The exact version is
pinned by ``test_aioquic_pin_and_short_header_shortcut``.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import socket
import ssl
from typing import TYPE_CHECKING, Any, Callable

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived, WebTransportStreamDataReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import MAX_STREAM_DATA_FRAME_CAPACITY, QuicConnection
from aioquic.quic.packet import QuicFrameType
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)

from ..errors import (
    ConnectionClosedError,
    DialError,
    PywasmError,
    StreamClosedError,
    StreamResetError,
    TransportError,
)
from ..muxers.bytequeue import ByteQueue
from .udp_batch import BatchedUDPTransport, send_datagrams, udp_socket
from .webtransport_addr import (
    SESSION_PATH,
    WebTransportAddr,
    WebTransportConnection,
    WebTransportError,
    secure_dialed_session,
    parse_webtransport,
    validate_certhashes,
)

if TYPE_CHECKING:
    from ..interfaces import ConnectionHandler, Listener
    from ..multiformats.multiaddr import Multiaddr

log = logging.getLogger("pywasm.webtransport")

#: Received, unread bytes one stream may hold before we reset it (see module doc).
DEFAULT_MAX_STREAM_BUFFER = 16 * 1024 * 1024
#: ``write`` waits while more than this many bytes are unacknowledged on the stream.
DEFAULT_SEND_HIGH_WATER = 1024 * 1024
#: Inbound streams waiting for ``accept_stream``; past it new streams are reset.
DEFAULT_MAX_PENDING_STREAMS = 256
#: Bound on QUIC connect + CONNECT + Noise for a dial (the host bounds the whole dial too).
DEFAULT_DIAL_TIMEOUT = 10.0
#: QUIC idle timeout: a silent peer is dropped after this long.
DEFAULT_IDLE_TIMEOUT = 30.0
#: A QUIC PING this often keeps an idle session alive (libp2p connections idle for long:
#: a relay reservation, a quiet pubsub mesh) while a vanished peer still times out.
DEFAULT_KEEPALIVE = DEFAULT_IDLE_TIMEOUT / 3
#: Largest UDP payload we send. Loopback and most paths carry 1452 (1500 - IPv6 - UDP);
#: bigger packets mean fewer per-packet costs in aioquic, the bottleneck here.
DEFAULT_MAX_DATAGRAM_SIZE = 1452
#: QUIC flow-control windows we grant (aioquic's defaults are 1 MiB / 1 MiB).
DEFAULT_MAX_DATA = 16 * 1024 * 1024
DEFAULT_MAX_STREAM_DATA = 4 * 1024 * 1024
#: Receive window per WebTransport stream: the remote may send this far past what our
#: application has read. Credit goes out once a quarter of it has been read.
DEFAULT_STREAM_WINDOW = 4 * 1024 * 1024
#: Remote stream ids tracked above the lowest one not yet seen (ids arriving out of order)
_MAX_STREAM_ID_GAPS = 1024
#: Writes are cut into pieces of this size so one write cannot monopolise the loop.
WRITE_PIECE = 256 * 1024

# WebTransport maps application error codes into this HTTP/3 range (draft-ietf-webtrans-http3)
_WT_ERROR_FIRST = 0x52E4A40FA8DB
H3_NO_ERROR = 0x100
H3_REQUEST_REJECTED = 0x10B


def wt_error_code(code: int) -> int:
    """The HTTP/3 error code that carries WebTransport application error ``code``."""
    return _WT_ERROR_FIRST + code + code // 0x1E


def quic_configuration(*, is_client: bool, max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE,
                       idle_timeout: float = DEFAULT_IDLE_TIMEOUT, naive: bool = False) -> QuicConfiguration:
    """Our QUIC settings; ``naive=True`` keeps aioquic's defaults (1200-byte datagrams,
    1 MiB windows): the baseline benchmarks/webtransport_run.py compares against."""
    if naive:
        cfg = QuicConfiguration(is_client=is_client, alpn_protocols=list(H3_ALPN),
                                max_datagram_frame_size=65536, idle_timeout=idle_timeout)
        if is_client:
            cfg.verify_mode = ssl.CERT_NONE
        return cfg
    cfg = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=list(H3_ALPN),
        max_datagram_frame_size=65536,
        idle_timeout=idle_timeout,
        max_datagram_size=max_datagram_size,
    )
    cfg.max_data = DEFAULT_MAX_DATA
    cfg.max_stream_data = DEFAULT_MAX_STREAM_DATA
    if is_client:
        cfg.verify_mode = ssl.CERT_NONE  # checked against the certhashes instead
    return cfg


class RemoteStreamIds:
    """Remote-opened bidirectional stream ids a session already announced: every id below
    the floor, plus the ones above it that arrived out of order. Shared with the relay's
    aiopquic backend (relay-server/pywasm_relay/webtransport_pquic.py)."""

    __slots__ = ("parity", "_floor", "_seen")

    def __init__(self, parity: int) -> None:
        self.parity = parity  # 0: client-opened ids (we are the server), 1: server-opened
        self._floor = parity
        self._seen: set[int] = set()

    def claim(self, stream_id: int) -> bool:
        """True once per stream id the remote opened; False for ids seen before and for
        ids of our own streams (both are streams the session already forgot)."""
        if stream_id & 0x1 != self.parity or stream_id < self._floor or stream_id in self._seen:
            return False
        self._seen.add(stream_id)
        if len(self._seen) > _MAX_STREAM_ID_GAPS:
            # a peer that skips ids for good: count its oldest gap as seen
            self._floor = min(self._seen)
        while self._floor in self._seen:
            self._seen.discard(self._floor)
            self._floor += 4
        return True


class WebTransportStream:
    """One native bidirectional WebTransport stream (the Stream contract)."""

    def __init__(self, session: "WebTransportSession", stream_id: int) -> None:
        self.session = session
        self.stream_id = stream_id
        self.protocol: str | None = None
        self._buf = ByteQueue()
        self._readable = asyncio.Event()
        self._eof = False
        self._reset_in = False  # the remote reset its send side (or the session ended)
        self._reset_out = False
        self._write_closed = False
        self._closed = False
        self._why = ""
        self._write_lock = asyncio.Lock()
        self._credit = 0  # bytes read since we last let the transmit path raise the window

    # --- fed by the session ---------------------------------------------------------
    def _feed(self, data: bytes, ended: bool) -> None:
        if self._reset_in:
            return
        if self._closed:
            # closed locally: discard until the remote finishes its side
            if ended:
                self._eof = True
                self.session._forget(self.stream_id)
            return
        if data:
            self._buf.append(data)
            if len(self._buf) > self.session.max_stream_buffer:
                self._buf.clear()
                self._why = f"more than {self.session.max_stream_buffer} unread bytes"
                self._abort(local=True)
                return
        if ended:
            self._eof = True
        self._readable.set()

    def _abort(self, why: str = "", local: bool = False) -> None:
        """Both directions end now: the remote reset, the session ended, or a limit hit."""
        if why and not self._why:
            self._why = why
        self._reset_in = True
        self._readable.set()
        if local and not self._reset_out:
            self._reset_out = True
            self._write_closed = True
            self.session._reset_stream(self.stream_id)
        if local:
            # and tell the remote to stop sending (its writes then fail, see _on_stop_sending)
            self.session._stop_reading(self.stream_id)

    # --- Stream contract -------------------------------------------------------------
    async def read(self, max_bytes: int = -1) -> bytes:
        if max_bytes == 0:
            return b""
        if self._closed and not self._reset_in:
            raise StreamClosedError(f"WebTransport stream {self.stream_id} is closed")
        while True:
            if self._buf:
                data = self._buf.take(max_bytes)
                self._credit += len(data)
                if self._credit >= DEFAULT_STREAM_WINDOW // 4:
                    # enough was read to be worth a MAX_STREAM_DATA (see _install_flow_control)
                    self._credit = 0
                    self.session._credit_due()
                return data
            if self._reset_in:
                raise StreamResetError(f"WebTransport stream {self.stream_id} was reset"
                                       + (f": {self._why}" if self._why else ""))
            if self._eof:
                return b""
            self._readable.clear()
            await self._readable.wait()

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        if not data:
            return
        view = memoryview(data).cast("B")
        session = self.session
        async with self._write_lock:
            for off in range(0, len(view), WRITE_PIECE):
                while session._unacked(self.stream_id) > session.send_high_water:
                    await session._wait_progress()
                    self._check_writable()
                self._check_writable()
                session._send(self.stream_id, bytes(view[off : off + WRITE_PIECE]), False)

    async def close_write(self) -> None:
        if self._reset_out:
            raise StreamResetError(f"WebTransport stream {self.stream_id} was reset")
        if self._write_closed:
            return
        async with self._write_lock:
            if self._write_closed:
                return
            self._write_closed = True
            if not self.session.is_closed:
                self.session._send(self.stream_id, b"", True)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._write_closed and not self._reset_out:
            try:
                await self.close_write()
            except PywasmError:
                pass
        self._buf.clear()
        if self._eof or self._reset_in:
            self.session._forget(self.stream_id)
        # else: stay registered and drop what still arrives until the remote's FIN. No
        # STOP_SENDING here: browsers fail the remote's pending writes with it, and
        # js-libp2p then tears down the whole session (e.g. after the Noise stream)

    async def reset(self) -> None:
        if self._reset_out and self._reset_in:
            return
        self._abort("reset locally", local=True)
        self._buf.clear()
        self.session._forget(self.stream_id)

    def _check_writable(self) -> None:
        if self._reset_out or (self._reset_in and self.session.is_closed):
            raise StreamResetError(f"WebTransport stream {self.stream_id} was reset"
                                   + (f": {self._why}" if self._why else ""))
        if self._write_closed or self._closed:
            raise StreamClosedError(f"write side of WebTransport stream {self.stream_id} is closed")

    def _on_stop_sending(self) -> None:
        # the remote will not read more: our send side is over
        if not self._reset_out:
            self._reset_out = True
            self._write_closed = True
            self.session._reset_stream(self.stream_id)

    @property
    def is_closed(self) -> bool:
        return self._closed or (self._reset_in and self._reset_out)

    def __repr__(self) -> str:
        return f"<WebTransportStream {self.stream_id} of session {self.session.session_id}>"


class WebTransportSessionBase:
    """What a WebTransport session is whatever QUIC stack carries it: a
    :class:`~pywasm.interfaces.MuxedConnection` keeping the stream table, the queue of
    streams waiting for ``accept_stream``, remote stream-id bookkeeping and the end.

    A backend subclass supplies the transport: ``open_stream``, ``close`` and the hooks its
    streams call (``_send``, ``_credit_due``, ``_reset_stream``, ``_stop_reading``), plus
    ``_refuse``. :class:`WebTransportSession` is the aioquic one; the relay's aiopquic
    backend (relay-server/pywasm_relay/webtransport_pquic.py) has the other. Nothing here
    touches aioquic.
    """

    #: The stream class this session makes for streams the remote opens.
    stream_class: type[WebTransportStream] = WebTransportStream

    def __init__(
        self,
        session_id: int,
        remote_parity: int,
        *,
        max_stream_buffer: int = DEFAULT_MAX_STREAM_BUFFER,
        send_high_water: int = DEFAULT_SEND_HIGH_WATER,
        max_pending_streams: int = DEFAULT_MAX_PENDING_STREAMS,
    ) -> None:
        self.session_id = session_id
        self.max_stream_buffer = max_stream_buffer
        self.send_high_water = send_high_water
        self.max_pending_streams = max_pending_streams
        self.streams: dict[int, Any] = {}
        # remote_parity 0: the remote is the client (opens ids 0 mod 4), 1: it is the server
        self._remote_ids = RemoteStreamIds(remote_parity)
        if session_id & 0x1 == remote_parity:
            self._remote_ids.claim(session_id)  # the CONNECT stream is no WebTransport stream
        self._pending: asyncio.Queue[Any] = asyncio.Queue()
        self._closed = False
        self.close_reason = ""
        self.on_close: list[Callable[[], None]] = []

    def _closed_error(self) -> ConnectionClosedError:
        return ConnectionClosedError(f"WebTransport session is closed: {self.close_reason or 'closed'}")

    # --- MuxedConnection ---------------------------------------------------------------
    async def accept_stream(self) -> Any:
        if self._closed and self._pending.empty():
            raise self._closed_error()
        stream = await self._pending.get()
        if stream is None:
            self._pending.put_nowait(None)  # wake other acceptors too
            raise self._closed_error()
        return stream

    @property
    def is_closed(self) -> bool:
        return self._closed

    # --- called by the backend ----------------------------------------------------------
    def _incoming(self, stream_id: int, data: bytes, ended: bool) -> Any:
        """Bytes (or just the news of a new stream) for ``stream_id``; returns the stream
        they went to, None when the stream was refused or is one this session forgot."""
        stream = self.streams.get(stream_id)
        if stream is None:
            if self._closed or stream_id & 0x2:
                # after the end, or a unidirectional stream (libp2p uses none): refuse it
                self._refuse(stream_id)
                return None
            if not self._remote_ids.claim(stream_id):
                # a stream this session had and forgot (closed or reset here): what still
                # arrives for it (the remote's FIN, data sent before our reset reached it)
                # is nobody's, and must not come back through accept_stream as a new stream
                return None
            if self._pending.qsize() >= self.max_pending_streams:
                log.debug("resetting stream %d: %d streams wait to be accepted", stream_id, self._pending.qsize())
                self._refuse(stream_id)
                return None
            stream = self.stream_class(self, stream_id)  # type: ignore[arg-type]
            self.streams[stream_id] = stream
            self._pending.put_nowait(stream)
        stream._feed(data, ended)
        return stream

    def _ended(self, why: str) -> None:
        if self._closed:
            return
        self._closed = True
        self.close_reason = why
        for s in list(self.streams.values()):
            s._abort(f"session ended: {why}")
        self._pending.put_nowait(None)
        for cb in self.on_close:
            try:
                cb()
            except Exception:  # noqa: BLE001 - a callback must not break the others
                log.exception("session close callback failed")

    def _forget(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)

    # --- the backend's transport hooks --------------------------------------------------
    def _refuse(self, stream_id: int) -> None:
        """Stop (and for a bidirectional stream, reset) a stream we will not take."""
        raise NotImplementedError

    def _send(self, stream_id: int, data: bytes, end: bool) -> None:
        raise NotImplementedError

    def _credit_due(self) -> None:
        raise NotImplementedError

    def _reset_stream(self, stream_id: int) -> None:
        raise NotImplementedError

    def _stop_reading(self, stream_id: int) -> None:
        raise NotImplementedError


class WebTransportSession(WebTransportSessionBase):
    """A WebTransport session on aioquic (one per QUIC connection)."""

    streams: dict[int, WebTransportStream]

    def __init__(
        self,
        proto: "WebTransportProtocol",
        session_id: int,
        *,
        max_stream_buffer: int = DEFAULT_MAX_STREAM_BUFFER,
        send_high_water: int = DEFAULT_SEND_HIGH_WATER,
        max_pending_streams: int = DEFAULT_MAX_PENDING_STREAMS,
    ) -> None:
        super().__init__(session_id, 1 if proto._quic.configuration.is_client else 0,
                         max_stream_buffer=max_stream_buffer, send_high_water=send_high_water,
                         max_pending_streams=max_pending_streams)
        self.proto = proto

    # --- MuxedConnection ---------------------------------------------------------------
    async def open_stream(self) -> WebTransportStream:
        if self._closed:
            raise self._closed_error()
        h3 = self.proto.h3
        sid = h3.create_webtransport_stream(self.session_id)
        # aioquic marks only streams the *remote* opened as WebTransport streams: without
        # this, the remote's bytes on our stream would be parsed as HTTP/3 frames
        with h3._get_or_create_stream(sid) as h3s:
            h3s.frame_type = FrameType.WEBTRANSPORT_STREAM
            h3s.session_id = self.session_id
        stream = WebTransportStream(self, sid)
        self.streams[sid] = stream
        self.proto.schedule_transmit()
        return stream

    async def close(self) -> None:
        if self._closed:
            return
        self._ended("closed locally")
        # one session per QUIC connection: closing the session closes the connection
        self.proto.close_connection(H3_NO_ERROR, "session closed")
        await self.proto.wait_gone(2.0)

    # --- transport hooks ----------------------------------------------------------------
    def _refuse(self, stream_id: int) -> None:
        self.proto.refuse_stream(stream_id)

    def _credit_due(self) -> None:
        # a stream's reader consumed enough for a MAX_STREAM_DATA: let the transmit path send it
        self.proto.schedule_transmit()

    def _send(self, stream_id: int, data: bytes, end: bool) -> None:
        if self._closed:
            raise StreamResetError(f"WebTransport session is closed: {self.close_reason}")
        try:
            self.proto._quic.send_stream_data(stream_id, data, end)
        except (ValueError, AssertionError) as exc:  # aioquic: stream already finished/reset
            raise StreamClosedError(f"WebTransport stream {stream_id}: {exc}") from None
        self.proto.schedule_transmit()

    def _unacked(self, stream_id: int) -> int:
        qs = self.proto._quic._streams.get(stream_id)
        return len(qs.sender._buffer) if qs is not None else 0

    async def _wait_progress(self) -> None:
        if self._closed:
            return
        await self.proto.progress()

    def _reset_stream(self, stream_id: int) -> None:
        if self._closed:
            return
        try:
            self.proto._quic.reset_stream(stream_id, wt_error_code(0))
        except (ValueError, AssertionError):
            pass
        self.proto.schedule_transmit()

    def _stop_reading(self, stream_id: int) -> None:
        if self._closed:
            return
        try:
            self.proto._quic.stop_stream(stream_id, wt_error_code(0))
        except (ValueError, AssertionError):
            pass
        self.proto.schedule_transmit()


def _install_flow_control(proto: "WebTransportProtocol", window: int = DEFAULT_STREAM_WINDOW) -> None:
    """Consumption-based stream credit for the session's streams (see the module doc).

    Replaces ``QuicConnection._write_stream_limits`` on this connection only; other
    streams (HTTP/3 control, QPACK, the CONNECT stream) keep aioquic's rule.
    """
    quic = proto._quic
    default = quic._write_stream_limits

    # aioquic calls this for every stream in every packet it builds: keep the common
    # "nothing to do" cases cheap (positional calls, no work for our own send-only streams)
    def write_stream_limits(builder: Any, space: Any, stream: Any) -> None:
        if not stream.max_stream_data_local:
            return  # a stream we cannot receive on (ours, unidirectional): aioquic skips it too
        session = proto.session
        ws = session.streams.get(stream.stream_id) if session is not None else None
        if ws is None:
            default(builder, space, stream)
            return
        # delivered by aioquic minus still unread by the application = consumed
        target = stream.receiver.starting_offset() - len(ws._buf) + window
        if target - stream.max_stream_data_local >= window // 4:
            stream.max_stream_data_local = target
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            buf = builder.start_frame(
                QuicFrameType.MAX_STREAM_DATA,
                capacity=MAX_STREAM_DATA_FRAME_CAPACITY,
                handler=quic._on_max_stream_data_delivery,
                handler_args=(stream,),
            )
            buf.push_uint_var(stream.stream_id)
            buf.push_uint_var(stream.max_stream_data_local)
            stream.max_stream_data_local_sent = stream.max_stream_data_local

    quic._write_stream_limits = write_stream_limits  # type: ignore[method-assign]


# SETTINGS_H3_DATAGRAM as numbered in draft-ietf-masque-h3-datagram-04 (0x33 since RFC 9297)
_H3_DATAGRAM_DRAFT04 = 0xFFD277


class _H3Connection(H3Connection):
    """aioquic's HTTP/3 that also accepts the pre-RFC H3_DATAGRAM setting.

    webtransport-go as shipped in go-libp2p 0.29 (kubo 0.22) announces H3_DATAGRAM under
    its draft-04 number only; aioquic would close the connection ("ENABLE_WEBTRANSPORT
    requires H3_DATAGRAM"). Both numbers mean the same capability.
    """

    def _validate_settings(self, settings: dict[int, int]) -> None:
        if 0x33 not in settings and settings.get(_H3_DATAGRAM_DRAFT04) == 1:
            settings[0x33] = 1
        super()._validate_settings(settings)


class WebTransportProtocol(QuicConnectionProtocol):
    """aioquic protocol + HTTP/3 with WebTransport; one session per connection.

    Server side: ``on_request(proto, stream_id, headers)`` decides about each extended
    CONNECT (see the relay). Client side: :meth:`request_session`.
    """

    def __init__(self, *args: Any, on_request: Callable[["WebTransportProtocol", int, list[tuple[bytes, bytes]]], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = _H3Connection(self._quic, enable_webtransport=True)
        _install_flow_control(self)
        self.on_request = on_request
        self.session: WebTransportSession | None = None
        self._response: asyncio.Future[int] | None = None
        self._progress_fut: asyncio.Future[None] | None = None
        self._transmit_handle: asyncio.Handle | None = None
        self.terminated = ""
        self.on_terminated: list[Callable[[], None]] = []
        # False: aioquic's own transmit, one sendto per datagram (the naive baseline)
        self.gso = True

    def start_keepalive(self, interval: float = DEFAULT_KEEPALIVE) -> None:
        """Send a QUIC PING every ``interval`` seconds until the connection ends."""

        def tick() -> None:
            if self.terminated:
                return
            self._quic.send_ping(0)
            self.transmit()
            self._keepalive = self._loop.call_later(interval, tick)

        self._keepalive = self._loop.call_later(interval, tick)
        self.on_terminated.append(lambda: self._keepalive.cancel())

    # --- send side ----------------------------------------------------------------
    def schedule_transmit(self) -> None:
        """Coalesce transmits: many writes in one loop turn leave as one burst."""
        if self._transmit_handle is None:
            self._transmit_handle = self._loop.call_soon(self._do_transmit)

    def _do_transmit(self) -> None:
        self._transmit_handle = None
        self.transmit()

    def progress(self) -> "asyncio.Future[None]":
        """A future resolved at the next received datagram (acks free send buffer)."""
        if self._progress_fut is None or self._progress_fut.done():
            self._progress_fut = self._loop.create_future()
        return self._progress_fut

    def _wake(self) -> None:
        fut = self._progress_fut
        if fut is not None and not fut.done():
            fut.set_result(None)

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        transport = self._transport
        if getattr(transport, "batching", False):
            # the batched transport calls transmit() once after its whole batch
            self._quic.receive_datagram(data, addr, now=self._loop.time())  # type: ignore[arg-type]
            self._process_events()
            transport.dirty.add(self)  # type: ignore[union-attr]
        else:
            super().datagram_received(data, addr)
        self._wake()

    def transmit(self) -> None:
        """aioquic's transmit, sending runs of equal-sized datagrams with UDP GSO.

        Profiling the relay showed a third of its CPU in one ``sendto`` per ~1.4 kB
        datagram; with GSO one ``sendmsg`` carries up to :data:`GSO_MAX_SEGMENTS` of them
        and the kernel cuts them. Falls back to plain ``sendto`` where GSO is missing.
        """
        if not self.gso:
            super().transmit()
            return
        self._transmit_task = None
        datagrams = self._quic.datagrams_to_send(now=self._loop.time())
        if datagrams:
            send_datagrams(self._transport, datagrams)
        timer_at = self._quic.get_timer()
        if self._timer is not None and self._timer_at != timer_at:
            self._timer.cancel()
            self._timer = None
        if self._timer is None and timer_at is not None:
            self._timer = self._loop.call_at(timer_at, self._handle_timer)
        self._timer_at = timer_at

    def close_connection(self, code: int = H3_NO_ERROR, reason: str = "") -> None:
        if not self.terminated:
            self._quic.close(error_code=code, reason_phrase=reason)
            self.transmit()

    async def wait_gone(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.wait_closed(), timeout)
        except asyncio.TimeoutError:
            pass

    def refuse_stream(self, stream_id: int) -> None:
        try:
            self._quic.stop_stream(stream_id, wt_error_code(0))
        except (ValueError, AssertionError):
            pass
        if not (stream_id & 0x2):
            try:
                self._quic.reset_stream(stream_id, wt_error_code(0))
            except (ValueError, AssertionError):
                pass
        self.schedule_transmit()

    # --- client side --------------------------------------------------------------
    async def request_session(self, authority: str, path: str = SESSION_PATH) -> WebTransportSession:
        """Extended CONNECT; returns the session once the server answered 2xx."""
        stream_id = self._quic.get_next_available_stream_id()
        self._response = self._loop.create_future()
        self.session = WebTransportSession(self, stream_id)
        self.h3.send_headers(stream_id, [
            (b":method", b"CONNECT"),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
            (b":protocol", b"webtransport"),
            (b"sec-webtransport-http3-draft02", b"1"),
        ])
        self.transmit()
        status = await self._response
        if not 200 <= status < 300:
            raise WebTransportError(f"the server answered the WebTransport CONNECT with status {status}")
        return self.session

    # --- events -------------------------------------------------------------------------
    def quic_event_received(self, event: Any) -> None:
        if type(event) is StreamDataReceived and not event.end_stream and self.session is not None:
            # Fast path for the bulk of the traffic: more bytes on a WebTransport stream we
            # already know. The HTTP/3 layer would only hand them through (its WebTransport
            # shortcut), at the price of a context manager and an event object per packet.
            stream = self.session.streams.get(event.stream_id)
            if stream is not None:
                h3s = self.h3._stream.get(event.stream_id)
                if (h3s is not None and h3s.session_id == self.session.session_id and not h3s.buffer
                        and h3s.frame_type == FrameType.WEBTRANSPORT_STREAM and not h3s.blocked):
                    stream._feed(event.data, False)
                    return
        if isinstance(event, StreamReset):
            self._stream_event(event.stream_id, lambda s: s._abort(f"reset by the remote (code {event.error_code})"))
        elif isinstance(event, StopSendingReceived):
            self._stream_event(event.stream_id, lambda s: s._on_stop_sending())
        elif isinstance(event, ConnectionTerminated):
            why = event.reason_phrase or f"code {event.error_code}"
            self._terminate(f"connection closed: {why}")
        elif isinstance(event, HandshakeCompleted):
            pass
        for h3_event in self.h3.handle_event(event):
            self._h3_event(h3_event)
        if isinstance(event, StreamDataReceived) and self.session is not None:
            self._maybe_announce(event.stream_id)
        if isinstance(event, ConnectionTerminated):
            super().quic_event_received(event)

    def _maybe_announce(self, stream_id: int) -> None:
        # The remote opened a WebTransport stream but sent only its header: aioquic emits
        # no event for that, yet accept_stream should see the stream at once (as a muxer's
        # SYN would), so look at the HTTP/3 stream state ourselves.
        session = self.session
        if session is None or stream_id in session.streams or stream_id == session.session_id:
            return
        h3s = self.h3._stream.get(stream_id)
        if h3s is not None and h3s.session_id == session.session_id and h3s.frame_type == FrameType.WEBTRANSPORT_STREAM:
            session._incoming(stream_id, b"", False)

    def _stream_event(self, stream_id: int, fn: Callable[[WebTransportStream], None]) -> None:
        s = self.session.streams.get(stream_id) if self.session is not None else None
        if s is not None:
            fn(s)
        elif self.session is not None and stream_id == self.session.session_id:
            self.session._ended("session stream reset")

    def _h3_event(self, ev: Any) -> None:
        if isinstance(ev, WebTransportStreamDataReceived):
            s = self.session
            if s is None or ev.session_id != s.session_id:
                self.refuse_stream(ev.stream_id)
                return
            s._incoming(ev.stream_id, ev.data, ev.stream_ended)
        elif isinstance(ev, HeadersReceived):
            if self._quic.configuration.is_client:
                if self._response is not None and not self._response.done():
                    status = dict(ev.headers).get(b":status", b"0")
                    try:
                        self._response.set_result(int(status))
                    except ValueError:
                        self._response.set_result(0)
            elif self.on_request is not None:
                self.on_request(self, ev.stream_id, ev.headers)
        elif isinstance(ev, DataReceived):
            # capsules on the session stream; its end (or a CLOSE capsule + FIN) ends the session
            if self.session is not None and ev.stream_id == self.session.session_id and ev.stream_ended:
                self.session._ended("closed by the remote")
                self.close_connection(H3_NO_ERROR, "session closed")

    def _terminate(self, why: str) -> None:
        if self.terminated:
            return
        self.terminated = why
        if self._response is not None and not self._response.done():
            self._response.set_exception(WebTransportError(why))
        if self.session is not None:
            self.session._ended(why)
        self._wake()
        for cb in self.on_terminated:
            try:
                cb()
            except Exception:  # noqa: BLE001
                log.exception("termination callback failed")

    def connection_lost(self, exc: Exception | None) -> None:
        self._terminate("socket closed")
        super().connection_lost(exc)


def peer_certificate_der(proto: WebTransportProtocol) -> bytes | None:
    """The DER of the certificate the server presented (after the QUIC handshake)."""
    cert = getattr(proto._quic.tls, "_peer_certificate", None)
    if cert is None:
        return None
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)


async def _resolve(wa: WebTransportAddr) -> tuple[str, int]:
    if not wa.is_dns:
        return wa.host, wa.port
    family = {"ip4": socket.AF_INET, "ip6": socket.AF_INET6}.get(wa.family, socket.AF_UNSPEC)
    infos = await asyncio.get_running_loop().getaddrinfo(wa.host, wa.port, family=family, type=socket.SOCK_DGRAM)
    if not infos:
        raise DialError(f"cannot resolve {wa.host}")
    return str(infos[0][4][0]), wa.port


class NativeWebTransportTransport:
    """Dial-only WebTransport for native pywasm (tests, benchmarks, dialing kubo/relays)."""

    def __init__(self, dial_timeout: float = DEFAULT_DIAL_TIMEOUT,
                 max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE) -> None:
        self.dial_timeout = dial_timeout
        self.max_datagram_size = max_datagram_size
        self.ctx: Any = None

    def bind(self, ctx: Any) -> None:
        self.ctx = ctx

    def can_dial(self, addr: "Multiaddr") -> bool:
        wa = parse_webtransport(addr)
        return wa is not None and bool(wa.certhashes)

    def can_listen(self, addr: "Multiaddr") -> bool:
        return False  # the listener lives in pywasm-relay

    async def listen(self, addr: "Multiaddr", handler: "ConnectionHandler") -> "Listener":
        raise TransportError(f"this transport only dials WebTransport; pywasm-relay listens: {addr}")

    async def dial(self, addr: "Multiaddr") -> WebTransportConnection:
        if self.ctx is None:
            raise TransportError("WebTransport transport is not bound to a host")
        wa = parse_webtransport(addr)
        if wa is None:
            raise DialError(f"not a WebTransport address: {addr}")
        validate_certhashes(wa.certhashes)
        try:
            return await asyncio.wait_for(self._dial(wa, addr), self.dial_timeout)
        except asyncio.TimeoutError:
            raise DialError(f"WebTransport dial to {wa.authority} timed out after {self.dial_timeout:g} s") from None

    async def _dial(self, wa: WebTransportAddr, addr: "Multiaddr") -> WebTransportConnection:
        host, port = await _resolve(wa)
        loop = asyncio.get_running_loop()
        cfg = quic_configuration(is_client=True, max_datagram_size=self.max_datagram_size)
        cfg.server_name = wa.host
        v6 = ipaddress.ip_address(host).version == 6
        quic = QuicConnection(configuration=cfg)
        proto = WebTransportProtocol(quic)
        transport = BatchedUDPTransport(loop, udp_socket("::" if v6 else "0.0.0.0", 0), proto)
        proto.connection_made(transport)
        ok = False
        try:
            proto.connect((host, port))
            try:
                await proto.wait_connected()
            except ConnectionError as exc:
                raise WebTransportError(f"QUIC handshake with {wa.authority} failed: {exc}") from None
            der = peer_certificate_der(proto)
            digests = set(wa.sha256_digests())
            if der is None or hashlib.sha256(der).digest() not in digests:
                raise WebTransportError(
                    f"the certificate of {wa.authority} matches none of the address's {len(digests)} certhash(es)"
                )
            session = await proto.request_session(wa.authority)
            local = transport.get_extra_info("sockname")
            local_ma = None
            if local:
                from ..multiformats.multiaddr import Multiaddr

                fam = "ip6" if v6 else "ip4"
                local_ma = Multiaddr(f"/{fam}/{local[0]}/udp/{local[1]}/quic-v1/webtransport")
            conn = await secure_dialed_session(session, self.ctx.private_key, wa, addr, local_ma)
            proto.start_keepalive()
            ok = True
            return conn
        finally:
            if not ok:
                proto.close_connection(H3_REQUEST_REJECTED, "dial failed")
                await proto.wait_gone(0.5)
                transport.close()
            else:
                assert proto.session is not None
                proto.on_terminated.append(transport.close)


__all__ = [
    "DEFAULT_MAX_STREAM_BUFFER",
    "DEFAULT_SEND_HIGH_WATER",
    "NativeWebTransportTransport",
    "RemoteStreamIds",
    "WebTransportConnection",
    "WebTransportProtocol",
    "WebTransportSession",
    "WebTransportSessionBase",
    "WebTransportStream",
    "quic_configuration",
    "wt_error_code",
]
