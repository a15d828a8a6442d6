"""Contracts between the layers of the upgrade pipeline.

raw connection (Transport) -> security (SecurityProtocol) -> muxer (MuxerFactory)
-> streams handed to protocol handlers. Each layer sees only the one below through
:class:`~pywasm.streams.Stream`. Transports with their own security and streams
(QUIC, WebTransport, WebRTC) return a :class:`MuxedConnection` directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Awaitable, Callable, Protocol, runtime_checkable

from .streams import Stream

if TYPE_CHECKING:
    from .identity import PeerId, PrivateKey, PublicKey
    from .multiformats.multiaddr import Multiaddr


@runtime_checkable
class RawConnection(Stream, Protocol):
    """A transport connection before any upgrade."""

    local_addr: "Multiaddr | None"
    remote_addr: "Multiaddr"


@runtime_checkable
class SecureConnection(Stream, Protocol):
    """An authenticated, encrypted connection."""

    local_peer: "PeerId"
    remote_peer: "PeerId"
    remote_public_key: "PublicKey"
    # muxer agreed during the security handshake (Noise extensions), if any
    early_muxer: str | None
    raw: RawConnection


class SecurityProtocol(Protocol):
    protocol_id: str

    async def secure_outbound(
        self, conn: RawConnection, remote_peer: "PeerId | None"
    ) -> SecureConnection:
        """Run the handshake as initiator; check the remote is ``remote_peer`` when given."""
        ...

    async def secure_inbound(self, conn: RawConnection) -> SecureConnection: ...


@runtime_checkable
class MuxedStream(Stream, Protocol):
    stream_id: int
    # set by the host once multistream-select agreed on it
    protocol: str | None


class MuxedConnection(Protocol):
    async def open_stream(self) -> MuxedStream: ...

    async def accept_stream(self) -> MuxedStream:
        """Next inbound stream; raises ConnectionClosedError when the connection ends."""
        ...

    async def close(self) -> None: ...

    @property
    def is_closed(self) -> bool: ...


class MuxerFactory(Protocol):
    protocol_id: str

    def create(self, conn: SecureConnection, is_initiator: bool) -> MuxedConnection:
        """Wrap ``conn``; the returned connection starts its own reader task."""
        ...


@runtime_checkable
class UpgradedConnection(Protocol):
    """A connection whose transport authenticated and multiplexed it already.

    QUIC (TLS inside the handshake, native streams), WebTransport (Noise on the first
    stream, native streams) and WebRTC hand these to the host instead of a
    :class:`RawConnection`; the host adopts them without running the upgrader, after
    checking ``remote_peer`` against the dialed ``/p2p`` id.
    """

    local_peer: "PeerId"
    remote_peer: "PeerId"
    remote_public_key: "PublicKey"
    local_addr: "Multiaddr | None"
    remote_addr: "Multiaddr"
    # what the host reports as the connection's security and muxer ("/tls/1.0.0", "quic-v1")
    security_protocol: str
    muxer_protocol: str
    muxed: MuxedConnection


class TransportContext(Protocol):
    """What a self-securing transport learns from its host (see ``Transport.bind``)."""

    private_key: "PrivateKey"
    peer_id: "PeerId"
    # pywasm.host.config.HostConfig: handshake timeouts and limits
    config: object


# A listener calls this with each new connection: raw (to be upgraded) or already upgraded.
ConnectionHandler = Callable[["RawConnection | UpgradedConnection"], Awaitable[None]]


class Listener(Protocol):
    @property
    def addrs(self) -> list["Multiaddr"]:
        """Bound addresses (with the real port when 0 was asked)."""
        ...

    async def close(self) -> None: ...


class Transport(Protocol):
    """Dials and listens on the addresses it claims.

    A transport that secures its own connections (QUIC, WebTransport, WebRTC) also has
    ``bind(ctx: TransportContext) -> None``; the host calls it once before any dial or
    listen, and ``dial`` then returns an :class:`UpgradedConnection`.
    """

    def can_dial(self, addr: "Multiaddr") -> bool: ...

    def can_listen(self, addr: "Multiaddr") -> bool: ...

    async def dial(self, addr: "Multiaddr") -> "RawConnection | UpgradedConnection": ...

    async def listen(self, addr: "Multiaddr", handler: ConnectionHandler) -> Listener: ...


def is_upgraded(conn: object) -> bool:
    """True for an :class:`UpgradedConnection` (it carries its own muxer)."""
    return getattr(conn, "muxed", None) is not None and hasattr(conn, "muxer_protocol")


__all__ = [
    "RawConnection",
    "SecureConnection",
    "SecurityProtocol",
    "MuxedStream",
    "MuxedConnection",
    "MuxerFactory",
    "UpgradedConnection",
    "TransportContext",
    "is_upgraded",
    "Listener",
    "Transport",
    "ConnectionHandler",
]
