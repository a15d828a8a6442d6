"""DCUtR, direct connection upgrade through relay (libp2p/specs relay/DCUtR.md).

Roles: the peer that *received* the relayed (limited) connection initiates (spec: "B").
It opens ``/libp2p/dcutr`` over the relayed connection, sends ``CONNECT`` with its
addresses, measures the round trip until the peer's ``CONNECT`` arrives, sends ``SYNC``
and dials the peer's addresses after RTT/2. The other peer dials as soon as ``SYNC``
arrives, so both dials leave at about the same time: that is what opens NAT mappings on
both sides (TCP simultaneous open, QUIC). A failed round is retried on a fresh stream.

A direct connection counts only if it is not limited and authenticates as the same peer;
the host then prefers it for new streams (``Host.dial`` picks non-limited connections).
The relayed connection is left open: the caller decides when to drop it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from ..errors import DialError, HandshakeTimeoutError, ProtocolError, PywasmError
from ..multiformats.multiaddr import Multiaddr
from ..protocols.dcutr_pb import DCUTR, MAX_MESSAGE_SIZE, HolePunch, HolePunchType, direct_addrs, parse
from ..streams import encode_lp
from .base import Service

if TYPE_CHECKING:
    from ..host.connection import Connection, HostStream
    from ..identity import PeerId

log = logging.getLogger("pywasm.services.dcutr")

DEFAULT_TIMEOUT = 10.0  # one CONNECT/SYNC exchange
DEFAULT_DIAL_TIMEOUT = 10.0  # one direct dial attempt
DEFAULT_MAX_ATTEMPTS = 3  # spec: "retry ... up to 3 times"
# peers being upgraded at once (each holds a stream and dials)
DEFAULT_MAX_CONCURRENT = 32
# our addresses sent in one CONNECT
MAX_OWN_ADDRS = 16


class DCUtRError(ProtocolError):
    """The direct upgrade failed (no addresses, every dial failed, bad messages ...)."""


class DCUtRService(Service):
    """``host.services["dcutr"]``: upgrades relayed connections to direct ones."""

    name = "dcutr"
    protocols = (DCUTR,)
    # it runs over the relayed connection by definition
    allow_limited = True

    def __init__(
        self,
        *,
        auto: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        dial_timeout: float = DEFAULT_DIAL_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
        addrs: Callable[[], list[Multiaddr]] | None = None,
    ) -> None:
        super().__init__()
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.auto = auto
        self.timeout = timeout
        self.dial_timeout = dial_timeout
        self.max_attempts = max_attempts
        self.max_concurrent = max_concurrent
        self.addr_source = addrs
        self._running: dict["PeerId", asyncio.Task[Any]] = {}
        # last outcome per peer (bounded by the peerstore's idea of peers: trimmed below)
        self.results: dict["PeerId", str] = {}
        self.stats: dict[str, int] = {"attempts": 0, "upgraded": 0, "failed": 0, "responded": 0}
        self.last_rtt: float | None = None

    # ------------------------------------------------------------ our addresses
    def own_addrs(self) -> list[Multiaddr]:
        """What we put in CONNECT: listen addresses and what peers observed of us (identify),
        never relayed ones."""
        if self.addr_source is not None:
            addrs = list(self.addr_source())
        else:
            addrs = list(self.host.listen_addrs())
            ident = self.host.services.get("identify")
            addrs += list(getattr(ident, "observed_addrs", []))
        out: list[Multiaddr] = []
        for ma in addrs:
            if "p2p-circuit" in ma.protocols() or ma in out:
                continue
            out.append(ma)
        return out[:MAX_OWN_ADDRS]

    def _connect_msg(self) -> bytes:
        return encode_lp(HolePunch(HolePunchType.CONNECT, [a.to_bytes() for a in self.own_addrs()]).encode())

    # ------------------------------------------------------------ events
    def on_connection(self, conn: "Connection") -> None:
        if not (self.auto and conn.limited and str(conn.direction) == "inbound"):
            return
        peer = conn.remote_peer
        if peer in self._running or len(self._running) >= self.max_concurrent:
            return
        task = self.spawn(self._auto_upgrade(conn), f"dcutr with {peer}")
        if task is not None:
            self._running[peer] = task
            task.add_done_callback(lambda t, p=peer: self._running.pop(p, None) if self._running.get(p) is t else None)

    async def _auto_upgrade(self, conn: "Connection") -> None:
        try:
            await self.upgrade(conn)
        except PywasmError as exc:
            log.info("dcutr with %s failed: %s", conn.remote_peer, exc)

    def upgrading(self, peer: "PeerId") -> asyncio.Task[Any] | None:
        """The automatic upgrade in flight for ``peer``, if any."""
        return self._running.get(peer)

    # ------------------------------------------------------------ initiator (B)
    async def upgrade(self, conn: "Connection") -> "Connection":
        """Run DCUtR as the initiator over the relayed ``conn``; returns the direct
        connection. :class:`DCUtRError` when every attempt failed."""
        peer = conn.remote_peer
        errors: list[str] = []
        for attempt in range(1, self.max_attempts + 1):
            if conn.is_closed:
                errors.append("relayed connection closed")
                break
            self.stats["attempts"] += 1
            try:
                their = await asyncio.wait_for(self._exchange_as_initiator(conn), self.timeout)
            except asyncio.TimeoutError:
                errors.append(f"attempt {attempt}: no answer within {self.timeout:g} s")
                continue
            except DCUtRError:
                self._record(peer, "failed")
                raise
            except PywasmError as exc:
                errors.append(f"attempt {attempt}: {exc}")
                continue
            addrs, rtt = their
            await asyncio.sleep(rtt / 2)
            direct = await self._dial_any(peer, addrs)
            if direct is not None:
                self._record(peer, "upgraded")
                return direct
            errors.append(f"attempt {attempt}: no direct dial to {', '.join(map(str, addrs))} succeeded")
        self._record(peer, "failed")
        raise DCUtRError(f"dcutr with {peer} failed: " + "; ".join(errors))

    async def _exchange_as_initiator(self, conn: "Connection") -> tuple[list[Multiaddr], float]:
        stream = await conn.new_stream([DCUTR], self.timeout, allow_limited=True)
        try:
            start = time.monotonic()
            await stream.write(self._connect_msg())
            data = await stream.read_lp(MAX_MESSAGE_SIZE)
            rtt = time.monotonic() - start
            if data is None:
                raise ProtocolError("dcutr: stream ended before the peer's CONNECT")
            addrs = direct_addrs(parse(data, HolePunchType.CONNECT).obs_addrs)
            if not addrs:
                # tell the peer nothing more: a SYNC would make it dial for nothing
                raise DCUtRError(f"dcutr: {conn.remote_peer} sent no direct address to dial")
            await stream.write(encode_lp(HolePunch(HolePunchType.SYNC).encode()))
        except BaseException:
            await stream.reset()
            raise
        await stream.close()
        self.last_rtt = rtt
        return addrs, rtt

    # ------------------------------------------------------------ responder (A)
    async def handle(self, stream: "HostStream", conn: "Connection") -> None:
        try:
            addrs = await asyncio.wait_for(self._exchange_as_responder(stream), self.timeout)
        except asyncio.TimeoutError:
            raise HandshakeTimeoutError(f"dcutr with {conn.remote_peer} timed out") from None
        self.stats["responded"] += 1
        if not addrs:
            log.debug("dcutr: %s sent no direct address; nothing to dial", conn.remote_peer)
            return
        direct = await self._dial_any(conn.remote_peer, addrs)
        self._record(conn.remote_peer, "upgraded" if direct is not None else "failed")

    async def _exchange_as_responder(self, stream: "HostStream") -> list[Multiaddr]:
        data = await stream.read_lp(MAX_MESSAGE_SIZE)
        if data is None:
            raise ProtocolError("dcutr: stream ended before CONNECT")
        addrs = direct_addrs(parse(data, HolePunchType.CONNECT).obs_addrs)
        await stream.write(self._connect_msg())
        data = await stream.read_lp(MAX_MESSAGE_SIZE)
        if data is None:
            # the initiator gave up (e.g. we sent no address): not an error of ours
            await stream.close()
            return []
        parse(data, HolePunchType.SYNC)
        await stream.close()
        return addrs

    # ------------------------------------------------------------ dialing
    async def _dial_any(self, peer: "PeerId", addrs: list[Multiaddr]) -> "Connection | None":
        """Dial ``addrs`` at once (hole punching is about timing); keep the first direct
        connection that authenticates as ``peer``, close the others."""
        host = self.host

        async def one(addr: Multiaddr) -> "Connection | None":
            try:
                # without /p2p/ the host opens a fresh connection even though the relayed
                # one exists (with /p2p/ it would hand back the relayed one)
                c = await host.dial(addr, timeout=self.dial_timeout)
            except DialError as exc:
                log.debug("dcutr: direct dial of %s at %s failed: %s", peer, addr, exc)
                return None
            if c.limited or c.remote_peer != peer:
                if c.remote_peer != peer:
                    log.info("dcutr: %s answered as %s, not %s", addr, c.remote_peer, peer)
                # a fresh connection that is of no use here (another relayed one, a stranger)
                await c.close()
                return None
            return c

        results = await asyncio.gather(*(one(a) for a in addrs))
        direct = [c for c in results if c is not None]
        for extra in direct[1:]:
            if extra is not direct[0]:
                await extra.close()
        return direct[0] if direct else None

    def _record(self, peer: "PeerId", outcome: str) -> None:
        self.stats[outcome] += 1
        self.results[peer] = outcome
        while len(self.results) > 1024:
            del self.results[next(iter(self.results))]


__all__ = ["DCUTR", "DCUtRService", "DCUtRError"]
