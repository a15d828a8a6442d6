"""Rendezvous (``/rendezvous/1.0.0``, libp2p/specs rendezvous/README.md).

``RendezvousService(server=True)`` keeps registrations (a signed peer record per peer and
namespace, RFC 0003) until their TTL ends and answers DISCOVER with pages bounded by
``limit`` and a cookie, so a client asking again gets only what is new. Every table is
bounded: namespaces, registrations per namespace, per peer, and in total.

Every node is a client: :meth:`RendezvousService.register` (optionally refreshed before
it expires), :meth:`unregister`, :meth:`discover` (records verified, addresses put in the
peerstore as certified: they are signed by the peer itself).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ProtocolError, PywasmError
from ..identity import PeerId
from ..identity.envelope import EnvelopeError
from ..identity.peer_record import open_peer_record, seal_peer_record
from ..multiformats.multiaddr import Multiaddr
from ..protocols.rendezvous_pb import (
    DEFAULT_DISCOVER_LIMIT,
    DEFAULT_TTL,
    MAX_MESSAGE_SIZE,
    MAX_NAMESPACE_LEN,
    MAX_TTL,
    MIN_TTL,
    RENDEZVOUS,
    DiscoverPB,
    DiscoverResponsePB,
    MessageType,
    RegisterPB,
    RegisterResponsePB,
    RendezvousPB,
    ResponseStatus,
    UnregisterPB,
)
from ..streams import encode_lp
from .base import Service

if TYPE_CHECKING:
    from ..host.connection import Connection, HostStream

log = logging.getLogger("pywasm.services.rendezvous")

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_NAMESPACES = 1024
DEFAULT_MAX_PER_NAMESPACE = 1000
DEFAULT_MAX_PER_PEER = 100
DEFAULT_MAX_TOTAL = 10_000
MAX_REQUESTS_PER_STREAM = 64
# refresh a registration when this fraction of its TTL has passed
REFRESH_FRACTION = 0.8


class RendezvousError(PywasmError):
    """A rendezvous server refused a request; ``status`` says why."""

    def __init__(self, status: int, text: str | None = None) -> None:
        try:
            name = ResponseStatus(status).name
        except ValueError:
            name = str(status)
        super().__init__(f"rendezvous: {name}{': ' + text if text else ''}")
        self.status = status


@dataclass(slots=True)
class _Reg:
    peer: PeerId
    record: bytes  # the signed envelope, as received
    expires: float
    ttl: int
    seq: int  # server-wide registration counter, for cookies


@dataclass
class Registration:
    """One discovered registration (its signed record already verified)."""

    peer_id: PeerId
    addrs: list[Multiaddr]
    namespace: str
    ttl: int


def _valid_ns(ns: str | None) -> bool:
    return ns is not None and 0 < len(ns) <= MAX_NAMESPACE_LEN


class RendezvousService(Service):
    name = "rendezvous"

    def __init__(
        self,
        *,
        server: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        max_namespaces: int = DEFAULT_MAX_NAMESPACES,
        max_per_namespace: int = DEFAULT_MAX_PER_NAMESPACE,
        max_per_peer: int = DEFAULT_MAX_PER_PEER,
        max_total: int = DEFAULT_MAX_TOTAL,
        min_ttl: int = MIN_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.server = server
        self.protocols = (RENDEZVOUS,) if server else ()
        self.timeout = timeout
        self.max_namespaces = max_namespaces
        self.max_per_namespace = max_per_namespace
        self.max_per_peer = max_per_peer
        self.max_total = max_total
        self.min_ttl = min_ttl
        self.clock = clock
        self._ns: dict[str, OrderedDict[PeerId, _Reg]] = {}
        self._per_peer: dict[PeerId, int] = {}
        self._total = 0
        self._seq = 0
        # client side: (server, namespace) -> refresh task
        self._refreshers: dict[tuple[PeerId, str], asyncio.Task[Any]] = {}

    # ================================================================== server
    def registrations(self, ns: str) -> list[PeerId]:
        self._expire_ns(ns)
        return list(self._ns.get(ns, ()))

    def _drop(self, ns: str, peer: PeerId) -> None:
        regs = self._ns.get(ns)
        if regs is None or peer not in regs:
            return
        del regs[peer]
        self._total -= 1
        left = self._per_peer.get(peer, 1) - 1
        if left <= 0:
            self._per_peer.pop(peer, None)
        else:
            self._per_peer[peer] = left
        if not regs:
            del self._ns[ns]

    def _expire_ns(self, ns: str) -> None:
        regs = self._ns.get(ns)
        if not regs:
            return
        now = self.clock()
        for peer in [p for p, r in regs.items() if r.expires <= now]:
            self._drop(ns, peer)

    async def _on_register(self, peer: PeerId, reg: RegisterPB | None) -> RegisterResponsePB:
        def fail(status: ResponseStatus, text: str) -> RegisterResponsePB:
            return RegisterResponsePB(status=int(status), status_text=text)

        if reg is None or not _valid_ns(reg.ns):
            return fail(ResponseStatus.E_INVALID_NAMESPACE, "namespace must be 1-255 characters")
        ns = reg.ns
        assert ns is not None
        ttl = DEFAULT_TTL if reg.ttl is None else reg.ttl
        if not self.min_ttl <= ttl <= MAX_TTL:
            return fail(ResponseStatus.E_INVALID_TTL, f"ttl must be within {self.min_ttl}..{MAX_TTL} s")
        if not reg.signed_peer_record:
            return fail(ResponseStatus.E_INVALID_SIGNED_PEER_RECORD, "a signed peer record is required")
        try:
            _, record = await open_peer_record(reg.signed_peer_record)
        except EnvelopeError as exc:
            return fail(ResponseStatus.E_INVALID_SIGNED_PEER_RECORD, str(exc)[:200])
        if record.peer_id != peer:
            return fail(ResponseStatus.E_NOT_AUTHORIZED, "the signed peer record is not the registering peer's")
        self._expire_ns(ns)
        regs = self._ns.get(ns)
        replacing = regs is not None and peer in regs
        if not replacing:
            if regs is None and len(self._ns) >= self.max_namespaces:
                return fail(ResponseStatus.E_UNAVAILABLE, "too many namespaces")
            if regs is not None and len(regs) >= self.max_per_namespace:
                return fail(ResponseStatus.E_UNAVAILABLE, "namespace is full")
            if self._per_peer.get(peer, 0) >= self.max_per_peer:
                return fail(ResponseStatus.E_UNAVAILABLE, "too many registrations from this peer")
            if self._total >= self.max_total:
                return fail(ResponseStatus.E_UNAVAILABLE, "registration table is full")
        else:
            self._drop(ns, peer)
        regs = self._ns.setdefault(ns, OrderedDict())
        self._seq += 1
        regs[peer] = _Reg(peer, bytes(reg.signed_peer_record), self.clock() + ttl, ttl, self._seq)
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        self._total += 1
        return RegisterResponsePB(status=int(ResponseStatus.OK), ttl=ttl)

    def _on_discover(self, disc: DiscoverPB | None) -> DiscoverResponsePB:
        d = disc or DiscoverPB()
        ns = d.ns or ""
        if ns and not _valid_ns(ns):
            return DiscoverResponsePB(status=int(ResponseStatus.E_INVALID_NAMESPACE), status_text="namespace too long")
        limit = min(d.limit or DEFAULT_DISCOVER_LIMIT, DEFAULT_DISCOVER_LIMIT)
        after = 0
        if d.cookie:
            # cookie = u64 sequence of the last registration returned + the namespace asked
            if len(d.cookie) < 8 or d.cookie[8:] != ns.encode():
                return DiscoverResponsePB(status=int(ResponseStatus.E_INVALID_COOKIE), status_text="cookie is not for this namespace")
            (after,) = struct.unpack(">Q", d.cookie[:8])
        names = [ns] if ns else list(self._ns)
        found: list[tuple[str, _Reg]] = []
        now = self.clock()
        for name in names:
            self._expire_ns(name)
            found.extend((name, r) for r in self._ns.get(name, {}).values() if r.seq > after)
        found.sort(key=lambda x: x[1].seq)
        page = found[:limit]
        last = page[-1][1].seq if page else after
        regs = [RegisterPB(ns=name, signed_peer_record=r.record, ttl=max(0, int(r.expires - now))) for name, r in page]
        return DiscoverResponsePB(registrations=regs, cookie=struct.pack(">Q", last) + ns.encode(), status=int(ResponseStatus.OK))

    async def handle(self, stream: "HostStream", conn: "Connection") -> None:
        peer = conn.remote_peer
        for _ in range(MAX_REQUESTS_PER_STREAM):
            data = await asyncio.wait_for(stream.read_lp(MAX_MESSAGE_SIZE), self.timeout * 6)
            if data is None:
                break
            msg = RendezvousPB.decode(data, max_size=MAX_MESSAGE_SIZE)
            kind = 0 if msg.type is None else msg.type
            if kind == MessageType.REGISTER:
                resp = RendezvousPB(type=int(MessageType.REGISTER_RESPONSE), register_response=await self._on_register(peer, msg.register))
            elif kind == MessageType.UNREGISTER:
                if msg.unregister is not None and _valid_ns(msg.unregister.ns):
                    self._drop(msg.unregister.ns, peer)  # type: ignore[arg-type]
                continue  # no answer is due
            elif kind == MessageType.DISCOVER:
                resp = RendezvousPB(type=int(MessageType.DISCOVER_RESPONSE), discover_response=self._on_discover(msg.discover))
            else:
                raise ProtocolError(f"rendezvous: unexpected message type {kind}")
            await asyncio.wait_for(stream.write(encode_lp(resp.encode())), self.timeout)
        await stream.close()

    # ================================================================== client
    async def _rpc(self, server: Any, msg: RendezvousPB, expect: MessageType | None) -> RendezvousPB | None:
        async def run() -> RendezvousPB | None:
            stream = await self.host.new_stream(server, [RENDEZVOUS], timeout=self.timeout)
            try:
                await stream.write(encode_lp(msg.encode()))
                if expect is None:
                    await stream.close()
                    return None
                data = await stream.read_lp(MAX_MESSAGE_SIZE)
                if data is None:
                    raise ProtocolError("rendezvous server closed the stream without answering")
                resp = RendezvousPB.decode(data, max_size=MAX_MESSAGE_SIZE)
                if (resp.type or 0) != expect:
                    raise ProtocolError(f"rendezvous: expected {expect.name}, got type {resp.type}")
            except BaseException:
                try:
                    await stream.reset()
                except Exception:  # noqa: BLE001
                    pass
                raise
            await stream.close()
            return resp

        try:
            return await asyncio.wait_for(run(), self.timeout)
        except asyncio.TimeoutError:
            raise ProtocolError(f"rendezvous request timed out after {self.timeout:g} s") from None

    async def register(self, server: Any, namespace: str, ttl: int = DEFAULT_TTL, *, refresh: bool = False) -> int:
        """Register our signed peer record under ``namespace`` at ``server`` (a peer id,
        multiaddr or connection); returns the TTL granted. ``refresh`` re-registers
        before it runs out, until :meth:`unregister` or stop."""
        if not _valid_ns(namespace):
            raise RendezvousError(int(ResponseStatus.E_INVALID_NAMESPACE), "namespace must be 1-255 characters")
        env = await seal_peer_record(self.host.private_key, list(self.host.listen_addrs()))
        msg = RendezvousPB(type=int(MessageType.REGISTER), register=RegisterPB(ns=namespace, signed_peer_record=env.encode(), ttl=ttl))
        resp = await self._rpc(server, msg, MessageType.REGISTER_RESPONSE)
        rr = resp.register_response if resp is not None else None
        if rr is None:
            raise ProtocolError("rendezvous: REGISTER_RESPONSE without a body")
        if (rr.status or 0) != ResponseStatus.OK:
            raise RendezvousError(rr.status or 0, rr.status_text)
        granted = rr.ttl or ttl
        if refresh:
            conn = await self.host.dial(server)
            key = (conn.remote_peer, namespace)
            old = self._refreshers.pop(key, None)
            if old is not None:
                old.cancel()
            task = self.spawn(self._refresh(conn.remote_peer, namespace, ttl, granted), f"rendezvous refresh {namespace}")
            if task is not None:
                self._refreshers[key] = task
        return granted

    async def _refresh(self, server: PeerId, namespace: str, ttl: int, granted: int) -> None:
        while True:
            await asyncio.sleep(max(1.0, granted * REFRESH_FRACTION))
            try:
                granted = await self.register(server, namespace, ttl)
            except PywasmError as exc:
                log.debug("rendezvous refresh of %s at %s failed: %s", namespace, server, exc)
                granted = max(self.min_ttl, 60) // 4 or 1  # retry sooner

    async def unregister(self, server: Any, namespace: str) -> None:
        conn = await self.host.dial(server)
        task = self._refreshers.pop((conn.remote_peer, namespace), None)
        if task is not None:
            task.cancel()
        msg = RendezvousPB(type=int(MessageType.UNREGISTER), unregister=UnregisterPB(ns=namespace))
        await self._rpc(conn, msg, None)

    async def discover(self, server: Any, namespace: str = "", limit: int = DEFAULT_DISCOVER_LIMIT, cookie: bytes | None = None) -> tuple[list[Registration], bytes | None]:
        """Registrations at ``server`` (all namespaces when ``namespace`` is empty) newer
        than ``cookie``; returns them and the cookie for the next call. Records whose
        signature does not verify are dropped."""
        msg = RendezvousPB(type=int(MessageType.DISCOVER), discover=DiscoverPB(ns=namespace or None, limit=limit, cookie=cookie))
        resp = await self._rpc(server, msg, MessageType.DISCOVER_RESPONSE)
        dr = resp.discover_response if resp is not None else None
        if dr is None:
            raise ProtocolError("rendezvous: DISCOVER_RESPONSE without a body")
        if (dr.status or 0) != ResponseStatus.OK:
            raise RendezvousError(dr.status or 0, dr.status_text)
        out: list[Registration] = []
        for reg in dr.registrations[:limit]:
            if not reg.signed_peer_record or not _valid_ns(reg.ns):
                continue
            try:
                _, record = await open_peer_record(reg.signed_peer_record)
            except EnvelopeError as exc:
                log.debug("rendezvous: dropping a registration: %s", exc)
                continue
            if record.peer_id != self.host.peer_id and record.addrs:
                self.host.peerstore.add_addrs(record.peer_id, record.addrs)
            out.append(Registration(record.peer_id, record.addrs, reg.ns or "", reg.ttl or 0))
        return out, dr.cookie

    async def stop(self) -> None:
        self._refreshers.clear()
        await super().stop()


__all__ = ["RendezvousService", "RendezvousError", "Registration", "RENDEZVOUS"]
