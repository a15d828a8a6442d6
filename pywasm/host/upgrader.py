"""The upgrade pipeline: raw connection -> security -> muxer -> :class:`Connection`.

Each step is agreed with multistream-select (security first, ``/noise`` by default; then
the muxer, yamux before mplex) and bounded by its own timeout from :class:`HostConfig`.
When Noise already agreed a muxer in its handshake extensions, the second
multistream-select round trip is skipped. Any failure resets the raw connection and
surfaces as a :class:`~pywasm.errors.PywasmError`.

Simultaneous open (hole punching): when two peers' dials meet as ONE TCP connection, both
are dialers, yet multistream-select, Noise and the muxer each need one initiator. An
outbound upgrade given ``simultaneous_open=window`` first listens: if within ``window``
seconds the peer speaks as a multistream dialer (header and a proposal), we take the
listener's roles (multistream listener, security responder, muxer responder) on our
outbound connection; if it stays silent, or only sends a listener's header, we proceed as
the dialer. go-libp2p's DCUtR fixes the roles (its initiator "B" is the client and "A"
the server, B falling back to server for older peers); @libp2p/dcutr asks for the opposite
(B as server), although in js-libp2p 3.3 that option is dropped on the way to the upgrader,
so js dials as a plain client in both roles. Listening first meets all of these; between
two pywasm peers the side with the shorter window becomes the dialer (DCUtR gives B the
shorter one, so B is the client, as in go).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Awaitable, Sequence, TypeVar

from ..errors import HandshakeError, HandshakeTimeoutError, NegotiationError, PeerIdMismatchError, PywasmError
from ..interfaces import is_upgraded
from ..protocols.multistream import PROTOCOL_ID, decode_frame, negotiate_inbound, negotiate_outbound
from ..streams import BufferedReader
from .config import HostConfig
from .connection import Connection, Direction, with_leftover

if TYPE_CHECKING:
    from ..identity import PeerId
    from ..interfaces import MuxerFactory, RawConnection, SecurityProtocol

_T = TypeVar("_T")


async def _bounded(aw: Awaitable[_T], timeout: float, what: str) -> _T:
    try:
        return await asyncio.wait_for(aw, timeout)
    except asyncio.TimeoutError as exc:
        # multistream/noise raise HandshakeTimeoutError themselves; this covers the rest
        if isinstance(exc, HandshakeTimeoutError):
            raise
        raise HandshakeTimeoutError(f"{what} did not finish within {timeout:g} s") from None


class Upgrader:
    def __init__(
        self,
        security: Sequence["SecurityProtocol"],
        muxers: Sequence["MuxerFactory"],
        config: HostConfig,
    ) -> None:
        if not security:
            raise ValueError("at least one security protocol is required")
        if not muxers:
            raise ValueError("at least one muxer is required")
        self.security = {s.protocol_id: s for s in security}
        self.muxers = {m.protocol_id: m for m in muxers}
        self.config = config

    @property
    def security_ids(self) -> list[str]:
        return list(self.security)

    @property
    def muxer_ids(self) -> list[str]:
        return list(self.muxers)

    async def upgrade_outbound(
        self, raw: "RawConnection", remote_peer: "PeerId | None", *, simultaneous_open: float | None = None
    ) -> Connection:
        """Dialer side; checks the authenticated peer is ``remote_peer`` when given
        (:class:`~pywasm.errors.PeerIdMismatchError` otherwise). ``simultaneous_open``:
        see the module doc (ignored by self-securing transports)."""
        if is_upgraded(raw):
            return await self._adopt(raw, remote_peer, Direction.OUTBOUND)
        if simultaneous_open is not None:
            return await self._guard(raw, self._simultaneous(raw, remote_peer, simultaneous_open))
        return await self._guard(raw, self._outbound(raw, remote_peer))

    async def upgrade_inbound(self, raw: "RawConnection") -> Connection:
        if is_upgraded(raw):
            return await self._adopt(raw, None, Direction.INBOUND)
        return await self._guard(raw, self._inbound(raw))

    async def _adopt(self, up: Any, remote_peer: "PeerId | None", direction: Direction) -> Connection:
        """Wrap a connection the transport secured and multiplexed itself (QUIC, WebTransport).

        The transport checks the peer id during its handshake; checking again here keeps
        a transport bug from handing us the wrong peer.
        """
        if remote_peer is not None and up.remote_peer != remote_peer:
            try:
                await up.muxed.close()
            except Exception:  # noqa: BLE001 - the mismatch is the error to report
                pass
            raise PeerIdMismatchError(f"dialed {remote_peer} but the transport authenticated {up.remote_peer}")
        return Connection(
            up,
            up.muxed,
            security_protocol=up.security_protocol,
            muxer_protocol=up.muxer_protocol,
            direction=direction,
            remote_addr=getattr(up, "remote_addr", None),
            local_addr=getattr(up, "local_addr", None),
            stream_negotiation_timeout=self.config.stream_negotiation_timeout,
            limited=bool(getattr(up, "limited", False)),
        )

    async def _guard(self, raw: "RawConnection", coro: Awaitable[Connection]) -> Connection:
        try:
            return await coro
        except BaseException as exc:
            try:
                await raw.reset()
            except Exception:  # noqa: BLE001 - already failing; the first error matters
                pass
            if isinstance(exc, Exception) and not isinstance(exc, PywasmError):
                # a transport or driver failure that is not typed: type it
                raise HandshakeError(f"connection upgrade failed: {type(exc).__name__}: {exc}") from exc
            raise

    async def _simultaneous(self, raw: "RawConnection", remote_peer: "PeerId | None", window: float) -> Connection:
        peer_dials, early = await _probe_role(raw, window)
        if not peer_dials:
            return await self._outbound(raw, remote_peer, BufferedReader(raw, early))
        conn = await self._inbound(raw, BufferedReader(raw, early), Direction.OUTBOUND)
        if remote_peer is not None and conn.remote_peer != remote_peer:
            await conn.muxed.close()
            raise PeerIdMismatchError(f"dialed {remote_peer} but the peer authenticated as {conn.remote_peer}")
        return conn

    async def _outbound(
        self, raw: "RawConnection", remote_peer: "PeerId | None", reader: BufferedReader | None = None
    ) -> Connection:
        cfg = self.config
        sec_id, reader = await negotiate_outbound(
            raw, self.security_ids, reader, timeout=cfg.security_negotiation_timeout
        )
        security = self.security[sec_id]
        secure = await _bounded(
            security.secure_outbound(with_leftover(raw, reader), remote_peer),
            cfg.security_timeout,
            f"{sec_id} handshake",
        )
        mux_id, stream = await self._agree_muxer(secure, initiator=True)
        return self._connection(raw, secure, sec_id, mux_id, stream, Direction.OUTBOUND)

    async def _inbound(
        self, raw: "RawConnection", reader: BufferedReader | None = None, direction: Direction = Direction.INBOUND
    ) -> Connection:
        """The listener's roles; ``direction`` is OUTBOUND for our own dial that the peer
        is driving as the dialer (simultaneous open)."""
        cfg = self.config
        sec_id, reader = await negotiate_inbound(
            raw, self.security_ids, reader, timeout=cfg.security_negotiation_timeout
        )
        security = self.security[sec_id]
        secure = await _bounded(
            security.secure_inbound(with_leftover(raw, reader)),
            cfg.security_timeout,
            f"{sec_id} handshake",
        )
        mux_id, stream = await self._agree_muxer(secure, initiator=False)
        return self._connection(raw, secure, sec_id, mux_id, stream, direction, initiator=False)

    async def _agree_muxer(self, secure: Any, initiator: bool) -> tuple[str, Any]:
        early = getattr(secure, "early_muxer", None)
        if early is not None and early in self.muxers:
            return early, secure
        timeout = self.config.muxer_timeout
        try:
            if initiator:
                mux_id, reader = await negotiate_outbound(secure, self.muxer_ids, timeout=timeout)
            else:
                mux_id, reader = await negotiate_inbound(secure, self.muxer_ids, timeout=timeout)
        except NegotiationError as exc:
            raise NegotiationError(f"muxer negotiation failed: {exc}") from exc
        return mux_id, with_leftover(secure, reader)

    def _connection(
        self,
        raw: "RawConnection",
        secure: Any,
        sec_id: str,
        mux_id: str,
        stream: Any,
        direction: Direction,
        initiator: bool | None = None,
    ) -> Connection:
        # the muxer's role follows the security handshake's, which is the direction's
        # except after a simultaneous open
        if initiator is None:
            initiator = direction is Direction.OUTBOUND
        muxed = self.muxers[mux_id].create(stream, initiator)
        return Connection(
            secure,
            muxed,
            security_protocol=sec_id,
            muxer_protocol=mux_id,
            direction=direction,
            remote_addr=getattr(raw, "remote_addr", None),
            local_addr=getattr(raw, "local_addr", None),
            stream_negotiation_timeout=self.config.stream_negotiation_timeout,
            # relayed raw connections (circuit relay) say so with a ``limited`` attribute
            limited=bool(getattr(raw, "limited", False)),
        )


# bytes we accept from the peer before deciding roles (a header and a proposal are ~30)
_PROBE_LIMIT = 4096


async def _probe_role(raw: "RawConnection", window: float) -> tuple[bool, bytes]:
    """Listen up to ``window`` seconds: ``(True, bytes)`` as soon as the peer has sent a
    multistream header and a proposal (it acts as the dialer), else ``(False, bytes)``
    (silence, or a listener's eagerly sent header). The bytes read are handed back."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + window
    buf = bytearray()
    while True:
        read = loop.create_task(raw.read(65536))
        try:
            done, _ = await asyncio.wait({read}, timeout=max(deadline - loop.time(), 0))
        except BaseException:
            read.cancel()
            raise
        if not done:
            read.cancel()
            await asyncio.wait({read})
            if not read.cancelled() and read.exception() is None:
                # a chunk that arrived as the window closed belongs to the negotiation
                buf += read.result()
            return False, bytes(buf)
        chunk = read.result()
        if not chunk:
            raise NegotiationError("connection closed before the simultaneous-open roles were agreed")
        buf += chunk
        first = decode_frame(buf)
        if first is not None:
            if first[0] != PROTOCOL_ID:
                raise NegotiationError(f"remote does not speak {PROTOCOL_ID} (sent {first[0][:80]!r})")
            if decode_frame(buf, first[1]) is not None:
                return True, bytes(buf)
        if len(buf) > _PROBE_LIMIT:
            raise NegotiationError("peer sent too much before the simultaneous-open roles were agreed")


__all__ = ["Upgrader"]
