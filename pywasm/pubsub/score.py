"""Peer scoring of gossipsub v1.1 (gossipsub-v1.1.md, "Peer Scoring").

The score of a peer is

    cap(sum over topics of topic_weight * (P1 w1 + P2 w2 + P3 w3 + P3b w3b + P4 w4))
      + P5 w5 + P6 w6 + P7 w7

with P1 time in mesh, P2 first message deliveries, P3 the squared deficit of mesh
deliveries below a threshold, P3b a sticky mesh-failure penalty, P4 squared invalid
messages, P5 an application score, P6 squared IP colocation surplus and P7 squared
behaviour penalty. Counters decay every ``decay_interval`` (:meth:`PeerScore.refresh`,
driven by the router's heartbeat). Delivery records remember which peers handed us a
message while it was being validated, so they share the credit (or the blame).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Callable

from .config import ScoreParams

if TYPE_CHECKING:
    from ..identity import PeerId

_UNKNOWN, _VALID, _INVALID, _IGNORED = range(4)
# delivery records kept (one per message id seen), and for how long
_MAX_RECORDS = 100_000
_RECORD_TTL = 120.0


class _TopicStats:
    __slots__ = ("in_mesh", "graft_time", "mesh_time", "first_deliveries", "mesh_deliveries",
                 "mesh_active", "mesh_failure_penalty", "invalid_deliveries")

    def __init__(self) -> None:
        self.in_mesh = False
        self.graft_time = 0.0
        self.mesh_time = 0.0
        self.first_deliveries = 0.0
        self.mesh_deliveries = 0.0
        self.mesh_active = False
        self.mesh_failure_penalty = 0.0
        self.invalid_deliveries = 0.0


class _PeerStats:
    __slots__ = ("connected", "expire", "topics", "ip", "behaviour_penalty")

    def __init__(self) -> None:
        self.connected = True
        self.expire = 0.0
        self.topics: dict[str, _TopicStats] = {}
        self.ip: str | None = None
        self.behaviour_penalty = 0.0


class _Record:
    __slots__ = ("status", "first_seen", "validated", "peers", "expire")

    def __init__(self, now: float) -> None:
        self.status = _UNKNOWN
        self.first_seen = now
        self.validated = 0.0
        self.peers: set["PeerId"] = set()
        self.expire = now + _RECORD_TTL


class PeerScore:
    def __init__(self, params: ScoreParams, clock: Callable[[], float]) -> None:
        self.params = params
        self.clock = clock
        self.peers: dict["PeerId", _PeerStats] = {}
        self._ips: dict[str, set["PeerId"]] = {}
        self._records: OrderedDict[bytes, _Record] = OrderedDict()

    # --- peers ---------------------------------------------------------------------------
    def add_peer(self, peer: "PeerId", ip: str | None = None) -> None:
        stats = self.peers.get(peer)
        if stats is None:
            stats = self.peers[peer] = _PeerStats()
        stats.connected = True
        self._set_ip(peer, stats, ip)

    def _set_ip(self, peer: "PeerId", stats: _PeerStats, ip: str | None) -> None:
        if stats.ip is not None:
            members = self._ips.get(stats.ip)
            if members is not None:
                members.discard(peer)
                if not members:
                    del self._ips[stats.ip]
        stats.ip = ip
        if ip is not None:
            self._ips.setdefault(ip, set()).add(peer)

    def remove_peer(self, peer: "PeerId") -> None:
        stats = self.peers.get(peer)
        if stats is None:
            return
        # a peer that disconnects with a positive score starts from zero next time; a
        # negative score is kept for retain_score, so reconnecting does not launder it
        if self.score(peer) > 0:
            self._set_ip(peer, stats, None)
            del self.peers[peer]
            return
        for topic, ts in stats.topics.items():
            ts.first_deliveries = 0.0
            if ts.in_mesh:
                self.prune(peer, topic)  # leaving the mesh by disconnecting counts as a prune
        stats.connected = False
        stats.expire = self.clock() + self.params.retain_score
        self._set_ip(peer, stats, None)

    def _topic(self, peer: "PeerId", topic: str) -> _TopicStats | None:
        stats = self.peers.get(peer)
        if stats is None or self.params.for_topic(topic) is None:
            return None
        ts = stats.topics.get(topic)
        if ts is None:
            if len(stats.topics) >= 1024:  # bounded: a peer cannot make us track any number
                return None
            ts = stats.topics[topic] = _TopicStats()
        return ts

    # --- mesh ---------------------------------------------------------------------------------
    def graft(self, peer: "PeerId", topic: str) -> None:
        ts = self._topic(peer, topic)
        if ts is None:
            return
        ts.in_mesh = True
        ts.graft_time = self.clock()
        ts.mesh_time = 0.0
        ts.mesh_active = False

    def prune(self, peer: "PeerId", topic: str) -> None:
        ts = self._topic(peer, topic)
        tp = self.params.for_topic(topic)
        if ts is None or tp is None:
            return
        if ts.mesh_active and ts.mesh_deliveries < tp.mesh_message_deliveries_threshold:
            deficit = tp.mesh_message_deliveries_threshold - ts.mesh_deliveries
            ts.mesh_failure_penalty += deficit * deficit
        ts.in_mesh = False

    # --- messages ------------------------------------------------------------------------------
    def _record(self, msg_id: bytes) -> _Record:
        rec = self._records.get(msg_id)
        if rec is None:
            now = self.clock()
            rec = self._records[msg_id] = _Record(now)
            while len(self._records) > _MAX_RECORDS:
                self._records.popitem(last=False)
        return rec

    def validate_message(self, msg_id: bytes) -> None:
        """First sight of a message (before validation): start its delivery record."""
        self._record(msg_id)

    def deliver_message(self, peer: "PeerId", msg_id: bytes, topic: str) -> None:
        """``peer`` delivered ``msg_id`` first and it validated."""
        self._mark_first_delivery(peer, topic)
        rec = self._record(msg_id)
        if rec.status != _UNKNOWN:
            return
        rec.status = _VALID
        rec.validated = self.clock()
        for other in rec.peers:
            if other != peer:
                self._mark_duplicate(other, topic, rec.first_seen)

    def reject_message(self, peer: "PeerId", msg_id: bytes | None, topic: str, *, ignore: bool = False) -> None:
        """The message from ``peer`` failed validation (or was ignored). ``msg_id`` None:
        the message was malformed before it got an id (bad signature): only the sender pays."""
        if msg_id is None:
            if not ignore:
                self._mark_invalid(peer, topic)
            return
        rec = self._record(msg_id)
        if rec.status != _UNKNOWN:
            return
        if ignore:
            rec.status = _IGNORED
            rec.peers.clear()
            return
        rec.status = _INVALID
        self._mark_invalid(peer, topic)
        for other in rec.peers:
            self._mark_invalid(other, topic)
        rec.peers.clear()

    def duplicate_message(self, peer: "PeerId", msg_id: bytes, topic: str) -> None:
        rec = self._records.get(msg_id)
        if rec is None or peer in rec.peers:
            return
        if rec.status == _UNKNOWN:
            if len(rec.peers) < 64:
                rec.peers.add(peer)
        elif rec.status == _VALID:
            rec.peers.add(peer)
            self._mark_duplicate(peer, topic, rec.validated)
        elif rec.status == _INVALID:
            self._mark_invalid(peer, topic)

    def _mark_first_delivery(self, peer: "PeerId", topic: str) -> None:
        ts = self._topic(peer, topic)
        tp = self.params.for_topic(topic)
        if ts is None or tp is None:
            return
        ts.first_deliveries = min(ts.first_deliveries + 1, tp.first_message_deliveries_cap)
        if ts.in_mesh:
            ts.mesh_deliveries = min(ts.mesh_deliveries + 1, tp.mesh_message_deliveries_cap)

    def _mark_duplicate(self, peer: "PeerId", topic: str, since: float) -> None:
        ts = self._topic(peer, topic)
        tp = self.params.for_topic(topic)
        if ts is None or tp is None or not ts.in_mesh:
            return
        # a duplicate counts as a mesh delivery only if it arrived soon after the first copy
        if since and self.clock() - since > tp.mesh_message_deliveries_window:
            return
        ts.mesh_deliveries = min(ts.mesh_deliveries + 1, tp.mesh_message_deliveries_cap)

    def _mark_invalid(self, peer: "PeerId", topic: str) -> None:
        ts = self._topic(peer, topic)
        if ts is not None:
            ts.invalid_deliveries += 1

    def add_penalty(self, peer: "PeerId", count: float = 1.0) -> None:
        stats = self.peers.get(peer)
        if stats is not None:
            stats.behaviour_penalty += count

    # --- the score -------------------------------------------------------------------------------
    def score(self, peer: "PeerId") -> float:
        stats = self.peers.get(peer)
        if stats is None:
            return 0.0
        p = self.params
        total = 0.0
        for topic, ts in stats.topics.items():
            tp = p.for_topic(topic)
            if tp is None:
                continue
            s = 0.0
            if ts.in_mesh:
                s += min(ts.mesh_time / tp.time_in_mesh_quantum, tp.time_in_mesh_cap) * tp.time_in_mesh_weight
            s += ts.first_deliveries * tp.first_message_deliveries_weight
            if ts.mesh_active and ts.mesh_deliveries < tp.mesh_message_deliveries_threshold:
                deficit = tp.mesh_message_deliveries_threshold - ts.mesh_deliveries
                s += deficit * deficit * tp.mesh_message_deliveries_weight
            s += ts.mesh_failure_penalty * tp.mesh_failure_penalty_weight
            s += ts.invalid_deliveries * ts.invalid_deliveries * tp.invalid_message_deliveries_weight
            total += s * tp.topic_weight
        if p.topic_score_cap > 0 and total > p.topic_score_cap:
            total = p.topic_score_cap
        if p.app_specific_score is not None:
            total += p.app_specific_score(peer) * p.app_specific_weight
        if stats.ip is not None and stats.ip not in p.ip_colocation_whitelist:
            n = len(self._ips.get(stats.ip, ()))
            if n > p.ip_colocation_factor_threshold:
                surplus = n - p.ip_colocation_factor_threshold
                total += surplus * surplus * p.ip_colocation_factor_weight
        if stats.behaviour_penalty > p.behaviour_penalty_threshold:
            excess = stats.behaviour_penalty - p.behaviour_penalty_threshold
            total += excess * excess * p.behaviour_penalty_weight
        return total

    def refresh(self) -> None:
        """Decay the counters (called every ``decay_interval``) and forget old state."""
        now = self.clock()
        p = self.params
        to_zero = p.decay_to_zero
        for peer in [q for q, s in self.peers.items() if not s.connected and s.expire < now]:
            del self.peers[peer]
        for stats in self.peers.values():
            for topic, ts in stats.topics.items():
                tp = p.for_topic(topic)
                if tp is None:
                    continue
                ts.first_deliveries *= tp.first_message_deliveries_decay
                if ts.first_deliveries < to_zero:
                    ts.first_deliveries = 0.0
                ts.mesh_deliveries *= tp.mesh_message_deliveries_decay
                if ts.mesh_deliveries < to_zero:
                    ts.mesh_deliveries = 0.0
                ts.mesh_failure_penalty *= tp.mesh_failure_penalty_decay
                if ts.mesh_failure_penalty < to_zero:
                    ts.mesh_failure_penalty = 0.0
                ts.invalid_deliveries *= tp.invalid_message_deliveries_decay
                if ts.invalid_deliveries < to_zero:
                    ts.invalid_deliveries = 0.0
                if ts.in_mesh:
                    ts.mesh_time = now - ts.graft_time
                    if ts.mesh_time > tp.mesh_message_deliveries_activation:
                        ts.mesh_active = True
            stats.behaviour_penalty *= p.behaviour_penalty_decay
            if stats.behaviour_penalty < to_zero:
                stats.behaviour_penalty = 0.0
        records = self._records
        while records:
            _, rec = next(iter(records.items()))
            if rec.expire > now:
                break
            records.popitem(last=False)


__all__ = ["PeerScore"]
