"""Circuit relay v2, relay side: the ``/libp2p/circuit/relay/0.2.0/hop`` server.

* ``RESERVE``: a peer gets (or refreshes) one reservation: an expiry, our addresses and a
  voucher signed by us (envelope domain ``libp2p-relay-rsvp``). Bounded in total and per
  IP address; refused over relayed connections. A reservation ends at its expiry or when
  the peer's last direct connection to us closes.
* ``CONNECT``: the source asks for a peer that holds a reservation; we open ``stop`` to
  it over its connection, and on ``OK`` from both we bridge the two streams. Circuits are
  bounded in total and per peer (source and target each count), and each one is cut
  (both streams reset) when it moves more than ``circuit_data`` bytes in one direction or
  lives longer than ``circuit_duration`` seconds. Cutting a circuit touches nothing else.

Bridging copies one ``buffer_size`` chunk at a time per direction and waits for each
write, so a slow reader slows its writer (no unbounded buffering in the relay).
Defaults follow go-libp2p's relay resources (1 h reservations, 2 min / 128 KiB circuits).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConfigError, PywasmError
from ..identity import PeerId
from ..identity.envelope import seal
from ..multiformats.multiaddr import Multiaddr
from ..protocols.circuit_pb import (
    HOP,
    STOP,
    VOUCHER_DOMAIN,
    VOUCHER_PAYLOAD_TYPE,
    HopMessage,
    HopType,
    LimitPB,
    PeerPB,
    ReservationPB,
    Status,
    StopMessage,
    StopType,
    VoucherPB,
    read_message,
    status_name,
    write_message,
)
from .base import Service

if TYPE_CHECKING:
    from ..host.connection import Connection, HostStream

log = logging.getLogger("pywasm.services.relay_hop")

DEFAULT_RESERVATION_TTL = 3600.0
DEFAULT_MAX_RESERVATIONS = 128
DEFAULT_MAX_RESERVATIONS_PER_IP = 8
DEFAULT_MAX_CIRCUITS = 256
DEFAULT_MAX_CIRCUITS_PER_PEER = 16
DEFAULT_CIRCUIT_DURATION = 120.0
DEFAULT_CIRCUIT_DATA = 1 << 17
DEFAULT_HOP_TIMEOUT = 30.0
DEFAULT_BUFFER_SIZE = 16 * 1024
DEFAULT_SWEEP_INTERVAL = 60.0
# relay addresses put in one reservation
MAX_ANNOUNCED_ADDRS = 16


@dataclass
class RelayLimits:
    """Every bound of the relay; 0 for ``circuit_duration``/``circuit_data`` means none."""

    reservation_ttl: float = DEFAULT_RESERVATION_TTL
    max_reservations: int = DEFAULT_MAX_RESERVATIONS
    max_reservations_per_ip: int = DEFAULT_MAX_RESERVATIONS_PER_IP
    max_circuits: int = DEFAULT_MAX_CIRCUITS
    max_circuits_per_peer: int = DEFAULT_MAX_CIRCUITS_PER_PEER
    circuit_duration: float = DEFAULT_CIRCUIT_DURATION
    circuit_data: int = DEFAULT_CIRCUIT_DATA
    hop_timeout: float = DEFAULT_HOP_TIMEOUT
    buffer_size: int = DEFAULT_BUFFER_SIZE
    sweep_interval: float = DEFAULT_SWEEP_INTERVAL

    def __post_init__(self) -> None:
        for name in ("reservation_ttl", "hop_timeout", "sweep_interval"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"relay {name.replace('_', '-')} must be a positive number of seconds, not {value!r}")
        if not isinstance(self.circuit_duration, (int, float)) or self.circuit_duration < 0:
            raise ConfigError(f"relay circuit-duration must be >= 0 seconds (0: no limit), not {self.circuit_duration!r}")
        if self.circuit_duration > 0xFFFFFFFF:
            raise ConfigError("relay circuit-duration does not fit the protocol's 32-bit field")
        if not isinstance(self.circuit_data, int) or self.circuit_data < 0:
            raise ConfigError(f"relay circuit-data must be >= 0 bytes (0: no limit), not {self.circuit_data!r}")
        for name in ("max_reservations", "max_reservations_per_ip", "max_circuits", "max_circuits_per_peer", "buffer_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"relay {name.replace('_', '-')} must be a positive integer, not {value!r}")

    def limit_pb(self) -> LimitPB | None:
        if not self.circuit_duration and not self.circuit_data:
            return None
        return LimitPB(
            duration=int(self.circuit_duration) if self.circuit_duration else None,
            data=self.circuit_data or None,
        )


@dataclass
class RelayStats:
    """Counters since start (for metrics and tests)."""

    reservations_accepted: int = 0
    reservations_refused: int = 0
    circuits_opened: int = 0
    circuits_refused: int = 0
    circuits_cut_data: int = 0
    circuits_cut_duration: int = 0
    bytes_relayed: int = 0
    malformed: int = 0


@dataclass
class _Reservation:
    peer: PeerId
    expire: int  # UNIX seconds, as sent
    ip: str | None  # for the per-IP limit; None when the transport has no IP (memory)
    refreshed: int = 0


class _Cut(Exception):
    def __init__(self, why: str) -> None:
        self.why = why


def _ip_of(conn: "Connection") -> str | None:
    addr = getattr(conn, "remote_addr", None)
    if not isinstance(addr, Multiaddr):
        return None
    for proto in ("ip4", "ip6"):
        value = addr.value_for(proto)
        if value is not None:
            return value
    return None


@dataclass
class _Counts:
    total: int = 0
    per_peer: dict[PeerId, int] = field(default_factory=dict)

    def can_add(self, peers: tuple[PeerId, ...], limits: RelayLimits) -> bool:
        if self.total >= limits.max_circuits:
            return False
        return all(self.per_peer.get(p, 0) < limits.max_circuits_per_peer for p in peers)

    def add(self, peers: tuple[PeerId, ...], delta: int) -> None:
        self.total += delta
        for p in peers:
            n = self.per_peer.get(p, 0) + delta
            if n > 0:
                self.per_peer[p] = n
            else:
                self.per_peer.pop(p, None)


class RelayHopService(Service):
    """The relay (hop) side of circuit relay v2."""

    name = "relay-hop"
    protocols = (HOP,)
    # not on limited connections: the spec says no reservations or circuits over a relay
    allow_limited = False

    def __init__(
        self,
        limits: RelayLimits | None = None,
        *,
        announce: list[Multiaddr] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.limits = limits or RelayLimits()
        # addresses put in reservations; None: our listen addresses
        self.announce = announce
        self.clock = clock
        self.stats = RelayStats()
        self._reservations: dict[PeerId, _Reservation] = {}
        self._circuits = _Counts()

    # --- state --------------------------------------------------------------------------
    @property
    def reservations(self) -> dict[PeerId, int]:
        """Live reservations: peer -> expiry (UNIX seconds)."""
        self._sweep()
        return {p: r.expire for p, r in self._reservations.items()}

    @property
    def circuits(self) -> int:
        return self._circuits.total

    def _sweep(self) -> None:
        now = self.clock()
        for peer in [p for p, r in self._reservations.items() if r.expire <= now]:
            del self._reservations[peer]
            log.debug("reservation of %s expired", peer)

    def _live(self, peer: PeerId) -> _Reservation | None:
        res = self._reservations.get(peer)
        if res is not None and res.expire <= self.clock():
            del self._reservations[peer]
            return None
        return res

    async def start(self) -> None:
        self.spawn(self._sweeper(), "reservation sweeper")

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(self.limits.sweep_interval)
            self._sweep()

    async def stop(self) -> None:
        self._reservations.clear()
        await super().stop()

    def on_disconnect(self, conn: "Connection") -> None:
        peer = conn.remote_peer
        if peer in self._reservations and not any(
            not c.limited for c in self.host.connections_to(peer)
        ):
            # the spec ties a reservation to the peer's connection to us
            del self._reservations[peer]
            log.debug("reservation of %s dropped: disconnected", peer)

    # --- hop ------------------------------------------------------------------------------
    async def handle(self, stream: "HostStream", conn: "Connection") -> None:
        timeout = self.limits.hop_timeout
        try:
            msg = await read_message(stream, HopMessage, timeout, "hop request")
        except PywasmError as exc:
            self.stats.malformed += 1
            log.debug("hop from %s: %s", conn.remote_peer, exc)
            await self._answer_and_close(stream, Status.MALFORMED_MESSAGE)
            return
        if msg.type == HopType.RESERVE:
            await self._reserve(stream, conn)
        elif msg.type == HopType.CONNECT:
            await self._connect(stream, conn, msg)
        else:
            self.stats.malformed += 1
            await self._answer_and_close(stream, Status.UNEXPECTED_MESSAGE)

    async def _answer_and_close(self, stream: "HostStream", status: Status) -> None:
        try:
            await write_message(stream, HopMessage(type=HopType.STATUS, status=status), self.limits.hop_timeout)
            await stream.close()
        except PywasmError:
            await stream.reset()

    async def _reserve(self, stream: "HostStream", conn: "Connection") -> None:
        lim = self.limits
        peer = conn.remote_peer
        if conn.limited:
            self.stats.reservations_refused += 1
            await self._answer_and_close(stream, Status.PERMISSION_DENIED)
            return
        self._sweep()
        ip = _ip_of(conn)
        existing = self._reservations.get(peer)
        if existing is None:
            refused = len(self._reservations) >= lim.max_reservations
            if not refused and ip is not None:
                same_ip = sum(1 for r in self._reservations.values() if r.ip == ip)
                refused = same_ip >= lim.max_reservations_per_ip
            if refused:
                self.stats.reservations_refused += 1
                log.info("refusing reservation of %s (%s): reservation limit reached", peer, ip)
                await self._answer_and_close(stream, Status.RESERVATION_REFUSED)
                return
        expire = int(self.clock() + lim.reservation_ttl)
        host = self.host
        voucher = await seal(
            host.private_key,
            VOUCHER_DOMAIN,
            VOUCHER_PAYLOAD_TYPE,
            VoucherPB(relay=host.peer_id.to_bytes(), peer=peer.to_bytes(), expiration=expire).encode(),
        )
        addrs = self.announce if self.announce is not None else host.addrs()
        addrs = [a for a in addrs if not a.has_protocol("p2p-circuit")][:MAX_ANNOUNCED_ADDRS]
        reply = HopMessage(
            type=HopType.STATUS,
            status=Status.OK,
            reservation=ReservationPB(expire=expire, addrs=[a.to_bytes() for a in addrs], voucher=voucher.encode()),
            limit=lim.limit_pb(),
        )
        # count it before the write: a concurrent RESERVE must see it
        res = self._reservations.get(peer)
        if res is None:
            res = _Reservation(peer, expire, ip)
            self._reservations[peer] = res
        else:
            res.expire, res.ip = expire, ip
            res.refreshed += 1
        try:
            await write_message(stream, reply, lim.hop_timeout)
            await stream.close()
        except PywasmError as exc:
            log.debug("reservation answer to %s failed: %s", peer, exc)
            if existing is None and self._reservations.get(peer) is res:
                del self._reservations[peer]
            await stream.reset()
            return
        self.stats.reservations_accepted += 1
        if conn.is_closed:
            self.on_disconnect(conn)

    async def _connect(self, src: "HostStream", conn: "Connection", msg: HopMessage) -> None:
        lim = self.limits
        source = conn.remote_peer
        if conn.limited:
            self.stats.circuits_refused += 1
            await self._answer_and_close(src, Status.PERMISSION_DENIED)
            return
        try:
            if msg.peer is None or msg.peer.id is None:
                raise ValueError("CONNECT without a target")
            target = PeerId.from_bytes(msg.peer.id)
        except (PywasmError, ValueError) as exc:
            self.stats.malformed += 1
            log.debug("hop CONNECT from %s: %s", source, exc)
            await self._answer_and_close(src, Status.MALFORMED_MESSAGE)
            return
        host = self.host
        dst_conn = next((c for c in host.connections_to(target) if not c.limited), None)
        if target == source or self._live(target) is None or dst_conn is None:
            self.stats.circuits_refused += 1
            await self._answer_and_close(src, Status.NO_RESERVATION)
            return
        peers = (source, target)
        if not self._circuits.can_add(peers, lim):
            self.stats.circuits_refused += 1
            log.info("refusing circuit %s -> %s: circuit limit reached", source, target)
            await self._answer_and_close(src, Status.RESOURCE_LIMIT_EXCEEDED)
            return
        self._circuits.add(peers, 1)
        try:
            dst = await self._stop(dst_conn, source)
            if dst is None:
                self.stats.circuits_refused += 1
                await self._answer_and_close(src, Status.CONNECTION_FAILED)
                return
            try:
                await write_message(src, HopMessage(type=HopType.STATUS, status=Status.OK, limit=lim.limit_pb()), lim.hop_timeout)
            except BaseException:
                await _reset(dst)
                raise
            self.stats.circuits_opened += 1
            log.debug("circuit %s -> %s open", source, target)
            await self._bridge(src, dst, source, target)
        finally:
            self._circuits.add(peers, -1)

    async def _stop(self, conn: "Connection", source: PeerId) -> "HostStream | None":
        """Open stop to the target and ask it to accept ``source``; the stream on OK."""
        lim = self.limits
        try:
            dst = await conn.new_stream([STOP], timeout=lim.hop_timeout)
        except PywasmError as exc:
            log.debug("stop stream to %s failed: %s", conn.remote_peer, exc)
            return None
        try:
            await write_message(
                dst, StopMessage(type=StopType.CONNECT, peer=PeerPB(id=source.to_bytes()), limit=lim.limit_pb()), lim.hop_timeout
            )
            reply = await read_message(dst, StopMessage, lim.hop_timeout, "stop answer")
        except PywasmError as exc:
            log.debug("stop to %s failed: %s", conn.remote_peer, exc)
            await _reset(dst)
            return None
        if reply.type != StopType.STATUS or reply.status != Status.OK:
            log.debug("target %s refused the circuit: %s", conn.remote_peer, status_name(reply.status))
            await _reset(dst)
            return None
        return dst

    async def _bridge(self, src: "HostStream", dst: "HostStream", source: PeerId, target: PeerId) -> None:
        lim = self.limits
        loop = asyncio.get_running_loop()
        pumps = [
            loop.create_task(self._pump(src, dst, lim.circuit_data)),
            loop.create_task(self._pump(dst, src, lim.circuit_data)),
        ]
        why: str | None = None
        try:
            deadline = lim.circuit_duration or None
            done, pending = await asyncio.wait(pumps, timeout=deadline, return_when=asyncio.FIRST_EXCEPTION)
            if pending and not any(t.exception() is not None for t in done):
                why = "duration"
            else:
                for t in done:
                    exc = t.exception()
                    if isinstance(exc, _Cut):
                        why = exc.why
                    elif exc is not None:
                        why = why or f"error: {exc}"
        finally:
            for t in pumps:
                t.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            if why is None:
                # both directions ended cleanly
                await _close(src)
                await _close(dst)
            else:
                await _reset(src)
                await _reset(dst)
        if why == "data":
            self.stats.circuits_cut_data += 1
        elif why == "duration":
            self.stats.circuits_cut_duration += 1
        if why is not None:
            log.debug("circuit %s -> %s cut: %s", source, target, why)

    async def _pump(self, reader: "HostStream", writer: "HostStream", limit: int) -> None:
        moved = 0
        size = self.limits.buffer_size
        while True:
            chunk = await reader.read(size)
            if not chunk:
                await writer.close_write()
                return
            moved += len(chunk)
            if limit and moved > limit:
                raise _Cut("data")
            await writer.write(chunk)
            self.stats.bytes_relayed += len(chunk)


async def _reset(stream: Any) -> None:
    try:
        await stream.reset()
    except Exception:  # noqa: BLE001 - best effort teardown
        pass


async def _close(stream: Any) -> None:
    try:
        await stream.close()
    except Exception:  # noqa: BLE001
        await _reset(stream)


__all__ = [
    "RelayHopService",
    "RelayLimits",
    "RelayStats",
    "DEFAULT_RESERVATION_TTL",
    "DEFAULT_MAX_RESERVATIONS",
    "DEFAULT_MAX_RESERVATIONS_PER_IP",
    "DEFAULT_MAX_CIRCUITS",
    "DEFAULT_MAX_CIRCUITS_PER_PEER",
    "DEFAULT_CIRCUIT_DURATION",
    "DEFAULT_CIRCUIT_DATA",
]
