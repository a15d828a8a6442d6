"""The gossipsub router core: no I/O, no tasks, no clock of its own.

Inputs are method calls (a peer came or went, an RPC arrived, a message finished
validation, we publish, join or leave, a heartbeat is due); outputs go through one
callback, ``send(peer, rpc) -> bool`` (False: the peer's queue is full and the RPC was
dropped). The asyncio service (:mod:`.service`) owns the streams, the validation and the
heartbeat timer; tests drive this class directly with a fake clock.

What it implements (libp2p/specs pubsub/gossipsub):

* v1.0: the mesh (GRAFT/PRUNE, D_lo <= |mesh| <= D_hi kept by the heartbeat), fanout for
  topics we publish to without joining, gossip (IHAVE of the last ``mcache_gossip``
  windows to ``max(D_lazy, gossip_factor * others)`` peers) and IWANT answered from the
  message cache;
* v1.1: peer scoring (:mod:`.score`) and its thresholds, PRUNE backoff (and the penalty for
  grafting during it), peer exchange on PRUNE, flood publishing, the outbound quota
  D_out, opportunistic grafting, IHAVE/IWANT flood limits and IWANT promises;
* v1.2: IDONTWANT (sent to our mesh before validating a large message, honoured when
  forwarding);
* floodsub peers: they get every message of a topic they subscribed to, no control.

Cost per node is O(peers) per heartbeat and O(mesh) per message; there is no timer or
task per peer or topic: everything periodic happens in :meth:`GossipRouter.heartbeat`.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Callable, Iterable

from ..protocols.pubsub_pb import (
    RPC,
    ControlGraft,
    ControlIDontWant,
    ControlIHave,
    ControlIWant,
    ControlMessage,
    ControlPrune,
    MessagePB,
    PeerInfoPB,
    SubOpts,
)
from .caches import MessageCache, SeenCache
from .config import GOSSIP_PROTOCOLS, PX_PROTOCOLS, Floodsub, GossipsubConfig, MeshsubV12
from .message import PubsubMessage, ValidationResult
from .score import PeerScore

if TYPE_CHECKING:
    from ..identity import PeerId

log = logging.getLogger("pywasm.pubsub")

SendFn = Callable[["PeerId", RPC], bool]


class PeerState:
    __slots__ = ("peer", "protocol", "outbound", "topics", "dont_want", "ihaves", "iwant_asked",
                 "idontwants", "penalized_slow")

    def __init__(self, peer: "PeerId", protocol: str, outbound: bool) -> None:
        self.peer = peer
        self.protocol = protocol
        self.outbound = outbound
        self.topics: set[str] = set()
        # message id -> heartbeat tick after which the IDONTWANT lapses
        self.dont_want: dict[bytes, int] = {}
        self.ihaves = 0  # IHAVE messages received this heartbeat
        self.iwant_asked = 0  # ids we asked this peer for this heartbeat
        self.idontwants = 0  # IDONTWANT ids received this heartbeat
        self.penalized_slow = False

    @property
    def is_gossip(self) -> bool:
        return self.protocol in GOSSIP_PROTOCOLS


class GossipRouter:
    def __init__(
        self,
        local: "PeerId",
        config: GossipsubConfig,
        send: SendFn,
        clock: Callable[[], float],
        rng: random.Random | None = None,
        on_px: Callable[["PeerId", list[PeerInfoPB]], None] | None = None,
        peer_record: Callable[["PeerId"], bytes | None] | None = None,
    ) -> None:
        self.local = local
        self.local_bytes = local.to_bytes()
        self.config = config
        self.send_fn = send
        self.clock = clock
        self.rng = rng or random.Random()
        self.on_px = on_px
        self.peer_record = peer_record
        self.peers: dict["PeerId", PeerState] = {}
        self.topics: dict[str, set["PeerId"]] = {}  # who is subscribed to what (as they told us)
        self.subscriptions: set[str] = set()
        self.mesh: dict[str, set["PeerId"]] = {}
        self.fanout: dict[str, set["PeerId"]] = {}
        self.fanout_last: dict[str, float] = {}
        self.backoff: dict[str, dict["PeerId", float]] = {}
        self.direct: set["PeerId"] = set()
        self.seen = SeenCache(config.seen_ttl, config.max_seen)
        self.mcache = MessageCache(config.mcache_len, config.mcache_gossip, config.max_mcache)
        self.score = PeerScore(config.score, clock)
        # IWANT promises: message id -> {peer: deadline}
        self.promises: dict[bytes, dict["PeerId", float]] = {}
        self.ticks = 0
        self._last_decay = clock()
        self.stats: dict[str, int] = dict.fromkeys(
            ("published", "received", "delivered", "duplicates", "forwarded", "rejected", "ignored",
             "dropped_sends", "ihave_sent", "iwant_sent", "idontwant_sent", "graft_sent", "prune_sent",
             "graylisted_rpcs", "skipped_idontwant"), 0)

    # ------------------------------------------------------------------ helpers
    def _send(self, peer: "PeerId", rpc: RPC) -> None:
        if self.send_fn(peer, rpc):
            return
        self.stats["dropped_sends"] += 1
        state = self.peers.get(peer)
        # a peer whose queue overflows is slow or hostile: penalize it once per heartbeat
        if state is not None and not state.penalized_slow:
            state.penalized_slow = True
            self.score.add_penalty(peer, 1.0)

    def peer_score(self, peer: "PeerId") -> float:
        return self.score.score(peer)

    def _in_backoff(self, topic: str, peer: "PeerId", slack: float = 0.0) -> bool:
        expiry = self.backoff.get(topic, {}).get(peer)
        return expiry is not None and self.clock() < expiry + slack

    def _add_backoff(self, topic: str, peer: "PeerId", seconds: float) -> None:
        entries = self.backoff.setdefault(topic, {})
        expiry = self.clock() + seconds
        if entries.get(peer, 0.0) < expiry:
            entries[peer] = expiry

    def _gossip_peers(self, topic: str) -> list["PeerId"]:
        return [p for p in self.topics.get(topic, ()) if p in self.peers and self.peers[p].is_gossip]

    # ------------------------------------------------------------------ peers
    def add_peer(self, peer: "PeerId", protocol: str, *, outbound: bool = False, ip: str | None = None) -> None:
        state = self.peers.get(peer)
        if state is not None:
            state.protocol = protocol
            return
        self.peers[peer] = PeerState(peer, protocol, outbound)
        self.score.add_peer(peer, ip)
        if self.subscriptions:  # hello: our subscriptions
            self._send(peer, RPC(subscriptions=[SubOpts(True, t) for t in sorted(self.subscriptions)]))

    def set_protocol(self, peer: "PeerId", protocol: str) -> None:
        state = self.peers.get(peer)
        if state is not None:
            state.protocol = protocol

    def remove_peer(self, peer: "PeerId") -> None:
        state = self.peers.pop(peer, None)
        if state is None:
            return
        for topic in state.topics:
            members = self.topics.get(topic)
            if members is not None:
                members.discard(peer)
                if not members:
                    del self.topics[topic]
        for members in self.mesh.values():
            members.discard(peer)
        for members in self.fanout.values():
            members.discard(peer)
        self.score.remove_peer(peer)

    # ------------------------------------------------------------------ local API
    def join(self, topic: str) -> None:
        if topic in self.subscriptions:
            return
        self.subscriptions.add(topic)
        announce = RPC(subscriptions=[SubOpts(True, topic)])
        for peer in list(self.peers):
            self._send(peer, announce)
        mesh: set["PeerId"] = set()
        for peer in self.fanout.pop(topic, set()):
            if self._graftable(topic, peer, 0.0):
                mesh.add(peer)
        self.fanout_last.pop(topic, None)
        if len(mesh) < self.config.D:
            extra = [p for p in self._gossip_peers(topic) if p not in mesh and self._graftable(topic, p, 0.0)]
            mesh.update(self.rng.sample(extra, min(len(extra), self.config.D - len(mesh))))
        self.mesh[topic] = set()
        for peer in mesh:
            self._graft(topic, peer)
            self._send(peer, RPC(control=ControlMessage(graft=[ControlGraft(topic)])))
            self.stats["graft_sent"] += 1

    def leave(self, topic: str) -> None:
        if topic not in self.subscriptions:
            return
        self.subscriptions.discard(topic)
        announce = RPC(subscriptions=[SubOpts(False, topic)])
        for peer in list(self.peers):
            self._send(peer, announce)
        for peer in self.mesh.pop(topic, set()):
            self.score.prune(peer, topic)
            prune = self._make_prune(topic, peer, do_px=self.config.do_px, backoff=self.config.unsubscribe_backoff)
            self._send(peer, RPC(control=ControlMessage(prune=[prune])))
            self.stats["prune_sent"] += 1

    def publish(self, msg: MessagePB, msg_id: bytes) -> int:
        """Send our own (signed) message; returns to how many peers."""
        topic = msg.topic or ""
        now = self.clock()
        self.seen.add(msg_id, now)
        self.mcache.put(msg_id, msg)
        self.stats["published"] += 1
        thresholds = self.config.thresholds
        targets: set["PeerId"] = set()
        subscribers = self.topics.get(topic, set())
        if self.config.flood_publish:
            targets.update(p for p in subscribers if p in self.peers and self.score.score(p) >= thresholds.publish_threshold)
        else:
            targets.update(p for p in subscribers if p in self.peers and self.peers[p].protocol == Floodsub)
            targets.update(p for p in self.direct if p in subscribers)
            if topic in self.subscriptions:
                targets.update(self.mesh.get(topic, ()))
            else:
                fan = self.fanout.setdefault(topic, set())
                if not fan:
                    cands = [p for p in self._gossip_peers(topic)
                             if self.score.score(p) >= thresholds.publish_threshold]
                    fan.update(self.rng.sample(cands, min(len(cands), self.config.D)))
                targets.update(fan)
        if topic not in self.subscriptions:
            self.fanout_last[topic] = now
            self.fanout.setdefault(topic, set())
        rpc = RPC(publish=[msg])
        for peer in targets:
            self._send(peer, rpc)
        return len(targets)

    # ------------------------------------------------------------------ inbound RPC
    def handle_rpc(self, peer: "PeerId", rpc: RPC) -> list[tuple[MessagePB, bytes]]:
        """Apply ``rpc`` from ``peer``; returns its new messages (with ids) to validate."""
        state = self.peers.get(peer)
        if state is None:
            return []
        if self.score.score(peer) < self.config.thresholds.graylist_threshold:
            self.stats["graylisted_rpcs"] += 1
            return []
        for sub in rpc.subscriptions[: self.config.max_subscriptions_per_rpc]:
            self._on_subscription(state, sub)
        to_validate: list[tuple[MessagePB, bytes]] = []
        for msg in rpc.publish:
            item = self._on_message(state, msg)
            if item is not None:
                to_validate.append(item)
        if rpc.control is not None and state.is_gossip:
            self._on_control(state, rpc.control)
        return to_validate

    def _on_subscription(self, state: PeerState, sub: SubOpts) -> None:
        topic = sub.topic
        if not topic:
            return
        peer = state.peer
        if sub.subscribe:
            if topic in state.topics or len(state.topics) >= self.config.max_peer_topics:
                return
            if topic not in self.topics and len(self.topics) >= self.config.max_topics and topic not in self.subscriptions:
                return
            state.topics.add(topic)
            self.topics.setdefault(topic, set()).add(peer)
        else:
            if topic not in state.topics:
                return
            state.topics.discard(topic)
            members = self.topics.get(topic)
            if members is not None:
                members.discard(peer)
                if not members:
                    del self.topics[topic]
            mesh = self.mesh.get(topic)
            if mesh is not None and peer in mesh:
                mesh.discard(peer)
                self.score.prune(peer, topic)
            fan = self.fanout.get(topic)
            if fan is not None:
                fan.discard(peer)

    def message_id(self, msg: MessagePB) -> bytes:
        return self.config.msg_id_fn(PubsubMessage.from_pb(msg))

    def _on_message(self, state: PeerState, msg: MessagePB) -> tuple[MessagePB, bytes] | None:
        topic = msg.topic
        if not topic or topic not in self.subscriptions:
            return None  # we only relay what we subscribe to (as go and js do)
        self.stats["received"] += 1
        try:
            msg_id = self.message_id(msg)
        except Exception:  # noqa: BLE001 - a user msg-id function failing on odd input
            log.debug("msg_id_fn failed on a message from %s", state.peer, exc_info=True)
            self.score.reject_message(state.peer, None, topic)
            return None
        peer = state.peer
        if msg_id in self.seen:
            self.stats["duplicates"] += 1
            self.score.duplicate_message(peer, msg_id, topic)
            self._fulfil(msg_id)
            return None
        self.seen.add(msg_id, self.clock())
        if msg.from_peer == self.local_bytes:
            return None  # our own message come back after we forgot it: never relay it
        self.score.validate_message(msg_id)
        if len(msg.data or b"") >= self.config.idontwant_message_threshold:
            self._send_idontwant(topic, msg_id, exclude=peer)
        return msg, msg_id

    def _send_idontwant(self, topic: str, msg_id: bytes, exclude: "PeerId") -> None:
        rpc = RPC(control=ControlMessage(idontwant=[ControlIDontWant([msg_id])]))
        for p in self.mesh.get(topic, ()):
            state = self.peers.get(p)
            if p != exclude and state is not None and state.protocol == MeshsubV12:
                self._send(p, rpc)
                self.stats["idontwant_sent"] += 1

    def on_validated(self, peer: "PeerId", msg: MessagePB, msg_id: bytes, result: ValidationResult) -> bool:
        """The result of validating a message ``peer`` sent; forwards it if accepted.
        Returns True when the message should be delivered to local subscribers."""
        topic = msg.topic or ""
        if result is ValidationResult.ACCEPT:
            self._fulfil(msg_id)
            self.score.deliver_message(peer, msg_id, topic)
            self.mcache.put(msg_id, msg)
            self.stats["delivered"] += 1
            self._forward(msg, msg_id, exclude=peer)
            return True
        if result is ValidationResult.REJECT:
            self._fulfil(msg_id)  # it was delivered, even if bad: the promise holds
            self.stats["rejected"] += 1
            self.score.reject_message(peer, msg_id, topic)
        else:
            self.stats["ignored"] += 1
            self.score.reject_message(peer, msg_id, topic, ignore=True)
        return False

    def on_invalid_signature(self, peer: "PeerId", msg: MessagePB, msg_id: bytes) -> None:
        """A message with a missing or forged signature: its id may be forged too, so only
        the sender is penalized, and the id is forgotten again so that a forgery cannot
        make us drop the genuine message as a duplicate."""
        self.seen.discard(msg_id)
        self.stats["rejected"] += 1
        self.score.reject_message(peer, None, msg.topic or "")

    def _forward(self, msg: MessagePB, msg_id: bytes, exclude: "PeerId") -> None:
        topic = msg.topic or ""
        author = msg.from_peer
        targets: set["PeerId"] = set(self.mesh.get(topic, ()))
        for p in self.topics.get(topic, ()):
            state = self.peers.get(p)
            if state is not None and (state.protocol == Floodsub or p in self.direct):
                targets.add(p)
        rpc = RPC(publish=[msg])
        for p in targets:
            if p == exclude or (author is not None and p.to_bytes() == author):
                continue
            state = self.peers.get(p)
            if state is None:
                continue
            if msg_id in state.dont_want:
                self.stats["skipped_idontwant"] += 1
                continue
            self._send(p, rpc)
            self.stats["forwarded"] += 1

    def _fulfil(self, msg_id: bytes) -> None:
        self.promises.pop(msg_id, None)

    # ------------------------------------------------------------------ control
    def _on_control(self, state: PeerState, ctl: ControlMessage) -> None:
        iwant = self._on_ihave(state, ctl.ihave) if ctl.ihave else []
        replies = self._on_iwant(state, ctl.iwant) if ctl.iwant else []
        prunes = self._on_graft(state, ctl.graft) if ctl.graft else []
        if ctl.prune:
            self._on_prune(state, ctl.prune)
        if ctl.idontwant:
            self._on_idontwant(state, ctl.idontwant)
        if iwant or replies or prunes:
            control = None
            if iwant or prunes:
                control = ControlMessage(iwant=[ControlIWant(iwant)] if iwant else [], prune=prunes)
            self._send(state.peer, RPC(publish=replies, control=control))

    def _on_ihave(self, state: PeerState, ihaves: list[ControlIHave]) -> list[bytes]:
        cfg = self.config
        peer = state.peer
        if self.score.score(peer) < cfg.thresholds.gossip_threshold:
            return []
        state.ihaves += 1
        if state.ihaves > cfg.max_ihave_messages or state.iwant_asked >= cfg.max_ihave_length:
            return []
        wanted: dict[bytes, None] = {}
        for ihave in ihaves:
            if not ihave.topic or ihave.topic not in self.mesh:
                continue
            for mid in ihave.message_ids[: cfg.max_ihave_length]:
                if mid not in self.seen and mid not in wanted:
                    wanted[mid] = None
        if not wanted:
            return []
        ids = list(wanted)
        self.rng.shuffle(ids)
        ids = ids[: cfg.max_ihave_length - state.iwant_asked]
        state.iwant_asked += len(ids)
        # one promise per IWANT: if that message does not come within the followup time,
        # the peer advertised what it would not deliver (P7)
        promised = self.rng.choice(ids)
        self.promises.setdefault(promised, {})[peer] = self.clock() + cfg.iwant_followup_time
        self.stats["iwant_sent"] += 1
        return ids

    def _on_iwant(self, state: PeerState, iwants: list[ControlIWant]) -> list[MessagePB]:
        peer = state.peer
        if self.score.score(peer) < self.config.thresholds.gossip_threshold:
            return []
        out: dict[bytes, MessagePB] = {}
        budget = self.config.max_ihave_length
        for iwant in iwants:
            for mid in iwant.message_ids:
                if budget <= 0:
                    break
                budget -= 1
                if mid in out:
                    continue
                msg = self.mcache.get_for_peer(mid, peer, self.config.gossip_retransmission)
                if msg is not None:
                    out[mid] = msg
        return list(out.values())

    def _on_graft(self, state: PeerState, grafts: list[ControlGraft]) -> list[ControlPrune]:
        cfg = self.config
        peer = state.peer
        prunes: list[ControlPrune] = []
        score = self.score.score(peer)
        now = self.clock()
        for graft in grafts:
            topic = graft.topic
            if not topic:
                continue
            mesh = self.mesh.get(topic)
            if mesh is None:
                # not our topic: refuse without PX, so a peer cannot learn our peers by probing
                prunes.append(self._make_prune(topic, peer, do_px=False))
                continue
            if peer in mesh:
                continue
            if peer in self.direct:
                prunes.append(self._make_prune(topic, peer, do_px=False))
                continue
            expiry = self.backoff.get(topic, {}).get(peer)
            if expiry is not None and now < expiry:
                self.score.add_penalty(peer, 1.0)
                # grafting right after being pruned is a flood: a second penalty
                if now < expiry - cfg.prune_backoff + cfg.graft_flood_threshold:
                    self.score.add_penalty(peer, 1.0)
                prunes.append(self._make_prune(topic, peer, do_px=False))
                continue
            if score < 0:
                prunes.append(self._make_prune(topic, peer, do_px=False))
                continue
            if len(mesh) >= cfg.D_hi and not state.outbound:
                prunes.append(self._make_prune(topic, peer, do_px=cfg.do_px))
                continue
            self._graft(topic, peer)
        self.stats["prune_sent"] += len(prunes)
        return prunes

    def _on_prune(self, state: PeerState, prunes: list[ControlPrune]) -> None:
        cfg = self.config
        peer = state.peer
        for prune in prunes:
            topic = prune.topic
            if not topic:
                continue
            mesh = self.mesh.get(topic)
            if mesh is not None and peer in mesh:
                mesh.discard(peer)
                self.score.prune(peer, topic)
            backoff = cfg.prune_backoff
            if prune.backoff is not None:
                backoff = min(float(prune.backoff), 24 * 3600.0)  # bounded: a peer cannot lock us out forever
            self._add_backoff(topic, peer, backoff)
            if prune.peers and self.on_px is not None:
                if self.score.score(peer) >= cfg.thresholds.accept_px_threshold:
                    self.on_px(peer, prune.peers[: cfg.prune_peers])

    def _on_idontwant(self, state: PeerState, items: list[ControlIDontWant]) -> None:
        until = self.ticks + self.config.idontwant_ttl_heartbeats
        limit = self.config.max_idontwant_messages
        for item in items:
            for mid in item.message_ids:
                if state.idontwants >= limit:
                    return
                state.idontwants += 1
                state.dont_want[mid] = until

    def _graft(self, topic: str, peer: "PeerId") -> None:
        self.mesh.setdefault(topic, set()).add(peer)
        self.score.graft(peer, topic)

    def _graftable(self, topic: str, peer: "PeerId", min_score: float) -> bool:
        state = self.peers.get(peer)
        return (
            state is not None
            and state.is_gossip
            and peer not in self.direct
            and not self._in_backoff(topic, peer, slack=self.config.heartbeat_interval)
            and self.score.score(peer) >= min_score
        )

    def _make_prune(self, topic: str, peer: "PeerId", *, do_px: bool, backoff: float | None = None) -> ControlPrune:
        seconds = self.config.prune_backoff if backoff is None else backoff
        self._add_backoff(topic, peer, seconds)
        state = self.peers.get(peer)
        if state is None or state.protocol not in PX_PROTOCOLS:
            return ControlPrune(topic=topic)  # v1.0 peers know neither PX nor backoff
        infos: list[PeerInfoPB] = []
        if do_px:
            cands = [p for p in self._gossip_peers(topic) if p != peer and self.score.score(p) >= 0]
            for p in self.rng.sample(cands, min(len(cands), self.config.prune_peers)):
                record = self.peer_record(p) if self.peer_record is not None else None
                infos.append(PeerInfoPB(peer_id=p.to_bytes(), signed_peer_record=record))
        return ControlPrune(topic=topic, peers=infos, backoff=int(seconds))

    # ------------------------------------------------------------------ heartbeat
    def heartbeat(self) -> None:
        cfg = self.config
        now = self.clock()
        self.ticks += 1
        if now - self._last_decay >= cfg.score.decay_interval:
            self._last_decay = now
            self.score.refresh()
        for state in self.peers.values():
            state.ihaves = 0
            state.iwant_asked = 0
            state.idontwants = 0
            state.penalized_slow = False
            if state.dont_want:
                state.dont_want = {m: t for m, t in state.dont_want.items() if t > self.ticks}
        self._broken_promises(now)

        scores = {p: self.score.score(p) for p in self.peers}
        grafts: dict["PeerId", list[str]] = {}
        prunes: dict["PeerId", list[ControlPrune]] = {}
        gossip: dict["PeerId", list[ControlIHave]] = {}

        def graft(topic: str, peer: "PeerId") -> None:
            self._graft(topic, peer)
            grafts.setdefault(peer, []).append(topic)

        def prune(topic: str, peer: "PeerId", do_px: bool) -> None:
            self.mesh[topic].discard(peer)
            self.score.prune(peer, topic)
            prunes.setdefault(peer, []).append(self._make_prune(topic, peer, do_px=do_px))

        for topic, mesh in self.mesh.items():
            for peer in [p for p in mesh if scores.get(p, 0.0) < 0 or p not in self.peers]:
                if peer in self.peers:
                    prune(topic, peer, do_px=False)
                else:
                    mesh.discard(peer)
            subscribers = self._gossip_peers(topic)

            def candidates(pred: Callable[["PeerId"], bool] = lambda p: True) -> list["PeerId"]:
                return [
                    p for p in subscribers
                    if p not in mesh and p not in self.direct and scores.get(p, 0.0) >= 0
                    and not self._in_backoff(topic, p, slack=cfg.heartbeat_interval) and pred(p)
                ]

            if len(mesh) < cfg.D_lo:
                cands = candidates()
                for p in self.rng.sample(cands, min(len(cands), cfg.D - len(mesh))):
                    graft(topic, p)
            elif len(mesh) > cfg.D_hi:
                peers = list(mesh)
                self.rng.shuffle(peers)
                peers.sort(key=lambda p: scores.get(p, 0.0), reverse=True)
                keep = peers[: cfg.D_score]
                rest = peers[cfg.D_score:]
                self.rng.shuffle(rest)
                keep += rest[: cfg.D - len(keep)]
                outbound = sum(1 for p in keep if self.peers[p].outbound)
                if outbound < cfg.D_out:
                    # swap the lowest-ranked inbound peers for outbound ones (D_out quota)
                    spare_out = [p for p in peers if p not in keep and self.peers[p].outbound]
                    for p in spare_out[: cfg.D_out - outbound]:
                        victim = next((q for q in reversed(keep) if not self.peers[q].outbound), None)
                        if victim is None:
                            break
                        keep.remove(victim)
                        keep.append(p)
                for p in peers:
                    if p not in keep:
                        prune(topic, p, do_px=cfg.do_px)
            if len(mesh) >= cfg.D_lo:
                outbound = sum(1 for p in mesh if self.peers[p].outbound)
                if outbound < cfg.D_out:
                    cands = candidates(lambda p: self.peers[p].outbound)
                    for p in self.rng.sample(cands, min(len(cands), cfg.D_out - outbound)):
                        graft(topic, p)
            if cfg.opportunistic_graft_ticks > 0 and self.ticks % cfg.opportunistic_graft_ticks == 0 and len(mesh) > 1:
                ranked = sorted(scores.get(p, 0.0) for p in mesh)
                median = ranked[len(ranked) // 2]
                if median < cfg.thresholds.opportunistic_graft_threshold:
                    cands = candidates(lambda p: scores.get(p, 0.0) > median)
                    for p in self.rng.sample(cands, min(len(cands), cfg.opportunistic_graft_peers)):
                        graft(topic, p)
            self._emit_gossip(topic, mesh, scores, gossip)

        for topic in list(self.fanout):
            if self.fanout_last.get(topic, 0.0) + cfg.fanout_ttl < now:
                del self.fanout[topic]
                self.fanout_last.pop(topic, None)
                continue
            fan = self.fanout[topic]
            subscribers = set(self._gossip_peers(topic))
            for p in [p for p in fan if p not in subscribers or scores.get(p, 0.0) < cfg.thresholds.publish_threshold]:
                fan.discard(p)
            if len(fan) < cfg.D:
                cands = [p for p in subscribers if p not in fan and p not in self.direct
                         and scores.get(p, 0.0) >= cfg.thresholds.publish_threshold]
                fan.update(self.rng.sample(cands, min(len(cands), cfg.D - len(fan))))
            self._emit_gossip(topic, fan, scores, gossip)

        for peer in set(grafts) | set(prunes) | set(gossip):
            ctl = ControlMessage(
                ihave=gossip.get(peer, []),
                graft=[ControlGraft(t) for t in grafts.get(peer, [])],
                prune=prunes.get(peer, []),
            )
            self.stats["graft_sent"] += len(ctl.graft)
            self.stats["prune_sent"] += len(ctl.prune)
            self.stats["ihave_sent"] += len(ctl.ihave)
            self._send(peer, RPC(control=ctl))

        self.mcache.shift()
        self.seen.expire(now)
        for topic in list(self.backoff):
            entries = self.backoff[topic]
            # keep an entry a little past its end: our own graft check uses a slack
            for p in [p for p, t in entries.items() if t + 2 * cfg.heartbeat_interval < now]:
                del entries[p]
            if not entries:
                del self.backoff[topic]

    def _broken_promises(self, now: float) -> None:
        if not self.promises:
            return
        broken: dict["PeerId", int] = {}
        for mid in list(self.promises):
            waiting = self.promises[mid]
            for peer in [p for p, t in waiting.items() if t < now]:
                del waiting[peer]
                broken[peer] = broken.get(peer, 0) + 1
            if not waiting:
                del self.promises[mid]
        for peer, count in broken.items():
            if peer in self.peers:
                self.score.add_penalty(peer, float(count))

    def _emit_gossip(
        self, topic: str, exclude: Iterable["PeerId"], scores: dict["PeerId", float],
        out: dict["PeerId", list[ControlIHave]],
    ) -> None:
        ids = self.mcache.gossip_ids(topic)
        if not ids:
            return
        cfg = self.config
        excluded = set(exclude)
        cands = [
            p for p in self._gossip_peers(topic)
            if p not in excluded and p not in self.direct and scores.get(p, 0.0) >= cfg.thresholds.gossip_threshold
        ]
        target = max(cfg.D_lazy, int(cfg.gossip_factor * len(cands)))
        for peer in self.rng.sample(cands, min(target, len(cands))):
            chosen = ids
            if len(ids) > cfg.max_ihave_length:
                chosen = self.rng.sample(ids, cfg.max_ihave_length)
            out.setdefault(peer, []).append(ControlIHave(topic=topic, message_ids=list(chosen)))


__all__ = ["GossipRouter", "PeerState", "SendFn"]
