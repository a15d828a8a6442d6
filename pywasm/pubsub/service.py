"""The gossipsub service: streams, validation and the heartbeat around :class:`GossipRouter`.

Usage::

    ps = host.services["pubsub"]
    sub = await ps.subscribe("universal-connectivity")
    msg_id = await ps.publish("universal-connectivity", b"hello")
    async for msg in sub:          # PubsubMessage(topic, data, from_peer, seqno, msg_id ...)
        ...
    ps.set_validator(topic, fn)    # fn(msg) -> ValidationResult | bool (may be async)

Per peer: one long-lived outbound stream that we write to (negotiated as
``/meshsub/1.2.0``, 1.1, 1.0 or ``/floodsub/1.0.0``) and the peer's inbound stream we read
from, as go and js do. Frames for a peer wait in a bounded queue served by one writer task;
when it is full, frames are dropped and the router penalizes the peer. A frame that does
not decode raises :class:`PubsubProtocolError`: that peer's stream is reset and it is
dropped from the router (its penalty stays with its score); the node goes on serving.

The heartbeat runs on one timer (``auto_heartbeat=True``), or tests call
:meth:`GossipsubService.heartbeat` themselves with an injected ``clock``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections import deque
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Union

from ..errors import ConfigError, ProtobufError, PywasmError
from ..identity import PeerId
from ..protocols.pubsub_pb import RPC, MessagePB, PeerInfoPB
from ..services.base import Service
from ..streams import encode_lp
from .config import PROTOCOLS, GossipsubConfig, SignaturePolicy
from .message import (
    PubsubError,
    PubsubMessage,
    PubsubProtocolError,
    SeqnoCounter,
    ValidationResult,
    check_signature_policy,
    sign_message,
)
from .router import GossipRouter

if TYPE_CHECKING:
    from ..host.connection import Connection, HostStream
    from ..host.host import Host

log = logging.getLogger("pywasm.pubsub")

ValidatorResult = Union[ValidationResult, bool, None]
Validator = Callable[[PubsubMessage], Union[ValidatorResult, Awaitable[ValidatorResult]]]

# PX dials running at once
_MAX_PX_DIALS = 16
_MAX_TOPIC_LEN = 1024


class Subscription:
    """Messages of one topic, in arrival order; a bounded buffer (oldest dropped first)."""

    def __init__(self, service: "GossipsubService", topic: str, limit: int) -> None:
        self.topic = topic
        self._service = service
        self._queue: deque[PubsubMessage] = deque()
        self._limit = limit
        self._event = asyncio.Event()
        self.dropped = 0
        self.closed = False

    def _push(self, msg: PubsubMessage) -> None:
        if len(self._queue) >= self._limit:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(msg)
        self._event.set()

    async def get(self, timeout: float | None = None) -> PubsubMessage:
        """The next message; :class:`asyncio.TimeoutError` after ``timeout`` seconds,
        :class:`PubsubError` once the subscription is cancelled and drained."""
        while not self._queue:
            if self.closed:
                raise PubsubError(f"subscription to {self.topic!r} is closed")
            self._event.clear()
            if timeout is None:
                await self._event.wait()
            else:
                await asyncio.wait_for(self._event.wait(), timeout)
        return self._queue.popleft()

    def get_nowait(self) -> PubsubMessage | None:
        return self._queue.popleft() if self._queue else None

    def __len__(self) -> int:
        return len(self._queue)

    def __aiter__(self) -> AsyncIterator[PubsubMessage]:
        return self

    async def __anext__(self) -> PubsubMessage:
        try:
            return await self.get()
        except PubsubError:
            raise StopAsyncIteration from None

    def cancel(self) -> None:
        if not self.closed:
            self.closed = True
            self._event.set()
            self._service._unsubscribe(self)

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cancel()


class _Link:
    """Our outbound side to one peer: the stream (once open), its queue, its writer."""

    __slots__ = ("peer", "conn", "stream", "queue", "wake", "task", "opening")

    def __init__(self, peer: PeerId, conn: "Connection") -> None:
        self.peer = peer
        self.conn = conn
        self.stream: "HostStream | None" = None
        self.queue: deque[bytes] = deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[Any] | None = None
        self.opening = True


def _ip_of(conn: "Connection") -> str | None:
    addr = getattr(conn, "remote_addr", None)
    if addr is None:
        return None
    try:
        return addr.value_for("ip4") or addr.value_for("ip6")
    except Exception:  # noqa: BLE001 - any odd address just has no IP
        return None


class GossipsubService(Service):
    name = "pubsub"
    protocols = PROTOCOLS
    # one inbound stream per peer (plus a replacement in flight)
    max_inbound_streams = 4096
    max_background_tasks = 8192

    def __init__(
        self,
        config: GossipsubConfig | None = None,
        *,
        clock: Callable[[], float] | None = None,
        auto_heartbeat: bool = True,
        rng: random.Random | None = None,
        emit_self: bool = False,
    ) -> None:
        super().__init__()
        self.config = config or GossipsubConfig()
        self.allow_limited = self.config.allow_limited  # type: ignore[misc]
        self.protocols = tuple(self.config.protocols)
        self.clock = clock or time.monotonic
        self.auto_heartbeat = auto_heartbeat
        self.emit_self = emit_self
        self._rng = rng or random.Random()
        self.router: GossipRouter | None = None
        self._links: dict[PeerId, _Link] = {}
        self._inbound: dict[PeerId, "HostStream"] = {}
        self._subs: dict[str, list[Subscription]] = {}
        self._validators: dict[str, Validator] = {}
        self._seqno = SeqnoCounter()
        self._px_dials = 0
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle
    def attach(self, host: "Host") -> None:
        super().attach(host)
        self.router = GossipRouter(
            host.peer_id, self.config, self._enqueue, self.clock, self._rng,
            on_px=self._on_px, peer_record=self._peer_record,
        )

    async def start(self) -> None:
        if self.auto_heartbeat:
            self.spawn(self._heartbeat_loop(), "heartbeat")

    async def stop(self) -> None:
        self._stopped = True
        for sub in [s for subs in self._subs.values() for s in subs]:
            sub.closed = True
            sub._event.set()
        links = list(self._links.values())
        self._links.clear()
        for link in links:
            if link.task is not None:
                link.task.cancel()
        await super().stop()
        for link in links:
            if link.stream is not None:
                await _reset_quietly(link.stream)

    async def _heartbeat_loop(self) -> None:
        await asyncio.sleep(self.config.heartbeat_initial_delay)
        while True:
            try:
                self.heartbeat()
            except Exception:  # a bug in one heartbeat must not stop the next
                log.exception("gossipsub heartbeat failed")
            await asyncio.sleep(self.config.heartbeat_interval)

    def heartbeat(self) -> None:
        """Run one heartbeat now (mesh upkeep, gossip, cache shifts, score decay)."""
        self._router.heartbeat()

    @property
    def _router(self) -> GossipRouter:
        if self.router is None:
            raise ConfigError("the pubsub service is not attached to a host")
        return self.router

    # ------------------------------------------------------------------ public API
    async def subscribe(self, topic: str) -> Subscription:
        _check_topic(topic)
        if self._stopped:
            raise PubsubError("pubsub service is stopped")
        sub = Subscription(self, topic, self.config.subscription_queue)
        subs = self._subs.setdefault(topic, [])
        subs.append(sub)
        if len(subs) == 1:
            self._router.join(topic)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.topic)
        if subs is None or sub not in subs:
            return
        subs.remove(sub)
        if not subs:
            del self._subs[sub.topic]
            if self.router is not None and not self._stopped:
                self.router.leave(sub.topic)

    async def publish(self, topic: str, data: bytes) -> bytes:
        """Sign (StrictSign) and send ``data`` on ``topic``; returns the message id."""
        _check_topic(topic)
        if self._stopped:
            raise PubsubError("pubsub service is stopped")
        data = bytes(data)
        host = self.host
        if self.config.signature_policy is SignaturePolicy.STRICT_SIGN:
            msg = await sign_message(host.private_key, host.peer_id, topic, data, self._seqno.next())
        else:
            msg = MessagePB(data=data, topic=topic)
        size = len(RPC(publish=[msg]).encode())
        if size > self.config.max_message_size:
            raise PubsubError(f"message of {size} bytes exceeds max_message_size ({self.config.max_message_size})")
        router = self._router
        msg_id = router.message_id(msg)
        if msg_id in router.seen:
            raise PubsubError("a message with this id was published already (the msg-id function maps both to one id)")
        router.publish(msg, msg_id)
        if self.emit_self and topic in self._subs:
            self._deliver(PubsubMessage.from_pb(msg), msg_id)
        return msg_id

    def set_validator(self, topic: str, validator: Validator | None) -> None:
        """``validator(msg)`` returns ACCEPT/REJECT/IGNORE (or True/False); may be async."""
        if validator is None:
            self._validators.pop(topic, None)
        else:
            self._validators[topic] = validator

    def topics(self) -> list[str]:
        return sorted(self._router.subscriptions)

    def peers(self, topic: str | None = None) -> list[PeerId]:
        """Pubsub peers (all, or those subscribed to ``topic``)."""
        router = self._router
        if topic is None:
            return list(router.peers)
        return [p for p in router.topics.get(topic, ()) if p in router.peers]

    def mesh(self, topic: str) -> list[PeerId]:
        return list(self._router.mesh.get(topic, ()))

    def score(self, peer: PeerId) -> float:
        return self._router.peer_score(peer)

    def protocol_of(self, peer: PeerId) -> str | None:
        state = self._router.peers.get(peer)
        return state.protocol if state is not None else None

    @property
    def stats(self) -> dict[str, int]:
        return self._router.stats

    # ------------------------------------------------------------------ connections
    def on_connection(self, conn: "Connection") -> None:
        if self._stopped or (conn.limited and not self.config.allow_limited):
            return
        self._ensure_link(conn)

    def on_disconnect(self, conn: "Connection") -> None:
        peer = conn.remote_peer
        host = self._host
        if host is not None:
            others = [c for c in host.connections_to(peer) if c is not conn]
            link = self._links.get(peer)
            if others:
                if link is not None and link.conn is conn:
                    self._drop_peer(peer)
                    self._ensure_link(others[0])
                return
        self._drop_peer(peer)

    def _ensure_link(self, conn: "Connection") -> None:
        peer = conn.remote_peer
        if peer in self._links or self._stopped:
            return
        if len(self._links) >= self.config.max_peers:
            log.debug("pubsub: at %d peers, not opening a stream to %s", len(self._links), peer)
            return
        link = _Link(peer, conn)
        self._links[peer] = link
        link.task = self.spawn(self._run_link(link), f"pubsub stream to {peer}")
        if link.task is None:
            del self._links[peer]

    def _drop_peer(self, peer: PeerId) -> None:
        link = self._links.pop(peer, None)
        if link is not None and link.task is not None and link.task is not asyncio.current_task():
            link.task.cancel()
        inbound = self._inbound.pop(peer, None)
        if inbound is not None:
            self.spawn(_reset_quietly(inbound), "reset inbound")
        if self.router is not None:
            self.router.remove_peer(peer)

    async def _run_link(self, link: _Link) -> None:
        cfg = self.config
        # asyncio.timeout, not wait_for: wait_for runs new_stream in a task of its own, and
        # when stop() cancels us just as that task fails (the peer reset the stream, the
        # connection closed) it waits for the task but never reads its error, which
        # asyncio then reports as "Task exception was never retrieved". In this task,
        # that error reaches the except below instead.
        try:
            async with asyncio.timeout(cfg.stream_open_timeout):
                stream = await link.conn.new_stream(
                    list(self.protocols), cfg.stream_open_timeout, allow_limited=cfg.allow_limited
                )
        except (PywasmError, asyncio.TimeoutError) as exc:
            log.debug("pubsub: %s does not speak pubsub (%s)", link.peer, exc)
            if self._links.get(link.peer) is link:
                del self._links[link.peer]
                # a peer that opened a stream to us but refuses ours is no use to the router
                self._router.remove_peer(link.peer)
            return
        if self._links.get(link.peer) is not link:
            await _reset_quietly(stream)
            return
        link.stream = stream
        link.opening = False
        assert stream.protocol is not None
        self._router.add_peer(
            link.peer, stream.protocol, outbound=link.conn.direction == "outbound", ip=_ip_of(link.conn)
        )
        try:
            while True:
                if not link.queue:
                    link.wake.clear()
                    await link.wake.wait()
                frames = []
                size = 0
                while link.queue and size < 256 * 1024:
                    frame = link.queue.popleft()
                    frames.append(frame)
                    size += len(frame)
                async with asyncio.timeout(cfg.write_timeout):  # not wait_for: see above
                    await stream.write(b"".join(frames))
        except (PywasmError, asyncio.TimeoutError) as exc:
            log.debug("pubsub: writing to %s failed: %s", link.peer, exc)
            await _reset_quietly(stream)
            if self._links.get(link.peer) is link:
                self._drop_peer(link.peer)

    def _enqueue(self, peer: PeerId, rpc: RPC) -> bool:
        link = self._links.get(peer)
        if link is None:
            return True  # the peer is gone; nothing to penalize
        if len(link.queue) >= self.config.max_peer_queue:
            return False
        frame = rpc.encode()
        if len(frame) > self.config.max_message_size:
            log.debug("pubsub: dropping a %d-byte RPC to %s (over max_message_size)", len(frame), peer)
            return True
        link.queue.append(encode_lp(frame))
        link.wake.set()
        return True

    # ------------------------------------------------------------------ inbound
    async def handle(self, stream: "HostStream", conn: "Connection") -> None:
        peer = conn.remote_peer
        if self._stopped:
            await stream.reset()
            return
        old = self._inbound.get(peer)
        if old is not None:
            # one inbound stream per peer: a new one replaces the old (the peer reopened it)
            await _reset_quietly(old)
        self._inbound[peer] = stream
        self._ensure_link(conn)
        router = self._router
        if peer not in router.peers and stream.protocol is not None:
            # the peer's RPCs may arrive before our outbound stream is up
            router.add_peer(peer, stream.protocol, outbound=conn.direction == "outbound", ip=_ip_of(conn))
        try:
            while True:
                data = await stream.read_lp(self.config.max_message_size)
                if data is None:
                    await stream.close()
                    return
                try:
                    rpc = RPC.decode(data)
                except ProtobufError as exc:
                    raise PubsubProtocolError(f"undecodable pubsub RPC from {peer}: {exc}") from None
                if peer not in router.peers:
                    return  # dropped meanwhile
                await self._process(peer, rpc)
        except PywasmError as exc:
            if isinstance(exc, PubsubProtocolError) or isinstance(exc, ProtobufError) or "exceeds the limit" in str(exc):
                log.info("pubsub: dropping %s: %s", peer, exc)
                router.score.add_penalty(peer, 10.0)
                if self._inbound.get(peer) is stream:
                    del self._inbound[peer]
                self._drop_peer(peer)
            raise
        finally:
            if self._inbound.get(peer) is stream:
                del self._inbound[peer]

    async def _process(self, peer: PeerId, rpc: RPC) -> None:
        router = self._router
        for msg, msg_id in router.handle_rpc(peer, rpc):
            reason = await check_signature_policy(msg, self.config.signature_policy)
            if reason is not None:
                log.debug("pubsub: rejecting a message from %s: %s", peer, reason)
                router.on_invalid_signature(peer, msg, msg_id)
                continue
            pmsg = PubsubMessage.from_pb(msg, received_from=peer)
            pmsg = PubsubMessage(
                topic=pmsg.topic, data=pmsg.data, from_peer=pmsg.from_peer, seqno=pmsg.seqno,
                signature=pmsg.signature, key=pmsg.key, msg_id=msg_id, received_from=peer,
            )
            result = await self._validate(pmsg)
            if peer not in router.peers:
                return
            if router.on_validated(peer, msg, msg_id, result):
                self._deliver(pmsg, msg_id)

    async def _validate(self, msg: PubsubMessage) -> ValidationResult:
        validator = self._validators.get(msg.topic)
        if validator is None:
            return ValidationResult.ACCEPT
        try:
            out = validator(msg)
            if inspect.isawaitable(out):
                out = await asyncio.wait_for(out, self.config.validate_timeout)
        except asyncio.TimeoutError:
            return ValidationResult.IGNORE
        except Exception:  # noqa: BLE001 - a validator bug must not kill the peer's stream
            log.exception("pubsub validator for %r raised; ignoring the message", msg.topic)
            return ValidationResult.IGNORE
        if out is None or out is True:
            return ValidationResult.ACCEPT
        if out is False:
            return ValidationResult.REJECT
        if isinstance(out, ValidationResult):
            return out
        log.warning("pubsub validator for %r returned %r; ignoring the message", msg.topic, out)
        return ValidationResult.IGNORE

    def _deliver(self, msg: PubsubMessage, msg_id: bytes) -> None:
        subs = self._subs.get(msg.topic)
        if not subs:
            return
        if msg.msg_id != msg_id:
            msg = PubsubMessage(
                topic=msg.topic, data=msg.data, from_peer=msg.from_peer, seqno=msg.seqno,
                signature=msg.signature, key=msg.key, msg_id=msg_id, received_from=msg.received_from,
            )
        for sub in subs:
            sub._push(msg)

    # ------------------------------------------------------------------ peer exchange
    def _peer_record(self, peer: PeerId) -> bytes | None:
        """The peer's verified signed peer record (identify keeps it in the peerstore), for PX."""
        return self.host.peerstore.signed_record(peer)

    def _on_px(self, source: PeerId, infos: list[PeerInfoPB]) -> None:
        for info in infos:
            if self._px_dials >= _MAX_PX_DIALS:
                return
            try:
                peer = PeerId.from_bytes(info.peer_id or b"")
            except PywasmError:
                continue
            if peer == self.host.peer_id or self.host.is_connected(peer):
                continue
            self._px_dials += 1
            task = self.spawn(self._px_connect(peer, info.signed_peer_record), f"px dial {peer}")
            if task is None:
                self._px_dials -= 1
                return

    async def _px_connect(self, peer: PeerId, record: bytes | None) -> None:
        try:
            if record:
                from ..identity.peer_record import open_peer_record

                try:
                    _, rec = await open_peer_record(record)
                except PywasmError as exc:
                    log.debug("pubsub: bad PX record for %s: %s", peer, exc)
                    return
                if rec.peer_id != peer:
                    return
                self.host.peerstore.add_addrs(peer, rec.addrs[:16])
            if not self.host.peerstore.addrs(peer):
                return
            await self.host.dial(peer, timeout=self.config.stream_open_timeout)
        finally:
            self._px_dials -= 1


def _check_topic(topic: str) -> None:
    if not isinstance(topic, str) or not topic or len(topic) > _MAX_TOPIC_LEN:
        raise ConfigError(f"a topic must be a non-empty str of at most {_MAX_TOPIC_LEN} characters")


async def _reset_quietly(stream: Any) -> None:
    try:
        await stream.reset()
    except Exception:  # noqa: BLE001 - resetting is the last thing we do with it
        pass


__all__ = ["GossipsubService", "Subscription", "Validator"]
