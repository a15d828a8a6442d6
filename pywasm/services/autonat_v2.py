"""AutoNAT v2 (libp2p/specs autonat/autonat-v2.md): is *this* address of mine reachable?

Client: :meth:`AutoNATv2Service.check` sends a ``DialRequest`` (addresses in priority
order + a random nonce) on ``/libp2p/autonat/2/dial-request``; pays dial data if the server
asks for it; answers the server's ``/libp2p/autonat/2/dial-back`` stream (nonce ->
``DialBackResponse OK``); and trusts a "dial OK" answer only if the dial-back with *our*
nonce really arrived (the spec's rule: rely on the nonce, not on the server's word).

Server: picks the first address it is willing to dial (public IPs only unless
``allow_private``; never relayed addresses), charges 30-100 kB of dial data when that
address's IP is not the requester's observed IP (amplification protection), dials it on
a fresh connection (never the connection the request came on), sends the nonce, and
answers with the outcome. Requests are rate-limited per peer and globally, dial-backs are
bounded in number and time, and a malformed request resets its stream (nothing else).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..errors import DecodeError, DialError, HandshakeTimeoutError, LimitExceededError, ProtocolError, PywasmError
from ..identity import PeerId
from ..multiformats.multiaddr import Multiaddr
from ..protocols.autonat_v2_pb import (
    DIAL_BACK,
    DIAL_BACK_OK,
    DIAL_DATA_CHUNK,
    DIAL_REQUEST,
    MAX_DIAL_DATA,
    MAX_MESSAGE_SIZE,
    MIN_DIAL_DATA,
    DialBack,
    DialBackResponse,
    DialDataRequest,
    DialDataResponse,
    DialRequest,
    DialResponse,
    DialStatus,
    Message,
    ResponseStatus,
    needs_dial_data,
    select_address,
    status_name,
)
from ..streams import encode_lp
from .base import Service

if TYPE_CHECKING:
    from ..host.connection import Connection, HostStream

log = logging.getLogger("pywasm.services.autonat")

# --- defaults ----------------------------------------------------------------------------
# one whole request on either side (js-libp2p: 30 s)
DEFAULT_TIMEOUT = 30.0
# the server's dial back to the requested address, connect + upgrade
DEFAULT_DIAL_TIMEOUT = 15.0
# the dial-back stream exchange (nonce -> response)
DEFAULT_DIAL_BACK_TIMEOUT = 10.0
# dial-backs the server runs at once (over all peers); more are rejected, not queued
DEFAULT_MAX_CONCURRENT_DIALS = 8
# requests one peer may make per window, and all peers together
DEFAULT_PEER_REQUESTS = 12
DEFAULT_GLOBAL_REQUESTS = 120
DEFAULT_RATE_WINDOW = 60.0
# peers whose request history the rate limiter remembers
DEFAULT_MAX_TRACKED_PEERS = 1024
# addresses of one request the server looks at (the rest are ignored)
DEFAULT_MAX_REQUEST_ADDRS = 16
# dial data the client agrees to send for one request (the spec's upper bound)
DEFAULT_MAX_DIAL_DATA = MAX_DIAL_DATA
# nonces the client waits on at once; servers a per-address result remembers
MAX_PENDING_NONCES = 64
MAX_SERVERS_PER_ADDR = 16
MAX_TRACKED_ADDRS = 64


class Reachability(str, enum.Enum):
    REACHABLE = "reachable"
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


class AutoNATError(ProtocolError):
    """An AutoNAT v2 exchange failed (bad answer from the server, refused dial data ...)."""


@dataclass
class CheckResult:
    """The answer of one server to one request (about the one address it dialed)."""

    server: PeerId
    reachability: Reachability
    response_status: ResponseStatus | int
    # the address the server dialed (None when it refused all of them)
    addr: Multiaddr | None = None
    addr_idx: int | None = None
    dial_status: DialStatus | int = DialStatus.UNUSED
    dial_data_sent: int = 0
    # set when the server's dial-back with our nonce reached us
    dial_back_received: bool = False
    detail: str = ""


@dataclass
class AddressStatus:
    """What servers said about one of our addresses (distinct servers, latest wins)."""

    addr: Multiaddr
    reachable_by: "OrderedDict[PeerId, float]" = field(default_factory=OrderedDict)
    unreachable_by: "OrderedDict[PeerId, float]" = field(default_factory=OrderedDict)

    def record(self, server: PeerId, reachable: bool) -> None:
        ok, bad = (self.reachable_by, self.unreachable_by) if reachable else (self.unreachable_by, self.reachable_by)
        bad.pop(server, None)
        ok.pop(server, None)
        ok[server] = time.time()
        while len(ok) > MAX_SERVERS_PER_ADDR:
            ok.popitem(last=False)


class _RateLimiter:
    """Sliding-window request counts per peer and overall (bounded memory)."""

    def __init__(self, per_peer: int, overall: int, window: float, max_peers: int) -> None:
        self.per_peer = per_peer
        self.overall = overall
        self.window = window
        self.max_peers = max_peers
        self._peers: OrderedDict[PeerId, deque[float]] = OrderedDict()
        self._all: deque[float] = deque()

    def allow(self, peer: PeerId, now: float) -> bool:
        horizon = now - self.window
        while self._all and self._all[0] < horizon:
            self._all.popleft()
        hits = self._peers.get(peer)
        if hits is None:
            hits = self._peers[peer] = deque()
            while len(self._peers) > self.max_peers:
                self._peers.popitem(last=False)
        else:
            self._peers.move_to_end(peer)
        while hits and hits[0] < horizon:
            hits.popleft()
        if len(hits) >= self.per_peer or len(self._all) >= self.overall:
            return False
        hits.append(now)
        self._all.append(now)
        return True


async def _read_msg(stream: "HostStream") -> Message | None:
    data = await stream.read_lp(MAX_MESSAGE_SIZE)
    if data is None:
        return None
    msg = Message.decode(data)
    msg.which()
    return msg


async def _write_msg(stream: "HostStream", msg: Message) -> None:
    await stream.write(encode_lp(msg.encode()))


def _response(status: ResponseStatus, idx: int | None = None, dial: DialStatus | None = None) -> Message:
    # proto3: zero values are left out on the wire
    return Message(
        dial_response=DialResponse(
            status=int(status) or None,
            addr_idx=idx or None,
            dial_status=(int(dial) or None) if dial is not None else None,
        )
    )


class AutoNATv2Service(Service):
    """AutoNAT v2 client and/or server; ``host.services["autonat"]``."""

    name = "autonat"

    def __init__(
        self,
        *,
        server: bool = True,
        client: bool = True,
        allow_private: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        dial_timeout: float = DEFAULT_DIAL_TIMEOUT,
        dial_back_timeout: float = DEFAULT_DIAL_BACK_TIMEOUT,
        max_concurrent_dials: int = DEFAULT_MAX_CONCURRENT_DIALS,
        peer_requests: int = DEFAULT_PEER_REQUESTS,
        global_requests: int = DEFAULT_GLOBAL_REQUESTS,
        rate_window: float = DEFAULT_RATE_WINDOW,
        max_request_addrs: int = DEFAULT_MAX_REQUEST_ADDRS,
        dial_data_range: tuple[int, int] = (MIN_DIAL_DATA, MAX_DIAL_DATA),
        max_dial_data: int = DEFAULT_MAX_DIAL_DATA,
        confidence: int = 1,
    ) -> None:
        super().__init__()
        if not (server or client):
            raise ValueError("an AutoNAT service must be a server, a client or both")
        lo, hi = dial_data_range
        if not 0 < lo <= hi:
            raise ValueError(f"dial_data_range must be 0 < low <= high, not {dial_data_range!r}")
        self.is_server = server
        self.is_client = client
        self.protocols = tuple(p for p, on in ((DIAL_REQUEST, server), (DIAL_BACK, client)) if on)
        self.allow_private = allow_private
        self.timeout = timeout
        self.dial_timeout = dial_timeout
        self.dial_back_timeout = dial_back_timeout
        self.max_concurrent_dials = max_concurrent_dials
        self.max_request_addrs = max_request_addrs
        self.dial_data_range = (lo, hi)
        self.max_dial_data = max_dial_data
        self.confidence = confidence
        self._limiter = _RateLimiter(peer_requests, global_requests, rate_window, DEFAULT_MAX_TRACKED_PEERS)
        self._dials_in_flight = 0
        self._peers_in_flight: set[PeerId] = set()
        self._targets_in_flight: set[Multiaddr] = set()
        self._rng = random.SystemRandom()
        # client: nonce -> set once the dial-back carrying it arrived
        self._nonces: dict[int, asyncio.Event] = {}
        self.addresses: OrderedDict[Multiaddr, AddressStatus] = OrderedDict()
        # counters (metrics)
        self.stats: dict[str, int] = {
            "requests": 0,
            "rejected": 0,
            "refused": 0,
            "dial_data_requests": 0,
            "dial_ok": 0,
            "dial_error": 0,
            "dial_back_error": 0,
            "malformed": 0,
        }

    # ================================================================ inbound streams
    async def handle(self, stream: "HostStream", conn: "Connection") -> None:
        if stream.protocol == DIAL_BACK:
            await self._on_dial_back(stream, conn)
            return
        try:
            await asyncio.wait_for(self._serve(stream, conn), self.timeout)
        except asyncio.TimeoutError:
            raise HandshakeTimeoutError(f"autonat request from {conn.remote_peer} timed out") from None
        except (ProtocolError, DecodeError):
            self.stats["malformed"] += 1
            raise

    # ---------------------------------------------------------------- server
    async def _serve(self, stream: "HostStream", conn: "Connection") -> None:
        peer = conn.remote_peer
        msg = await _read_msg(stream)
        if msg is None or msg.dial_request is None:
            raise ProtocolError(f"autonat: expected a DialRequest from {peer}")
        req: DialRequest = msg.dial_request
        nonce = req.nonce or 0
        self.stats["requests"] += 1
        if not req.addrs:
            self.stats["refused"] += 1
            await _write_msg(stream, _response(ResponseStatus.E_DIAL_REFUSED))
            await stream.close()
            return
        if (
            not self._limiter.allow(peer, time.monotonic())
            or peer in self._peers_in_flight
            or self._dials_in_flight >= self.max_concurrent_dials
        ):
            self.stats["rejected"] += 1
            await _write_msg(stream, _response(ResponseStatus.E_REQUEST_REJECTED))
            await stream.close()
            return
        host = self.host
        choice = select_address(
            req.addrs,
            lambda a: any(t.can_dial(a) for t in host.transports),
            allow_private=self.allow_private,
            max_addrs=self.max_request_addrs,
        )
        if choice is None:
            self.stats["refused"] += 1
            await _write_msg(stream, _response(ResponseStatus.E_DIAL_REFUSED))
            await stream.close()
            return
        idx, target = choice
        if target in self._targets_in_flight:
            # another request dials this very address now; ours would share its connection
            self.stats["rejected"] += 1
            await _write_msg(stream, _response(ResponseStatus.E_REQUEST_REJECTED))
            await stream.close()
            return
        # the slot is taken before dial data: a slow payer holds it, bounded by self.timeout
        self._dials_in_flight += 1
        self._peers_in_flight.add(peer)
        self._targets_in_flight.add(target)
        try:
            if needs_dial_data(target, conn.remote_addr):
                await self._collect_dial_data(stream, idx)
            status = await self._dial_back(target, nonce)
        finally:
            self._dials_in_flight -= 1
            self._peers_in_flight.discard(peer)
            self._targets_in_flight.discard(target)
        self.stats[{DialStatus.OK: "dial_ok", DialStatus.E_DIAL_ERROR: "dial_error"}.get(status, "dial_back_error")] += 1
        log.debug("autonat: dial back to %s for %s: %s", target, peer, status.name)
        await _write_msg(stream, _response(ResponseStatus.OK, idx, status))
        await stream.close()

    async def _collect_dial_data(self, stream: "HostStream", idx: int) -> None:
        self.stats["dial_data_requests"] += 1
        wanted = self._rng.randint(*self.dial_data_range)
        await _write_msg(stream, Message(dial_data_request=DialDataRequest(addr_idx=idx or None, num_bytes=wanted)))
        received = 0
        while received < wanted:
            msg = await _read_msg(stream)
            if msg is None:
                raise ProtocolError(f"autonat: stream ended after {received} of {wanted} dial data bytes")
            if msg.dial_data_response is None:
                raise ProtocolError(f"autonat: expected DialDataResponse, got {msg.which()}")
            chunk = msg.dial_data_response.data or b""
            if len(chunk) > DIAL_DATA_CHUNK:
                raise ProtocolError(f"autonat: dial data chunk of {len(chunk)} bytes (limit {DIAL_DATA_CHUNK})")
            received += len(chunk)

    async def _dial_back(self, target: Multiaddr, nonce: int) -> DialStatus:
        host = self.host
        try:
            # no /p2p/ in target: the host opens a new connection and never reuses one
            conn = await host.dial(target, timeout=self.dial_timeout)
        except DialError as exc:
            log.debug("autonat: dial back to %s failed: %s", target, exc)
            return DialStatus.E_DIAL_ERROR
        try:
            async def exchange() -> bool:
                stream = await conn.new_stream([DIAL_BACK], timeout=self.dial_back_timeout)
                try:
                    await stream.write(encode_lp(DialBack(nonce=nonce or None).encode()))
                    data = await stream.read_lp(MAX_MESSAGE_SIZE)
                except BaseException:
                    await stream.reset()
                    raise
                await stream.close()
                if data is None:
                    return False
                return (DialBackResponse.decode(data).status or 0) == DIAL_BACK_OK

            ok = await asyncio.wait_for(exchange(), self.dial_back_timeout)
            return DialStatus.OK if ok else DialStatus.E_DIAL_BACK_ERROR
        except (PywasmError, asyncio.TimeoutError) as exc:
            log.debug("autonat: dial-back stream to %s failed: %s", target, exc)
            return DialStatus.E_DIAL_BACK_ERROR
        finally:
            await conn.close()

    # ---------------------------------------------------------------- client: dial-back
    async def _on_dial_back(self, stream: "HostStream", conn: "Connection") -> None:
        try:
            data = await asyncio.wait_for(stream.read_lp(MAX_MESSAGE_SIZE), self.dial_back_timeout)
        except asyncio.TimeoutError:
            raise HandshakeTimeoutError("autonat dial-back: no nonce in time") from None
        if data is None:
            raise ProtocolError("autonat dial-back: stream ended before the nonce")
        nonce = DialBack.decode(data).nonce or 0
        event = self._nonces.get(nonce)
        if event is None:
            # not a check of ours: say nothing, so nobody learns our nonces by guessing
            raise ProtocolError(f"autonat dial-back from {conn.remote_peer} with an unknown nonce")
        event.set()
        await asyncio.wait_for(stream.write(encode_lp(DialBackResponse().encode())), self.dial_back_timeout)
        await stream.close()

    # ---------------------------------------------------------------- client: request
    async def check(
        self, server: Any, addrs: Iterable[Multiaddr | str], *, timeout: float | None = None
    ) -> CheckResult:
        """Ask ``server`` (PeerId, Multiaddr, str or Connection) to dial one of ``addrs``
        (highest priority first). The result is about the one address it chose."""
        if not self.is_client:
            raise AutoNATError("this AutoNAT service was created with client=False")
        wanted = [a if isinstance(a, Multiaddr) else Multiaddr(a) for a in addrs]
        if not wanted:
            raise ValueError("check() needs at least one address")
        if len(self._nonces) >= MAX_PENDING_NONCES:
            raise LimitExceededError(f"{MAX_PENDING_NONCES} AutoNAT checks already in flight")
        nonce = secrets.randbits(64)
        while nonce in self._nonces or nonce == 0:
            nonce = secrets.randbits(64)
        arrived = asyncio.Event()
        self._nonces[nonce] = arrived
        limit = timeout if timeout is not None else self.timeout
        try:
            try:
                result = await asyncio.wait_for(self._request(server, wanted, nonce, limit), limit)
            except asyncio.TimeoutError:
                raise HandshakeTimeoutError(f"autonat check timed out after {limit:g} s") from None
            result.dial_back_received = arrived.is_set()
        finally:
            del self._nonces[nonce]
        self._judge(result)
        return result

    async def _request(self, server: Any, addrs: list[Multiaddr], nonce: int, limit: float) -> CheckResult:
        stream = await self.host.new_stream(server, [DIAL_REQUEST], timeout=limit)
        peer = stream.remote_peer
        sent = 0
        try:
            await _write_msg(stream, Message(dial_request=DialRequest(addrs=[a.to_bytes() for a in addrs], nonce=nonce)))
            while True:
                msg = await _read_msg(stream)
                if msg is None:
                    raise AutoNATError(f"autonat server {peer} closed the stream without a DialResponse")
                if msg.dial_data_request is not None:
                    if sent:
                        raise AutoNATError(f"autonat server {peer} asked for dial data twice")
                    sent = await self._pay(stream, peer, msg.dial_data_request, len(addrs))
                    continue
                if msg.dial_response is None:
                    raise AutoNATError(f"autonat server {peer} sent {msg.which()} where a DialResponse was due")
                response = msg.dial_response
                break
        except BaseException:
            await stream.reset()
            raise
        await stream.close()
        return self._interpret(peer, response, addrs, sent)

    async def _pay(self, stream: "HostStream", peer: PeerId, req: DialDataRequest, n_addrs: int) -> int:
        idx = req.addr_idx or 0
        num = req.num_bytes or 0
        if idx >= n_addrs:
            raise AutoNATError(f"autonat server {peer} asked dial data for address #{idx} of {n_addrs}")
        if num > self.max_dial_data:
            raise AutoNATError(
                f"autonat server {peer} asked for {num} bytes of dial data (we pay at most {self.max_dial_data})"
            )
        frame = encode_lp(Message(dial_data_response=DialDataResponse(data=bytes(DIAL_DATA_CHUNK))).encode())
        sent = 0
        while sent < num:
            await stream.write(frame)
            sent += DIAL_DATA_CHUNK
        return sent

    def _interpret(self, peer: PeerId, resp: DialResponse, addrs: list[Multiaddr], sent: int) -> CheckResult:
        raw_status = resp.status or 0
        try:
            status: ResponseStatus | int = ResponseStatus(raw_status)
        except ValueError:
            raise AutoNATError(f"autonat server {peer} answered with unknown status {raw_status}") from None
        if status != ResponseStatus.OK:
            return CheckResult(peer, Reachability.UNKNOWN, status, dial_data_sent=sent,
                               detail=f"server answered {status_name(ResponseStatus, raw_status)}")
        idx = resp.addr_idx or 0
        if idx >= len(addrs):
            raise AutoNATError(f"autonat server {peer} reports address #{idx} of {len(addrs)}")
        raw_dial = resp.dial_status or 0
        try:
            dial: DialStatus | int = DialStatus(raw_dial)
        except ValueError:
            raise AutoNATError(f"autonat server {peer} answered with unknown dial status {raw_dial}") from None
        reach = {
            DialStatus.OK: Reachability.REACHABLE,
            DialStatus.E_DIAL_ERROR: Reachability.UNREACHABLE,
        }.get(dial, Reachability.UNKNOWN)  # type: ignore[call-overload]
        return CheckResult(peer, reach, status, addr=addrs[idx], addr_idx=idx, dial_status=dial,
                           dial_data_sent=sent, detail=f"dial {status_name(DialStatus, raw_dial)}")

    def _judge(self, result: CheckResult) -> None:
        if result.reachability == Reachability.REACHABLE and not result.dial_back_received:
            # the spec: trust the nonce, not the claim
            result.reachability = Reachability.UNKNOWN
            result.detail = "server reported OK but its dial-back with our nonce never arrived"
        if result.addr is None or result.reachability == Reachability.UNKNOWN:
            return
        status = self.addresses.get(result.addr)
        if status is None:
            status = self.addresses[result.addr] = AddressStatus(result.addr)
            while len(self.addresses) > MAX_TRACKED_ADDRS:
                self.addresses.popitem(last=False)
        status.record(result.server, result.reachability == Reachability.REACHABLE)

    def reachability(self, addr: Multiaddr | str) -> Reachability:
        """Our view of ``addr`` from the checks so far: ``confidence`` distinct servers
        must agree, and more of them than say the opposite."""
        ma = addr if isinstance(addr, Multiaddr) else Multiaddr(addr)
        status = self.addresses.get(ma)
        if status is None:
            return Reachability.UNKNOWN
        ok, bad = len(status.reachable_by), len(status.unreachable_by)
        if ok >= self.confidence and ok > bad:
            return Reachability.REACHABLE
        if bad >= self.confidence and bad > ok:
            return Reachability.UNREACHABLE
        return Reachability.UNKNOWN

    async def check_many(
        self, servers: Sequence[Any], addr: Multiaddr | str, *, timeout: float | None = None
    ) -> Reachability:
        """Ask each of ``servers`` about ``addr`` alone (concurrently); failures count as
        no answer. Returns :meth:`reachability` afterwards."""

        async def one(server: Any) -> None:
            try:
                await self.check(server, [addr], timeout=timeout)
            except PywasmError as exc:
                log.debug("autonat check with %s failed: %s", server, exc)

        await asyncio.gather(*(one(s) for s in servers))
        return self.reachability(addr)



__all__ = [
    "DIAL_REQUEST",
    "DIAL_BACK",
    "AutoNATv2Service",
    "AutoNATError",
    "CheckResult",
    "AddressStatus",
    "Reachability",
    "DialStatus",
    "ResponseStatus",
]
