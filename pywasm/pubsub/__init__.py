"""Publish/subscribe: gossipsub v1.0/v1.1/v1.2 with floodsub compatibility.

* :mod:`.router` - the sans-IO router core (mesh, gossip, control, caches, scoring hooks);
* :mod:`.score` - peer scoring of v1.1;
* :mod:`.caches` - message cache and seen cache;
* :mod:`.message` - messages, StrictSign signing and checks, validation results;
* :mod:`.service` - the host service ``"pubsub"`` (streams, validation, heartbeat timer);
* :mod:`.config` - every parameter and bound.
"""

from __future__ import annotations

from .config import (
    PROTOCOLS,
    Floodsub,
    GossipsubConfig,
    MeshsubV10,
    MeshsubV11,
    MeshsubV12,
    ScoreParams,
    ScoreThresholds,
    SignaturePolicy,
    TopicScoreParams,
    content_msg_id,
    default_msg_id,
    js_msg_id,
)
from .message import PubsubError, PubsubMessage, PubsubProtocolError, ValidationResult
from .router import GossipRouter
from .service import GossipsubService, Subscription

__all__ = [
    "GossipsubService",
    "GossipsubConfig",
    "GossipRouter",
    "Subscription",
    "PubsubMessage",
    "PubsubError",
    "PubsubProtocolError",
    "ValidationResult",
    "ScoreParams",
    "ScoreThresholds",
    "TopicScoreParams",
    "SignaturePolicy",
    "default_msg_id",
    "js_msg_id",
    "content_msg_id",
    "PROTOCOLS",
    "MeshsubV12",
    "MeshsubV11",
    "MeshsubV10",
    "Floodsub",
]
