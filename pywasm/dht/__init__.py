"""Kademlia DHT (libp2p/specs kad-dht): routing table, iterative lookups, records with
validation, provider records, and the :class:`KadDHT` service (server or client mode)."""

from __future__ import annotations

from .errors import DHTError, NotFoundError, QueryError, RecordValidationError
from .keyspace import common_prefix_len, key_position, peer_position
from .lookup import Lookup, LookupResult, StopLookup, run_lookup
from .providers import ProviderStore
from .records import PublicKeyValidator, RecordStore, Validator, Validators
from .routing_table import RoutingTable
from .service import KadDHT

__all__ = [
    "KadDHT",
    "RoutingTable",
    "Lookup",
    "LookupResult",
    "StopLookup",
    "run_lookup",
    "RecordStore",
    "ProviderStore",
    "Validator",
    "Validators",
    "PublicKeyValidator",
    "DHTError",
    "NotFoundError",
    "QueryError",
    "RecordValidationError",
    "key_position",
    "peer_position",
    "common_prefix_len",
]
