"""WebRTC-direct natively, on aiortc: the listener browsers dial, and a native dialer.

libp2p/specs webrtc/webrtc-direct.md. The listener behaves as an ICE-lite server:

* **one UDP socket** for every client; datagrams are routed by source address
  (:class:`_UdpMux`). A datagram from an unknown address is only considered if it is a
  STUN Binding request whose USERNAME is ``<ufrag>:<ufrag>`` with a libp2p ufrag and
  whose MESSAGE-INTEGRITY verifies with that ufrag as password: the spec has the client
  use one random string as ufrag and password on both sides, so that is all the server
  needs to answer. Only then is a session allocated, within ``max_handshakes`` sessions
  still handshaking and ``max_connections`` in total (the spec asks for a bound: a
  STUN flood must not allocate without limit).
* **a fixed DTLS certificate** (:class:`DtlsCertificate`, kept in the relay's data dir):
  its sha-256 is the ``/certhash`` browsers pin. The client's certificate is unknown in
  advance, so its fingerprint is not checked during DTLS but read afterwards and bound
  into the Noise prologue, which authenticates both sides.
* **Noise XX** on the negotiated data channel 0, **the server as initiator**, prologue
  ``"libp2p-webrtc-noise:" + client fingerprint + server fingerprint``; then channel 0 is
  closed and every other data channel is a libp2p stream
  (:mod:`pywasm.transports.webrtc_stream`).
* everything from the first STUN packet to the end of Noise is bounded by
  ``handshake_timeout``; a failed or timed-out session releases its route and state.

aiortc has no ICE-lite mode and no shared socket, so this assembles its ORTC objects
(RTCIceGatherer/RTCIceTransport/RTCDtlsTransport/RTCSctpTransport/RTCDataChannel) and
reaches into a few private parts, all listed in :data:`AIORTC_INTERNALS` and pinned by
tests/native/test_webrtc_direct_pins.py:

* aioice ``Connection._protocols`` / ``_local_candidates`` / ``_local_candidates_end``:
  the session's "gathered" candidate is our routed protocol instead of a new socket
  (aioice would also skip 127.0.0.1 as a host address);
* aioice ``StunProtocol`` is subclassed: its ``transport`` is a per-peer view of the
  shared socket;
* ``RTCIceGatherer._connection`` (the aioice Connection behind the gatherer);
* ``RTCDtlsTransport._set_role`` (ORTC would pick the role from ICE; the spec fixes it:
  the server is the DTLS server) and ``_validate_peer_identity`` / ``_ssl`` (skip the
  fingerprint check on the server, read the client's certificate).
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from pywasm.errors import (
    ConfigError,
    DialError,
    HandshakeTimeoutError,
    PeerIdMismatchError,
    PywasmError,
    TransportError,
)
from pywasm.fileio import write_private_atomic
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.transports.webrtc_direct_addr import (
    MUXER_PROTOCOL,
    SECURITY_PROTOCOL,
    fingerprint_of_der,
    listen_multiaddr,
    multihash_to_fingerprint,
    noise_prologue,
    parse_webrtc_direct,
    random_ufrag,
    ufrag_from_stun_username,
)
from pywasm.transports.webrtc_stream import WebRTCMuxedConnection, WebRTCStream

if TYPE_CHECKING:
    from pywasm.identity import PeerId, PrivateKey, PublicKey
    from pywasm.interfaces import ConnectionHandler

log = logging.getLogger("pywasm_relay.webrtc_direct")

#: The relay's default webrtc-direct listen address (UDP; 4001/4002 are TCP and WS).
DEFAULT_LISTEN = "/ip4/127.0.0.1/udp/4004/webrtc-direct"
CERT_FILE_NAME = "webrtc-direct-cert.pem"
#: The certificate's lifetime. WebRTC checks the fingerprint, not dates, and the spec
#: lets webrtc-direct servers keep one certificate: a stable certhash keeps the
#: advertised address valid across restarts. It is renewed when less than
#: ``CERT_RENEW_BEFORE`` is left.
CERT_LIFETIME = datetime.timedelta(days=365)
CERT_RENEW_BEFORE = datetime.timedelta(days=30)
#: ICE + DTLS + SCTP + Noise, from the first STUN packet (seconds).
DEFAULT_HANDSHAKE_TIMEOUT = 15.0
#: Sessions still handshaking at once; STUN from new addresses beyond it is dropped.
DEFAULT_MAX_HANDSHAKES = 64
#: Sessions in total (handshaking or established).
DEFAULT_MAX_CONNECTIONS = 256
#: The spec's 16 KiB message bound, advertised to SCTP as the remote's maximum.
MAX_MESSAGE_SIZE = 16 * 1024
SCTP_PORT = 5000
#: Bound on one data channel opening (DCEP OPEN -> ACK) natively (seconds).
OPEN_TIMEOUT = 10.0

#: Private aiortc/aioice names this module relies on (tests pin them).
AIORTC_INTERNALS = (
    "aioice.ice.Connection._protocols",
    "aioice.ice.Connection._local_candidates",
    "aioice.ice.Connection._local_candidates_end",
    "aioice.ice.StunProtocol.connection_made/connection_lost/datagram_received/local_candidate",
    "aiortc.rtcicetransport.RTCIceGatherer._connection",
    "aiortc.rtcdtlstransport.RTCDtlsTransport._set_role",
    "aiortc.rtcdtlstransport.RTCDtlsTransport._validate_peer_identity",
    "aiortc.rtcdtlstransport.RTCDtlsTransport._ssl",
)


class WebRTCDirectError(TransportError):
    """A webrtc-direct session failed (ICE, DTLS, SCTP or the channel setup)."""


# --- the DTLS certificate -----------------------------------------------------------------
class DtlsCertificate:
    """The listener's fixed ECDSA P-256 certificate (aiortc's ``RTCCertificate``)."""

    def __init__(self, key: Any, cert: Any) -> None:
        from aiortc import RTCCertificate
        from cryptography.hazmat.primitives.serialization import Encoding

        self.rtc = RTCCertificate(key=key, cert=cert)
        self.der: bytes = cert.public_bytes(Encoding.DER)
        self.fingerprint: bytes = fingerprint_of_der(self.der)  # sha-256 multihash
        self.not_after: datetime.datetime = cert.not_valid_after_utc

    @classmethod
    def generate(cls, lifetime: datetime.timedelta = CERT_LIFETIME) -> "DtlsCertificate":
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "pywasm webrtc-direct")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + lifetime)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def to_pem(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

        key = self.rtc._key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        return key + self.rtc._cert.public_bytes(Encoding.PEM)

    @classmethod
    def from_pem(cls, data: bytes) -> "DtlsCertificate":
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        key = load_pem_private_key(data, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError("the webrtc-direct certificate key is not an EC key")
        cert = x509.load_pem_x509_certificate(data)
        return cls(key, cert)

    @classmethod
    def load_or_create(cls, path: str) -> "DtlsCertificate":
        """Load ``path``, or create it (0600, written atomically); renew it when it
        expires within ``CERT_RENEW_BEFORE``. A corrupt file is an error, not replaced:
        the certhash is part of advertised addresses."""
        if os.path.exists(path):
            try:
                with open(path, "rb") as f:
                    cert = cls.from_pem(f.read())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read the webrtc-direct certificate {path}: {exc}; "
                                  "delete it to make a new one (the certhash will change)") from None
            if cert.not_after - datetime.datetime.now(datetime.timezone.utc) > CERT_RENEW_BEFORE:
                return cert
            log.warning("webrtc-direct certificate %s expires %s: renewing (the certhash changes)",
                        path, cert.not_after.isoformat())
        cert = cls.generate()
        write_private_atomic(path, cert.to_pem())
        return cert


# --- one UDP socket, many peers ------------------------------------------------------------
class _UdpMux(asyncio.DatagramProtocol):
    """Routes datagrams by source address; unknown sources go to ``on_unknown``."""

    def __init__(self, on_unknown: Callable[[bytes, tuple[str, int]], None]) -> None:
        self.routes: dict[tuple[str, int], Any] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self._on_unknown = on_unknown
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        key = (addr[0], addr[1])
        proto = self.routes.get(key)
        if proto is not None:
            proto.datagram_received(data, key)
        else:
            self._on_unknown(data, key)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        for proto in list(self.routes.values()):
            proto.connection_lost(exc)


class _PeerTransport:
    """What aioice's StunProtocol sees as its transport: the shared socket, one peer."""

    def __init__(self, mux: _UdpMux, peer: tuple[str, int], protocol: Any) -> None:
        self._mux = mux
        self._peer = peer
        self._protocol = protocol
        self._closed = False

    def sendto(self, data: bytes, addr: tuple[str, int] | None = None) -> None:
        # only ever to the routed peer: a session cannot be turned into a reflector
        if not self._closed and self._mux.transport is not None and (addr is None or tuple(addr[:2]) == self._peer):
            self._mux.transport.sendto(data, self._peer)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._mux.routes.get(self._peer) is self._protocol:
            del self._mux.routes[self._peer]
        self._protocol.connection_lost(None)

    def is_closing(self) -> bool:
        return self._closed


