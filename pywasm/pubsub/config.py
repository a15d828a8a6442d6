"""Gossipsub configuration: overlay parameters, peer-score parameters and thresholds.

Names and defaults follow gossipsub-v1.0.md / v1.1.md / v1.2.md and what go-libp2p-pubsub
and js-libp2p gossipsub ship, so a pywasm node behaves like its neighbours. Every bound
(queues, caches, IHAVE lengths) is here, so it shows up in config and metrics.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..identity import PeerId
    from .message import PubsubMessage

MeshsubV12 = "/meshsub/1.2.0"
MeshsubV11 = "/meshsub/1.1.0"
MeshsubV10 = "/meshsub/1.0.0"
Floodsub = "/floodsub/1.0.0"
#: what we offer, best first
PROTOCOLS = (MeshsubV12, MeshsubV11, MeshsubV10, Floodsub)
GOSSIP_PROTOCOLS = frozenset((MeshsubV12, MeshsubV11, MeshsubV10))
#: protocols that understand PX and backoff (v1.1+) and IDONTWANT (v1.2)
PX_PROTOCOLS = frozenset((MeshsubV12, MeshsubV11))


class SignaturePolicy(str, enum.Enum):
    #: sign our messages; reject messages without a valid signature (the spec's default)
    STRICT_SIGN = "strict_sign"
    #: no from/seqno/signature/key at all; message ids must come from the content
    STRICT_NO_SIGN = "strict_no_sign"


@dataclass
class TopicScoreParams:
    """Per-topic score parameters (gossipsub-v1.1.md, "Topic Parameter Calculation")."""

    topic_weight: float = 1.0
    # P1: time in mesh
    time_in_mesh_weight: float = 0.0033
    time_in_mesh_quantum: float = 1.0
    time_in_mesh_cap: float = 3600.0
    # P2: first message deliveries
    first_message_deliveries_weight: float = 1.0
    first_message_deliveries_decay: float = 0.5
    first_message_deliveries_cap: float = 2000.0
    # P3: mesh message delivery rate (0 weight = off, the safe default: it needs tuning per topic)
    mesh_message_deliveries_weight: float = 0.0
    mesh_message_deliveries_decay: float = 0.5
    mesh_message_deliveries_cap: float = 100.0
    mesh_message_deliveries_threshold: float = 1.0
    mesh_message_deliveries_window: float = 0.01
    mesh_message_deliveries_activation: float = 5.0
    # P3b: mesh failure penalty
    mesh_failure_penalty_weight: float = 0.0
    mesh_failure_penalty_decay: float = 0.5
    # P4: invalid messages
    invalid_message_deliveries_weight: float = -100.0
    invalid_message_deliveries_decay: float = 0.3


@dataclass
class ScoreParams:
    """Peer-level score parameters (P5, P6, P7, decay, topic cap)."""

    topics: dict[str, TopicScoreParams] = field(default_factory=dict)
    #: used for a topic without its own entry (None: such topics add nothing to the score)
    default_topic: TopicScoreParams | None = field(default_factory=TopicScoreParams)
    topic_score_cap: float = 10.0
    # P5
    app_specific_score: Callable[["PeerId"], float] | None = None
    app_specific_weight: float = 10.0
    # P6: peers sharing one IP beyond the threshold
    ip_colocation_factor_weight: float = -100.0
    ip_colocation_factor_threshold: float = 10.0
    ip_colocation_whitelist: frozenset[str] = frozenset({"127.0.0.1", "::1"})
    # P7: behaviour penalty (broken IWANT promises, GRAFT during backoff, slow queues)
    behaviour_penalty_weight: float = -10.0
    behaviour_penalty_threshold: float = 0.0
    behaviour_penalty_decay: float = 0.2
    decay_interval: float = 1.0
    decay_to_zero: float = 0.1
    #: how long the score of a disconnected peer is remembered (so reconnecting resets nothing)
    retain_score: float = 3600.0

    def for_topic(self, topic: str) -> TopicScoreParams | None:
        return self.topics.get(topic, self.default_topic)


@dataclass
class ScoreThresholds:
    """Score thresholds (gossipsub-v1.1.md, "Score Thresholds"); js-libp2p's defaults."""

    gossip_threshold: float = -10.0
    publish_threshold: float = -50.0
    graylist_threshold: float = -80.0
    accept_px_threshold: float = 10.0
    opportunistic_graft_threshold: float = 20.0

    def check(self) -> None:
        if not (self.graylist_threshold <= self.publish_threshold <= self.gossip_threshold <= 0):
            raise ConfigError("score thresholds must satisfy graylist <= publish <= gossip <= 0")
        if self.accept_px_threshold < 0 or self.opportunistic_graft_threshold < 0:
            raise ConfigError("accept_px_threshold and opportunistic_graft_threshold must be >= 0")


def default_msg_id(msg: "PubsubMessage") -> bytes:
    """``from`` bytes followed by ``seqno`` bytes: what go and js use for signed messages."""
    return (msg.from_peer or b"") + (msg.seqno or b"")


def js_msg_id(msg: "PubsubMessage") -> bytes:
    """js-libp2p gossipsub's id for signed messages: the author's protobuf public key
    followed by ``seqno`` (go and the spec use the peer id bytes instead, which for an
    Ed25519 id are the same key with a 2-byte identity-multihash prefix). Use it on a
    network of js peers so IHAVE/IWANT/IDONTWANT ids match theirs."""
    from ..identity import PeerId, PublicKey

    key = msg.key
    if key is None and msg.from_peer:
        pub = PeerId.from_bytes(msg.from_peer).public_key()
        key = pub.to_protobuf() if pub is not None else None
    elif key is not None:
        key = PublicKey.from_protobuf(key).to_protobuf()
    return (key or b"") + (msg.seqno or b"")


