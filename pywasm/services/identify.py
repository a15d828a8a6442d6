"""identify (``/ipfs/id/1.0.0``) and identify-push (``/ipfs/id/push/1.0.0``).

libp2p/specs identify/README.md: the responder writes one length-prefixed ``Identify``
protobuf and closes the stream; the requester reads to EOF. Some implementations split
a large answer into several messages, so we read up to :data:`MAX_MESSAGES` of them and
merge (later scalars win, repeated fields add up), as go-libp2p does. Push carries the
same message, sent by a peer whose protocols or addresses changed.

Every new connection is identified in the background; the result goes to the peerstore
and is available through :meth:`IdentifyService.identified`. The announced public key
must match the authenticated peer id, or the answer is rejected.

Signed peer records (RFC 0003): we send one for our listen addresses (re-signed only
when they change), and a received one is kept in the peerstore as the peer's certified
addresses only if its signature verifies and its signer is the authenticated peer;
otherwise it is dropped (the rest of the answer still counts).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import pb
from ..errors import HandshakeTimeoutError, ProtocolError, PywasmError
from ..identity import PeerId, PublicKey
from ..identity.envelope import EnvelopeError
from ..identity.peer_record import open_peer_record, seal_peer_record
from ..multiformats.multiaddr import Multiaddr
from ..streams import encode_lp
from .base import Service

if TYPE_CHECKING:
    from ..host.connection import Connection, HostStream

log = logging.getLogger("pywasm.services.identify")

IDENTIFY = "/ipfs/id/1.0.0"
IDENTIFY_PUSH = "/ipfs/id/push/1.0.0"
PROTOCOL_VERSION = "ipfs/0.1.0"
# One message: go-libp2p accepts 8 KiB with a signed record; leave room for long
# protocol lists while keeping a hard bound.
MAX_MESSAGE_SIZE = 64 * 1024
# Messages merged from one stream (go-libp2p splits big answers in two).
MAX_MESSAGES = 8
# Addresses and protocols taken from one answer (the peerstore bounds them again).
MAX_LISTEN_ADDRS = 64
MAX_PROTOCOLS = 512
DEFAULT_TIMEOUT = 10.0


@dataclass
class IdentifyPB(pb.Message):
    public_key: bytes | None = pb.field(1, "bytes")
    listen_addrs: list[bytes] = pb.field(2, "bytes", repeated=True)
    protocols: list[str] = pb.field(3, "string", repeated=True)
    observed_addr: bytes | None = pb.field(4, "bytes")
    protocol_version: str | None = pb.field(5, "string")
    agent_version: str | None = pb.field(6, "string")
    signed_peer_record: bytes | None = pb.field(8, "bytes")


@dataclass
class IdentifyInfo:
    """What a peer told us about itself."""

    peer_id: PeerId
    public_key: PublicKey | None = None
    protocol_version: str | None = None
    agent_version: str | None = None
    listen_addrs: list[Multiaddr] = field(default_factory=list)
    observed_addr: Multiaddr | None = None
    protocols: list[str] = field(default_factory=list)
    # kept as received (a signed envelope); not verified yet
    signed_peer_record: bytes | None = None


def _merge(into: IdentifyPB, msg: IdentifyPB) -> None:
    for name in ("public_key", "observed_addr", "protocol_version", "agent_version", "signed_peer_record"):
        value = getattr(msg, name)
        if value is not None:
            setattr(into, name, value)
    into.listen_addrs.extend(msg.listen_addrs)
    into.protocols.extend(msg.protocols)


def _addr(raw: bytes) -> Multiaddr | None:
    try:
        return Multiaddr(raw)
    except PywasmError:
        return None  # one bad address must not void the rest of the answer


async def read_identify(stream: "HostStream") -> IdentifyPB:
    """Read and merge Identify messages until EOF (bounded in size and count)."""
    merged = IdentifyPB()
    for _ in range(MAX_MESSAGES):
        data = await stream.read_lp(MAX_MESSAGE_SIZE)
        if data is None:
            return merged
        _merge(merged, IdentifyPB.decode(data))
    # more messages than any implementation sends: take what we have, drop the stream
    raise ProtocolError(f"more than {MAX_MESSAGES} identify messages on one stream")


def to_info(msg: IdentifyPB, conn: "Connection") -> IdentifyInfo:
    """Check an Identify message against the authenticated peer and convert it."""
    peer = conn.remote_peer
    public_key: PublicKey | None = None
    if msg.public_key is not None:
        public_key = PublicKey.from_protobuf(msg.public_key)
        if not peer.matches_public_key(public_key):
            raise ProtocolError(f"identify from {peer} carries the public key of another peer")
    else:
        public_key = getattr(conn, "remote_public_key", None)
    addrs = [a for a in (_addr(raw) for raw in msg.listen_addrs[:MAX_LISTEN_ADDRS]) if a is not None]
    observed = _addr(msg.observed_addr) if msg.observed_addr else None
    protocols = list(dict.fromkeys(msg.protocols))[:MAX_PROTOCOLS]
    return IdentifyInfo(
        peer_id=peer,
        public_key=public_key,
        protocol_version=msg.protocol_version,
        agent_version=msg.agent_version,
        listen_addrs=addrs,
        observed_addr=observed,
        protocols=protocols,
        signed_peer_record=msg.signed_peer_record,
    )


class IdentifyService(Service):
    name = "identify"
    protocols = (IDENTIFY, IDENTIFY_PUSH)
    # small and needed to upgrade a relayed connection (DCUtR learns addresses from it)
    allow_limited = True

    def __init__(
        self,
        *,
        agent_version: str | None = None,
        protocol_version: str = PROTOCOL_VERSION,
        timeout: float = DEFAULT_TIMEOUT,
        auto_identify: bool = True,
        push: bool = True,
        signed_record: bool = True,
    ) -> None:
        super().__init__()
        self.agent_version = agent_version
        self.protocol_version = protocol_version
        self.timeout = timeout
        self.auto_identify = auto_identify
        self.push_enabled = push
        self.send_signed_record = signed_record
        # our sealed record and the listen addresses it was made for
        self._own_record: tuple[tuple[Multiaddr, ...], bytes] | None = None
        # latest answer per live connection, and the automatic identify in flight
        self._results: dict[Connection, IdentifyInfo] = {}
        self._auto: dict[Connection, asyncio.Task[Any]] = {}
        self._push_scheduled = False
        # what peers told us our address looks like (most recent last, bounded)
        self.observed_addrs: list[Multiaddr] = []

    # --- our message -------------------------------------------------------------------------
    async def _signed_record(self) -> bytes | None:
        if not self.send_signed_record:
            return None
        addrs = tuple(self.host.listen_addrs())
        cached = self._own_record
        if cached is None or cached[0] != addrs:
            env = await seal_peer_record(self.host.private_key, list(addrs))
            cached = self._own_record = (addrs, env.encode())
        return cached[1]

    async def _full_message(self, conn: "Connection | None") -> IdentifyPB:
        msg = self._message(conn)
        msg.signed_peer_record = await self._signed_record()
        return msg

    def _message(self, conn: "Connection | None") -> IdentifyPB:
        host = self.host
        observed = getattr(conn, "remote_addr", None) if conn is not None else None
        return IdentifyPB(
            public_key=host.private_key.public_key.to_protobuf(),
            listen_addrs=[a.to_bytes() for a in host.listen_addrs()],
            protocols=host.protocols(),
            observed_addr=observed.to_bytes() if isinstance(observed, Multiaddr) else None,
            protocol_version=self.protocol_version,
            agent_version=self.agent_version or host.config.agent_version,
        )

    # --- responder -------------------------------------------------------------------------------
    async def handle(self, stream: "HostStream", conn: "Connection") -> None:
        if stream.protocol == IDENTIFY_PUSH:
            await self._on_push(stream, conn)
            return
        msg = await asyncio.wait_for(self._full_message(conn), self.timeout)
        await asyncio.wait_for(stream.write(encode_lp(msg.encode())), self.timeout)
        await stream.close()

    async def _on_push(self, stream: "HostStream", conn: "Connection") -> None:
        try:
            msg = await asyncio.wait_for(read_identify(stream), self.timeout)
        except asyncio.TimeoutError:
            raise HandshakeTimeoutError(f"identify push from {conn.remote_peer} timed out") from None
        info = to_info(msg, conn)
        await self._check_record(info, conn)
        self._store(conn, info, partial=True)
        await stream.close()

    # --- requester ---------------------------------------------------------------------------------
    async def identify(self, conn: "Connection", timeout: float | None = None) -> IdentifyInfo:
        """Ask the peer at the other end of ``conn`` (a fresh request) and store the answer."""
        limit = timeout if timeout is not None else self.timeout

        async def run() -> IdentifyInfo:
            stream = await conn.new_stream([IDENTIFY], timeout=limit, allow_limited=True)
            try:
                msg = await read_identify(stream)
            except BaseException:
                await stream.reset()
                raise
            await stream.close()
            return to_info(msg, conn)

        try:
            # not wait_for: its inner task's error goes unread on 3.11 when we are cancelled
            async with asyncio.timeout(limit):
                info = await run()
        except asyncio.TimeoutError:
            raise HandshakeTimeoutError(f"identify of {conn.remote_peer} timed out after {limit:g} s") from None
        await self._check_record(info, conn)
        self._store(conn, info, partial=False)
        return info

    async def _check_record(self, info: IdentifyInfo, conn: "Connection") -> None:
        """Verify the signed peer record in ``info``; keep it in the peerstore, or drop it."""
        raw = info.signed_peer_record
        if not raw:
            return
        try:
            env, record = await open_peer_record(raw)
            if record.peer_id != conn.remote_peer:
                raise EnvelopeError(f"record is for {record.peer_id}, not the connected peer")
        except (EnvelopeError, PywasmError) as exc:
            log.debug("dropping the signed peer record of %s: %s", conn.remote_peer, exc)
            info.signed_peer_record = None
            return
        self.host.peerstore.set_signed_record(conn.remote_peer, bytes(raw), record.seq, record.addrs)

    async def identified(self, conn: "Connection") -> IdentifyInfo:
        """The answer of the automatic identify of ``conn`` (waits for it; runs one if
        none was started)."""
        info = self._results.get(conn)
        if info is not None:
            return info
        task = self._auto.get(conn)
        if task is not None:
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.cancelled():
                    pass
                else:
                    raise
            info = self._results.get(conn)
            if info is not None:
                return info
        return await self.identify(conn)

    def _store(self, conn: "Connection", info: IdentifyInfo, partial: bool) -> None:
        ps = self.host.peerstore
        peer = info.peer_id
        if info.public_key is not None:
            ps.set_public_key(peer, info.public_key)
        if info.listen_addrs or not partial:
            ps.add_addrs(peer, info.listen_addrs)
        if info.protocols or not partial:
            ps.set_protocols(peer, info.protocols)
        ps.set_versions(peer, info.agent_version, info.protocol_version)
        if info.observed_addr is not None:
            ps.set_observed_addr(peer, info.observed_addr)
            if info.observed_addr not in self.observed_addrs:
                self.observed_addrs.append(info.observed_addr)
                del self.observed_addrs[:-16]  # bounded: recent observations only
        if not conn.is_closed:
            prev = self._results.get(conn)
            if partial and prev is not None:
                # a push may omit fields: keep what we knew
                info = IdentifyInfo(
                    peer_id=peer,
                    public_key=info.public_key or prev.public_key,
                    protocol_version=info.protocol_version or prev.protocol_version,
                    agent_version=info.agent_version or prev.agent_version,
                    listen_addrs=info.listen_addrs or prev.listen_addrs,
                    observed_addr=info.observed_addr or prev.observed_addr,
                    protocols=info.protocols or prev.protocols,
                    signed_peer_record=info.signed_peer_record or prev.signed_peer_record,
                )
            self._results[conn] = info

    # --- events -----------------------------------------------------------------------------------------
    def on_connection(self, conn: "Connection") -> None:
        if not self.auto_identify:
            return
        task = self.spawn(self._auto_identify(conn), f"identify of {conn.remote_peer}")
        if task is not None:
            self._auto[conn] = task

            def done(_: asyncio.Task[Any], conn: "Connection" = conn) -> None:
                if self._auto.get(conn) is task:
                    del self._auto[conn]

            task.add_done_callback(done)

    async def _auto_identify(self, conn: "Connection") -> None:
        try:
            await self.identify(conn)
        except PywasmError as exc:
            if not conn.is_closed:
                log.debug("identify of %s failed: %s", conn.remote_peer, exc)

    def on_disconnect(self, conn: "Connection") -> None:
        self._results.pop(conn, None)
        task = self._auto.pop(conn, None)
        if task is not None:
            task.cancel()

    def on_local_change(self) -> None:
        if not self.push_enabled or self._push_scheduled:
            return
        # coalesce a burst of changes (several set_stream_handler calls) into one push
        self._push_scheduled = True
        self.spawn(self._push_all(), "identify push")

    async def _push_all(self) -> None:
        await asyncio.sleep(0)
        self._push_scheduled = False
        host = self.host
        targets = [c for c in host.connections if not c.is_closed and host.peerstore.supports(c.remote_peer, IDENTIFY_PUSH)]
        await asyncio.gather(*(self.push(c) for c in targets), return_exceptions=True)

    async def push(self, conn: "Connection") -> None:
        """Send our current identify message to ``conn``'s peer over identify-push."""

        async def run() -> None:
            msg = await self._full_message(conn)
            stream = await conn.new_stream([IDENTIFY_PUSH], timeout=self.timeout, allow_limited=True)
            try:
                await stream.write(encode_lp(msg.encode()))
            except BaseException:
                await stream.reset()
                raise
            await stream.close()

        try:
            await asyncio.wait_for(run(), self.timeout)
        except asyncio.TimeoutError:
            raise HandshakeTimeoutError(f"identify push to {conn.remote_peer} timed out") from None
        except PywasmError as exc:
            log.debug("identify push to %s failed: %s", conn.remote_peer, exc)
            raise

    async def stop(self) -> None:
        self._auto.clear()
        self._results.clear()
        await super().stop()


__all__ = [
    "IDENTIFY",
    "IDENTIFY_PUSH",
    "PROTOCOL_VERSION",
    "MAX_MESSAGE_SIZE",
    "IdentifyPB",
    "IdentifyInfo",
    "IdentifyService",
    "read_identify",
    "to_info",
]
