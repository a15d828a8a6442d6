"""DCUtR, direct connection upgrade through relay (libp2p/specs relay/DCUtR.md).

Roles: the peer that *received* the relayed (limited) connection initiates (spec: "B").
It opens ``/libp2p/dcutr`` over the relayed connection, sends ``CONNECT`` with its
addresses, measures the round trip until the peer's ``CONNECT`` arrives, sends ``SYNC``
and dials the peer's addresses after RTT/2. The other peer ("A") dials as soon as
``SYNC`` arrives, so both dials leave at about the same time: that is what opens NAT
mappings on both sides (TCP simultaneous open, QUIC).

A failed round is retried on the same stream, as the spec asks (step 6): B sends a new
``CONNECT`` and A, which keeps reading rounds until B closes the stream, answers it.
go-libp2p and js-libp2p answer a single round per stream and then close it; when a reused
stream turns out closed, B opens a fresh one for that round.

TCP hole punching: both dials may become ONE TCP connection on which both peers are
dialers. Every hole-punching dial is a ``simultaneous_open`` dial (see
:mod:`pywasm.host.upgrader`): it first listens for the peer acting as the dialer. B listens
briefly and then acts as the dialer (the client, as in go-libp2p); A listens longer, so
against a pywasm B it is the listener, and against a B that waits for the dialer to speak
(go's fallback, @libp2p/dcutr's intent) it becomes the dialer. A peer that dials as a
plain client (js-libp2p 3.3 in both roles, go's B in its first try) makes us the
listener at once. Behind a NAT the dials must leave from the listening port
(``TCPTransport(port_reuse=True)``) so the hole matches the address the peer dials.

QUIC hole punching is not done here: it needs QUIC dials to leave from the listening UDP
socket, which pywasm's QUIC transport does not do yet (it dials from a fresh socket).

A direct connection counts only if it is not limited and authenticates as the same peer;
the host then prefers it for new streams (``Host.dial`` picks non-limited connections).
The relayed connection is left open: the caller decides when to drop it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from ..errors import (
    ConnectionClosedError,
    DialError,
    HandshakeTimeoutError,
    ProtocolError,
    PywasmError,
    StreamClosedError,
    StreamResetError,
)
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
            if "p2p-circuit" in ma.protocols() or ma in out or _unspecified(ma):
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
        stream: "HostStream | None" = None
        try:
            for attempt in range(1, self.max_attempts + 1):
                if conn.is_closed:
                    errors.append("relayed connection closed")
                    break
                self.stats["attempts"] += 1
                try:
                    stream, addrs, rtt = await asyncio.wait_for(self._round_as_initiator(conn, stream), self.timeout)
                except asyncio.TimeoutError:
                    errors.append(f"attempt {attempt}: no answer within {self.timeout:g} s")
                    log.debug("dcutr with %s: %s", peer, errors[-1])
                    stream = await _drop(stream)
                    continue
                except DCUtRError:
                    self._record(peer, "failed")
                    raise
                except PywasmError as exc:
                    errors.append(f"attempt {attempt}: {exc}")
                    log.debug("dcutr with %s: %s", peer, errors[-1])
                    stream = await _drop(stream)
                    continue
                await asyncio.sleep(rtt / 2)
                direct = await self._dial_any(peer, addrs, initiator_window(rtt))
                if direct is not None:
                    self._record(peer, "upgraded")
                    return direct
                errors.append(f"attempt {attempt}: no direct dial to {', '.join(map(str, addrs))} succeeded")
                log.debug("dcutr with %s: %s", peer, errors[-1])
        finally:
            if stream is not None:
                await _close_quietly(stream)
        self._record(peer, "failed")
        raise DCUtRError(f"dcutr with {peer} failed: " + "; ".join(errors))

    async def _round_as_initiator(
        self, conn: "Connection", stream: "HostStream | None"
    ) -> tuple["HostStream", list[Multiaddr], float]:
        """One CONNECT/SYNC round: on ``stream`` when the peer still reads it, else on a
        new one. Returns the stream (for the next round), the peer's addresses, the RTT."""
        if stream is not None:
            try:
                addrs, rtt = await self._exchange_as_initiator(stream, conn)
                return stream, addrs, rtt
            except _PeerDone:
                # it answered one round per stream (go-libp2p, js-libp2p): open another
                stream = await _drop(stream)
        stream = await conn.new_stream([DCUTR], self.timeout, allow_limited=True)
        try:
            addrs, rtt = await self._exchange_as_initiator(stream, conn)
        except _PeerDone as exc:
            await stream.reset()
            raise ProtocolError(f"dcutr: {exc}") from None
        except BaseException:
            await stream.reset()
            raise
        return stream, addrs, rtt

    async def _exchange_as_initiator(self, stream: "HostStream", conn: "Connection") -> tuple[list[Multiaddr], float]:
        start = time.monotonic()
        try:
            await stream.write(self._connect_msg())
            data = await stream.read_lp(MAX_MESSAGE_SIZE)
        except (StreamClosedError, StreamResetError, ConnectionClosedError) as exc:
            raise _PeerDone(f"stream closed before the peer's CONNECT ({exc})") from None
        rtt = time.monotonic() - start
        if data is None:
            raise _PeerDone("stream ended before the peer's CONNECT")
        addrs = direct_addrs(parse(data, HolePunchType.CONNECT).obs_addrs)
        if not addrs:
            # tell the peer nothing more: a SYNC would make it dial for nothing
            await stream.reset()
            raise DCUtRError(f"dcutr: {conn.remote_peer} sent no direct address to dial")
        await stream.write(encode_lp(HolePunch(HolePunchType.SYNC).encode()))
        self.last_rtt = rtt
        return addrs, rtt

    # ------------------------------------------------------------ responder (A)
    async def handle(self, stream: "HostStream", conn: "Connection") -> None:
        """Answer CONNECT/SYNC rounds on ``stream`` until the initiator closes it; dial the
        initiator's addresses on each SYNC, without waiting for that dial to read the next
        round."""
        peer = conn.remote_peer
        dials: list[asyncio.Task["Connection | None"]] = []
        try:
            for round_no in range(self.max_attempts):
                # a later round comes after the initiator's own dial failed
                wait = self.timeout if round_no == 0 else self.timeout + self.dial_timeout
                try:
                    got = await asyncio.wait_for(self._round_as_responder(stream), wait)
                except asyncio.TimeoutError:
                    if round_no == 0:
                        raise HandshakeTimeoutError(f"dcutr with {peer} timed out") from None
                    break
                if got is None:
                    break  # the initiator closed the stream: done, upgraded or not
                addrs, rtt = got
                self.stats["responded"] += 1
                log.debug("dcutr: round %d from %s, dialing %s", round_no + 1, peer, ", ".join(map(str, addrs)))
                if not addrs:
                    log.debug("dcutr: %s sent no direct address; nothing to dial", peer)
                    continue
                dials.append(asyncio.get_running_loop().create_task(
                    self._dial_any(peer, addrs, responder_window(rtt)), name=f"dcutr dial {peer}"
                ))
            await _close_quietly(stream)
            results = await asyncio.gather(*dials)
        except BaseException:
            for task in dials:
                task.cancel()
            raise
        if dials:
            self._record(peer, "upgraded" if any(r is not None for r in results) else "failed")

    async def _round_as_responder(self, stream: "HostStream") -> tuple[list[Multiaddr], float] | None:
        """One round: their CONNECT, ours, their SYNC. None when the stream ended first."""
        data = await stream.read_lp(MAX_MESSAGE_SIZE)
        if data is None:
            return None
        addrs = direct_addrs(parse(data, HolePunchType.CONNECT).obs_addrs)
        start = time.monotonic()
        await stream.write(self._connect_msg())
        data = await stream.read_lp(MAX_MESSAGE_SIZE)
        if data is None:
            # the initiator gave up (e.g. we sent no address): not an error of ours
            return None
        parse(data, HolePunchType.SYNC)
        return addrs, time.monotonic() - start

    # ------------------------------------------------------------ dialing
    async def _dial_any(self, peer: "PeerId", addrs: list[Multiaddr], window: float) -> "Connection | None":
        """Dial ``addrs`` at once (hole punching is about timing); the first direct
        connection that authenticates as ``peer`` wins and the other dials are cancelled."""
        host = self.host

        async def one(addr: Multiaddr) -> "Connection | None":
            try:
                # dial_address: a fresh connection even though the relayed one exists
                c = await host.dial_address(
                    addr.encapsulate(f"/p2p/{peer}"), timeout=self.dial_timeout, simultaneous_open=window
                )
            except DialError as exc:
                log.debug("dcutr: direct dial of %s at %s failed: %s", peer, addr, exc)
                return None
            if c.limited:
                await c.close()  # another relayed connection: of no use here
                return None
            return c

        tasks = [asyncio.get_running_loop().create_task(one(a)) for a in addrs]
        winner: "Connection | None" = None
        try:
            for next_done in asyncio.as_completed(tasks):
                winner = await next_done
                if winner is not None:
                    break
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return winner

    def _record(self, peer: "PeerId", outcome: str) -> None:
        self.stats[outcome] += 1
        self.results[peer] = outcome
        while len(self.results) > 1024:
            del self.results[next(iter(self.results))]


