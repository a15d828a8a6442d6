"""A network of pywasm hosts running gossipsub over the memory transport, for tests and the
simulation benchmark. Pure asyncio (runs in Pyodide): one fake clock for every router,
heartbeats run by hand, so meshes evolve deterministically up to message interleaving."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from pywasm.host import Host
from pywasm.identity import KeyType, PrivateKey
from pywasm.pubsub import GossipsubConfig, GossipsubService
from pywasm.transports.memory import MemoryTransport
from pywasm.services.identify import IdentifyService

TIMEOUT = 20.0


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class GossipNet:
    def __init__(self, seed: int = 1) -> None:
        self.clock = FakeClock()
        self.rng = random.Random(seed)
        self.hosts: list[Host] = []

    async def add(
        self, n: int = 1, config: GossipsubConfig | None = None, *, identify: bool = False, **kw: Any
    ) -> list[Host]:
        """``identify`` adds the identify service (signed peer records, used by PX)."""
        out = []
        for _ in range(n):
            key = await PrivateKey.generate(KeyType.Ed25519)
            cfg = config if config is not None else GossipsubConfig()
            svc = GossipsubService(cfg, clock=self.clock, auto_heartbeat=False,
                                   rng=random.Random(self.rng.random()), **kw)
            services: list[Any] = [IdentifyService(), svc] if identify else [svc]
            host = await Host.create(key=key, listen=["/memory/0"], transports=[MemoryTransport()], services=services)
            self.hosts.append(host)
            out.append(host)
        return out

    def ps(self, i: int | Host) -> GossipsubService:
        host = self.hosts[i] if isinstance(i, int) else i
        return host.services["pubsub"]  # type: ignore[return-value]

    def index(self, peer: Any) -> int:
        return next(i for i, h in enumerate(self.hosts) if h.peer_id == peer)

    def linked(self, a: Host, b: Host) -> bool:
        link = self.ps(a)._links.get(b.peer_id)
        return link is not None and link.stream is not None and b.peer_id in self.ps(a)._inbound

    async def connect(self, i: int, j: int) -> None:
        a, b = self.hosts[i], self.hosts[j]
        await asyncio.wait_for(a.dial(b.addrs()[0]), TIMEOUT)

    async def wait_linked(self, edges: list[tuple[int, int]]) -> None:
        def done() -> bool:
            return all(self.linked(self.hosts[i], self.hosts[j]) and self.linked(self.hosts[j], self.hosts[i])
                       for i, j in edges)

        await wait_for(done, TIMEOUT, "pubsub streams on every edge")

    async def connect_edges(self, edges: list[tuple[int, int]]) -> None:
        await asyncio.gather(*(self.connect(i, j) for i, j in edges))
        await self.wait_linked(edges)

    def queued(self) -> int:
        return sum(len(link.queue) for h in self.hosts for link in self.ps(h)._links.values())

    async def settle(self) -> None:
        """Let every queued frame travel and be processed (bounded)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + TIMEOUT
        quiet = 0
        while quiet < 3:
            if loop.time() > end:
                raise AssertionError("network did not settle")
            await asyncio.sleep(0.005)
            quiet = quiet + 1 if self.queued() == 0 else 0

    async def heartbeat(self, rounds: int = 1, advance: float = 1.0) -> None:
        for _ in range(rounds):
            self.clock.now += advance
            for h in self.hosts:
                self.ps(h).heartbeat()
            await self.settle()

    async def close(self) -> None:
        await asyncio.gather(*(asyncio.wait_for(h.stop(), TIMEOUT) for h in self.hosts), return_exceptions=True)


async def wait_for(cond: Any, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def line(n: int) -> list[tuple[int, int]]:
    return [(i, i + 1) for i in range(n - 1)]


def random_graph(n: int, degree: int, rng: random.Random) -> list[tuple[int, int]]:
    """A connected random graph: a ring plus random chords up to about ``degree``."""
    edges = {(i, (i + 1) % n) if i < (i + 1) % n else ((i + 1) % n, i) for i in range(n)}
    target = n * degree // 2
    while len(edges) < target:
        a, b = rng.sample(range(n), 2)
        edges.add((min(a, b), max(a, b)))
    return sorted(edges)


__all__ = ["GossipNet", "FakeClock", "line", "random_graph", "wait_for", "TIMEOUT"]