def _routed_protocol(connection: Any, mux: _UdpMux, peer: tuple[str, int]) -> Any:
    """An aioice StunProtocol for ``connection`` over the shared socket, routed for ``peer``,
    registered as the connection's one gathered host candidate."""
    from aioice.candidate import Candidate, candidate_priority
    from aioice.ice import StunProtocol

    proto = StunProtocol(connection)
    proto.connection_made(_PeerTransport(mux, peer, proto))  # type: ignore[arg-type]
    sockname = mux.transport.get_extra_info("sockname") if mux.transport is not None else ("0.0.0.0", 0)
    proto.local_candidate = Candidate(
        foundation="1", component=1, transport="udp", priority=candidate_priority(1, "host"),
        host=sockname[0], port=sockname[1], type="host",
    )
    connection._protocols.append(proto)
    connection._local_candidates.append(proto.local_candidate)
    connection._local_candidates_end = True
    mux.routes[peer] = proto
    return proto


# --- data channels as pywasm streams ----------------------------------------------------------
class _AiortcChannel:
    """:class:`~pywasm.transports.webrtc_stream.DataChannel` over an aiortc RTCDataChannel.

    Messages sent before the channel opens (DCEP ACK pending) wait here, as RFC 8832 lets
    the opener send at once; they count in ``buffered_amount``.
    """

    def __init__(self, channel: Any) -> None:
        self._ch = channel
        self._early: list[bytes] = []
        self._early_bytes = 0
        self._low = asyncio.Event()
        self.opened = asyncio.Event()
        self.closed = False
        channel.on("bufferedamountlow", self._low.set)
        channel.on("open", self._on_open)
        if channel.readyState == "open":
            self.opened.set()

    def bind(self, stream: WebRTCStream) -> None:
        def on_message(data: Any) -> None:
            stream.feed(data.encode() if isinstance(data, str) else data)

        def on_close() -> None:
            self.closed = True
            self._low.set()
            self.opened.set()
            stream.channel_closed()

        self._ch.on("message", on_message)
        self._ch.on("close", on_close)
        if self._ch.readyState == "closed":
            on_close()

    def _on_open(self) -> None:
        self.opened.set()
        early, self._early, self._early_bytes = self._early, [], 0
        for m in early:
            self._ch.send(m)

    @property
    def id(self) -> int:
        return int(self._ch.id if self._ch.id is not None else -1)

    @property
    def buffered_amount(self) -> int:
        return int(self._ch.bufferedAmount) + self._early_bytes

    def send(self, message: bytes) -> None:
        state = self._ch.readyState
        if state == "connecting":
            self._early.append(bytes(message))
            self._early_bytes += len(message)
        elif state == "open":
            self._ch.send(bytes(message))
        else:
            raise ConnectionError(f"data channel is {state}")

    async def wait_buffered_below(self, limit: int) -> None:
        self._ch.bufferedAmountLowThreshold = limit
        while self.buffered_amount > limit and not self.closed:
            self._low.clear()
            if self._early_bytes:
                await self.opened.wait()
                continue
            await self._low.wait()

    def close(self) -> None:
        if self._ch.readyState not in ("closing", "closed"):
            self._ch.close()


