"""In-process Kademlia simulation: N pywasm DHT nodes, random lookups, hop counts vs log2(N).

Two modes:

* ``--mode sim`` (default): every node is a real :class:`pywasm.dht.KadDHT` (routing
  table, lookup, stores, message handling, protobuf encode/decode of every message) on a
  stub host; a request is a direct call of the remote node's ``handle_request`` after an
  optional simulated latency. No Noise, no muxer: this is what scales to thousands.
* ``--mode hosts``: full pywasm Hosts over the memory transport (Noise, yamux,
  multistream, identify), as in tests/unit/test_kad.py; use for a few hundred nodes.

    .venv/bin/python benchmarks/dht_sim.py -n 1000 --lookups 200 [--latency-ms 5] [--mode hosts]

Prints one JSON object: build time, memory per node (RSS growth / N), hop count mean and
p95 vs log2(N), success rates (target peer found; k closest exact), queries per lookup.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pywasm.dht import KadDHT, QueryError, key_position, peer_position  # noqa: E402
from pywasm.host.peerstore import Peerstore  # noqa: E402
from pywasm.identity import PeerId  # noqa: E402
from pywasm.multiformats import multihash  # noqa: E402
from pywasm.multiformats.multiaddr import Multiaddr  # noqa: E402
from pywasm.protocols.kad_pb import MessagePB, decode_message  # noqa: E402


def rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: peak RSS is the best we have
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Conn:
    def __init__(self, peer: PeerId) -> None:
        self.remote_peer = peer


class SimHost:
    """What KadDHT uses of a Host, and nothing else."""

    def __init__(self, peer_id: PeerId, index: int) -> None:
        self.peer_id = peer_id
        self.peerstore = Peerstore(max_peers=512)
        self._addrs = [Multiaddr(f"/memory/{index + 1}")]
        self.services: dict[str, Any] = {}

    def listen_addrs(self) -> list[Multiaddr]:
        return self._addrs

    def is_connected(self, peer: PeerId) -> bool:
        return False

    def set_stream_handler(self, *a: Any, **kw: Any) -> None:
        pass

    def remove_stream_handler(self, *a: Any) -> None:
        pass

    async def dial(self, target: Any, **kw: Any) -> _Conn:
        return _Conn(target)


class SimNet:
    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.nodes: dict[PeerId, "SimDHT"] = {}
        self.messages = 0


class SimDHT(KadDHT):
    net: SimNet

    async def _request(self, peer: PeerId, msg: MessagePB, expect_response: bool) -> MessagePB | None:
        net = self.net
        if net.latency:
            await asyncio.sleep(net.latency)
        remote = net.nodes.get(peer)
        if remote is None:
            raise QueryError(f"{peer} is not in the simulation")
        net.messages += 1
        me = self.host.peer_id
        # both directions go through the wire codec, as they would on a stream
        resp = await remote.handle_request(me, decode_message(msg.encode()))
        remote._add_peer(me)  # it is a server: identify would have told the remote so
        if net.latency:
            await asyncio.sleep(net.latency)
        return None if resp is None or not expect_response else decode_message(resp.encode())


async def build_sim(n: int, latency: float, k: int, alpha: int, refresh_rounds: int) -> tuple[list[Any], list[KadDHT]]:
    net = SimNet(latency)
    dhts: list[KadDHT] = []
    rng = random.Random(1)
    for i in range(n):
        pid = PeerId.from_bytes(multihash.sha256(rng.randbytes(32)))
        host = SimHost(pid, i)
        d = SimDHT(mode="server", k=k, alpha=alpha, refresh_interval=0, request_timeout=30, lookup_timeout=120)
        d.net = net
        d.attach(host)  # type: ignore[arg-type]
        net.nodes[pid] = d
        dhts.append(d)
    # join one by one through a random earlier node: seed + self-lookup (go's join)
    for i in range(1, n):
        d = dhts[i]
        seed = dhts[rng.randrange(i)]
        d.host.peerstore.add_addrs(seed.host.peer_id, seed.host.listen_addrs())
        await d.request(seed.host.peer_id, MessagePB(type=4, key=d.host.peer_id.to_bytes()))
        await d.find_closest_peers(d.host.peer_id.to_bytes())
    for _ in range(refresh_rounds):
        for d in dhts:
            await d.refresh(force=True)
    return [d.host for d in dhts], dhts


async def build_hosts(n: int, k: int, alpha: int) -> tuple[list[Any], list[KadDHT]]:
    from pywasm.host import Host, HostConfig
    from pywasm.identity import KeyType, PrivateKey
    from pywasm.services.identify import IdentifyService
    from pywasm.transports.memory import MemoryTransport

    cfg = HostConfig(max_connections=max(256, n + 16))
    hosts = []
    for _ in range(n):
        hosts.append(
            await Host.create(
                key=await PrivateKey.generate(KeyType.Ed25519),
                listen=["/memory/0"],
                transports=[MemoryTransport(capacity=64 * 1024)],
                services=[IdentifyService(), KadDHT(mode="server", k=k, alpha=alpha, refresh_interval=0)],
                config=cfg,
            )
        )
    first = hosts[0].addrs()[0]
    for i in range(1, n, 8):
        await asyncio.gather(*(h.services["dht"].bootstrap([first]) for h in hosts[i : i + 8]))
    return hosts, [h.services["dht"] for h in hosts]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(math.ceil(q * len(s))) - 1)] if s else float("nan")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--lookups", type=int, default=200)
    ap.add_argument("--latency-ms", type=float, default=0.0, help="one-way delay per message (sim mode)")
    ap.add_argument("--mode", choices=("sim", "hosts"), default="sim")
    ap.add_argument("-k", type=int, default=20)
    ap.add_argument("--alpha", type=int, default=3)
    ap.add_argument("--refresh-rounds", type=int, default=0, help="bucket refreshes of every node after joining (sim)")
    ap.add_argument("--concurrency", type=int, default=8, help="lookups in flight at once")
    args = ap.parse_args()

    gc.collect()
    rss0 = rss_mib()
    t0 = time.perf_counter()
    if args.mode == "sim":
        hosts, dhts = await build_sim(args.n, args.latency_ms / 1000, args.k, args.alpha, args.refresh_rounds)
    else:
        hosts, dhts = await build_hosts(args.n, args.k, args.alpha)
    build_s = time.perf_counter() - t0
    gc.collect()
    rss1 = rss_mib()

    rng = random.Random(2)
    positions = {h.peer_id: peer_position(h.peer_id) for h in hosts}
    hops: list[float] = []
    queries: list[float] = []
    durations: list[float] = []
    found = exact = 0
    sem = asyncio.Semaphore(args.concurrency)

    async def one(i: int) -> None:
        nonlocal found, exact
        src = dhts[rng.randrange(len(dhts))]
        if i % 2 == 0:
            # find an existing peer: success = it is the closest peer returned
            target_peer = hosts[rng.randrange(len(hosts))].peer_id
            while target_peer == src.host.peer_id:
                target_peer = hosts[rng.randrange(len(hosts))].peer_id
            key = target_peer.to_bytes()
        else:
            key = rng.randbytes(32)
            target_peer = None
        async with sem:
            res = await src.find_closest_peers(key)
        pos = key_position(key)
        truth = sorted((p for p in positions if p != src.host.peer_id), key=lambda p: positions[p] ^ pos)[: args.k]
        if target_peer is not None:
            found += bool(res.peers) and res.peers[0] == target_peer
        else:
            exact += res.peers == truth
        hops.append(res.hops)
        queries.append(res.queries)
        durations.append(res.duration)

    t1 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(args.lookups)))
    lookup_s = time.perf_counter() - t1
    table_sizes = [len(d.routing_table) for d in dhts]
    out = {
        "mode": args.mode,
        "n": args.n,
        "k": args.k,
        "alpha": args.alpha,
        "latency_ms": args.latency_ms,
        "build_s": round(build_s, 2),
        "rss_mib_growth": round(rss1 - rss0, 1),
        "kib_per_node": round((rss1 - rss0) * 1024 / args.n, 1),
        "table_size_mean": round(statistics.mean(table_sizes), 1),
        "lookups": args.lookups,
        "lookup_wall_s": round(lookup_s, 2),
        "lookup_ms_mean": round(1000 * statistics.mean(durations), 2),
        "log2_n": round(math.log2(args.n), 2),
        "hops_mean": round(statistics.mean(hops), 2),
        "hops_p95": pct(hops, 0.95),
        "hops_max": max(hops),
        "queries_mean": round(statistics.mean(queries), 1),
        "find_peer_success": round(found / max(1, (args.lookups + 1) // 2), 3),
        "k_closest_exact": round(exact / max(1, args.lookups // 2), 3),
    }
    print(json.dumps(out))
    if args.mode == "hosts":
        await asyncio.gather(*(h.stop() for h in hosts), return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
