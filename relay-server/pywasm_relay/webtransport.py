"""The relay's WebTransport listener: ``/ip4/<ip>/udp/<port>/quic-v1/webtransport``.

aioquic serves HTTP/3 with WebTransport using a self-signed ECDSA certificate from
:class:`~pywasm_relay.certs.CertStore` (rotated on schedule, persisted in the data dir).
The advertised address carries ``/certhash/<h>`` for each advertised certificate.

Per session (libp2p WebTransport spec): the browser sends an extended CONNECT to
``/.well-known/libp2p-webtransport?type=noise``; we answer 200; its first bidirectional
stream carries Noise XX with us as responder, sending every kept certhash in the
``webtransport_certhashes`` extension; then the session goes to the host as an
upgraded connection whose streams are native WebTransport streams (multistream-select
per stream, no muxer).

Bounds (a flood of half-open sessions must not starve anyone else):

* ``max_connections`` QUIC connections at once; more are closed at once;
* a connection must send its CONNECT within ``connect_timeout``;
* one session per connection; at most ``max_half_open`` sessions in the Noise handshake,
  each bounded by ``handshake_timeout``. At the limit the *oldest* half-open session is
  closed to make room: a flood then only evicts itself, while an honest client, whose
  handshake takes milliseconds, finishes long before ``max_half_open`` newer sessions
  arrive. Refusing new sessions instead would let a flood lock everyone out.

The per-session part (bounds, Noise, the upgraded connection) lives in
:class:`WebTransportListenerBase`, which the aiopquic backend's listener
(webtransport_pquic.py) shares; each backend adds only how it serves and closes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from pywasm.errors import PywasmError, TransportError
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.transports.webtransport_addr import WELL_KNOWN_PATH, parse_webtransport, webtransport_multiaddr

from .certs import CertStore

log = logging.getLogger("pywasm_relay.webtransport")

#: Benchmarks only: "1" serves with aioquic's defaults (asyncio UDP transport, one sendto
#: per datagram, 1200-byte datagrams, 1 MiB windows), the naive baseline that
#: benchmarks/webtransport_run.py measures the tuned path against.
NAIVE_ENV = "PYWASM_RELAY_WT_NAIVE"

DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_MAX_HALF_OPEN = 64
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
# longest sleep between rotation checks (so a suspended machine catches up soon)
ROTATION_CHECK_INTERVAL = 3600.0


def _load_tls(cfg: Any, der: bytes, key_pem: bytes) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    cfg.certificate = x509.load_der_x509_certificate(der)
    cfg.private_key = load_pem_private_key(key_pem, password=None)


class WebTransportListenTransport:
    """Listen-only transport for the relay (the host binds it to learn our key)."""

    def __init__(
        self,
        data_dir: str,
        *,
        clock: Callable[[], float] = time.time,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_half_open: int = DEFAULT_MAX_HALF_OPEN,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        store: CertStore | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.max_connections = max_connections
        self.max_half_open = max_half_open
        self.connect_timeout = connect_timeout
        self.handshake_timeout = handshake_timeout
        self._store = store
        self.ctx: Any = None
        self.listeners: list[WebTransportListenerBase] = []

    def bind(self, ctx: Any) -> None:
        self.ctx = ctx

    @property
    def store(self) -> CertStore:
        if self._store is None:
            self._store = CertStore(self.data_dir, clock=self.clock)
        return self._store

    def can_dial(self, addr: Multiaddr) -> bool:
        return False

    async def dial(self, addr: Multiaddr) -> Any:
        raise TransportError(f"the relay does not dial WebTransport: {addr}")

    def can_listen(self, addr: Multiaddr) -> bool:
        wa = parse_webtransport(addr)
        return wa is not None and not wa.is_dns and not wa.certhashes and wa.peer_id is None

    #: The listener ``listen`` starts: :class:`WebTransportListener` (set below it), or the
    #: aiopquic backend's.
    listener_class: type[WebTransportListenerBase]

    async def listen(self, addr: Multiaddr, handler: Any) -> WebTransportListenerBase:
        if self.ctx is None:
            raise TransportError("WebTransport listener is not bound to a host")
        wa = parse_webtransport(addr)
        if wa is None or not self.can_listen(addr):
            raise TransportError(f"cannot listen on {addr}: expected /ip4|ip6/<ip>/udp/<port>/quic-v1/webtransport")
        listener = self.listener_class(self, wa.host, wa.port, wa.family, handler)
        await listener.start()
        self.listeners.append(listener)
        return listener


# session close codes (HTTP/3 numbers; the aiopquic backend sends them as WebTransport
# application codes)
H3_EXCESSIVE_LOAD = 0x107
H3_REQUEST_REJECTED = 0x10B


class WebTransportListenerBase:
    """What both backends' listeners share: the advertised address, the certificate
    schedule's refresh, and each session's way from the Noise handshake (bounded by
    ``max_half_open`` and ``handshake_timeout``) to an upgraded connection for the host.

    A session is known by a *key*: the aioquic QUIC protocol (one session per
    connection), or the aiopquic session itself. A backend supplies the hooks
    :meth:`_drop`, :meth:`_remote_address` and, when it has something to do once a
    session is up, :meth:`_upgraded`.
    """

    def __init__(self, transport: "WebTransportListenTransport", host: str, port: int, family: str,
                 handler: Any, refused_stat: str) -> None:
        self.t = transport
        self.host = host
        self.port = port
        self.family = family
        self.handler = handler
        self.server: Any = None
        self._noise: Any = None
        # session keys in the Noise handshake -> its task, oldest first
        self._half_open: dict[Any, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._rotation_task: asyncio.Task[None] | None = None
        # counters, for tests and metrics
        self.stats = {"sessions": 0, refused_stat: 0, "evicted_half_open": 0, "handshake_failures": 0}

    # --- backend hooks ------------------------------------------------------------------
    def _drop(self, key: Any, code: int, why: str) -> None:
        """Close the session (and for aioquic its connection) known by ``key``."""
        raise NotImplementedError

    def _remote_address(self, key: Any, session: Any) -> tuple[Any, int]:
        raise NotImplementedError

    def _upgraded(self, key: Any) -> None:
        """The session passed its handshake (before it goes to the host)."""

    # --- shared -------------------------------------------------------------------------
    def _new_noise(self) -> Any:
        from pywasm.security.noise import NoiseSecurity

        return NoiseSecurity(self.t.ctx.private_key, webtransport_certhashes=self.t.store.noise_certhashes(),
                             handshake_timeout=self.t.handshake_timeout)

    def _refresh_certs(self) -> bool:
        """The certificate store's refresh: True when the serving certificate changed."""
        try:
            return self.t.store.refresh()
        except PywasmError as exc:
            log.error("certificate rotation failed: %s", exc)
            return False

    @property
    def addrs(self) -> list[Multiaddr]:
        base = f"/{self.family if self.family != 'any' else 'ip4'}/{self.host}/udp/{self.port}/quic-v1/webtransport"
        return [webtransport_multiaddr(base, self.t.store.advertised())]

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _cancel_background(self) -> None:
        if self._rotation_task is not None:
            self._rotation_task.cancel()
        for task in list(self._tasks):
            task.cancel()

    def _make_room(self) -> None:
        """At ``max_half_open`` sessions in the handshake, close the oldest (module doc)."""
        while len(self._half_open) >= self.t.max_half_open:
            oldest = next(iter(self._half_open))
            self.stats["evicted_half_open"] += 1
            log.debug("evicting the oldest half-open WebTransport session: %d in handshake", len(self._half_open))
            self._half_open.pop(oldest).cancel()
            self._drop(oldest, H3_EXCESSIVE_LOAD, "too many sessions in handshake")

    def _start_handshake(self, key: Any, session: Any) -> None:
        self._half_open[key] = self._spawn(self._secure(key, session))

    async def _secure(self, key: Any, session: Any) -> None:
        from pywasm.transports.webtransport_addr import WebTransportConnection

        remote = self._remote_address(key, session)
        try:
            try:
                stream = await asyncio.wait_for(session.accept_stream(), self.t.handshake_timeout)
                secure = await self._noise.secure_inbound(stream)
                await stream.close()
            except asyncio.CancelledError:
                self._drop(key, H3_EXCESSIVE_LOAD, "evicted")
                raise
            except (PywasmError, asyncio.TimeoutError) as exc:
                self.stats["handshake_failures"] += 1
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.info("WebTransport session from %s failed its handshake: %s", remote, why)
                self._drop(key, H3_REQUEST_REJECTED, "libp2p handshake failed")
                return
        finally:
            self._half_open.pop(key, None)
        self.stats["sessions"] += 1
        self._upgraded(key)
        fam = "ip6" if ":" in str(remote[0]) else "ip4"
        conn = WebTransportConnection(
            local_peer=secure.local_peer,
            remote_peer=secure.remote_peer,
            remote_public_key=secure.remote_public_key,
            local_addr=Multiaddr(f"/{fam}/{self.host}/udp/{self.port}/quic-v1/webtransport"),
            remote_addr=Multiaddr(f"/{fam}/{remote[0]}/udp/{remote[1]}/quic-v1/webtransport"),
            muxed=session,
        )
        await self.handler(conn)


