"""Iterative Kademlia lookups: a sans-IO state machine and a small asyncio driver.

:class:`Lookup` keeps the candidates ordered by distance to the target and decides whom
to ask next (up to ``alpha`` requests in flight, always the closest not yet asked). It
ends when the ``k`` closest peers it has seen have all answered (or failed and been
dropped), as kad-dht/README.md describes, or when the caller says a result is enough.

Hop count: a seed (from our routing table) has depth 1; a peer learnt from the answer
of a peer at depth d has depth d + 1 (the smallest such d when learnt several times).
:attr:`LookupResult.hops` is the number of sequential requests that led to the closest
peer found, i.e. its depth minus one when it was learnt from someone, 0 for a seed:
what a simulation compares with log2(N).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterable

from ..identity import PeerId
from .keyspace import peer_position

DEFAULT_ALPHA = 3
# candidates kept per lookup: the farthest unasked ones are dropped beyond this
MAX_CANDIDATES_FACTOR = 8

_NEW, _WAITING, _DONE, _FAILED = 0, 1, 2, 3


@dataclass(slots=True)
class _Cand:
    peer_id: PeerId
    distance: int
    depth: int
    state: int = _NEW


@dataclass
class LookupResult:
    """The k closest peers that answered, closest first, and what it took."""

    target: int
    peers: list[PeerId]
    hops: int
    queries: int
    failures: int
    duration: float
    stopped_early: bool = False
    depths: dict[PeerId, int] = field(default_factory=dict, repr=False)


class Lookup:
    def __init__(self, target: int, seeds: Iterable[PeerId], k: int, alpha: int = DEFAULT_ALPHA, local: PeerId | None = None) -> None:
        self.target = target
        self.k = k
        self.alpha = alpha
        self.local = local
        self.max_candidates = max(k * MAX_CANDIDATES_FACTOR, 32)
        self._cands: dict[PeerId, _Cand] = {}
        # sorted (distance, peer bytes) keys, parallel to _cands
        self._order: list[tuple[int, bytes]] = []
        self._by_key: dict[tuple[int, bytes], _Cand] = {}
        self.in_flight = 0
        self.queries = 0
        self.failures = 0
        for peer in seeds:
            self._learn(peer, 1)

    def _learn(self, peer: PeerId, depth: int) -> None:
        if peer == self.local:
            return
        cand = self._cands.get(peer)
        if cand is not None:
            if depth < cand.depth and cand.state == _NEW:
                cand.depth = depth
            return
        dist = peer_position(peer) ^ self.target
        key = (dist, peer.to_bytes())
        if len(self._order) >= self.max_candidates:
            # full: only a closer peer gets in, and then the farthest unasked one goes
            if key >= self._order[-1]:
                return
            for i in range(len(self._order) - 1, -1, -1):
                victim = self._by_key[self._order[i]]
                if victim.state == _NEW:
                    del self._order[i]
                    del self._by_key[(victim.distance, victim.peer_id.to_bytes())]
                    del self._cands[victim.peer_id]
                    break
            else:
                return
        cand = _Cand(peer, dist, depth)
        self._cands[peer] = cand
        self._by_key[key] = cand
        bisect.insort(self._order, key)

    # --- driving ------------------------------------------------------------------------
    def next_queries(self) -> list[PeerId]:
        """Peers to ask now (marks them in flight)."""
        out: list[PeerId] = []
        if self.in_flight >= self.alpha:
            return out
        live = 0
        for key in self._order:
            cand = self._by_key[key]
            if cand.state == _FAILED:
                continue
            live += 1
            if live > self.k:
                break
            if cand.state == _NEW:
                cand.state = _WAITING
                self.in_flight += 1
                self.queries += 1
                out.append(cand.peer_id)
                if self.in_flight >= self.alpha:
                    break
        return out

    def on_success(self, peer: PeerId, closer: Iterable[PeerId]) -> None:
        cand = self._cands.get(peer)
        if cand is None or cand.state != _WAITING:
            return
        cand.state = _DONE
        self.in_flight -= 1
        for p in closer:
            self._learn(p, cand.depth + 1)

    def on_failure(self, peer: PeerId) -> None:
        cand = self._cands.get(peer)
        if cand is None or cand.state != _WAITING:
            return
        cand.state = _FAILED
        self.in_flight -= 1
        self.failures += 1

    @property
    def finished(self) -> bool:
        """The k closest live candidates have all answered."""
        live = 0
        for key in self._order:
            cand = self._by_key[key]
            if cand.state == _FAILED:
                continue
            if cand.state != _DONE:
                return False
            live += 1
            if live >= self.k:
                return True
        return True

    def closest(self, count: int | None = None) -> list[PeerId]:
        n = self.k if count is None else count
        out: list[PeerId] = []
        for key in self._order:
            cand = self._by_key[key]
            if cand.state == _DONE:
                out.append(cand.peer_id)
                if len(out) >= n:
                    break
        return out

    def depth(self, peer: PeerId) -> int | None:
        cand = self._cands.get(peer)
        return None if cand is None else cand.depth

    def result(self, duration: float, stopped_early: bool = False, count: int | None = None) -> LookupResult:
        peers = self.closest(count)
        hops = 0
        if peers:
            hops = self._cands[peers[0]].depth - 1
        return LookupResult(
            target=self.target,
            peers=peers,
            hops=hops,
            queries=self.queries,
            failures=self.failures,
            duration=duration,
            stopped_early=stopped_early,
            depths={p: self._cands[p].depth for p in peers},
        )


class StopLookup(Exception):
    """Raised by a query callback when the lookup has what it needs (not an error)."""


#: a query asks one peer and returns the peers it named closer to the target
QueryFn = Callable[[PeerId], Awaitable[list[PeerId]]]


async def run_lookup(lookup: Lookup, query: QueryFn, timeout: float) -> LookupResult:
    """Drive ``lookup`` with ``query`` (each call bounded by the caller), ``alpha`` at a
    time, for at most ``timeout`` seconds overall. A query raising :class:`StopLookup`
    ends the lookup at once (remaining requests are cancelled)."""
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    deadline = loop.time() + timeout
    pending: dict[asyncio.Task[list[PeerId]], PeerId] = {}
    stopped = False
    try:
        while True:
            for peer in lookup.next_queries():
                pending[loop.create_task(query(peer))] = peer
            if not pending:
                break
            left = deadline - loop.time()
            if left <= 0:
                break
            done, _ = await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                peer = pending.pop(task)
                exc = task.exception() if not task.cancelled() else None
                if isinstance(exc, StopLookup):
                    lookup.on_success(peer, [])
                    stopped = True
                elif exc is not None or task.cancelled():
                    lookup.on_failure(peer)
                else:
                    lookup.on_success(peer, task.result())
            if stopped or lookup.finished:
                break
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    return lookup.result(time.monotonic() - start, stopped_early=stopped)


__all__ = ["Lookup", "LookupResult", "StopLookup", "run_lookup", "DEFAULT_ALPHA"]