def _stream_for(muxed: WebRTCMuxedConnection | None, channel: Any, inbound: bool) -> WebRTCStream | None:
    adapter = _AiortcChannel(channel)
    if muxed is None:
        stream: WebRTCStream | None = WebRTCStream(adapter)
    elif inbound:
        stream = muxed.add_inbound(adapter)
    else:
        stream = muxed.make_stream(adapter)
    if stream is not None:
        adapter.bind(stream)
    return stream


@dataclass
class WebRTCDirectConnection:
    """An :class:`~pywasm.interfaces.UpgradedConnection` over webrtc-direct."""

    local_peer: "PeerId"
    remote_peer: "PeerId"
    remote_public_key: "PublicKey"
    local_addr: Multiaddr | None
    remote_addr: Multiaddr
    muxed: WebRTCMuxedConnection
    security_protocol: str = SECURITY_PROTOCOL
    muxer_protocol: str = MUXER_PROTOCOL
    session: Any = field(default=None, repr=False)


# --- one peer connection ---------------------------------------------------------------------------
class _Session:
    """ICE -> DTLS -> SCTP -> Noise for one remote address, either role."""

    def __init__(
        self,
        *,
        server: bool,
        mux: _UdpMux,
        peer: tuple[str, int],
        ufrag: str,
        certificate: DtlsCertificate,
        private_key: "PrivateKey",
        server_fingerprint: bytes | None,
        on_closed: Callable[["_Session"], None] | None = None,
    ) -> None:
        from aiortc import RTCIceGatherer

        self.server = server
        self.mux = mux
        self.peer = peer
        self.ufrag = ufrag
        self.certificate = certificate
        self.private_key = private_key
        self.server_fingerprint = server_fingerprint
        self.on_closed = on_closed
        self.gatherer = RTCIceGatherer(iceServers=[], local_username=ufrag, local_password=ufrag)
        connection = self.gatherer._connection
        connection.ice_controlling = not server
        self.protocol = _routed_protocol(connection, mux, peer)
        self.ice: Any = None
        self.dtls: Any = None
        self.sctp: Any = None
        self.muxed: WebRTCMuxedConnection | None = None
        self.client_fingerprint: bytes | None = None
        self._closed = False
        self._close_task: asyncio.Future[None] | None = None

    async def establish(self) -> tuple[WebRTCMuxedConnection, Any]:
        """Run the handshakes; returns the muxed connection and the Noise session."""
        from aiortc import (
            RTCDataChannel,
            RTCDataChannelParameters,
            RTCDtlsFingerprint,
            RTCDtlsParameters,
            RTCIceCandidate,
            RTCIceParameters,
            RTCIceTransport,
            RTCSctpCapabilities,
            RTCSctpTransport,
        )
        from aioice.candidate import candidate_priority

        from pywasm.security.noise import NoiseSecurity

        self.ice = ice = RTCIceTransport(self.gatherer)
        ice.on("statechange", self._on_transport_state)
        await ice.addRemoteCandidate(RTCIceCandidate(
            component=1, foundation="remote", ip=self.peer[0], port=self.peer[1],
            priority=candidate_priority(1, "host"), protocol="udp", type="host",
        ))
        await ice.addRemoteCandidate(None)
        await ice.start(RTCIceParameters(usernameFragment=self.ufrag, password=self.ufrag, iceLite=False))
        if ice.state != "completed":
            raise WebRTCDirectError(f"ICE with {self._where()} failed")

        server_dtls, client_dtls = _dtls_classes()
        if self.server:
            dtls = server_dtls(ice, [self.certificate.rtc])
            remote = RTCDtlsParameters(fingerprints=[RTCDtlsFingerprint("sha-256", "00:" * 31 + "00")])
        else:
            assert self.server_fingerprint is not None
            dtls = client_dtls(ice, [self.certificate.rtc])
            remote = RTCDtlsParameters(fingerprints=[
                RTCDtlsFingerprint("sha-256", multihash_to_fingerprint(self.server_fingerprint))
            ])
        self.dtls = dtls
        dtls._set_role("server" if self.server else "client")
        dtls.on("statechange", self._on_transport_state)
        await dtls.start(remote)
        if dtls.state != "connected":
            raise WebRTCDirectError(f"DTLS with {self._where()} failed (wrong certhash?)")
        if self.server:
            self.client_fingerprint = dtls.peer_fingerprint
            server_fp = self.certificate.fingerprint
        else:
            self.client_fingerprint = self.certificate.fingerprint
            server_fp = self.server_fingerprint  # checked by DTLS above
        assert self.client_fingerprint is not None and server_fp is not None

        self.sctp = sctp = RTCSctpTransport(dtls, port=SCTP_PORT)
        muxed = self.muxed = WebRTCMuxedConnection(self._open_channel, self.close)
        # inbound channels are accepted from now on, even before Noise ends (the spec
        # asks handlers to be in place before the handshake)
        sctp.on("datachannel", lambda ch: _stream_for(muxed, ch, inbound=True))
        hs_channel = RTCDataChannel(sctp, RTCDataChannelParameters(label="", negotiated=True, id=0))
        hs_stream = _stream_for(None, hs_channel, inbound=False)
        assert hs_stream is not None
        await sctp.start(RTCSctpCapabilities(maxMessageSize=MAX_MESSAGE_SIZE), SCTP_PORT)
        prologue = noise_prologue(self.client_fingerprint, server_fp)
        noise = NoiseSecurity(self.private_key, handshake_timeout=None)
        if self.server:
            session = await noise.secure_outbound(hs_stream, None, prologue=prologue)
        else:
            session = await noise.secure_inbound(hs_stream, prologue=prologue)
        # channel 0 served its purpose; the spec closes it
        hs_channel.close()
        return muxed, session

    async def _open_channel(self) -> WebRTCStream:
        from aiortc import RTCDataChannel, RTCDataChannelParameters

        if self.sctp is None or self._closed:
            raise WebRTCDirectError("the WebRTC connection is closed")
        ch = RTCDataChannel(self.sctp, RTCDataChannelParameters(label=""))
        stream = _stream_for(self.muxed, ch, inbound=False)
        assert stream is not None
        return stream

    def _on_transport_state(self) -> None:
        states = (getattr(self.ice, "state", None), getattr(self.dtls, "state", None))
        if any(s in ("failed", "closed") for s in states) and not self._closed:
            log.debug("session %s ended (ICE %s, DTLS %s)", self._where(), *states)
            asyncio.ensure_future(self.close())

    def _where(self) -> str:
        return f"{self.peer[0]}:{self.peer[1]}"

    async def close(self) -> None:
        if self._close_task is None:
            self._close_task = asyncio.ensure_future(self._do_close())
        await asyncio.shield(self._close_task)

    async def _do_close(self) -> None:
        self._closed = True
        if self.muxed is not None:
            self.muxed.transport_closed()
        for part in (self.sctp, self.dtls, self.ice):
            if part is None:
                continue
            try:
                await asyncio.wait_for(part.stop(), 5.0)
            except Exception as exc:  # noqa: BLE001 - closing anyway
                log.debug("stopping %s failed: %s", type(part).__name__, exc)
        if self.ice is None:  # never started: the protocol is still routed
            self.protocol.transport.close()
        if self.on_closed is not None:
            cb, self.on_closed = self.on_closed, None
            cb(self)


