"""The Kademlia DHT service (libp2p/specs kad-dht/README.md).

``KadDHT(mode="server")`` answers ``<prefix>/kad/1.0.0`` (``/ipfs`` by default; kubo's
LAN DHT uses ``/ipfs/lan``) and can be added to others' routing tables; ``mode="client"``
only asks, registers no handler and so never advertises the protocol in identify, which
is how servers know not to add it (pages run in client mode).

Routing table membership follows go-libp2p and js-libp2p: a peer goes in when it
answered one of our requests, or when identify says it speaks our protocol (checked on
every new connection and on each inbound request). A full bucket keeps its old members
unless a liveness check of the least recently seen one fails.

Network I/O is two methods, :meth:`KadDHT._request` (one request, one optional answer
over a fresh stream) and :meth:`KadDHT.handle_request` (the answer to one message): the
in-process simulation (benchmarks/dht_sim.py) swaps the first and calls the second
directly, so it measures this very lookup code without paying for Noise per node.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ..errors import PywasmError
from ..identity import PeerId
from ..multiformats.cid import CID
from ..multiformats.multiaddr import Multiaddr
from ..protocols.kad_pb import (
    DEFAULT_PREFIX,
    MAX_MESSAGE_SIZE,
    ConnectionType,
    MessagePB,
    MessageType,
    PeerInfo,
    RecordPB,
    decode_message,
    decode_peers,
    encode_peer,
    protocol_id,
)
from ..services.base import Service
from ..streams import encode_lp
from .errors import DHTError, NotFoundError, QueryError, RecordValidationError
from .keyspace import key_position, random_key_with_cpl
from .lookup import DEFAULT_ALPHA, Lookup, LookupResult, StopLookup, run_lookup
from .providers import ProviderStore
from .records import RecordStore, Validators, rfc3339
from .routing_table import DEFAULT_K, RoutingTable

if TYPE_CHECKING:
    from ..host.connection import Connection, HostStream
    from ..host.host import Host

log = logging.getLogger("pywasm.dht")

DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_LOOKUP_TIMEOUT = 60.0
# go-libp2p-kad-dht refreshes every 10 minutes, buckets up to CPL 15
DEFAULT_REFRESH_INTERVAL = 600.0
MAX_REFRESH_CPL = 15
# an inbound stream may carry several requests; bounded per stream and in idle time
MAX_REQUESTS_PER_STREAM = 256
DEFAULT_STREAM_IDLE_TIMEOUT = 60.0
# concurrent liveness checks of full buckets' oldest members
MAX_LIVENESS_CHECKS = 16
# addresses given per peer in our answers
MAX_ADDRS_IN_ANSWER = 8

Mode = str  # "server" | "client"


class KadDHT(Service):
    name = "dht"

    def __init__(
        self,
        *,
        mode: Mode = "server",
        protocol_prefix: str = DEFAULT_PREFIX,
        k: int = DEFAULT_K,
        alpha: int = DEFAULT_ALPHA,
        validators: Validators | None = None,
        records: RecordStore | None = None,
        providers: ProviderStore | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        lookup_timeout: float = DEFAULT_LOOKUP_TIMEOUT,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        bootstrap_peers: Iterable[Multiaddr | str] = (),
        max_message_size: int = MAX_MESSAGE_SIZE,
        stream_idle_timeout: float = DEFAULT_STREAM_IDLE_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if mode not in ("server", "client"):
            raise DHTError(f"mode must be 'server' or 'client', not {mode!r}")
        if k < 1 or alpha < 1:
            raise DHTError("k and alpha must be at least 1")
        self.mode = mode
        self.protocol = protocol_id(protocol_prefix)
        self.protocols = (self.protocol,) if mode == "server" else ()
        self.k = k
        self.alpha = alpha
        self.validators = validators or Validators()
        self.records = records or RecordStore()
        self.providers = providers or ProviderStore()
        self.request_timeout = request_timeout
        self.lookup_timeout = lookup_timeout
        self.refresh_interval = refresh_interval
        self.bootstrap_peers = [Multiaddr(a) if isinstance(a, str) else a for a in bootstrap_peers]
        self.max_message_size = max_message_size
        self.stream_idle_timeout = stream_idle_timeout
        self.clock = clock
        self.table: RoutingTable | None = None
        self.last_lookup: LookupResult | None = None
        self._checking: set[PeerId] = set()
        # counters a relay exports as metrics
        self.stats: dict[str, int] = {"requests_in": 0, "requests_out": 0, "errors_in": 0, "errors_out": 0}

    # --- lifecycle ------------------------------------------------------------------------
    def attach(self, host: "Host") -> None:
        super().attach(host)
        self.table = RoutingTable(host.peer_id, self.k)

    @property
    def routing_table(self) -> RoutingTable:
        if self.table is None:
            raise DHTError("the DHT is not attached to a host")
        return self.table

    async def start(self) -> None:
        if self.bootstrap_peers:
            self.spawn(self.bootstrap(self.bootstrap_peers), "dht bootstrap")
        if self.refresh_interval > 0:
            self.spawn(self._refresh_loop(), "dht refresh")

    def set_mode(self, mode: Mode) -> None:
        """Switch between server and client at runtime (identify-push tells peers)."""
        if mode not in ("server", "client"):
            raise DHTError(f"mode must be 'server' or 'client', not {mode!r}")
        if mode == self.mode:
            return
        self.mode = mode
        if mode == "server":
            self.protocols = (self.protocol,)
            self.host.set_stream_handler(self.protocol, self._dispatch, allow_limited=self.allow_limited)
        else:
            self.protocols = ()
            self.host.remove_stream_handler(self.protocol)

    # --- events ------------------------------------------------------------------------------
    def on_connection(self, conn: "Connection") -> None:
        if getattr(conn, "limited", False):
            return  # kad does not run over relayed connections
        self.spawn(self._check_new_connection(conn), f"dht check of {conn.remote_peer}")

    async def _check_new_connection(self, conn: "Connection") -> None:
        identify = self.host.services.get("identify")
        if identify is None:
            return
        try:
            info = await asyncio.wait_for(identify.identified(conn), self.request_timeout)  # type: ignore[attr-defined]
        except (asyncio.TimeoutError, PywasmError):
            return
        if self.protocol in info.protocols:
            self._add_peer(conn.remote_peer)

    def _add_peer(self, peer: PeerId) -> None:
        table = self.routing_table
        oldest = table.add(peer, self.clock())
        if oldest is not None and oldest not in self._checking and len(self._checking) < MAX_LIVENESS_CHECKS:
            self._checking.add(oldest)
            self.spawn(self._check_liveness(oldest), f"dht liveness of {oldest}")

    async def _check_liveness(self, peer: PeerId) -> None:
        try:
            if self._is_connected(peer):
                self.routing_table.touch(peer, self.clock())
                return
            try:
                await self.request(peer, MessagePB(type=MessageType.FIND_NODE, key=self.host.peer_id.to_bytes()))
            except QueryError:
                pass  # request() already removed it, promoting a replacement
        finally:
            self._checking.discard(peer)

    def _is_connected(self, peer: PeerId) -> bool:
        return bool(self.host.is_connected(peer))

    # --- outbound requests ---------------------------------------------------------------------
    async def request(self, peer: PeerId, msg: MessagePB, *, expect_response: bool = True) -> MessagePB | None:
        """Send one request to ``peer``; :class:`QueryError` on any failure (and the peer
        leaves our routing table). A peer that answers is a server: it goes in."""
        self.stats["requests_out"] += 1
        try:
            resp = await asyncio.wait_for(self._request(peer, msg, expect_response), self.request_timeout)
        except asyncio.TimeoutError:
            self._request_failed(peer)
            raise QueryError(f"kad request to {peer} timed out after {self.request_timeout:g} s") from None
        except PywasmError as exc:
            self._request_failed(peer)
            if isinstance(exc, QueryError):
                raise
            raise QueryError(f"kad request to {peer} failed: {exc}") from None
        self._add_peer(peer)
        return resp

    def _request_failed(self, peer: PeerId) -> None:
        self.stats["errors_out"] += 1
        if self.table is not None:
            self.table.remove(peer)

    async def _request(self, peer: PeerId, msg: MessagePB, expect_response: bool) -> MessagePB | None:
        stream = await self.host.new_stream(peer, [self.protocol], timeout=self.request_timeout)
        try:
            await stream.write(encode_lp(msg.encode()))
            if not expect_response:
                await stream.close()
                return None
            data = await stream.read_lp(self.max_message_size)
            if data is None:
                raise QueryError(f"{peer} closed the kad stream without answering")
            resp = decode_message(data, self.max_message_size)
        except BaseException:
            try:
                await stream.reset()
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise
        await stream.close()
        return resp

    # --- inbound requests ------------------------------------------------------------------------
    async def handle(self, stream: "HostStream", conn: "Connection") -> None:
        peer = conn.remote_peer
        for _ in range(MAX_REQUESTS_PER_STREAM):
            try:
                data = await asyncio.wait_for(stream.read_lp(self.max_message_size), self.stream_idle_timeout)
            except asyncio.TimeoutError:
                await stream.reset()
                return
            if data is None:
                await stream.close()
                return
            self.stats["requests_in"] += 1
            try:
                msg = decode_message(data, self.max_message_size)
                resp = await self.handle_request(peer, msg)
            except PywasmError:
                self.stats["errors_in"] += 1
                raise  # the host resets this stream and logs why; the node serves on
            if self.host.peerstore.supports(peer, self.protocol):
                self._add_peer(peer)
            if resp is not None:
                await asyncio.wait_for(stream.write(encode_lp(resp.encode())), self.request_timeout)
        await stream.close()

    async def handle_request(self, sender: PeerId, msg: MessagePB) -> MessagePB | None:
        """The answer to one request from ``sender`` (None: no answer is due)."""
        kind = msg.msg_type
        now = self.clock()
        if kind == MessageType.PING:
            return MessagePB(type=MessageType.PING)
        key = msg.key
        if not key:
            raise RecordValidationError(f"kad {kind.name} without a key")
        if kind == MessageType.FIND_NODE:
            return MessagePB(type=kind, key=key, closer_peers=self._closer(key, sender, include_target=True))
        if kind == MessageType.GET_VALUE:
            resp = MessagePB(type=kind, key=key, closer_peers=self._closer(key, sender))
            rec = self.records.get(key, now)
            if rec is not None:
                resp.record = RecordPB(key=rec.key, value=rec.value, time_received=rfc3339(rec.received))
            return resp
        if kind == MessageType.PUT_VALUE:
            record = msg.record
            if record is None or record.key != key or record.value is None:
                raise RecordValidationError("PUT_VALUE whose record is missing or has another key")
            self._store_record(key, record.value, now)
            return MessagePB(type=kind, key=key, record=RecordPB(key=key, value=record.value))
        if kind == MessageType.ADD_PROVIDER:
            for info in decode_peers(msg.provider_peers):
                # only the sender may announce itself (kad-dht/README.md)
                if info.peer_id == sender:
                    self.providers.add(key, sender, info.addrs, now)
                    if info.addrs:
                        self.host.peerstore.add_addrs(sender, info.addrs)
            return None
        if kind == MessageType.GET_PROVIDERS:
            provs = [
                encode_peer(PeerInfo(p, tuple(addrs or self._addrs_of(p))), self._conn_type(p))
                for p, addrs in self.providers.get(key, now)
            ][: self.k]
            return MessagePB(type=kind, key=key, closer_peers=self._closer(key, sender), provider_peers=provs)
        raise RecordValidationError(f"kad message type {kind.name} is not handled")  # pragma: no cover

    def _store_record(self, key: bytes, value: bytes, now: float) -> None:
        self.validators.validate(key, value)
        existing = self.records.get(key, now)
        if existing is not None and existing.value != value:
            if self.validators.select(key, [existing.value, value]) == 0:
                return  # what we hold is better: keep it (the sender gets the usual echo)
        self.records.put(key, value, now)

    def _addrs_of(self, peer: PeerId) -> list[Multiaddr]:
        if peer == self.host.peer_id:
            return list(self.host.listen_addrs())[:MAX_ADDRS_IN_ANSWER]
        return self.host.peerstore.addrs(peer)[:MAX_ADDRS_IN_ANSWER]

    def _conn_type(self, peer: PeerId) -> ConnectionType:
        return ConnectionType.CONNECTED if self._is_connected(peer) else ConnectionType.NOT_CONNECTED

    def _closer(self, key: bytes, sender: PeerId | None, include_target: bool = False) -> list[Any]:
        peers = self.routing_table.closest(key_position(key), self.k, exclude=sender)
        if include_target:
            # a FIND_NODE for a peer we are connected to (or for us) names it first, so
            # a lookup for a peer that is not in any table (a client) still ends there
            try:
                target = PeerId.from_bytes(key)
            except PywasmError:
                target = None
            if target is not None and target != sender and target not in peers:
                if target == self.host.peer_id or (self._is_connected(target) and self._addrs_of(target)):
                    peers = [target, *peers[: self.k - 1]]
        return [encode_peer(PeerInfo(p, tuple(self._addrs_of(p))), self._conn_type(p)) for p in peers]

    # --- lookups --------------------------------------------------------------------------------------
    async def _lookup(
        self,
        key: bytes,
        make: Callable[[], MessagePB],
        on_answer: Callable[[PeerId, MessagePB], None] | None = None,
    ) -> LookupResult:
        target = key_position(key)
        me = self.host.peer_id
        lookup = Lookup(target, self.routing_table.closest(target, self.k), self.k, self.alpha, local=me)

        async def query(peer: PeerId) -> list[PeerId]:
            resp = await self.request(peer, make())
            assert resp is not None
            infos = decode_peers(resp.closer_peers)
            ps = self.host.peerstore
            for info in infos:
                if info.addrs and info.peer_id != me:
                    ps.add_addrs(info.peer_id, info.addrs)
            if on_answer is not None:
                on_answer(peer, resp)  # may raise StopLookup
            return [i.peer_id for i in infos if i.peer_id != me]

        result = await run_lookup(lookup, query, self.lookup_timeout)
        self.last_lookup = result
        return result

    async def find_closest_peers(self, key: bytes) -> LookupResult:
        """The k peers closest to ``key`` that answered (FIND_NODE), with hop count."""
        return await self._lookup(key, lambda: MessagePB(type=MessageType.FIND_NODE, key=key))

    async def find_peer(self, peer: PeerId) -> list[Multiaddr]:
        """Addresses of ``peer`` (from the peerstore if connected, else a lookup)."""
        if self._is_connected(peer) and self.host.peerstore.addrs(peer):
            return self.host.peerstore.addrs(peer)
        found: list[Multiaddr] = []

        def on_answer(_: PeerId, resp: MessagePB) -> None:
            for info in decode_peers(resp.closer_peers):
                if info.peer_id == peer and info.addrs:
                    found.extend(a for a in info.addrs if a not in found)
                    raise StopLookup

        await self._lookup(peer.to_bytes(), lambda: MessagePB(type=MessageType.FIND_NODE, key=peer.to_bytes()), on_answer)
        if not found:
            raise NotFoundError(f"peer {peer} not found in the DHT")
        return found

    async def put_value(self, key: bytes, value: bytes) -> int:
        """Validate and store ``key`` -> ``value`` on the k closest peers (and here, in
        server mode); returns how many peers accepted it."""
        self.validators.validate(key, value)
        if len(value) > self.records.max_value_size:
            raise RecordValidationError(f"record value of {len(value)} bytes exceeds {self.records.max_value_size}")
        if self.mode == "server":
            self._store_record(key, value, self.clock())
        result = await self.find_closest_peers(key)
        msg = MessagePB(type=MessageType.PUT_VALUE, key=key, record=RecordPB(key=key, value=value))
        oks = await asyncio.gather(*(self._put_one(p, msg) for p in result.peers))
        stored = sum(oks)
        if stored == 0 and self.mode != "server":
            raise DHTError(f"no peer accepted the record (asked {len(result.peers)})")
        return stored

    async def _put_one(self, peer: PeerId, msg: MessagePB) -> bool:
        try:
            resp = await self.request(peer, msg)
        except QueryError as exc:
            log.debug("PUT_VALUE to %s failed: %s", peer, exc)
            return False
        return resp is not None and resp.record is not None and resp.record.value == msg.record.value  # type: ignore[union-attr]

    async def get_value(self, key: bytes, quorum: int = 1) -> bytes:
        """The best valid value of ``key`` among the first ``quorum`` found (local copy
        included); peers that returned a worse value get the best one back."""
        self.validators._for(key)  # an unknown namespace fails before any traffic
        found: list[tuple[PeerId | None, bytes]] = []
        local = self.records.get(key, self.clock())
        if local is not None:
            found.append((None, local.value))
        if len(found) < quorum:

            def on_answer(peer: PeerId, resp: MessagePB) -> None:
                rec = resp.record
                if rec is None or rec.value is None:
                    return
                if rec.key is not None and rec.key != key:
                    return
                try:
                    self.validators.validate(key, rec.value)
                except RecordValidationError as exc:
                    log.debug("invalid record for %r from %s: %s", key[:64], peer, exc)
                    return
                found.append((peer, rec.value))
                if len(found) >= quorum:
                    raise StopLookup

            await self._lookup(key, lambda: MessagePB(type=MessageType.GET_VALUE, key=key), on_answer)
        if not found:
            raise NotFoundError(f"no valid record for {key[:64]!r}")
        best = found[self.validators.select(key, [v for _, v in found])][1]
        outdated = [p for p, v in found if p is not None and v != best]
        if outdated:
            msg = MessagePB(type=MessageType.PUT_VALUE, key=key, record=RecordPB(key=key, value=best))
            for p in outdated:
                self.spawn(self._put_one(p, msg), "dht record correction")
        return best

    @staticmethod
    def provider_key(key: bytes | CID) -> bytes:
        """Provider records are keyed by the multihash of a CID."""
        return key.multihash if isinstance(key, CID) else bytes(key)

    async def provide(self, key: bytes | CID) -> int:
        """Announce that we provide ``key`` to the k closest peers; returns how many
        were told."""
        mh = self.provider_key(key)
        me = self.host.peer_id
        self.providers.add(mh, me, tuple(self._addrs_of(me)), self.clock())
        result = await self.find_closest_peers(mh)
        msg = MessagePB(type=MessageType.ADD_PROVIDER, key=mh, provider_peers=[encode_peer(PeerInfo(me, tuple(self._addrs_of(me))))])

        async def one(peer: PeerId) -> bool:
            try:
                await self.request(peer, msg, expect_response=False)
                return True
            except QueryError:
                return False

        return sum(await asyncio.gather(*(one(p) for p in result.peers)))

    async def find_providers(self, key: bytes | CID, count: int = DEFAULT_K) -> list[PeerInfo]:
        """Up to ``count`` providers of ``key`` (their addresses go to the peerstore)."""
        mh = self.provider_key(key)
        out: dict[PeerId, PeerInfo] = {}
        for peer, addrs in self.providers.get(mh, self.clock()):
            out[peer] = PeerInfo(peer, tuple(addrs))
        if len(out) < count:

            def on_answer(_: PeerId, resp: MessagePB) -> None:
                for info in decode_peers(resp.provider_peers):
                    if info.peer_id not in out:
                        out[info.peer_id] = info
                        if info.addrs and info.peer_id != self.host.peer_id:
                            self.host.peerstore.add_addrs(info.peer_id, info.addrs)
                if len(out) >= count:
                    raise StopLookup

            await self._lookup(mh, lambda: MessagePB(type=MessageType.GET_PROVIDERS, key=mh), on_answer)
        return list(out.values())[:count]

    # --- bootstrap and refresh -----------------------------------------------------------------------
    async def bootstrap(self, peers: Iterable[Multiaddr | str | PeerId] = ()) -> int:
        """Ask each given peer (dialing it first), look ourselves up, refresh every
        bucket; returns the routing table size."""
        targets = list(peers)

        async def seed(target: Multiaddr | str | PeerId) -> None:
            try:
                conn = await self.host.dial(target)
                await self.request(conn.remote_peer, MessagePB(type=MessageType.FIND_NODE, key=self.host.peer_id.to_bytes()))
            except PywasmError as exc:
                log.debug("bootstrap peer %s: %s", target, exc)

        await asyncio.gather(*(seed(t) for t in targets))
        await self.refresh(force=True)
        return len(self.routing_table)

    async def refresh(self, force: bool = False) -> None:
        """Look ourselves up, then look up a random key in every stale bucket."""
        await self.find_closest_peers(self.host.peer_id.to_bytes())
        table = self.routing_table
        now = self.clock()
        stale = table.stale_buckets(now, 0.0 if force else self.refresh_interval, MAX_REFRESH_CPL)
        for cpl in stale:
            await self.find_closest_peers(random_key_with_cpl(table.local_position, cpl))
            table.mark_refreshed(cpl, self.clock())

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            now = self.clock()
            self.records.expire(now)
            self.providers.expire(now)
            try:
                await self.refresh()
            except PywasmError as exc:
                log.debug("dht refresh: %s", exc)


__all__ = ["KadDHT", "DEFAULT_REQUEST_TIMEOUT", "DEFAULT_LOOKUP_TIMEOUT", "DEFAULT_REFRESH_INTERVAL"]
