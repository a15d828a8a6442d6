"""Circuit relay v2, client side: reservations on relays and the ``stop`` handler.

* :meth:`RelayClientService.reserve` sends ``RESERVE`` over ``hop`` and checks the answer:
  an expiry in the future, the relay's addresses, and (when present) a voucher signed by
  the relay for us. With ``keep=True`` a background task refreshes the reservation before
  it expires (at ``refresh_margin`` of its lifetime left), retries failures with
  exponential backoff, and reserves again at once when the connection to the relay drops
  (the relay forgets reservations of peers that disconnect). When the relay is gone (a
  restart, a network cut) the keeper keeps trying, at delays growing from
  ``backoff_initial`` to ``backoff_max`` with jitter (:mod:`.relay_keepalive`), until the
  relay answers again or the reservation is released;
  :meth:`RelayClientService.keeper_state` shows its attempts. Host stop cancels it.
* Our relayed addresses ``<relay addr>/p2p/<relay>/p2p-circuit`` come from live
  reservations; the circuit transport's listeners expose them as listen addresses, so
  identify announces them. Every change tells the host (identify push).
* ``/libp2p/circuit/relay/0.2.0/stop``: a relay asks us to accept a circuit from a peer;
  we answer ``OK`` and hand the stream, as a limited raw connection, to the host's inbound
  path through a circuit listener. Without a circuit transport or listener we answer
  ``CONNECTION_FAILED``.

Pure asyncio; runs in the browser unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConfigError, DialError, ProtocolError, PywasmError
from ..identity import PeerId
from ..identity.envelope import Envelope, EnvelopeError, open_envelope
from ..multiformats.multiaddr import Multiaddr
from ..protocols.circuit_pb import (
    HOP,
    MAX_RESERVATION_ADDRS,
    STOP,
    VOUCHER_DOMAIN,
    VOUCHER_PAYLOAD_TYPE,
    HopMessage,
    HopType,
    LimitPB,
    RelayStatusError,
    Status,
    StopMessage,
    StopType,
    VoucherPB,
    read_message,
    write_message,
)
from ..transports.circuit import CIRCUIT, RelayedConnection, find_circuit_transport
from .base import Service
from .relay_keepalive import DEFAULT_JITTER, AttemptLog, Backoff

if TYPE_CHECKING:
    from ..host.connection import Connection, HostStream

log = logging.getLogger("pywasm.services.relay_client")

DEFAULT_HOP_TIMEOUT = 30.0
# refresh when this fraction of the reservation's lifetime is left (1 h -> after 45 min)
DEFAULT_REFRESH_MARGIN = 0.25
# never refresh more often than this, whatever the relay's TTL
DEFAULT_MIN_REFRESH_INTERVAL = 1.0
DEFAULT_BACKOFF_INITIAL = 1.0
DEFAULT_BACKOFF_MAX = 60.0
# relays we hold reservations on at once
DEFAULT_MAX_RELAYS = 8


class ReservationError(ProtocolError):
    """A relay refused our reservation or answered it with something unusable."""


@dataclass
class Reservation:
    relay: PeerId
    expire: int  # UNIX seconds, as the relay said
    # the relay's addresses, each ending with /p2p/<relay>
    addrs: list[Multiaddr]
    limit_duration: int = 0
    limit_data: int = 0
    voucher: Envelope | None = None
    obtained_at: float = 0.0

    @property
    def relayed_addrs(self) -> list[Multiaddr]:
        return [a.encapsulate(f"/{CIRCUIT}") for a in self.addrs]


@dataclass
class _Keeper:
    target: Multiaddr | PeerId
    backoff: Backoff
    task: asyncio.Task[Any] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    attempts: AttemptLog = field(default_factory=AttemptLog)

    @property
    def failures(self) -> int:
        """Failed attempts since the last success."""
        return self.backoff.failures


def _with_relay_id(addr: Multiaddr, relay: PeerId) -> Multiaddr | None:
    """``addr`` ending in ``/p2p/<relay>`` (added when missing); None if it names another
    peer or is itself relayed."""
    if addr.has_protocol(CIRCUIT):
        return None
    text = addr.peer_id()
    if text is None:
        return addr.encapsulate(f"/p2p/{relay}")
    return addr if text == str(relay) else None


class RelayClientService(Service):
    name = "relay-client"
    protocols = (STOP,)
    allow_limited = False

    def __init__(
        self,
        *,
        hop_timeout: float = DEFAULT_HOP_TIMEOUT,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        min_refresh_interval: float = DEFAULT_MIN_REFRESH_INTERVAL,
        backoff_initial: float = DEFAULT_BACKOFF_INITIAL,
        backoff_max: float = DEFAULT_BACKOFF_MAX,
        backoff_jitter: float = DEFAULT_JITTER,
        max_relays: int = DEFAULT_MAX_RELAYS,
        accept_incoming: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        if not 0 < refresh_margin < 1:
            raise ConfigError("refresh_margin must be between 0 and 1 (fraction of the reservation left)")
        for name, value in (("hop_timeout", hop_timeout), ("min_refresh_interval", min_refresh_interval),
                            ("backoff_initial", backoff_initial), ("backoff_max", backoff_max)):
            if value <= 0:
                raise ConfigError(f"{name} must be positive")
        if max_relays < 1:
            raise ConfigError("max_relays must be at least 1")
        if not 0 <= backoff_jitter < 1:
            raise ConfigError("backoff_jitter must be in [0, 1)")
        self.hop_timeout = hop_timeout
        self.refresh_margin = refresh_margin
        self.min_refresh_interval = min_refresh_interval
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        # fraction of each retry delay drawn at random (see relay_keepalive.Backoff)
        self.backoff_jitter = backoff_jitter
        self.max_relays = max_relays
        # listen on a bare /p2p-circuit at start, so relayed peers can reach us
        self.accept_incoming = accept_incoming
        self.clock = clock
        self._reservations: dict[PeerId, Reservation] = {}
        self._keepers: dict[PeerId, _Keeper] = {}
        # reservations made, refreshes included (tests and metrics)
        self.reservation_count = 0
        # inbound circuits accepted over stop
        self.accepted = 0

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        transport = find_circuit_transport(self.host)
        if self.accept_incoming and transport is not None and not transport.listeners:
            await self.host.listen(f"/{CIRCUIT}")

    async def stop(self) -> None:
        self._keepers.clear()
        self._reservations.clear()
        await super().stop()

    def on_disconnect(self, conn: "Connection") -> None:
        peer = conn.remote_peer
        if peer not in self._reservations and peer not in self._keepers:
            return
        if any(not c.limited for c in self.host.connections_to(peer)):
            return
        if self._reservations.pop(peer, None) is not None:
            log.info("relay %s disconnected: reservation lost", peer)
            self._changed()
        keeper = self._keepers.get(peer)
        if keeper is not None:
            keeper.wake.set()

    # --- addresses -------------------------------------------------------------------------
    def reservation(self, relay: PeerId) -> Reservation | None:
        res = self._reservations.get(relay)
        if res is not None and res.expire <= self.clock():
            return None
        return res

    def reserved_relays(self) -> list[PeerId]:
        now = self.clock()
        return [p for p, r in self._reservations.items() if r.expire > now]

    def relayed_addrs(self, relay: PeerId | None = None) -> list[Multiaddr]:
        """``.../p2p/<relay>/p2p-circuit`` for live reservations (of ``relay`` only, if given)."""
        relays = [relay] if relay is not None else self.reserved_relays()
        out: list[Multiaddr] = []
        for peer in relays:
            res = self.reservation(peer)
            if res is not None:
                out.extend(res.relayed_addrs)
        return out

    def _changed(self) -> None:
        host = self._host
        if host is None:
            return
        host.notify_local_change()

    # --- reserving ---------------------------------------------------------------------------
    async def reserve(self, relay: Multiaddr | str | PeerId, *, keep: bool = False) -> Reservation:
        """Reserve a slot on ``relay`` (an address ending in ``/p2p/<id>``, or a peer id we
        can dial). With ``keep`` the reservation is refreshed until :meth:`release`."""
        target: Multiaddr | PeerId = Multiaddr(relay) if isinstance(relay, str) else relay
        if isinstance(target, Multiaddr):
            if target.peer_id() is None:
                raise ConfigError(f"relay address {target} must end with /p2p/<relay id>")
            relay_id = PeerId.from_string(target.peer_id() or "")
        else:
            relay_id = target
        if relay_id == self.host.peer_id:
            raise ConfigError("cannot reserve a slot on ourselves")
        if relay_id not in self._keepers and relay_id not in self._reservations and \
                len(set(self._keepers) | set(self._reservations)) >= self.max_relays:
            raise ReservationError(f"already holding reservations on {self.max_relays} relays")
        res = await self._reserve_once(target, relay_id)
        if keep and relay_id not in self._keepers:
            # read now, not at construction: a page may tune the bounds before it listens
            backoff = Backoff(self.backoff_initial, max(self.backoff_initial, self.backoff_max),
                              jitter=self.backoff_jitter)
            keeper = _Keeper(target, backoff)
            now = time.monotonic()
            keeper.attempts.record(now, now, ok=True)  # the reservation just made
            self._keepers[relay_id] = keeper
            keeper.task = self.spawn(self._keep(relay_id, keeper), f"reservation keeper for {relay_id}")
        return res

    async def release(self, relay: PeerId) -> None:
        """Stop refreshing and forget the reservation on ``relay`` (the relay lets it
        expire: the protocol has no cancel message)."""
        keeper = self._keepers.pop(relay, None)
        if keeper is not None and keeper.task is not None:
            keeper.task.cancel()
            await asyncio.gather(keeper.task, return_exceptions=True)
        if self._reservations.pop(relay, None) is not None:
            self._changed()

    async def _reserve_once(self, target: Multiaddr | PeerId, relay_id: PeerId) -> Reservation:
        host = self.host
        try:
            conn = await host.dial(target)
        except DialError as exc:
            raise ReservationError(f"cannot reach relay {relay_id}: {exc}") from None
        if conn.remote_peer != relay_id:
            raise ReservationError(f"dialed relay {relay_id} but reached {conn.remote_peer}")
        if conn.limited:
            raise ReservationError(f"our connection to relay {relay_id} is relayed: the spec forbids reserving over it")
        stream = await conn.new_stream([HOP], timeout=self.hop_timeout)
        try:
            await write_message(stream, HopMessage(type=HopType.RESERVE), self.hop_timeout)
            reply = await read_message(stream, HopMessage, self.hop_timeout, "reservation answer")
        except BaseException:
            await _reset(stream)
            raise
        await _close(stream)
        res = await self._check(reply, relay_id, conn)
        self._reservations[relay_id] = res
        self.reservation_count += 1
        log.debug("reserved on %s until %d", relay_id, res.expire)
        self._changed()
        return res

    async def _check(self, reply: HopMessage, relay: PeerId, conn: "Connection") -> Reservation:
        if reply.type != HopType.STATUS:
            raise ReservationError(f"relay {relay} answered RESERVE with message type {reply.type}")
        if reply.status != Status.OK:
            raise RelayStatusError(reply.status, f"relay {relay} refused our reservation")
        rsvp = reply.reservation
        if rsvp is None or rsvp.expire is None:
            raise ReservationError(f"relay {relay} accepted without a reservation expiry")
        now = self.clock()
        if rsvp.expire <= now:
            raise ReservationError(f"relay {relay} sent a reservation that expired already ({rsvp.expire} <= {int(now)})")
        addrs: list[Multiaddr] = []
        for raw in rsvp.addrs[:MAX_RESERVATION_ADDRS]:
            try:
                ma = _with_relay_id(Multiaddr(raw), relay)
            except PywasmError:
                continue  # one unknown address must not void the reservation
            if ma is not None and ma not in addrs:
                addrs.append(ma)
        if not addrs and isinstance(conn.remote_addr, Multiaddr):
            # the relay announced nothing usable: the address we reached it on works
            ma = _with_relay_id(conn.remote_addr, relay)
            if ma is not None:
                addrs.append(ma)
        voucher = None
        if rsvp.voucher:
            voucher = await self._check_voucher(rsvp.voucher, relay, rsvp.expire)
        limit: LimitPB | None = reply.limit
        return Reservation(
            relay=relay,
            expire=rsvp.expire,
            addrs=addrs,
            limit_duration=(limit.duration or 0) if limit else 0,
            limit_data=(limit.data or 0) if limit else 0,
            voucher=voucher,
            obtained_at=now,
        )

    async def _check_voucher(self, data: bytes, relay: PeerId, expire: int) -> Envelope:
        try:
            env = await open_envelope(data, VOUCHER_DOMAIN, VOUCHER_PAYLOAD_TYPE)
            voucher = VoucherPB.decode(env.payload)
        except PywasmError as exc:
            raise ReservationError(f"relay {relay} sent an invalid voucher: {exc}") from None
        if env.signer != relay:
            raise ReservationError(f"voucher from relay {relay} is signed by {env.signer}")
        if voucher.relay != relay.to_bytes() or voucher.peer != self.host.peer_id.to_bytes():
            raise ReservationError(f"voucher from relay {relay} names other peers")
        if voucher.expiration != expire:
            raise ReservationError(f"voucher expiry {voucher.expiration} differs from the reservation's {expire}")
        return env

    def keeper_state(self, relay: PeerId) -> dict[str, Any] | None:
        """What the keeper of ``relay`` is doing (JSON-friendly; None without a keeper):
        whether we hold a reservation, its expiry, failures in a row, the next delay's
        upper bound, and the recent attempts (``time.monotonic()`` seconds)."""
        keeper = self._keepers.get(relay)
        if keeper is None:
            return None
        res = self.reservation(relay)
        return {
            "relay": str(relay),
            "reserved": res is not None,
            "expire": res.expire if res is not None else None,
            "failures": keeper.failures,
            "next_delay_max": keeper.backoff.base,
            "attempts_total": keeper.attempts.total,
            "attempts_failed": keeper.attempts.total_failed,
            "attempts": keeper.attempts.to_list(),
            "now": time.monotonic(),
        }

    async def _keep(self, relay: PeerId, keeper: _Keeper) -> None:
        while self._keepers.get(relay) is keeper and not self.host.is_stopped:
            res = self.reservation(relay)
            if res is not None:
                lifetime = max(res.expire - res.obtained_at, 0.0)
                wait = (res.expire - self.clock()) - lifetime * self.refresh_margin
                keeper.wake.clear()
                try:
                    await asyncio.wait_for(keeper.wake.wait(), max(wait, self.min_refresh_interval))
                except asyncio.TimeoutError:
                    pass
                if self._keepers.get(relay) is not keeper or self.host.is_stopped:
                    return
            started = time.monotonic()
            try:
                await self._reserve_once(keeper.target, relay)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - whatever broke this attempt, the keeper must live on
                delay = keeper.backoff.next_delay()
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                keeper.attempts.record(started, time.monotonic(), ok=False, error=f"{type(exc).__name__}: {text}",
                                       delay=delay)
                # a typed failure is the expected kind (relay down, refused); anything else is a bug to see
                level = logging.INFO if isinstance(exc, (PywasmError, EnvelopeError)) else logging.WARNING
                log.log(level, "reservation on %s failed (%d in a row), next try in %.2f s: %s",
                        relay, keeper.failures, delay, text)
                if self.reservation(relay) is None and self._reservations.pop(relay, None) is not None:
                    self._changed()
                await asyncio.sleep(delay)
                continue
            if keeper.failures:
                log.info("reserved on %s again after %d failed attempts", relay, keeper.failures)
            keeper.backoff.reset()
            keeper.attempts.record(started, time.monotonic(), ok=True)

    # --- stop ----------------------------------------------------------------------------------
    async def handle(self, stream: "HostStream", conn: "Connection") -> None:
        relay = conn.remote_peer
        try:
            msg = await read_message(stream, StopMessage, self.hop_timeout, "stop request")
        except PywasmError as exc:
            log.debug("stop from %s: %s", relay, exc)
            await self._answer_and_close(stream, Status.MALFORMED_MESSAGE)
            return
        if msg.type != StopType.CONNECT:
            await self._answer_and_close(stream, Status.UNEXPECTED_MESSAGE)
            return
        try:
            if msg.peer is None or msg.peer.id is None:
                raise ValueError("stop CONNECT without the source peer")
            source = PeerId.from_bytes(msg.peer.id)
        except (PywasmError, ValueError) as exc:
            log.debug("stop from %s: %s", relay, exc)
            await self._answer_and_close(stream, Status.MALFORMED_MESSAGE)
            return
        transport = find_circuit_transport(self.host)
        handler = transport.inbound_handler(relay) if transport is not None else None
        if handler is None or source == self.host.peer_id:
            await self._answer_and_close(stream, Status.CONNECTION_FAILED)
            return
        await write_message(stream, StopMessage(type=StopType.STATUS, status=Status.OK), self.hop_timeout)
        relay_addr = conn.remote_addr if isinstance(conn.remote_addr, Multiaddr) else Multiaddr(f"/p2p/{relay}")
        relay_addr = _with_relay_id(relay_addr, relay) or Multiaddr(f"/p2p/{relay}")
        raw = RelayedConnection(
            stream,
            local_addr=relay_addr.encapsulate(f"/{CIRCUIT}/p2p/{self.host.peer_id}"),
            remote_addr=relay_addr.encapsulate(f"/{CIRCUIT}/p2p/{source}"),
            relay=relay,
            limit=msg.limit,
        )
        self.accepted += 1
        # the host upgrades it (Noise, yamux) and registers it; failures close the stream
        await handler(raw)

    async def _answer_and_close(self, stream: "HostStream", status: Status) -> None:
        try:
            await write_message(stream, StopMessage(type=StopType.STATUS, status=status), self.hop_timeout)
            await stream.close()
        except PywasmError:
            await _reset(stream)


async def _reset(stream: Any) -> None:
    try:
        await stream.reset()
    except Exception:  # noqa: BLE001
        pass


async def _close(stream: Any) -> None:
    try:
        await stream.close()
    except Exception:  # noqa: BLE001
        await _reset(stream)


__all__ = [
    "RelayClientService",
    "Reservation",
    "ReservationError",
    "DEFAULT_REFRESH_MARGIN",
    "DEFAULT_BACKOFF_INITIAL",
    "DEFAULT_BACKOFF_MAX",
]