@functools.lru_cache(maxsize=1)
def _dtls_classes() -> tuple[type, type]:
    """(server, client) RTCDtlsTransport classes, made on first use (aiortc is lazy)."""
    from aiortc import RTCDtlsTransport

    class ServerDtls(RTCDtlsTransport):
        """The client's certificate is not known in advance (webrtc-direct step 7):
        accept it, and keep its fingerprint for the Noise prologue."""

        peer_fingerprint: bytes | None = None

        def _validate_peer_identity(self, remoteParameters: Any) -> None:
            from cryptography.hazmat.primitives.serialization import Encoding

            cert = self._ssl.get_peer_certificate(as_cryptography=True)
            if cert is None:
                self._set_state(_dtls_state("FAILED"))
                return
            self.peer_fingerprint = fingerprint_of_der(cert.public_bytes(Encoding.DER))

    class ClientDtls(RTCDtlsTransport):
        pass

    return ServerDtls, ClientDtls


def _dtls_state(name: str) -> Any:
    from aiortc.rtcdtlstransport import State

    return getattr(State, name)


# --- the listener ------------------------------------------------------------------------------------------
class WebRTCDirectListener:
    def __init__(self, transport: "WebRTCDirectTransport", handler: "ConnectionHandler") -> None:
        self._t = transport
        self._handler = handler
        self._mux: _UdpMux | None = None
        self._addrs: list[Multiaddr] = []
        self._sessions: set[_Session] = set()
        self._handshaking = 0
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closed = False
        #: counters for tests and metrics
        self.stats = {"accepted": 0, "established": 0, "failed": 0, "dropped": 0}

    async def start(self, family: str, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        sock_family = socket.AF_INET6 if family == "ip6" else socket.AF_INET
        try:
            transport, mux = await loop.create_datagram_endpoint(
                lambda: _UdpMux(self._on_unknown), local_addr=(host, port), family=sock_family
            )
        except OSError as exc:
            raise TransportError(f"cannot listen on UDP {host}:{port}: {exc.strerror or exc}") from None
        self._mux = mux
        bound = transport.get_extra_info("sockname")
        self._addrs = [listen_multiaddr(family, host, int(bound[1]), self._t.certificate.der)]

    @property
    def addrs(self) -> list[Multiaddr]:
        return list(self._addrs)

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    @property
    def handshaking(self) -> int:
        return self._handshaking

    def _on_unknown(self, data: bytes, peer: tuple[str, int]) -> None:
        from aioice import stun

        if self._closed or self._mux is None:
            return
        try:
            msg = stun.parse_message(data)
        except ValueError:
            return  # not STUN: nothing to say to an unknown address
        if msg.message_class != stun.Class.REQUEST or msg.message_method != stun.Method.BINDING:
            return
        username = msg.attributes.get("USERNAME")
        ufrag = ufrag_from_stun_username(username) if isinstance(username, str) else None
        if ufrag is None or "MESSAGE-INTEGRITY" not in msg.attributes:
            self.stats["dropped"] += 1
            return
        if not msg.check_message_integrity(ufrag.encode()):
            self.stats["dropped"] += 1
            return
        if self._handshaking >= self._t.max_handshakes or len(self._sessions) >= self._t.max_connections:
            # the client retransmits; it gets in once a slot frees up or its own timer ends
            self.stats["dropped"] += 1
            log.debug("webrtc-direct: busy, dropping STUN from %s:%s", *peer)
            return
        assert self._t.private_key is not None
        session = _Session(
            server=True, mux=self._mux, peer=peer, ufrag=ufrag, certificate=self._t.certificate,
            private_key=self._t.private_key, server_fingerprint=None, on_closed=self._sessions.discard,
        )
        self._sessions.add(session)
        self.stats["accepted"] += 1
        session.protocol.datagram_received(data, peer)  # the request that started it all
        task = asyncio.ensure_future(self._run(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, session: _Session) -> None:
        self._handshaking += 1
        try:
            try:
                muxed, noise = await asyncio.wait_for(session.establish(), self._t.handshake_timeout)
            finally:
                self._handshaking -= 1
        except asyncio.TimeoutError:
            self.stats["failed"] += 1
            log.info("webrtc-direct handshake with %s timed out after %.0f s", session._where(), self._t.handshake_timeout)
            await session.close()
            return
        except (PywasmError, ConnectionError, AssertionError, ValueError) as exc:
            self.stats["failed"] += 1
            log.info("webrtc-direct handshake with %s failed: %s", session._where(), exc)
            await session.close()
            return
        except asyncio.CancelledError:
            await session.close()
            raise
        self.stats["established"] += 1
        assert session.client_fingerprint is not None
        from pywasm.multiformats import multibase

        fam = "ip6" if ":" in session.peer[0] else "ip4"
        remote_addr = Multiaddr(
            f"/{fam}/{session.peer[0]}/udp/{session.peer[1]}/webrtc-direct/certhash/"
            f"{multibase.encode('base64url', session.client_fingerprint)}"
        )
        conn = WebRTCDirectConnection(
            local_peer=noise.local_peer, remote_peer=noise.remote_peer, remote_public_key=noise.remote_public_key,
            local_addr=self._addrs[0] if self._addrs else None, remote_addr=remote_addr, muxed=muxed, session=session,
        )
        try:
            await self._handler(conn)
        except Exception as exc:  # noqa: BLE001 - the host refused it: close, keep serving
            log.info("webrtc-direct connection from %s refused: %s", session._where(), exc)
            await session.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(s.close() for s in list(self._sessions)), return_exceptions=True)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._mux is not None and self._mux.transport is not None:
            self._mux.transport.close()
            try:
                await asyncio.wait_for(asyncio.shield(self._mux.closed), 2.0)
            except asyncio.TimeoutError:
                pass


# --- the transport ------------------------------------------------------------------------------------------
class WebRTCDirectTransport:
    """Listens (and dials, natively) ``/udp/<port>/webrtc-direct`` addresses.

    ``certificate``: a :class:`DtlsCertificate`, or ``cert_path`` to load or create one
    (pywasm-relay keeps it in its data dir). Without either, a fresh certificate per
    transport instance. The host calls :meth:`bind` with its key before listening.
    """

    def __init__(
        self,
        *,
        certificate: DtlsCertificate | None = None,
        cert_path: str | None = None,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        max_handshakes: int = DEFAULT_MAX_HANDSHAKES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if handshake_timeout <= 0 or max_handshakes < 1 or max_connections < 1:
            raise ConfigError("webrtc-direct timeouts and limits must be positive")
        self._certificate = certificate
        self._cert_path = cert_path
        self.handshake_timeout = handshake_timeout
        self.max_handshakes = max_handshakes
        self.max_connections = max_connections
        self.private_key: "PrivateKey | None" = None
        self.local_peer: "PeerId | None" = None
        self.listeners: list[WebRTCDirectListener] = []

    @property
    def certificate(self) -> DtlsCertificate:
        if self._certificate is None:
            self._certificate = (
                DtlsCertificate.load_or_create(self._cert_path) if self._cert_path else DtlsCertificate.generate()
            )
        return self._certificate

    def bind(self, ctx: Any) -> None:
        self.private_key = ctx.private_key
        self.local_peer = ctx.peer_id

    @staticmethod
    def _listen_parts(addr: Multiaddr) -> tuple[str, str, int] | None:
        comps = addr.components()
        if comps and comps[-1][0] == "p2p":
            comps = comps[:-1]
        comps = [c for c in comps if c[0] != "certhash"]
        if len(comps) != 3:
            return None
        (fam, host), (udp, port), (proto, _) = comps
        if fam not in ("ip4", "ip6") or udp != "udp" or proto != "webrtc-direct" or host is None or port is None:
            return None
        return fam, host, int(port)

    def can_listen(self, addr: Multiaddr) -> bool:
        return self._listen_parts(addr) is not None

    def can_dial(self, addr: Multiaddr) -> bool:
        return parse_webrtc_direct(addr) is not None

    async def listen(self, addr: Multiaddr, handler: "ConnectionHandler") -> WebRTCDirectListener:
        parts = self._listen_parts(addr)
        if parts is None:
            raise TransportError(f"not a webrtc-direct listen address: {addr}")
        if self.private_key is None:
            raise ConfigError("WebRTCDirectTransport is not bound to a host (Transport.bind)")
        listener = WebRTCDirectListener(self, handler)
        await listener.start(*parts)
        self.listeners.append(listener)
        return listener

    async def dial(self, addr: Multiaddr) -> WebRTCDirectConnection:
        """Dial natively (as a browser would, minus SDP): a fresh socket and certificate
        per connection, the server's certhash checked by DTLS, its peer id by Noise."""
        wa = parse_webrtc_direct(addr)
        if wa is None:
            raise DialError(f"not a webrtc-direct address: {addr}")
        if self.private_key is None:
            raise ConfigError("WebRTCDirectTransport is not bound to a host (Transport.bind)")
        from pywasm.identity import PeerId

        expected = PeerId.from_string(wa.peer_id) if wa.peer_id else None
        loop = asyncio.get_running_loop()
        peer = (wa.host, wa.port)
        family = socket.AF_INET6 if wa.family == "ip6" else socket.AF_INET
        if wa.host in ("127.0.0.1", "::1"):
            local_host = wa.host
        else:
            local_host = "::" if wa.family == "ip6" else "0.0.0.0"
        # only the server is routed on this socket: anything else is dropped
        transport, mux = await loop.create_datagram_endpoint(
            lambda: _UdpMux(lambda data, src: None), local_addr=(local_host, 0), family=family
        )
        session = _Session(
            server=False, mux=mux, peer=peer, ufrag=random_ufrag(), certificate=DtlsCertificate.generate(
                datetime.timedelta(days=14)),
            private_key=self.private_key, server_fingerprint=wa.server_fingerprint,
            on_closed=lambda s: transport.close(),
        )
        try:
            muxed, noise = await asyncio.wait_for(session.establish(), self.handshake_timeout)
        except asyncio.TimeoutError:
            await session.close()
            raise HandshakeTimeoutError(f"webrtc-direct dial to {addr} timed out after {self.handshake_timeout:g} s") from None
        except PywasmError:
            await session.close()
            raise
        except (ConnectionError, ValueError, AssertionError) as exc:
            await session.close()
            raise DialError(f"webrtc-direct dial to {addr} failed: {exc}") from None
        except BaseException:
            await session.close()
            raise
        if expected is not None and noise.remote_peer != expected:
            await session.close()
            raise PeerIdMismatchError(f"expected peer {expected}, but the remote authenticated as {noise.remote_peer}")
        return WebRTCDirectConnection(
            local_peer=noise.local_peer, remote_peer=noise.remote_peer, remote_public_key=noise.remote_public_key,
            local_addr=None, remote_addr=addr, muxed=muxed, session=session,
        )


__all__ = [
    "AIORTC_INTERNALS",
    "CERT_FILE_NAME",
    "DEFAULT_LISTEN",
    "DtlsCertificate",
    "WebRTCDirectConnection",
    "WebRTCDirectError",
    "WebRTCDirectListener",
    "WebRTCDirectTransport",
]
