"""The host: upgrade pipeline, connections, peerstore, handler registry (docs/architecture.md)."""

from __future__ import annotations

from .config import HostConfig
from .connection import Connection, Direction, HostStream
from .host import DEFAULT_NATIVE_LISTEN, Host, default_muxers, default_transports
from .peerstore import PeerRecord, Peerstore
from .registry import HandlerRegistry, StreamHandler
from .upgrader import Upgrader

__all__ = [
    "Host",
    "HostConfig",
    "Connection",
    "Direction",
    "HostStream",
    "Peerstore",
    "PeerRecord",
    "HandlerRegistry",
    "StreamHandler",
    "Upgrader",
    "DEFAULT_NATIVE_LISTEN",
    "default_muxers",
    "default_transports",
]