class WebTransportListener(WebTransportListenerBase):
    """The aioquic listener."""

    def __init__(self, transport: "WebTransportListenTransport", host: str, port: int, family: str, handler: Any) -> None:
        super().__init__(transport, host, port, family, handler, "refused_connections")
        self.cfg: Any = None
        # live QUIC connections (oldest first) -> their "CONNECT within connect_timeout" timer
        self._protos: dict[Any, asyncio.TimerHandle] = {}

    async def start(self) -> None:
        from pywasm.transports.udp_batch import serve_batched
        from pywasm.transports.webtransport_native import WebTransportProtocol, quic_configuration

        store = self.t.store
        naive = os.environ.get(NAIVE_ENV) == "1"
        self.cfg = quic_configuration(is_client=False, naive=naive)
        self._apply_cert()

        def create_protocol(*args: Any, **kwargs: Any) -> Any:
            proto = WebTransportProtocol(*args, on_request=self._on_request, **kwargs)
            proto.gso = not naive
            self._adopt(proto)
            return proto

        try:
            if naive:
                from aioquic.asyncio import serve

                log.warning("%s=1: serving WebTransport with aioquic defaults (benchmark baseline)", NAIVE_ENV)
                self.server = await serve(self.host, self.port, configuration=self.cfg, create_protocol=create_protocol)
            else:
                self.server = await serve_batched(self.host, self.port, configuration=self.cfg,
                                                  create_protocol=create_protocol)
        except OSError as exc:
            raise TransportError(f"cannot listen on UDP {self.host}:{self.port}: {exc.strerror or exc}") from None
        self.port = self.server._transport.get_extra_info("sockname")[1]
        self._rotation_task = asyncio.get_running_loop().create_task(self._rotate_loop())
        log.info("WebTransport on %s:%d, certhashes %d", self.host, self.port, len(store.advertised()))

    def _apply_cert(self) -> None:
        rec = self.t.store.serving
        _load_tls(self.cfg, rec.der, rec.key_pem)
        self._noise = self._new_noise()

    async def _rotate_loop(self) -> None:
        while True:
            await asyncio.sleep(min(ROTATION_CHECK_INTERVAL, self.t.store.seconds_to_next_change() + 1.0))
            self.rotate_now()

    def rotate_now(self) -> bool:
        """Apply the certificate schedule now (the loop calls it; tests with a fake clock too)."""
        changed = self._refresh_certs()
        if changed:
            self._apply_cert()
            log.info("WebTransport certificate rotated; advertising %s", self.addrs[0])
        return changed

    async def close(self) -> None:
        self._cancel_background()
        for proto in list(self._protos):
            if proto.session is not None and not proto.session.is_closed:
                proto.session._ended("listener closed")
            proto.close_connection(0x100, "listener closed")
        if self.server is not None:
            self.server.close()
            self.server = None

    # --- per connection ----------------------------------------------------------------
    def _adopt(self, proto: Any) -> None:
        loop = asyncio.get_running_loop()
        if len(self._protos) >= self.t.max_connections:
            # same policy as half-open sessions: the oldest connection that has not even
            # asked for a session makes room; if every one is a live session, refuse
            idle = next((p for p in self._protos if p.session is None), None)
            if idle is None:
                self.stats["refused_connections"] += 1
                loop.call_soon(proto.close_connection, H3_EXCESSIVE_LOAD, "too many connections")
                return
            self._protos.pop(idle, None)
            idle.close_connection(H3_EXCESSIVE_LOAD, "too many connections")
        timer = loop.call_later(self.t.connect_timeout, self._no_connect, proto)
        self._protos[proto] = timer

        def gone() -> None:
            t = self._protos.pop(proto, None)
            if t is not None:
                t.cancel()

        proto.on_terminated.append(gone)

    def _no_connect(self, proto: Any) -> None:
        if proto.session is None:
            log.debug("closing a QUIC connection that sent no CONNECT within %gs", self.t.connect_timeout)
            proto.close_connection(H3_REQUEST_REJECTED, "no WebTransport session requested")
            self._protos.pop(proto, None)

    def _on_request(self, proto: Any, stream_id: int, headers: list[tuple[bytes, bytes]]) -> None:
        from pywasm.transports.webtransport_native import WebTransportSession

        h = {k: v for k, v in headers}
        method, protocol, path = h.get(b":method"), h.get(b":protocol"), h.get(b":path", b"").decode("latin-1")
        url = urlsplit(path)
        if method != b"CONNECT" or protocol != b"webtransport":
            self._answer(proto, stream_id, 400, end=True)
            return
        if url.path != WELL_KNOWN_PATH or parse_qs(url.query).get("type") != ["noise"]:
            self._answer(proto, stream_id, 404, end=True)
            return
        if proto.session is not None:
            self._answer(proto, stream_id, 429, end=True)  # one session per connection
            return
        self._make_room()
        proto.session = WebTransportSession(proto, stream_id)
        self._answer(proto, stream_id, 200)
        self._start_handshake(proto, proto.session)

    def _answer(self, proto: Any, stream_id: int, status: int, end: bool = False) -> None:
        headers = [(b":status", str(status).encode())]
        if status == 200:
            headers.append((b"sec-webtransport-http3-draft", b"draft02"))
        proto.h3.send_headers(stream_id, headers, end_stream=end)
        proto.transmit()

    # --- session hooks ------------------------------------------------------------------
    def _drop(self, proto: Any, code: int, why: str) -> None:
        proto.close_connection(code, why)

    def _remote_address(self, proto: Any, session: Any) -> tuple[Any, int]:
        paths = proto._quic._network_paths
        return paths[0].addr if paths else ("0.0.0.0", 0)  # type: ignore[no-any-return]

    def _upgraded(self, proto: Any) -> None:
        proto.start_keepalive()


WebTransportListenTransport.listener_class = WebTransportListener


__all__ = ["WebTransportListenTransport", "WebTransportListener", "WebTransportListenerBase"]
