"""The relay's WebTransport listener on aiopquic (picoquic): ``--webtransport-backend aiopquic``.

Same role and wire behaviour as :mod:`pywasm_relay.webtransport` (aioquic): certificates
from :class:`~pywasm_relay.certs.CertStore`, ``/certhash/`` in the advertised address, Noise
XX as responder on a session's first bidirectional stream with every kept certhash in the
``webtransport_certhashes`` extension, then native WebTransport streams (multistream-select
per stream) handed to the host. picoquic does QUIC, HTTP/3 and the extended CONNECT in C
on a thread of its own, which is why this backend moves several times the bytes per CPU
second of aioquic (numbers: docs/webtransport.md). What does not depend on the QUIC stack
is shared with the aioquic backend: a session's stream bookkeeping
(:class:`~pywasm.transports.webtransport_native.WebTransportSessionBase`) and a listener's
per-session bounds, Noise and hand-over (:class:`~pywasm_relay.webtransport.WebTransportListenerBase`).

Needs CPython >= 3.12 (aiopquic's wheels) and ``aiopquic==0.6.1`` (scripts/setup_pquic.sh
builds ``.cache/venv-relay-pquic``); only the relay imports this module, lazily.

What aiopquic decides for us (docs/webtransport.md has the operator's view):

* it binds the UDP port on **every** address (IPv4 and IPv6 wildcards); the host of the
  listen address is only what we advertise. Firewall the port or run the relay in a
  network namespace when that matters (the tests do).
* it answers the CONNECT itself: a CONNECT to ``/.well-known/libp2p-webtransport`` gets
  200 whatever its query (``?type=noise``, another type, none: tested), any other path
  404; we never see the query or the ``Origin``. A session that then does not speak Noise
  fails its handshake (at once on garbage, else at ``handshake_timeout``).
* it reads the certificate and key files once, at start: a rotation restarts the listener
  on the same port (live sessions drop; browsers redial with the new address).
* connections that never send a CONNECT are invisible to us: they are bounded by
  ``max_connections`` (picoquic refuses more) and the QUIC idle timeout, not by
  ``connect_timeout``.
* stream credit: picoquic grants the peer more stream data as our event loop *drains*
  received bytes, not as the application reads them, so a stream's unread bytes are
  bounded by ``max_stream_buffer`` (16 MiB; past it the stream is reset, as in the aioquic
  backend's safety net) and a session's by ``max_session_buffer`` (32 MiB), rather than by
  the window: a 48 MiB echo from Chromium, whose upload outpaces the echo back, is reset
  here where the aioquic backend slows the upload down. Sends are bounded: ``write`` waits while
  more than ``send_high_water`` bytes sit in the stream's send ring.

aiopquic internals relied on (pinned 0.6.1): the dispatcher's per-session ``_on_event``
hook with the ``_EVT_WT_*`` codes, ``_stream_tx_ctxs`` / ``_drop_stream_tx`` and
``_on_session_closed`` of ``WebTransportSession`` (we route stream events straight into
our streams instead of aiopquic's unbounded per-stream queues).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any, Callable

from aiopquic.asyncio import webtransport as _pwt
from aiopquic.asyncio.webtransport import WebTransportServerSession, serve_webtransport
from aiopquic.quic.configuration import QuicConfiguration

from pywasm.errors import (
    ConnectionClosedError,
    StreamClosedError,
    StreamResetError,
    TransportError,
)
from pywasm.transports.webtransport_addr import WELL_KNOWN_PATH
from pywasm.transports.webtransport_native import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_KEEPALIVE,
    DEFAULT_MAX_PENDING_STREAMS,
    DEFAULT_MAX_STREAM_BUFFER,
    DEFAULT_SEND_HIGH_WATER,
    DEFAULT_STREAM_WINDOW,
    WRITE_PIECE,
    WebTransportSessionBase,
    WebTransportStream,
)

from .webtransport import (
    H3_EXCESSIVE_LOAD,
    ROTATION_CHECK_INTERVAL,
    WebTransportListenerBase,
    WebTransportListenTransport,
)

log = logging.getLogger("pywasm_relay.webtransport_pquic")

#: PEM files aiopquic reads at start (rewritten atomically, mode 0600, on each rotation).
CERT_PEM_NAME = "webtransport-pquic-cert.pem"
KEY_PEM_NAME = "webtransport-pquic-key.pem"
#: Concurrent bidirectional streams a browser may open per session (flow-control credit).
MAX_STREAMS_BIDI = 256
#: Unread bytes all streams of one session may hold (aiopquic's credit does not wait for
#: our reads, see the module doc): past it, the stream that just grew is reset.
DEFAULT_MAX_SESSION_BUFFER = 32 * 1024 * 1024
#: A stream's unread bytes above which a delivery checks the session's total (cheap below).
_SESSION_CHECK_AT = 256 * 1024
#: Congestion control picoquic runs (aiopquic's default; its notes: bbr v3 stalls on
#: loopback-scale RTTs). Benchmarks only: PYWASM_RELAY_PQUIC_CC overrides it (A/B runs).
DEFAULT_CONGESTION_CONTROL = "bbr1"
CC_ENV = "PYWASM_RELAY_PQUIC_CC"
#: Bound on waiting for the listener's UDP port to be free again after a restart.
RESTART_PORT_WAIT = 5.0
#: Pause before trying again when a restart could not listen.
RESTART_RETRY = 5.0


class PquicWebTransportStream(WebTransportStream):
    """A WebTransport stream whose bytes leave through aiopquic's per-stream send ring."""

    session: "PquicSession"

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        if not data:
            return
        view = memoryview(data).cast("B")
        async with self._write_lock:
            for off in range(0, len(view), WRITE_PIECE):
                await self.session._send_piece(self, bytes(view[off : off + WRITE_PIECE]))


