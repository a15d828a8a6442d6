"""In-process gossipsub simulation: N pywasm hosts on the memory transport (full stack:
noise, yamux, multistream, the pubsub service), a random connected graph, one topic.

Measures, per message, the time from publish() to delivery at every other node (p50, p90,
max over all deliveries), the duplicate ratio (copies received and dropped as duplicates
per delivered message), control overhead, and the cost of one heartbeat per node.

    .venv/bin/python benchmarks/pubsub_sim.py --nodes 50 --degree 8 --messages 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit._gossip_net import GossipNet, random_graph  # noqa: E402

TOPIC = "sim"


async def run(nodes: int, degree: int, messages: int, size: int, seed: int) -> dict[str, float]:
    net = GossipNet(seed=seed)
    t0 = time.perf_counter()
    await net.add(nodes)
    edges = random_graph(nodes, degree, net.rng)
    # dial in batches: a few hundred handshakes at once only adds scheduling noise
    for i in range(0, len(edges), 50):
        await net.connect_edges(edges[i:i + 50])
    setup = time.perf_counter() - t0
    arrivals: dict[bytes, list[float]] = {}
    for h in net.hosts:
        svc = net.ps(h)
        orig = svc._deliver

        def record(msg, msg_id, orig=orig):  # type: ignore[no-untyped-def]
            arrivals.setdefault(msg_id, []).append(time.perf_counter())
            orig(msg, msg_id)

        svc._deliver = record  # type: ignore[method-assign]
        await svc.subscribe(TOPIC)
    await net.settle()
    hb = time.perf_counter()
    await net.heartbeat(rounds=3)
    hb_cost = (time.perf_counter() - hb) / 3 / nodes
    mesh_sizes = [len(net.ps(h).mesh(TOPIC)) for h in net.hosts]
    for h in net.hosts:  # only the traffic of the messages below
        for k in net.ps(h).stats:
            net.ps(h).stats[k] = 0
    latencies: list[float] = []
    sent_at: dict[bytes, float] = {}
    for m in range(messages):
        src = net.hosts[net.rng.randrange(nodes)]
        start = time.perf_counter()
        mid = await net.ps(src).publish(TOPIC, os.urandom(size))
        sent_at[mid] = start
        loop = asyncio.get_running_loop()
        end = loop.time() + 30
        while len(arrivals.get(mid, ())) < nodes - 1:
            if loop.time() > end:
                raise SystemExit(f"message {m} reached {len(arrivals.get(mid, ()))}/{nodes - 1} nodes")
            await asyncio.sleep(0.001)
        latencies += [t - start for t in arrivals[mid]]
        await net.settle()
        if m % 5 == 4:
            await net.heartbeat()
    stats = {k: sum(net.ps(h).stats[k] for h in net.hosts) for k in net.ps(0).stats}
    await net.close()
    latencies.sort()
    q = statistics.quantiles(latencies, n=10)
    return {
        "nodes": nodes,
        "edges": len(edges),
        "setup_s": setup,
        "mesh_min": min(mesh_sizes),
        "mesh_max": max(mesh_sizes),
        "mesh_mean": statistics.mean(mesh_sizes),
        "deliveries": len(latencies),
        "p50_ms": q[4] * 1e3,
        "p90_ms": q[8] * 1e3,
        "max_ms": latencies[-1] * 1e3,
        "dup_ratio": stats["duplicates"] / max(1, stats["delivered"]),
        "idontwant_sent": stats["idontwant_sent"],
        "ihave_sent": stats["ihave_sent"],
        "heartbeat_ms_per_node": hb_cost * 1e3,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, nargs="+", default=[50, 100])
    ap.add_argument("--degree", type=int, default=8)
    ap.add_argument("--messages", type=int, default=20)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    for n in args.nodes:
        res = asyncio.run(run(n, args.degree, args.messages, args.size, args.seed))
        print(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in res.items()), flush=True)


if __name__ == "__main__":
    main()
