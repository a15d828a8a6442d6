"""QUIC-v1 transport (native CPython only): ``/ip4|ip6/<ip>/udp/<port>/quic-v1``.

libp2p/specs quic/README.md: RFC 9000 version 1, TLS 1.3 inside the handshake with the
libp2p certificate of tls/tls.md on *both* sides and ALPN ``libp2p``; libp2p streams are
the native QUIC bidirectional streams, so the connection needs no security or muxer
negotiation and the transport hands the host an :class:`UpgradedConnection`.

Layers:

* :class:`QuicEndpoint` owns one UDP socket and routes datagrams to connections by
  destination connection id. A listener's endpoint serves every inbound connection on
  its port; each dial gets its own (connected) socket, so an unreachable port fails at
  once with ICMP's "connection refused" instead of a handshake timeout.
* :class:`~pywasm.transports.quic_streams.QuicSession` drives one aioquic connection and
  is the MuxedConnection of its streams.
* The TLS layer is aioquic's, with chain verification off: after the handshake we check
  the peer's certificate with :func:`pywasm.security.tls_cert.verify_certificate_chain`
  (the libp2p extension signed by the host key), derive its peer id and compare it with
  the ``/p2p`` id dialed. A failure closes the connection with CRYPTO_ERROR
  ``bad_certificate`` (0x12a), which go and js report as a TLS failure.

Garbage datagrams are dropped without state: an unknown connection id opens a connection
only for a full-size Initial packet that decrypts (the Initial keys derive from the
packet itself, so this costs one AES operation, not a handshake). Pending handshakes per
listener are bounded, each by the host's ``security_timeout``.

Connections idle out after ``idle_timeout`` (the smaller of ours and the peer's); a PING
every ``keep_alive`` seconds keeps a quiet connection open, as go-libp2p does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aioquic import tls as aioquic_tls
from aioquic.buffer import Buffer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import (
    QuicPacketType,
    QuicProtocolVersion,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from cryptography.hazmat.primitives.serialization import Encoding

from ..errors import (
    ConfigError,
    DialError,
    HandshakeError,
    HandshakeTimeoutError,
    PeerIdMismatchError,
    PywasmError,
    TransportError,
)
from ..identity import PeerId
from ..multiformats.multiaddr import Multiaddr
from .addrs import format_hostport, strip_peer_id
from .quic_streams import APP_ERROR_NONE, Libp2pQuicConnection, QuicSession

if TYPE_CHECKING:
    from ..identity import PrivateKey, PublicKey
    from ..interfaces import ConnectionHandler
    from ..security.tls_cert import LibP2PCertificate

log = logging.getLogger(__name__)

ALPN = "libp2p"
# what the host reports for these connections: TLS 1.3 inside QUIC, QUIC's own streams
SECURITY_PROTOCOL = "/tls/1.0.0"
MUXER_PROTOCOL = "quic-v1"

QUIC_V1 = QuicProtocolVersion.VERSION_1
CID_LENGTH = 8
# RFC 9000 14.1: a client's first datagram is at least this long
MIN_INITIAL_SIZE = 1200
# TLS alert bad_certificate (42) as a QUIC CRYPTO_ERROR (0x100 + alert)
CRYPTO_ERROR_BAD_CERTIFICATE = 0x100 + 42
# CONNECTION_CLOSE with a transport error code needs a frame type; CRYPTO (0x06) says
# "the handshake data was unacceptable"
_CRYPTO_FRAME = 0x06

# --- defaults ----------------------------------------------------------------------------
# QUIC payload per datagram. 1200 is the RFC minimum every path carries; quic-go accepts
# up to 1452. 1350 leaves room for IPv6 + tunnels on real paths (quiche's default too);
# loopback deployments may raise it (fewer packets per byte is most of aioquic's cost).
DEFAULT_MAX_DATAGRAM_SIZE = 1350
# after the handshake, on loopback only (no path MTU discovery here): datagrams up to
# this size, or the peer's max_udp_payload_size if smaller (quic-go: 1452). aioquic's
# cost is mostly per packet, so this multiplies local throughput.
DEFAULT_LOOPBACK_DATAGRAM_SIZE = 16384
# unread bytes one stream / one connection may hold (flow-control windows we announce)
DEFAULT_STREAM_WINDOW = 1024 * 1024
DEFAULT_CONNECTION_WINDOW = 4 * 1024 * 1024
# unacknowledged bytes per stream before write() waits
DEFAULT_SEND_BUFFER = 1024 * 1024
# go-libp2p: 30 s idle timeout (quic-go's MaxIdleTimeout) and a 15 s keep-alive
DEFAULT_IDLE_TIMEOUT = 30.0
DEFAULT_KEEP_ALIVE = 15.0
# handshakes in progress on one listener (a flood of Initials waits its turn)
DEFAULT_MAX_PENDING_HANDSHAKES = 128
# without a host config (bind not called)
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
# regenerate our certificate when it has less than this left
_CERT_RENEW_MARGIN = 3600.0
# datagrams read in one go after asyncio delivered one (bounded: others get a turn)
_DRAIN_MAX = 64
_RECV_SIZE = 65536


@dataclass(frozen=True)
class QuicAddr:
    host: str
    port: int
    is_dns: bool
    family: int  # socket.AF_INET / AF_INET6 / AF_UNSPEC (for /dns/)
    peer: str | None  # the /p2p id, if the address names one


def parse_quic(addr: Multiaddr) -> QuicAddr | None:
    """``/ip4|ip6|dns|dns4|dns6/<host>/udp/<port>/quic-v1[/p2p/<id>]`` -> QuicAddr."""
    comps = strip_peer_id(addr)
    if len(comps) != 3:
        return None
    (hproto, host), (tproto, port), (qproto, _) = comps
    if tproto != "udp" or qproto != "quic-v1" or host is None or port is None:
        return None
    families = {"ip4": socket.AF_INET, "ip6": socket.AF_INET6, "dns4": socket.AF_INET,
                "dns6": socket.AF_INET6, "dns": socket.AF_UNSPEC}
    if hproto not in families:
        return None
    return QuicAddr(host, int(port), hproto.startswith("dns"), families[hproto], addr.peer_id())


def sockaddr_to_quic(sockaddr: Any) -> Multiaddr | None:
    if not isinstance(sockaddr, tuple) or len(sockaddr) < 2:
        return None
    try:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    proto = "ip4" if ip.version == 4 else "ip6"
    return Multiaddr(f"/{proto}/{ip}/udp/{int(sockaddr[1])}/quic-v1")


@dataclass
class QuicUpgradedConnection:
    """What dial() returns and listeners hand over: authenticated, natively muxed."""

    local_peer: PeerId
    remote_peer: PeerId
    remote_public_key: "PublicKey"
    local_addr: Multiaddr | None
    remote_addr: Multiaddr
    muxed: QuicSession
    security_protocol: str = SECURITY_PROTOCOL
    muxer_protocol: str = MUXER_PROTOCOL

    async def reset(self) -> None:
        await self.muxed.close()

    async def close(self) -> None:
        await self.muxed.close()


@dataclass
class QuicOptions:
    max_datagram_size: int = DEFAULT_MAX_DATAGRAM_SIZE
    loopback_datagram_size: int = DEFAULT_LOOPBACK_DATAGRAM_SIZE
    stream_window: int = DEFAULT_STREAM_WINDOW
    connection_window: int = DEFAULT_CONNECTION_WINDOW
    send_buffer: int = DEFAULT_SEND_BUFFER
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    keep_alive: float | None = DEFAULT_KEEP_ALIVE
    max_pending_handshakes: int = DEFAULT_MAX_PENDING_HANDSHAKES
    congestion_control: str = "reno"

    def __post_init__(self) -> None:
        for name in ("stream_window", "connection_window", "send_buffer", "max_pending_handshakes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"QUIC option {name} must be a positive integer, not {value!r}")
        for name in ("max_datagram_size", "loopback_datagram_size"):
            if not 1200 <= getattr(self, name) <= 65527:
                raise ConfigError(f"QUIC {name} must be between 1200 and 65527 bytes")
        if self.idle_timeout <= 0:
            raise ConfigError("QUIC idle_timeout must be positive")
        if self.keep_alive is not None and not 0 < self.keep_alive < self.idle_timeout:
            raise ConfigError("QUIC keep_alive must be positive and shorter than idle_timeout")
        if self.congestion_control not in ("reno", "cubic"):
            raise ConfigError("QUIC congestion_control must be 'reno' or 'cubic'")


class QuicEndpoint(asyncio.DatagramProtocol):
    """One UDP socket and the QUIC connections on it."""

    def __init__(self, owner: "QuicTransport", *, listening: bool) -> None:
        self.owner = owner
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.DatagramTransport | None = None
        self.listening = listening  # accept new connections
        self.connected = False  # socket connected to one remote (dial endpoints)
        self._routes: dict[bytes, QuicSession] = {}
        self._cids: dict[QuicSession, set[bytes]] = {}
        self.on_new_session: Any = None  # listener hook: (session, addr) -> None
        self.pending_handshakes = 0
        self.sock: socket.socket | None = None  # ours: created before the endpoint

    # --- asyncio.DatagramProtocol ------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._handle(data, addr)
        # asyncio hands over one datagram per loop turn, and each turn would transmit
        # (ACKs, data) for it: drain what else is queued first, so one transmit answers
        # a whole burst
        sock = self.sock
        if sock is None:
            return
        for _ in range(_DRAIN_MAX):
            try:
                data, addr = sock.recvfrom(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.error_received(exc)
                return
            self._handle(data, addr)

    def _handle(self, data: bytes, addr: Any) -> None:
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
        except ValueError:
            return  # not QUIC: ignore
        session = self._routes.get(header.destination_cid)
        if session is not None:
            try:
                session.datagram_received(data, addr)
            except Exception:  # noqa: BLE001 - aioquic choked on this peer's input
                log.exception("QUIC connection failed on input from %s", addr)
                session.close_now(APP_ERROR_NONE, "internal error")
            return
        if not self.listening or len(data) < MIN_INITIAL_SIZE:
            return
        if header.version is not None and header.version != QUIC_V1:
            if header.packet_type != QuicPacketType.VERSION_NEGOTIATION:
                self._send(encode_quic_version_negotiation(
                    source_cid=header.destination_cid,
                    destination_cid=header.source_cid,
                    supported_versions=[QUIC_V1],
                ), addr)
            return
        if header.packet_type != QuicPacketType.INITIAL:
            return
        self._accept(header, data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors: a dial endpoint's only peer is unreachable
        if self.connected:
            for session in list(self._cids):
                if not session.handshake.done():
                    session.abort(f"{exc.strerror or exc}".lower() if isinstance(exc, OSError) else str(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        self.sock = None
        for session in list(self._cids):
            session.abort("UDP socket closed")

    # --- sessions --------------------------------------------------------------------------
    def _send(self, data: bytes, addr: Any) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.connected:
            transport.sendto(data)
        else:
            transport.sendto(data, addr)

    def new_session(self, quic: Libp2pQuicConnection) -> QuicSession:
        opts = self.owner.options
        session = QuicSession(
            quic,
            self._send,
            send_buffer=opts.send_buffer,
            keep_alive=opts.keep_alive,
            on_cid_issued=lambda cid: self._route(session, cid),
            on_cid_retired=lambda cid: self._unroute(session, cid),
            on_terminated=self._forget,
        )
        self._cids[session] = set()
        self._route(session, quic.host_cid)
        return session

    def _route(self, session: QuicSession, cid: bytes) -> None:
        if session in self._cids:
            self._routes[cid] = session
            self._cids[session].add(cid)

    def _unroute(self, session: QuicSession, cid: bytes) -> None:
        if self._routes.get(cid) is session:
            del self._routes[cid]
        self._cids.get(session, set()).discard(cid)

    def _forget(self, session: QuicSession) -> None:
        for cid in self._cids.pop(session, ()):
            if self._routes.get(cid) is session:
                del self._routes[cid]
        self.maybe_close()

    @property
    def session_count(self) -> int:
        return len(self._cids)

    def _accept(self, header: Any, data: bytes, addr: Any) -> None:
        owner = self.owner
        if self.on_new_session is None:
            return
        if self.pending_handshakes >= owner.options.max_pending_handshakes:
            log.debug("dropping a QUIC Initial from %s: %d handshakes pending", addr, self.pending_handshakes)
            return
        quic = owner.new_quic(is_client=False, original_dcid=header.destination_cid)
        session = self.new_session(quic)
        now = self.loop.time()
        quic.receive_datagram(data, addr, now)
        space = quic._spaces.get(aioquic_tls.Epoch.INITIAL)
        if space is None or space.largest_received_packet < 0:
            # nothing decrypted: noise that looked like an Initial; keep no state
            session.abort("undecryptable Initial")
            return
        self._route(session, header.destination_cid)
        session._process_events()
        session.transmit()
        self.on_new_session(session, addr)

    # --- lifecycle ---------------------------------------------------------------------------
    def maybe_close(self) -> None:
        """Close the socket once nobody needs it (no listener, no connections)."""
        if not self.listening and not self._cids and self.transport is not None:
            self.transport.close()

    def close_all(self, reason: str) -> None:
        for session in list(self._cids):
            session.close_now(APP_ERROR_NONE, reason)

    def local_addr(self) -> Multiaddr | None:
        if self.transport is None:
            return None
        return sockaddr_to_quic(self.transport.get_extra_info("sockname"))


class QuicListener:
    """One UDP socket accepting QUIC connections. ``close`` stops accepting; the
    connections already handed over live on, and the socket closes with the last one."""

    def __init__(self, transport: "QuicTransport", endpoint: QuicEndpoint, handler: "ConnectionHandler") -> None:
        self._transport = transport
        self._endpoint = endpoint
        self._handler = handler
        self._addrs = [a for a in [endpoint.local_addr()] if a is not None]
        self._handshakes: set[asyncio.Task[None]] = set()
        self.handler_tasks: set[asyncio.Task[None]] = set()
        endpoint.on_new_session = self._on_session

    @property
    def addrs(self) -> list[Multiaddr]:
        return list(self._addrs)

    @property
    def endpoint(self) -> QuicEndpoint:
        return self._endpoint

    def _on_session(self, session: QuicSession, addr: Any) -> None:
        self._endpoint.pending_handshakes += 1
        task = asyncio.get_running_loop().create_task(self._handshake(session, addr))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, session: QuicSession, addr: Any) -> None:
        endpoint = self._endpoint
        transport = self._transport
        try:
            try:
                up = await transport.authenticate(session, None, sockaddr_to_quic(addr), endpoint.local_addr())
            finally:
                endpoint.pending_handshakes -= 1
        except PywasmError as exc:
            log.debug("inbound QUIC connection from %s failed: %s", addr, exc)
            return
        except asyncio.CancelledError:
            session.close_now(APP_ERROR_NONE, "listener closed")
            raise
        # the handshake is over: from here the host owns the connection (its stop()
        # cancels the upgrade it runs in this task)
        task = asyncio.current_task()
        if task is not None:
            self._handshakes.discard(task)
            self.handler_tasks.add(task)
            task.add_done_callback(self.handler_tasks.discard)
        try:
            await self._handler(up)
        except asyncio.CancelledError:
            session.close_now(APP_ERROR_NONE, "cancelled")
            raise
        except Exception as exc:  # noqa: BLE001 - the connection dies, not the listener
            log.debug("QUIC connection handler failed for %s: %s", addr, exc)
            session.close_now(APP_ERROR_NONE, "handler failed")

    async def close(self) -> None:
        endpoint = self._endpoint
        if not endpoint.listening:
            return
        endpoint.listening = False
        endpoint.on_new_session = None
        tasks = list(self._handshakes)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        endpoint.maybe_close()

    def __repr__(self) -> str:
        return f"<QuicListener {', '.join(map(str, self._addrs))}>"


class QuicTransport:
    """Dials and listens on ``/quic-v1`` multiaddrs; returns upgraded connections."""

    def __init__(self, options: QuicOptions | None = None, **kwargs: Any) -> None:
        self.options = options or QuicOptions(**kwargs)
        self._ctx: Any = None
        self._cert: "LibP2PCertificate | None" = None
        self._cert_lock: asyncio.Lock | None = None

    # --- host contract ---------------------------------------------------------------------
    def bind(self, ctx: Any) -> None:
        """The host hands us its key, peer id and config (once, before dial/listen)."""
        self._ctx = ctx

    def can_dial(self, addr: Multiaddr) -> bool:
        return parse_quic(addr) is not None

    def can_listen(self, addr: Multiaddr) -> bool:
        qa = parse_quic(addr)
        return qa is not None and not qa.is_dns

    @property
    def handshake_timeout(self) -> float:
        cfg = getattr(self._ctx, "config", None)
        return float(getattr(cfg, "security_timeout", DEFAULT_HANDSHAKE_TIMEOUT))

    def _require_bound(self) -> Any:
        if self._ctx is None:
            raise ConfigError("QuicTransport needs a host: pass it in Host(transports=[...]) (bind not called)")
        return self._ctx

    # --- TLS material --------------------------------------------------------------------------
    async def _certificate(self) -> "LibP2PCertificate":
        from ..security.tls_cert import generate_certificate

        ctx = self._require_bound()
        if self._cert_lock is None:
            self._cert_lock = asyncio.Lock()
        async with self._cert_lock:
            cert = self._cert
            if cert is None or cert.not_after.timestamp() - time.time() < _CERT_RENEW_MARGIN:
                cert = self._cert = await generate_certificate(ctx.private_key)
            return cert

    def new_quic(self, *, is_client: bool, original_dcid: bytes | None = None) -> Libp2pQuicConnection:
        cert = self._cert
        assert cert is not None, "certificate is made before any connection"
        opts = self.options
        cfg = QuicConfiguration(
            is_client=is_client,
            alpn_protocols=[ALPN],
            certificate=cert.certificate,
            private_key=cert.private_key,
            # chain checks make no sense for self-signed libp2p certificates: we verify
            # the libp2p extension ourselves once the handshake is done
            verify_mode=ssl.CERT_NONE,
            idle_timeout=opts.idle_timeout,
            max_datagram_size=opts.max_datagram_size,
            max_data=opts.connection_window,
            max_stream_data=opts.stream_window,
            connection_id_length=CID_LENGTH,
            congestion_control_algorithm=opts.congestion_control,
            supported_versions=[QUIC_V1],
        )
        cfg_limits = getattr(getattr(self._ctx, "config", None), "max_inbound_streams_per_connection", 256)
        return Libp2pQuicConnection(
            configuration=cfg,
            original_destination_connection_id=original_dcid,
            stream_window=opts.stream_window,
            connection_window=opts.connection_window,
            max_incoming_streams=int(cfg_limits),
        )

    async def authenticate(
        self,
        session: QuicSession,
        expected: PeerId | None,
        remote_addr: Multiaddr | None,
        local_addr: Multiaddr | None,
    ) -> QuicUpgradedConnection:
        """Wait for the handshake, check the peer's libp2p certificate (and that it is
        ``expected``), and wrap the connection. On failure the connection is closed."""
        from ..security.tls_cert import verify_certificate_chain

        ctx = self._require_bound()
        timeout = self.handshake_timeout
        try:
            async with asyncio.timeout(timeout):
                try:
                    await asyncio.shield(session.handshake)
                except PywasmError as exc:
                    raise HandshakeError(f"QUIC handshake failed: {exc}") from None
                tls = session.quic.tls
                if tls.alpn_negotiated != ALPN:
                    raise HandshakeError(f"peer did not agree on ALPN {ALPN!r} (got {tls.alpn_negotiated!r})")
                peer_cert = tls._peer_certificate
                if peer_cert is None:
                    raise HandshakeError("peer presented no certificate")
                chain = [peer_cert.public_bytes(Encoding.DER)]
                chain += [c.public_bytes(Encoding.DER) for c in tls._peer_certificate_chain]
                remote_key = await verify_certificate_chain(chain)
        except TimeoutError:
            session.close_now(APP_ERROR_NONE, "handshake timeout")
            raise HandshakeTimeoutError(f"QUIC handshake did not finish within {timeout:g} s") from None
        except HandshakeError as exc:
            if not session.closed:
                session.close_now(CRYPTO_ERROR_BAD_CERTIFICATE, str(exc)[:200], frame_type=_CRYPTO_FRAME)
            raise
        except BaseException:
            session.close_now(APP_ERROR_NONE, "handshake aborted")
            raise
        remote_peer = PeerId.from_public_key(remote_key)
        if expected is not None and remote_peer != expected:
            session.close_now(CRYPTO_ERROR_BAD_CERTIFICATE, "peer id mismatch", frame_type=_CRYPTO_FRAME)
            raise PeerIdMismatchError(f"dialed {expected} but the QUIC peer is {remote_peer}")
        if session.closed:
            raise HandshakeError(f"QUIC connection closed during the handshake: {session.close_reason}")
        session.start_keep_alive()
        if _is_loopback(remote_addr):
            session.quic.raise_datagram_size(self.options.loopback_datagram_size)
        return QuicUpgradedConnection(
            local_peer=ctx.peer_id,
            remote_peer=remote_peer,
            remote_public_key=remote_key,
            local_addr=local_addr,
            remote_addr=remote_addr,  # type: ignore[arg-type]
            muxed=session,
        )

    # --- dial ------------------------------------------------------------------------------
    async def dial(self, addr: Multiaddr) -> QuicUpgradedConnection:
        qa = parse_quic(addr)
        if qa is None:
            raise DialError(f"QUIC transport cannot dial {addr}: expected /ip4|ip6|dns*/<host>/udp/<port>/quic-v1")
        expected: PeerId | None = None
        if qa.peer is not None:
            try:
                expected = PeerId.from_string(qa.peer)
            except PywasmError as exc:
                raise DialError(f"invalid peer id in {addr}: {exc}") from None
        await self._certificate()
        loop = asyncio.get_running_loop()
        target = format_hostport(qa.host, qa.port)
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(qa.host, qa.port, family=qa.family, type=socket.SOCK_DGRAM),
                self.handshake_timeout,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            raise DialError(f"cannot resolve {qa.host}: {exc}") from None
        family, _, _, _, sockaddr = infos[0]
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.connect(sockaddr)
                _, endpoint = await loop.create_datagram_endpoint(
                    lambda: QuicEndpoint(self, listening=False), sock=sock
                )
            except BaseException:
                sock.close()
                raise
        except OSError as exc:
            raise DialError(f"cannot open a UDP socket to {target}: {exc.strerror or exc}") from None
        endpoint.sock = sock
        endpoint.connected = True
        _tune_socket(endpoint)
        quic = self.new_quic(is_client=True)
        session = endpoint.new_session(quic)
        remote = endpoint.transport.get_extra_info("peername") if endpoint.transport else sockaddr
        quic.connect(remote, loop.time())
        session.transmit()
        try:
            return await self.authenticate(session, expected, sockaddr_to_quic(remote), endpoint.local_addr())
        except PywasmError:
            endpoint.maybe_close()
            raise

    # --- listen ------------------------------------------------------------------------------
    async def listen(self, addr: Multiaddr, handler: "ConnectionHandler") -> QuicListener:
        qa = parse_quic(addr)
        if qa is None or qa.is_dns:
            raise TransportError(f"QUIC transport cannot listen on {addr}: expected /ip4|ip6/<ip>/udp/<port>/quic-v1")
        await self._certificate()
        loop = asyncio.get_running_loop()
        try:
            sock = socket.socket(qa.family, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                if qa.family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((qa.host, qa.port))
                _, endpoint = await loop.create_datagram_endpoint(
                    lambda: QuicEndpoint(self, listening=True), sock=sock
                )
            except BaseException:
                sock.close()
                raise
        except OSError as exc:
            raise TransportError(
                f"cannot listen on {format_hostport(qa.host, qa.port)}/udp: {exc.strerror or exc}"
            ) from None
        endpoint.sock = sock
        _tune_socket(endpoint)
        return QuicListener(self, endpoint, handler)

    def __repr__(self) -> str:
        return "QuicTransport()"


def _is_loopback(addr: Multiaddr | None) -> bool:
    qa = parse_quic(addr) if addr is not None else None
    if qa is None or qa.is_dns:
        return False
    try:
        return ipaddress.ip_address(qa.host).is_loopback
    except ValueError:
        return False


def _tune_socket(endpoint: QuicEndpoint) -> None:
    """Bigger kernel buffers: a burst of datagrams from many peers (or one fast one)
    must not be dropped before the event loop gets to them."""
    transport = endpoint.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
        except OSError:
            pass


__all__ = [
    "QuicTransport",
    "QuicOptions",
    "QuicListener",
    "QuicEndpoint",
    "QuicUpgradedConnection",
    "parse_quic",
    "ALPN",
    "SECURITY_PROTOCOL",
    "MUXER_PROTOCOL",
]