def content_msg_id(msg: "PubsubMessage") -> bytes:
    """sha-256 of the data: the usual choice for StrictNoSign topics (js's default there)."""
    import hashlib

    return hashlib.sha256(msg.data).digest()


@dataclass
class GossipsubConfig:
    # --- overlay (v1.0) -----------------------------------------------------------------------
    D: int = 6
    D_lo: int = 5
    D_hi: int = 12
    D_lazy: int = 6
    heartbeat_interval: float = 1.0
    heartbeat_initial_delay: float = 0.1
    fanout_ttl: float = 60.0
    mcache_len: int = 5
    mcache_gossip: int = 3
    seen_ttl: float = 120.0
    # --- v1.1 -------------------------------------------------------------------------------------
    D_score: int = 4
    D_out: int = 2
    gossip_factor: float = 0.25
    flood_publish: bool = True
    prune_backoff: float = 60.0
    unsubscribe_backoff: float = 10.0
    graft_flood_threshold: float = 10.0
    prune_peers: int = 16
    do_px: bool = True
    opportunistic_graft_ticks: int = 60
    opportunistic_graft_peers: int = 2
    max_ihave_length: int = 5000
    max_ihave_messages: int = 10
    iwant_followup_time: float = 3.0
    gossip_retransmission: int = 3
    # --- v1.2 -------------------------------------------------------------------------------------
    #: messages at least this big (encoded) make us send IDONTWANT to our mesh peers
    idontwant_message_threshold: int = 1024
    #: heartbeats an IDONTWANT we received stays in force
    idontwant_ttl_heartbeats: int = 3
    #: IDONTWANT ids accepted from one peer per heartbeat
    max_idontwant_messages: int = 1000
    # --- messages ---------------------------------------------------------------------------------
    signature_policy: SignaturePolicy = SignaturePolicy.STRICT_SIGN
    msg_id_fn: Callable[["PubsubMessage"], bytes] = default_msg_id
    #: the largest RPC frame read or written (go and js: 1 MiB)
    max_message_size: int = 1024 * 1024
    validate_timeout: float = 5.0
    # --- scoring -----------------------------------------------------------------------------------
    score: ScoreParams = field(default_factory=ScoreParams)
    thresholds: ScoreThresholds = field(default_factory=ScoreThresholds)
    # --- bounds -------------------------------------------------------------------------------------
    #: encoded RPC frames queued for one peer; beyond it frames are dropped (and the peer penalized)
    max_peer_queue: int = 512
    #: messages buffered per local subscription before the oldest is dropped
    subscription_queue: int = 1024
    max_topics: int = 1024
    #: topics one peer may be subscribed to in our view
    max_peer_topics: int = 1024
    max_subscriptions_per_rpc: int = 1024
    max_seen: int = 200_000
    max_mcache: int = 100_000
    max_peers: int = 1024
    stream_open_timeout: float = 10.0
    write_timeout: float = 30.0
    #: open pubsub streams on limited (relayed) connections too
    allow_limited: bool = False
    #: protocol ids we speak, best first (``(Floodsub,)`` makes a floodsub-only node)
    protocols: tuple[str, ...] = PROTOCOLS

    def __post_init__(self) -> None:
        if not (0 < self.D_lo <= self.D <= self.D_hi):
            raise ConfigError(f"gossipsub needs 0 < D_lo <= D <= D_hi (got {self.D_lo}, {self.D}, {self.D_hi})")
        if self.D_out >= self.D_lo or self.D_out > self.D // 2:
            raise ConfigError("gossipsub needs D_out < D_lo and D_out <= D/2")
        if self.D_score > self.D:
            raise ConfigError("D_score must be <= D")
        if not (0 < self.mcache_gossip <= self.mcache_len):
            raise ConfigError("gossipsub needs 0 < mcache_gossip <= mcache_len")
        if self.heartbeat_interval <= 0 or self.seen_ttl <= 0 or self.fanout_ttl <= 0:
            raise ConfigError("heartbeat_interval, seen_ttl and fanout_ttl must be positive")
        if self.max_message_size < 1024:
            raise ConfigError("max_message_size must be at least 1 KiB")
        self.signature_policy = SignaturePolicy(self.signature_policy)
        if self.signature_policy is SignaturePolicy.STRICT_NO_SIGN and self.msg_id_fn is default_msg_id:
            raise ConfigError("strict_no_sign messages have no from/seqno: pass a content-based msg_id_fn")
        self.thresholds.check()
        if not self.protocols or any(p not in PROTOCOLS for p in self.protocols):
            raise ConfigError(f"protocols must be a non-empty subset of {PROTOCOLS}")


__all__ = [
    "GossipsubConfig",
    "ScoreParams",
    "ScoreThresholds",
    "TopicScoreParams",
    "SignaturePolicy",
    "default_msg_id",
    "js_msg_id",
    "content_msg_id",
    "PROTOCOLS",
    "GOSSIP_PROTOCOLS",
    "PX_PROTOCOLS",
    "MeshsubV10",
    "MeshsubV11",
    "MeshsubV12",
    "Floodsub",
]
