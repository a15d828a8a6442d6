"""The k-bucket routing table (sans-IO: no clocks of its own, no I/O).

Buckets are indexed by the common prefix length (CPL) between a peer's position and
ours; each holds at most ``k`` peers in least-recently-seen order, plus a bounded
replacement cache. When a bucket is full, :meth:`RoutingTable.add` parks the newcomer in
the cache and names the least recently seen member: the caller checks that one (a
connection or a request) and calls :meth:`remove` if it is gone, which promotes the
most recent replacement. This is the classic Kademlia rule: long-lived peers are kept,
which is what makes the table resistant to flooding with fresh identities.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass

from ..identity import PeerId
from .keyspace import KEY_BITS, common_prefix_len, peer_position

DEFAULT_K = 20


@dataclass(slots=True)
class Entry:
    peer_id: PeerId
    position: int
    added: float
    last_seen: float


class RoutingTable:
    def __init__(self, local: PeerId, k: int = DEFAULT_K, replacements: int | None = None) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        self.local = local
        self.local_position = peer_position(local)
        self.k = k
        self.max_replacements = k if replacements is None else replacements
        # bucket index = CPL; created on demand (most of the 257 stay empty)
        self._buckets: dict[int, OrderedDict[PeerId, Entry]] = {}
        self._replacements: dict[int, OrderedDict[PeerId, Entry]] = {}
        self._last_refresh: dict[int, float] = {}
        self._size = 0

    # --- membership -----------------------------------------------------------------------
    def bucket_index(self, position: int) -> int:
        return common_prefix_len(self.local_position, position)

    def add(self, peer: PeerId, now: float, position: int | None = None) -> PeerId | None:
        """Add or refresh ``peer``; returns the peer to check when its bucket is full
        (the newcomer waits in the replacement cache), else None."""
        if peer == self.local:
            return None
        pos = peer_position(peer) if position is None else position
        idx = self.bucket_index(pos)
        bucket = self._buckets.setdefault(idx, OrderedDict())
        entry = bucket.get(peer)
        if entry is not None:
            entry.last_seen = now
            bucket.move_to_end(peer)
            return None
        if len(bucket) < self.k:
            bucket[peer] = Entry(peer, pos, now, now)
            self._size += 1
            return None
        cache = self._replacements.setdefault(idx, OrderedDict())
        cache.pop(peer, None)
        cache[peer] = Entry(peer, pos, now, now)
        while len(cache) > self.max_replacements:
            cache.popitem(last=False)
        return next(iter(bucket))

    def remove(self, peer: PeerId) -> bool:
        """Drop ``peer`` (it failed); promotes the newest replacement of its bucket."""
        idx = self.bucket_index(peer_position(peer))
        cache = self._replacements.get(idx)
        if cache is not None:
            cache.pop(peer, None)
        bucket = self._buckets.get(idx)
        if bucket is None or peer not in bucket:
            return False
        del bucket[peer]
        self._size -= 1
        if cache:
            _, repl = cache.popitem(last=True)
            bucket[repl.peer_id] = repl
            self._size += 1
        return True

    def touch(self, peer: PeerId, now: float) -> None:
        """Mark ``peer`` as seen alive, if it is in the table."""
        bucket = self._buckets.get(self.bucket_index(peer_position(peer)))
        if bucket is not None and peer in bucket:
            bucket[peer].last_seen = now
            bucket.move_to_end(peer)

    def __contains__(self, peer: object) -> bool:
        if not isinstance(peer, PeerId):
            return False
        bucket = self._buckets.get(self.bucket_index(peer_position(peer)))
        return bucket is not None and peer in bucket

    def __len__(self) -> int:
        return self._size

    def peers(self) -> list[PeerId]:
        return [p for b in self._buckets.values() for p in b]

    def bucket_sizes(self) -> dict[int, int]:
        return {i: len(b) for i, b in sorted(self._buckets.items()) if b}

    # --- queries ----------------------------------------------------------------------------
    def closest(self, position: int, count: int | None = None, exclude: PeerId | None = None) -> list[PeerId]:
        """The ``count`` (default k) known peers closest to ``position``."""
        n = self.k if count is None else count
        entries = (e for b in self._buckets.values() for e in b.values() if e.peer_id != exclude)
        best = heapq.nsmallest(n, entries, key=lambda e: e.position ^ position)
        return [e.peer_id for e in best]

    # --- refresh ------------------------------------------------------------------------------
    def mark_refreshed(self, cpl: int, now: float) -> None:
        self._last_refresh[cpl] = now

    def stale_buckets(self, now: float, interval: float, max_cpl: int) -> list[int]:
        """Bucket indexes up to ``max_cpl`` (and one past the deepest non-empty bucket)
        not looked up within ``interval``."""
        deepest = max((i for i, b in self._buckets.items() if b), default=-1)
        top = min(max_cpl, deepest + 1, KEY_BITS - 1)
        return [i for i in range(top + 1) if now - self._last_refresh.get(i, float("-inf")) >= interval]


__all__ = ["RoutingTable", "Entry", "DEFAULT_K"]
