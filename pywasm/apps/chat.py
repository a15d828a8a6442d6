"""A chat compatible with libp2p's universal-connectivity (UC) app, on any pywasm Host.

What UC peers (js-peer, node-js-peer, go-peer, rust-peer) speak, as read from the
libp2p/universal-connectivity repository:

* gossipsub topic ``universal-connectivity``: chat lines as raw UTF-8 text, signed
  messages (StrictSign); ``universal-connectivity-file`` carries file ids;
* message ids (js peers): sha-256 of the *decimal text* of the message's sequence number
  (``msgIdFnStrictNoSign`` in js-peer/src/lib/libp2p.ts) - :func:`uc_msg_id`. Every member
  of a mesh must agree on ids for IHAVE/IWANT and dedup to work across implementations;
* ``universal-connectivity-browser-peer-discovery``: @libp2p/pubsub-peer-discovery
  records ``Peer { bytes publicKey = 1; repeated bytes multiAddrs = 2; }`` published every
  few seconds, from which browsers learn each other's ``/p2p-circuit/webrtc`` addresses;
* direct messages on ``/universal-connectivity/dm/1.0.0``: one varint-length-prefixed
  ``DirectMessageRequest`` each way answered by one ``DirectMessageResponse`` (status 200).

:class:`ChatNode` wires this onto a started Host: it adds the gossipsub and DM services
when the Host has none (a browser Host is created before the page knows it wants a chat),
subscribes to the topics, keeps a bounded history and a live network view (connections
with their transports, ping RTTs, topic peers, discovered peers), and tries a direct
connection to discovered peers whose addresses this Host can dial (e.g. ``/webrtc`` when
that transport exists), falling back silently to the relay path.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .. import pb
from ..errors import DialError, ProtocolError, PywasmError
from ..identity import PeerId, PublicKey
from ..multiformats.multiaddr import Multiaddr
from ..pubsub import GossipsubConfig, GossipsubService, PubsubMessage
from ..services.base import Service

if TYPE_CHECKING:
    from ..host.connection import Connection, HostStream
    from ..host.host import Host

log = logging.getLogger("pywasm.apps.chat")

CHAT_TOPIC = "universal-connectivity"
FILE_TOPIC = "universal-connectivity-file"
DISCOVERY_TOPIC = "universal-connectivity-browser-peer-discovery"
TOPICS = (CHAT_TOPIC, FILE_TOPIC, DISCOVERY_TOPIC)
DM_PROTOCOL = "/universal-connectivity/dm/1.0.0"
DM_CLIENT_VERSION = "0.0.1"
MIME_TEXT_PLAIN = "text/plain"

#: the largest chat line / DM we send or accept (UC sends short text lines)
MAX_TEXT_BYTES = 16 * 1024
#: a DM frame: text plus metadata
MAX_DM_FRAME = MAX_TEXT_BYTES + 256
#: one DM exchange (stream open, request, response), as UC's 5 s AbortSignal
DM_TIMEOUT = 5.0
#: a discovery record: a key and a few addresses
MAX_DISCOVERY_RECORD = 4096
MAX_DISCOVERY_ADDRS = 32
DEFAULT_HISTORY = 500
DEFAULT_MAX_PEERS_TRACKED = 256
DEFAULT_DISCOVERY_INTERVAL = 10.0
#: how long a fresh announce waits for a peer in the discovery topic
ANNOUNCE_WAIT = 10.0
#: at most one extra announce (answering newly discovered peers) per this many seconds
REPLY_INTERVAL = 1.0
DEFAULT_PING_INTERVAL = 2.0
PING_TIMEOUT = 5.0
#: background direct-connection attempts at once
MAX_UPGRADES = 4
#: when two peers can each dial the other's /webrtc address, the one with the larger
#: peer id waits this long for the other's dial before dialing itself (one connection,
#: not two crossing ones)
DEFAULT_UPGRADE_YIELD = 5.0
#: one direct dial attempt
UPGRADE_DIAL_TIMEOUT = 30.0


class ChatError(PywasmError):
    """A chat operation failed (empty text, text too long, a DM the peer refused)."""


# ------------------------------------------------------------------ wire formats


def uc_msg_id(msg: PubsubMessage) -> bytes:
    """universal-connectivity's gossipsub message id: sha-256 of the sequence number
    written as a decimal integer (js: ``sha256(TextEncoder.encode(seqno.toString()))``).
    Messages without a seqno (unsigned) fall back to sha-256 of the data."""
    if msg.seqno:
        return hashlib.sha256(str(int.from_bytes(msg.seqno, "big")).encode()).digest()
    return hashlib.sha256(msg.data).digest()


def uc_gossipsub_config(**overrides: Any) -> GossipsubConfig:
    """Gossipsub as UC peers run it: signed messages, UC message ids, flood publish."""
    overrides.setdefault("msg_id_fn", uc_msg_id)
    return GossipsubConfig(**overrides)


class DMStatus(enum.IntEnum):
    UNKNOWN = 0
    OK = 200
    ERROR = 500


@dataclass
class DMMetadata(pb.Message):
    client_version: str | None = pb.field(1, "string")
    timestamp: int | None = pb.field(2, "int64")


@dataclass
class DMRequest(pb.Message):
    metadata: DMMetadata | None = pb.field(1, "message", message=DMMetadata)
    content: str | None = pb.field(2, "string")
    type: str | None = pb.field(3, "string")


@dataclass
class DMResponse(pb.Message):
    metadata: DMMetadata | None = pb.field(1, "message", message=DMMetadata)
    status: int | None = pb.field(2, "enum")
    status_text: str | None = pb.field(3, "string")


@dataclass
class DiscoveryPeer(pb.Message):
    """@libp2p/pubsub-peer-discovery's record (UC's rust-peer/src/generated/peer.proto)."""

    public_key: bytes | None = pb.field(1, "bytes")
    multi_addrs: list[bytes] = pb.field(2, "bytes", repeated=True)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _check_text(text: str) -> bytes:
    if not isinstance(text, str):
        raise ChatError(f"a message must be text, not {type(text).__name__}")
    if not text.strip():
        raise ChatError("message cannot be empty")
    data = text.encode("utf-8")
    if len(data) > MAX_TEXT_BYTES:
        raise ChatError(f"message of {len(data)} bytes is over the {MAX_TEXT_BYTES}-byte limit")
    return data


def transport_of(addr: Multiaddr | None) -> str:
    """A short name for how a connection travels, from its remote address."""
    if addr is None:
        return "?"
    names = addr.protocols()
    if "p2p-circuit" in names:
        return "webrtc" if "webrtc" in names else "relay"
    for name, label in (("webrtc-direct", "webrtc-direct"), ("webrtc", "webrtc"), ("webtransport", "webtransport"),
                        ("wss", "wss"), ("quic-v1", "quic"), ("memory", "memory")):
        if name in names:
            return label
    if "ws" in names:
        return "wss" if "tls" in names else "ws"
    return "tcp" if "tcp" in names else names[-1] if names else "?"


def connection_kind(conn: "Connection") -> str:
    """:func:`transport_of` a connection, except that every limited (relayed) one is
    "relay": the relayed connection WebRTC signaling runs on may carry a ``/webrtc``
    address, yet its bytes go through the relay."""
    return "relay" if conn.limited else transport_of(conn.remote_addr)


# ------------------------------------------------------------------ direct messages


class DirectMessageService(Service):
    """``/universal-connectivity/dm/1.0.0``: answers DMs (also over relayed connections,
    where browsers meet) and sends them."""

    name = "uc-dm"
    protocols = (DM_PROTOCOL,)
    allow_limited = True
    max_inbound_streams = 64

    def __init__(
        self, on_message: Callable[[PeerId, str, str, "Connection"], None] | None = None, *, timeout: float = DM_TIMEOUT
    ) -> None:
        super().__init__()
        self.on_message = on_message
        self.timeout = timeout

    def _response(self, status: DMStatus, text: str | None = None) -> bytes:
        return DMResponse(DMMetadata(DM_CLIENT_VERSION, _now_ms()), int(status), text).encode()

    async def handle(self, stream: "HostStream", conn: "Connection") -> None:
        from ..streams import encode_lp

        try:
            raw = await asyncio.wait_for(stream.read_lp(MAX_DM_FRAME), self.timeout)
            if raw is None:
                raise ProtocolError("DM stream closed before the request")
            req = DMRequest.decode(raw)
            content = req.content or ""
            if not content or len(content.encode("utf-8")) > MAX_TEXT_BYTES:
                await stream.write(encode_lp(self._response(DMStatus.ERROR, "empty or oversized message")))
                await stream.close()
                return
            await asyncio.wait_for(stream.write(encode_lp(self._response(DMStatus.OK))), self.timeout)
            await stream.close()
        except (PywasmError, asyncio.TimeoutError, ValueError) as exc:
            log.debug("DM from %s failed: %s", conn.remote_peer, exc)
            await _reset_quietly(stream)
            return
        if self.on_message is not None:
            self.on_message(conn.remote_peer, content, req.type or MIME_TEXT_PLAIN, conn)

    async def send(self, target: Any, text: str) -> None:
        """Send ``text`` to ``target`` (PeerId, multiaddr or Connection); raises
        :class:`ChatError` unless the peer answers OK within the timeout."""
        from ..streams import encode_lp

        _check_text(text)
        req = DMRequest(DMMetadata(DM_CLIENT_VERSION, _now_ms()), text, MIME_TEXT_PLAIN)

        async def exchange() -> DMResponse:
            stream = await self.host.new_stream(target, DM_PROTOCOL, allow_limited=True)
            try:
                await stream.write(encode_lp(req.encode()))
                raw = await stream.read_lp(MAX_DM_FRAME)
                if raw is None:
                    raise ChatError("the peer closed the DM stream without answering")
                await stream.close()
                return DMResponse.decode(raw)
            except BaseException:
                await _reset_quietly(stream)
                raise

        try:
            res = await asyncio.wait_for(exchange(), self.timeout)
        except asyncio.TimeoutError:
            raise ChatError(f"no DM answer within {self.timeout:g} s") from None
        if res.status != DMStatus.OK:
            raise ChatError(f"the peer answered the DM with status {res.status} {res.status_text or ''}".strip())


# ------------------------------------------------------------------ the relay's side


class TopicRelayGossipsub(GossipsubService):
    """Gossipsub that joins ``topics`` on start and discards what it receives: what a
    relay runs so peers connected only to it still form one mesh through it."""

    def __init__(self, topics: Iterable[str] = TOPICS, config: GossipsubConfig | None = None, **kw: Any) -> None:
        super().__init__(config or uc_gossipsub_config(), **kw)
        self.join_topics = tuple(topics)

    async def start(self) -> None:
        await super().start()
        for topic in self.join_topics:
            sub = await self.subscribe(topic)
            self.spawn(self._drain(sub), f"drain {topic}")

    @staticmethod
    async def _drain(sub: Any) -> None:
        async for _ in sub:
            pass


# ------------------------------------------------------------------ the chat node


@dataclass
class ChatMessage:
    kind: str  # "chat" | "file" | "dm-in" | "dm-out"
    sender: str
    text: str
    ts: int
    mine: bool = False
    peer: str = ""  # the other side of a DM
    msg_id: str = ""
    via: str = ""  # the neighbour that forwarded a pubsub message; for a DM in, the transport

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "sender": self.sender, "text": self.text, "ts": self.ts, "mine": self.mine,
            "peer": self.peer, "msg_id": self.msg_id, "via": self.via,
        }


async def add_service(host: "Host", svc: Service) -> Service:
    """Attach and start ``svc`` on an already started Host (no-op when one of that name
    exists: that one is returned). Live connections are reported to it."""
    existing = host.services.get(svc.name)
    if existing is not None:
        return existing
    host.services[svc.name] = svc
    svc.attach(host)
    await svc.start()
    for conn in host.connections:
        try:
            svc.on_connection(conn)
        except Exception:  # noqa: BLE001 - one odd connection must not stop the app
            log.exception("service %s failed on an existing connection", svc.name)
    return svc


class ChatNode:
    """The UC chat on one Host; see the module docstring. ``version`` grows on every
    change the UI may want to show; :meth:`wait_change` awaits the next one."""

    def __init__(
        self,
        host: "Host",
        *,
        history: int = DEFAULT_HISTORY,
        discovery_interval: float = DEFAULT_DISCOVERY_INTERVAL,
        ping_interval: float = DEFAULT_PING_INTERVAL,
        max_peers: int = DEFAULT_MAX_PEERS_TRACKED,
        upgrade: bool = True,
        upgrade_yield: float = DEFAULT_UPGRADE_YIELD,
    ) -> None:
        self.host = host
        self.history: deque[ChatMessage] = deque(maxlen=history)
        self.discovery_interval = discovery_interval
        self.ping_interval = ping_interval
        self.max_peers = max_peers
        self.upgrade = upgrade
        self.upgrade_yield = upgrade_yield
        self.rtts: dict[PeerId, float] = {}
        self.discovered: dict[PeerId, dict[str, Any]] = {}
        self.relays: list[Multiaddr] = []
        self.version = 0
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._upgrading: set[PeerId] = set()
        self._last_reply = float("-inf")
        self.pubsub: GossipsubService | None = None
        self.dm: DirectMessageService | None = None
        self._started = False

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self) -> "ChatNode":
        if self._started:
            return self
        self._started = True
        ps = await add_service(self.host, GossipsubService(uc_gossipsub_config()))
        if not isinstance(ps, GossipsubService):
            raise ChatError(f"the host's 'pubsub' service is a {type(ps).__name__}, not gossipsub")
        self.pubsub = ps
        dm = await add_service(self.host, DirectMessageService(self._on_dm))
        assert isinstance(dm, DirectMessageService)
        if dm.on_message is None:
            dm.on_message = self._on_dm
        self.dm = dm
        for topic in TOPICS:
            sub = await ps.subscribe(topic)
            self._spawn(self._consume(sub))
        self._spawn(self._discovery_loop())
        self._spawn(self._ping_loop())
        self._touch()
        return self

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _touch(self) -> None:
        self.version += 1
        self._changed.set()

    async def wait_change(self, since: int, timeout: float) -> int:
        """Wait (at most ``timeout`` s) until ``version`` moves past ``since``."""
        if self.version == since:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        return self.version

    # --- relay ------------------------------------------------------------------------------
    async def connect_relay(self, addr: str, *, reserve: bool = True) -> str:
        """Dial the relay; with ``reserve`` also listen through it (``/p2p-circuit``, plus
        ``/p2p-circuit/webrtc`` when this Host has private-to-private WebRTC) so other
        browsers can reach us. Reservation failures are only logged: chat goes through
        the relay's gossipsub either way. Returns the relay's peer id."""
        ma = Multiaddr(addr)
        conn = await self.host.dial(ma)
        if ma not in self.relays:
            self.relays.append(ma)
        if reserve:
            circuit = ma.encapsulate("/p2p-circuit")
            for listen in (circuit, circuit.encapsulate("/webrtc")):
                if not any(t.can_listen(listen) for t in self.host.transports):
                    continue
                try:
                    await self.host.listen(listen)
                except (PywasmError, OSError, asyncio.TimeoutError) as exc:
                    log.info("could not listen on %s: %s", listen, exc)
            # tell the others our new relayed addresses now, not at the next tick
            self._spawn(self._announce_when_heard())
        self._touch()
        return str(conn.remote_peer)

    # --- sending ------------------------------------------------------------------------------
    async def send(self, text: str) -> ChatMessage:
        data = _check_text(text)
        assert self.pubsub is not None, "start() the chat first"
        msg_id = await self.pubsub.publish(CHAT_TOPIC, data)
        m = ChatMessage("chat", str(self.host.peer_id), text, _now_ms(), mine=True, msg_id=msg_id.hex())
        self._record(m)
        return m

    async def send_dm(self, peer: str, text: str, addr: str | None = None) -> ChatMessage:
        """DM ``peer`` (a peer id): over a live connection, else by dialing ``addr`` or
        the peer's circuit address on our relay(s)."""
        assert self.dm is not None, "start() the chat first"
        pid = PeerId.from_string(peer)
        targets: list[Any] = []
        if self.host.is_connected(pid):
            targets.append(pid)
        if addr:
            targets.append(Multiaddr(addr))
        targets.extend(r.encapsulate(f"/p2p-circuit/p2p/{pid}") for r in self.relays)
        if not targets:
            raise ChatError(f"no way to reach {peer}: not connected and no relay known")
        last: Exception | None = None
        for target in targets:
            try:
                await self.dm.send(target, text)
                break
            except (PywasmError, OSError) as exc:
                last = exc
        else:
            raise ChatError(f"DM to {peer} failed: {last}")
        m = ChatMessage("dm-out", str(self.host.peer_id), text, _now_ms(), mine=True, peer=peer)
        self._record(m)
        return m

    # --- receiving ------------------------------------------------------------------------------
    def _record(self, m: ChatMessage) -> None:
        self.history.append(m)
        self._touch()

    def _on_dm(self, peer: PeerId, content: str, mime: str, conn: "Connection") -> None:
        # ``via``: how the DM travelled (a direct transport, or "relay")
        self._record(ChatMessage("dm-in", str(peer), content, _now_ms(), peer=str(peer), via=connection_kind(conn)))

    async def _consume(self, sub: Any) -> None:
        async for msg in sub:
            try:
                self._on_pubsub(msg)
            except Exception:  # noqa: BLE001 - one bad message must not end the stream
                log.exception("chat: could not handle a message on %s", msg.topic)

    def _on_pubsub(self, msg: PubsubMessage) -> None:
        author = msg.author
        sender = str(author) if author is not None else "anonymous"
        if author == self.host.peer_id:
            return
        via = str(msg.received_from) if msg.received_from is not None else ""
        if msg.topic == CHAT_TOPIC:
            text = msg.data.decode("utf-8", "replace")[: MAX_TEXT_BYTES]
            self._record(ChatMessage("chat", sender, text, _now_ms(), msg_id=msg.msg_id.hex(), via=via))
        elif msg.topic == FILE_TOPIC:
            self._record(ChatMessage("file", sender, msg.data[:256].decode("utf-8", "replace"), _now_ms(),
                                     msg_id=msg.msg_id.hex(), via=via))
        elif msg.topic == DISCOVERY_TOPIC:
            self._on_discovery(msg.data)

    # --- peer discovery -------------------------------------------------------------------------
    def discovery_record(self) -> bytes:
        addrs = [bytes(a) for a in self.host.addrs()][:MAX_DISCOVERY_ADDRS]
        return DiscoveryPeer(self.host.private_key.public_key.to_protobuf(), addrs).encode()

    async def announce(self) -> None:
        assert self.pubsub is not None
        await self.pubsub.publish(DISCOVERY_TOPIC, self.discovery_record())

    async def _announce_quietly(self) -> None:
        try:
            await self.announce()
        except PywasmError as exc:
            log.debug("discovery publish failed: %s", exc)

    async def _announce_when_heard(self, timeout: float = ANNOUNCE_WAIT) -> None:
        """Announce once some peer (the relay) has joined the discovery topic: a publish
        before its subscription arrives reaches nobody."""
        assert self.pubsub is not None
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not self.pubsub.peers(DISCOVERY_TOPIC) and loop.time() < end:
            await asyncio.sleep(0.1)
        await self._announce_quietly()

    async def _discovery_loop(self) -> None:
        while True:
            await self._announce_quietly()
            await asyncio.sleep(self.discovery_interval)

    def _on_discovery(self, data: bytes) -> None:
        if len(data) > MAX_DISCOVERY_RECORD:
            return
        try:
            rec = DiscoveryPeer.decode(data)
            peer = PeerId.from_public_key(PublicKey.from_protobuf(rec.public_key or b""))
            addrs = [Multiaddr(a) for a in rec.multi_addrs[:MAX_DISCOVERY_ADDRS]]
        except (PywasmError, ValueError) as exc:
            log.debug("bad discovery record: %s", exc)
            return
        if peer == self.host.peer_id:
            return
        new = peer not in self.discovered
        if new and len(self.discovered) >= self.max_peers:
            oldest = min(self.discovered, key=lambda p: self.discovered[p]["seen"])
            del self.discovered[oldest]
        self.discovered[peer] = {"addrs": [str(a) for a in addrs], "seen": _now_ms()}
        if new:
            # answer a newcomer with our record at once (not at our next tick), so both
            # sides know each other within a round trip and the upgrade tie-break holds
            loop = asyncio.get_running_loop()
            if loop.time() - self._last_reply >= REPLY_INTERVAL:
                self._last_reply = loop.time()
                self._spawn(self._announce_quietly())
        self._touch()
        if self.upgrade:
            self._maybe_upgrade(peer, addrs)

    def _has_direct(self, peer: PeerId) -> bool:
        return any(not c.limited and not c.is_closed for c in self.host.connections_to(peer))

    def _maybe_upgrade(self, peer: PeerId, addrs: list[Multiaddr]) -> None:
        """Dial a direct (non-relayed) address of ``peer`` if this Host can; silently keep
        the relay path otherwise. A peer discovered through the relay announces
        ``<relay>/p2p-circuit/webrtc/p2p/<peer>``: dialing it signals through the relay and
        ends on a direct WebRTC connection (the host prefers it for every new stream)."""
        if peer in self._upgrading or len(self._upgrading) >= MAX_UPGRADES:
            return
        if self._has_direct(peer):
            return
        direct = [a for a in addrs if (a.has_protocol("webrtc") or not a.has_protocol("p2p-circuit"))
                  and any(t.can_dial(a) for t in self.host.transports)]
        if not direct:
            return
        # both sides discover each other: let the smaller peer id dial first, so two pages
        # end up with one WebRTC connection rather than two crossing ones
        wait = 0.0
        if any(a.has_protocol("webrtc") for a in direct) and self._reachable_over_webrtc() \
                and peer.to_bytes() < self.host.peer_id.to_bytes():
            wait = self.upgrade_yield
        self._upgrading.add(peer)

        async def attempt() -> None:
            try:
                if wait > 0:
                    await asyncio.sleep(wait)
                    if self._has_direct(peer):
                        return
                for a in direct:
                    try:
                        await asyncio.wait_for(self.host.dial(a), UPGRADE_DIAL_TIMEOUT)
                        self._touch()
                        return
                    except (PywasmError, OSError, asyncio.TimeoutError) as exc:
                        log.debug("direct dial %s failed: %s", a, exc)
            finally:
                self._upgrading.discard(peer)

        self._spawn(attempt())

    def _reachable_over_webrtc(self) -> bool:
        """Whether others can dial us over WebRTC (we announce a /webrtc address)."""
        return any(a.has_protocol("webrtc") for a in self.host.addrs())

    # --- network view -----------------------------------------------------------------------------
    async def _ping_loop(self) -> None:
        while True:
            ping = self.host.services.get("ping")
            conns = [c for c in self.host.connections if not c.limited and not c.is_closed]
            live = {c.remote_peer for c in self.host.connections}
            for peer in [p for p in self.rtts if p not in live]:
                del self.rtts[peer]
            if ping is not None:
                for conn in conns:
                    try:
                        rtt = await asyncio.wait_for(ping.ping(conn), PING_TIMEOUT)  # type: ignore[attr-defined]
                        self.rtts[conn.remote_peer] = rtt * 1000.0
                    except (PywasmError, OSError, asyncio.TimeoutError):
                        self.rtts.pop(conn.remote_peer, None)
                self._touch()
            await asyncio.sleep(self.ping_interval)

    def network(self) -> dict[str, Any]:
        """Everything the network view shows, as plain data (JSON-able)."""
        ps = self.pubsub
        conns = []
        for c in self.host.connections:
            rtt = self.rtts.get(c.remote_peer)
            conns.append({
                "peer": str(c.remote_peer),
                "addr": str(c.remote_addr) if c.remote_addr is not None else "",
                "transport": connection_kind(c),
                "direction": str(getattr(c.direction, "value", c.direction)),
                "limited": bool(c.limited),
                "rtt_ms": round(rtt, 2) if rtt is not None else None,
            })
        topics = {t: sorted(str(p) for p in ps.peers(t)) for t in TOPICS} if ps else {}
        mesh = {t: sorted(str(p) for p in ps.mesh(t)) for t in TOPICS} if ps else {}
        return {
            "peer_id": str(self.host.peer_id),
            "addrs": [str(a) for a in self.host.addrs()],
            "connections": conns,
            "topic_peers": topics,
            "mesh": mesh,
            "discovered": {str(p): dict(v) for p, v in self.discovered.items()},
        }

    def messages(self) -> list[dict[str, Any]]:
        return [m.to_dict() for m in self.history]


async def _reset_quietly(stream: Any) -> None:
    try:
        await stream.reset()
    except Exception:  # noqa: BLE001 - already broken
        pass


__all__ = [
    "CHAT_TOPIC", "FILE_TOPIC", "DISCOVERY_TOPIC", "TOPICS", "DM_PROTOCOL",
    "ChatError", "ChatMessage", "ChatNode", "DirectMessageService", "TopicRelayGossipsub",
    "DMRequest", "DMResponse", "DMMetadata", "DMStatus", "DiscoveryPeer",
    "add_service", "connection_kind", "transport_of", "uc_gossipsub_config", "uc_msg_id",
]