class PquicSession(WebTransportSessionBase):
    """An aiopquic server session as a :class:`~pywasm.interfaces.MuxedConnection`."""

    stream_class = PquicWebTransportStream
    streams: dict[int, PquicWebTransportStream]

    def __init__(
        self,
        wt: "_RoutedServerSession",
        *,
        max_stream_buffer: int = DEFAULT_MAX_STREAM_BUFFER,
        send_high_water: int = DEFAULT_SEND_HIGH_WATER,
        max_pending_streams: int = DEFAULT_MAX_PENDING_STREAMS,
        max_session_buffer: int = DEFAULT_MAX_SESSION_BUFFER,
    ) -> None:
        # we are the server: the browser opens ids 0 mod 4
        super().__init__(wt.control_stream_id, 0, max_stream_buffer=max_stream_buffer,
                         send_high_water=send_high_water, max_pending_streams=max_pending_streams)
        self.wt = wt
        self.max_session_buffer = max_session_buffer
        self._retries: set[asyncio.Task[None]] = set()
        wt.owner = self

    # --- MuxedConnection ---------------------------------------------------------------
    async def open_stream(self) -> PquicWebTransportStream:
        if self._closed:
            raise self._closed_error()
        try:
            sid = await self.wt.create_stream(bidir=True, timeout=DEFAULT_IDLE_TIMEOUT)
        except (ConnectionError, asyncio.TimeoutError) as exc:
            raise ConnectionClosedError(f"cannot open a WebTransport stream: {exc}") from None
        stream = PquicWebTransportStream(self, sid)  # type: ignore[arg-type]
        self.streams[sid] = stream
        return stream

    async def close(self) -> None:
        self.close_now(0, "closed locally")

    def close_now(self, code: int, why: str) -> None:
        wt = self.wt
        if not wt.session_closed:
            wt.close(code, why.encode()[:100])
            # a close we send gets no SESSION_CLOSED back: leave the dispatcher's table now
            if wt._loop is not None:
                _pwt._get_dispatcher_registry().release(wt._loop, wt._transport, wt)
        self._ended(why)

    # --- from the aiopquic session (event loop thread) --------------------------------
    def _incoming(self, stream_id: int, data: bytes, ended: bool) -> PquicWebTransportStream | None:
        stream: PquicWebTransportStream | None = super()._incoming(stream_id, data, ended)
        if stream is not None and len(stream._buf) > _SESSION_CHECK_AT and not stream._reset_in:
            total = sum(len(s._buf) for s in self.streams.values())
            if total > self.max_session_buffer:
                stream._buf.clear()
                stream._why = f"the session holds more than {self.max_session_buffer} unread bytes"
                stream._abort(local=True)
        return stream

    def _on_reset(self, stream_id: int, code: int) -> None:
        s = self.streams.get(stream_id)
        if s is not None:
            s._abort(f"reset by the remote (code {code})")

    def _on_stop_sending(self, stream_id: int) -> None:
        s = self.streams.get(stream_id)
        if s is not None:
            s._on_stop_sending()

    # --- what WebTransportStream asks of its session -----------------------------------
    def _credit_due(self) -> None:
        pass  # aiopquic grants credit as its loop drains (module doc)

    async def _send_piece(self, stream: PquicWebTransportStream, piece: bytes) -> None:
        wt, sid = self.wt, stream.stream_id
        while True:
            stream._check_writable()
            if self._closed:
                raise StreamResetError(f"WebTransport session is closed: {self.close_reason}")
            drained = wt.get_tx_data_drain_event(sid)
            if wt.tx_data_ring_used(sid) > self.send_high_water:
                # clear, arm, re-check, wait: no wakeup is lost between the check and the wait
                drained.clear()
                wt.set_tx_data_drain_pending(sid)
                if wt.tx_data_ring_used(sid) > self.send_high_water:
                    await drained.wait()
                else:
                    wt.clear_tx_data_drain_pending(sid)
                continue
            ring = wt._transport.tx_event_ring_drain_event
            drained.clear()
            ring.clear()
            try:
                wt.send_stream_data(sid, piece, end_stream=False)
                return
            except BufferError:
                await _first_of(drained, ring)
            except ValueError as exc:
                raise StreamClosedError(f"WebTransport stream {sid}: {exc}") from None
            except ConnectionError as exc:
                raise StreamResetError(f"WebTransport stream {sid}: {exc}") from None

    def _send(self, stream_id: int, data: bytes, end: bool) -> None:
        # only the FIN of close_write comes this way (data goes through _send_piece)
        if self._closed:
            raise StreamResetError(f"WebTransport session is closed: {self.close_reason}")
        try:
            self.wt.send_stream_data(stream_id, data, end_stream=end)
        except BufferError:
            self._retry(self.wt.send_stream_data_drained(stream_id, data, end_stream=end))
        except ConnectionError as exc:
            raise StreamClosedError(f"WebTransport stream {stream_id}: {exc}") from None

    def _reset_stream(self, stream_id: int) -> None:
        if not self._closed:
            self._push(lambda: self.wt.reset_stream(stream_id, 0))

    def _stop_reading(self, stream_id: int) -> None:
        if not self._closed:
            self._push(lambda: self.wt.stop_stream(stream_id, 0))

    def _refuse(self, stream_id: int) -> None:
        if self.wt.session_closed:
            return
        self._push(lambda: self.wt.stop_stream(stream_id, 0))
        if not stream_id & 0x2:
            self._push(lambda: self.wt.reset_stream(stream_id, 0))

    def _push(self, fn: Callable[[], Any]) -> None:
        """A stream command to picoquic; a full TX event ring retries it once it drains."""
        try:
            fn()
        except BufferError:
            self._retry(self._push_later(fn))
        except ConnectionError:
            pass

    async def _push_later(self, fn: Callable[[], Any]) -> None:
        ring = self.wt._transport.tx_event_ring_drain_event
        for _ in range(3):
            ring.clear()
            if self.wt._transport.arm_tx_event_ring_drain_pending():
                try:
                    await asyncio.wait_for(ring.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
            try:
                fn()
                return
            except BufferError:
                continue
            except ConnectionError:
                return
        log.warning("stream command dropped: picoquic's TX ring stayed full")

    def _retry(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    def __repr__(self) -> str:
        return f"<PquicSession {self.session_id} streams={len(self.streams)}>"


async def _first_of(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


class _RoutedServerSession(WebTransportServerSession):
    """aiopquic's server session with stream events routed straight to our streams.

    aiopquic queues every stream's chunks in an unbounded asyncio.Queue per stream and
    every datagram in another; we feed :class:`PquicSession` instead (bounded by its
    streams' ``max_stream_buffer``) and drop datagrams (libp2p WebTransport sends none).
    """

    owner: PquicSession | None = None

    def _on_event(self, ev: tuple[Any, ...]) -> None:
        evt, sid, data = ev[0], ev[1], ev[2]
        owner = self.owner
        if owner is None or self._session_closed.is_set():
            if evt not in (_pwt._EVT_WT_STREAM_DATA, _pwt._EVT_WT_STREAM_FIN, _pwt._EVT_WT_DATAGRAM):
                super()._on_event(ev)
            return
        if evt == _pwt._EVT_WT_STREAM_DATA:
            owner._incoming(sid, bytes(data) if data is not None else b"", False)
        elif evt == _pwt._EVT_WT_STREAM_FIN:
            owner._incoming(sid, bytes(data) if data is not None else b"", True)
        elif evt == _pwt._EVT_WT_NEW_STREAM:
            if ev[7]:
                self._stream_tx_ctxs[sid] = ev[7]
            owner._incoming(sid, b"", False)
        elif evt == _pwt._EVT_WT_STREAM_RESET:
            self._drop_stream_tx(sid)
            owner._on_reset(sid, ev[4])
        elif evt == _pwt._EVT_WT_STOP_SENDING:
            self._drop_stream_tx(sid)
            owner._on_stop_sending(sid)
        elif evt == _pwt._EVT_WT_DATAGRAM:
            pass
        elif evt == _pwt._EVT_WT_SESSION_DRAINING:
            self._draining = True
        else:
            super()._on_event(ev)

    def _on_session_closed(self, error_code: int, data: Any) -> None:
        super()._on_session_closed(error_code, data)
        if self.owner is not None:
            self.owner._ended(f"session closed by the remote (code {error_code})")


def _pem_of_der(der: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)


def _free_udp_port() -> int:
    """A UDP port free on both wildcards (aiopquic binds both; it cannot pick one itself)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s4:
            s4.bind(("0.0.0.0", 0))
            port = s4.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s6:
                    s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    s6.bind(("::", port))
            except OSError:
                continue
            return port
    raise TransportError("no UDP port is free on both the IPv4 and IPv6 wildcards")


def _port_free(port: int) -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s4:
            s4.bind(("0.0.0.0", port))
        return True
    except OSError:
        return False


class PquicWebTransportListener(WebTransportListenerBase):
    """The aiopquic listener; sessions in the handshake are keyed by their :class:`PquicSession`."""

    def __init__(self, transport: WebTransportListenTransport, host: str, port: int, family: str,
                 handler: Any) -> None:
        super().__init__(transport, host, port, family, handler, "refused_sessions")
        # live sessions by picoquic connection (one session per connection)
        self._by_cnx: dict[int, PquicSession] = {}
        self._restart_lock = asyncio.Lock()
        self.restarts = 0

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        if self.port == 0:
            self.port = _free_udp_port()
        if self.host not in ("0.0.0.0", "::"):
            log.warning("aiopquic listens on UDP port %d of every address, not only %s (it has no bind "
                        "address): firewall the port or run the relay in a network namespace", self.port, self.host)
        await self._serve()
        self._rotation_task = asyncio.get_running_loop().create_task(self._rotate_loop())
        log.info("WebTransport (aiopquic) on UDP port %d, certhashes %d", self.port, len(self.t.store.advertised()))

    def _paths(self) -> tuple[str, str]:
        return (os.path.join(self.t.data_dir, CERT_PEM_NAME), os.path.join(self.t.data_dir, KEY_PEM_NAME))

    def _write_pems(self) -> tuple[str, str]:
        from pywasm.fileio import write_private_atomic

        rec = self.t.store.serving
        cert_path, key_path = self._paths()
        try:
            write_private_atomic(cert_path, _pem_of_der(rec.der), 0o600)
            write_private_atomic(key_path, rec.key_pem, 0o600)
        except OSError as exc:
            raise TransportError(f"cannot write the WebTransport certificate for aiopquic: {exc.strerror or exc}") from None
        return cert_path, key_path

    def _configuration(self) -> QuicConfiguration:
        cfg = QuicConfiguration(is_client=False, alpn_protocols=["h3"], idle_timeout=DEFAULT_IDLE_TIMEOUT,
                                keep_alive_interval=DEFAULT_KEEPALIVE, max_stream_data=DEFAULT_STREAM_WINDOW,
                                max_streams_bidi=MAX_STREAMS_BIDI, max_streams_uni=0,
                                congestion_control_algorithm=os.environ.get(CC_ENV) or DEFAULT_CONGESTION_CONTROL)
        cfg.max_connections = self.t.max_connections  # type: ignore[attr-defined] # read by serve_webtransport
        return cfg

    async def _serve(self) -> None:
        cert_path, key_path = self._write_pems()
        self._noise = self._new_noise()
        try:
            self.server = await serve_webtransport(
                "0.0.0.0", self.port, WELL_KNOWN_PATH, handler=self._on_session,
                cert_file=cert_path, key_file=key_path, configuration=self._configuration(),
                session_factory=_RoutedServerSession)
        except Exception as exc:  # noqa: BLE001 - picoquic reports bind/start failures as various errors
            raise TransportError(f"aiopquic cannot listen on UDP port {self.port}: {exc}") from None

    async def _stop_server(self, why: str) -> None:
        for session in list(self._by_cnx.values()):
            session.close_now(0, why)
        for task in list(self._half_open.values()):
            task.cancel()
        server, self.server = self.server, None
        if server is not None:
            await asyncio.sleep(0)  # let the close capsules reach picoquic's ring first
            server.close()

    async def _rotate_loop(self) -> None:
        while True:
            await asyncio.sleep(min(ROTATION_CHECK_INTERVAL, self.t.store.seconds_to_next_change() + 1.0))
            while True:
                try:
                    await self.rotate()
                    break
                except TransportError as exc:
                    # e.g. the port was taken while we restarted: keep trying, loudly
                    log.error("WebTransport listener restart failed, retrying in %gs: %s", RESTART_RETRY, exc)
                    await asyncio.sleep(RESTART_RETRY)

    def rotate_now(self) -> bool:
        """Apply the certificate schedule now (as :meth:`WebTransportListener.rotate_now`);
        a change restarts the listener in the background (see :meth:`rotate`)."""
        changed = self._refresh_certs()
        if changed:
            self._spawn(self._restart())
        return changed

    async def rotate(self) -> bool:
        """Apply the certificate schedule; on a change, restart the listener and return True."""
        changed = self._refresh_certs()
        if changed or self.server is None:  # None: an earlier restart could not listen
            await self._restart()
        return changed

    async def _restart(self) -> None:
        """aiopquic reads its certificate once: stop, then serve again on the same port."""
        async with self._restart_lock:
            await self._stop_server("certificate rotation")
            deadline = time.monotonic() + RESTART_PORT_WAIT
            while not _port_free(self.port) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await self._serve()
            self.restarts += 1
            log.info("WebTransport certificate rotated (aiopquic listener restarted); advertising %s", self.addrs[0])

    async def close(self) -> None:
        self._cancel_background()
        await self._stop_server("listener closed")

    # --- per session --------------------------------------------------------------------
    def _on_session(self, wt: _RoutedServerSession) -> None:
        session = PquicSession(wt)
        cnx = wt._state.cnx_ptr
        other = self._by_cnx.get(cnx) if cnx else None
        if other is not None and not other.is_closed:
            self.stats["refused_sessions"] += 1
            session.close_now(H3_EXCESSIVE_LOAD, "one session per connection")
            return
        self._make_room()
        self._by_cnx[cnx] = session
        session.on_close.append(lambda: self._by_cnx.pop(cnx, None) if self._by_cnx.get(cnx) is session else None)
        self._start_handshake(session, session)

    def _drop(self, session: PquicSession, code: int, why: str) -> None:
        session.close_now(code, why)

    def _remote_address(self, key: Any, session: PquicSession) -> tuple[Any, int]:
        return session.wt.peer_address() or ("0.0.0.0", 0)  # type: ignore[no-any-return]


class PquicWebTransportListenTransport(WebTransportListenTransport):
    """:class:`WebTransportListenTransport` with the aiopquic listener (same bounds, store, addresses)."""

    listener_class = PquicWebTransportListener


__all__ = ["PquicWebTransportListenTransport", "PquicWebTransportListener", "PquicSession"]