def _unspecified(ma: Multiaddr) -> bool:
    """0.0.0.0 / :: (a wildcard listener): nobody can dial that."""
    protos = ma.protocols()
    return bool(protos) and protos[0] in ("ip4", "ip6") and ma.value_for(protos[0]) in ("0.0.0.0", "::")


class _PeerDone(PywasmError):
    """The peer closed or reset the DCUtR stream before answering a round."""


def initiator_window(rtt: float) -> float:
    """How long B listens on a hole-punched connection before acting as the dialer."""
    return min(0.25 + 2 * rtt, 2.0)


def responder_window(rtt: float) -> float:
    """A listens longer than B ever does (plus a round trip of skew), so between two
    pywasm peers B is the dialer; a js-libp2p B never speaks first, then A dials."""
    return min(1.0 + 4 * rtt, 5.0)


async def _drop(stream: "HostStream | None") -> None:
    if stream is not None:
        try:
            await stream.reset()
        except Exception:  # noqa: BLE001 - already failing
            pass
    return None


async def _close_quietly(stream: "HostStream") -> None:
    try:
        await asyncio.wait_for(stream.close(), 5.0)
    except Exception:  # noqa: BLE001 - the round's outcome is what matters
        await _drop(stream)


__all__ = ["DCUTR", "DCUtRService", "DCUtRError", "initiator_window", "responder_window"]
