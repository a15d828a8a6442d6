"""Scale by simulation: thousands of pywasm nodes in one process, on simulated time.

What runs is the real protocol code; what is simulated is the network and the clock.

* **DHT**: every node is a real :class:`pywasm.dht.KadDHT` (routing table, iterative
  lookup, request handling). A request is encoded with the kad protobuf codec, waits one
  link latency, is decoded and answered by the remote node's ``handle_request``, and the
  answer travels back the same way (``KadDHT._request`` is the one method swapped, the
  hook benchmarks/dht_sim.py uses too). A node that left never answers: the requester's
  own ``request_timeout`` fires, as with a dead peer.
* **gossipsub**: every node is a real :class:`pywasm.pubsub.GossipRouter` with the default
  parameters (D=6, D_lo=5, D_hi=12, 1 s heartbeat, flood publishing, IHAVE/IWANT,
  IDONTWANT, scoring). Its ``send`` callback encodes the RPC protobuf; the frame reaches the
  peer after the link latency (FIFO per link) and is decoded there and fed to
  ``handle_rpc``, as :mod:`pywasm.pubsub.service` does with a stream. Messages are signed
  with Ed25519 by their author (StrictSign); ``--verify`` also checks every signature at
  every receiver.

Why not full hosts on the memory transport: a full host (Noise, yamux, multistream,
identify) costs 1.24 MiB and an X25519/Ed25519 handshake per connection, so 2,000 of them
with 12 connections each do not fit two cores in minutes. benchmarks/dht_sim.py
``--mode hosts`` and benchmarks/pubsub_sim.py measure the full stack at 50-200 nodes; this
simulator measures the protocol logic at 2,000+ with the real wire encoding.

Time is simulated: the asyncio loop below jumps to the next timer instead of sleeping,
so latencies, timeouts and heartbeats cost no wall time, and every timeout in the real
code (request timeouts, lookup deadlines, backoffs, promises) runs on that clock.

    .venv/bin/python benchmarks/scale_sim.py                  # N=2000, churn 0 and 10 %
    .venv/bin/python benchmarks/scale_sim.py -n 200 --lookups 100 --messages 50

Prints a table and writes benchmarks/results/scale_latest.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import heapq
import json
import math
import os
import random
import resource
import selectors
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Coroutine, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.dht_sim import SimHost  # noqa: E402  (the stub host KadDHT runs on)
from pywasm.dht import KadDHT, QueryError, key_position, peer_position  # noqa: E402
from pywasm.identity import KeyType, PeerId, PrivateKey  # noqa: E402
from pywasm.multiformats import multihash  # noqa: E402
from pywasm.protocols.kad_pb import MessagePB as KadMessage  # noqa: E402
from pywasm.protocols.kad_pb import MessageType, decode_message  # noqa: E402
from pywasm.protocols.pubsub_pb import RPC, PeerInfoPB  # noqa: E402
from pywasm.pubsub import GossipRouter  # noqa: E402
from pywasm.pubsub.config import GossipsubConfig, MeshsubV12, SignaturePolicy  # noqa: E402
from pywasm.pubsub.message import ValidationResult, check_signature_policy, sign_message  # noqa: E402

T = TypeVar("T")
RESULTS = Path(__file__).resolve().parent / "results"
TOPIC = "scale-sim"
MASK64 = (1 << 64) - 1


# ----------------------------------------------------------------------------- simulated time
class SimulationStalled(RuntimeError):
    """Nothing is ready and no timer is set: the simulated network would wait forever."""


class _NoSelector(selectors.BaseSelector):
    """No file descriptors: 'waiting' for the next timer is moving the clock to it."""

    def __init__(self, loop: "VirtualTimeLoop") -> None:
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        raise NotImplementedError("the simulation loop has no file descriptors")

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        raise NotImplementedError("the simulation loop has no file descriptors")

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            raise SimulationStalled("no task is ready and no timer is set")
        if timeout > 0:
            self._loop._now += timeout
        return []

    def get_map(self) -> Any:
        return {}

    def close(self) -> None:
        pass


class VirtualTimeLoop(asyncio.BaseEventLoop):
    """An asyncio loop on simulated time (the shape of tests/_sync_loop.py's SyncLoop)."""

    def __init__(self) -> None:
        self._now = 0.0
        super().__init__()
        self._selector = _NoSelector(self)

    def _process_events(self, event_list: list[Any]) -> None:
        pass

    def _write_to_self(self) -> None:
        pass

    def time(self) -> float:
        return self._now


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh :class:`VirtualTimeLoop`; leftover tasks are cancelled."""
    outer = asyncio.events._get_running_loop()
    asyncio.events._set_running_loop(None)
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()
        asyncio.events._set_running_loop(outer)


def _run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Finish a coroutine that never suspends (the native crypto backend's async API)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("coroutine suspended; it cannot run inside a simulation callback")


# ----------------------------------------------------------------------------- latency model
def _mix64(x: int) -> int:
    # splitmix64: a well-spread hash, so a link's latency needs no table of N^2 entries
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


@dataclass
class Latency:
    """One-way delay of the link between nodes a and b (symmetric, fixed per link)."""

    model: str = "uniform"  # "uniform" in [lo, hi], or "lognormal" (median, sigma) clipped to [lo, hi]
    lo_ms: float = 10.0
    hi_ms: float = 100.0
    median_ms: float = 40.0
    sigma: float = 0.6
    seed: int = 1

    def __post_init__(self) -> None:
        if self.model not in ("uniform", "lognormal"):
            raise ValueError(f"unknown latency model {self.model!r}")
        self._normal = statistics.NormalDist()

    def __call__(self, a: int, b: int) -> float:
        if a > b:
            a, b = b, a
        u = ((_mix64((a << 32) ^ b ^ (self.seed << 20)) >> 11) + 0.5) * 2.0**-53
        if self.model == "uniform":
            ms = self.lo_ms + (self.hi_ms - self.lo_ms) * u
        else:
            ms = min(self.hi_ms, max(self.lo_ms, self.median_ms * math.exp(self.sigma * self._normal.inv_cdf(u))))
        return ms / 1000.0

    def describe(self) -> str:
        if self.model == "uniform":
            return f"uniform {self.lo_ms:g}-{self.hi_ms:g} ms one way per link"
        return f"log-normal median {self.median_ms:g} ms sigma {self.sigma:g}, clipped to {self.lo_ms:g}-{self.hi_ms:g} ms"


# ----------------------------------------------------------------------------- small helpers
def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(math.ceil(q * len(s))) - 1))] if s else float("nan")


def rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mib()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _r(x: float, nd: int = 2) -> float:
    return round(x, nd) if not math.isnan(x) else x


# ============================================================================= DHT


class _DhtNet:
    def __init__(self, latency: Latency) -> None:
        self.latency = latency
        self.nodes: list["SimKad"] = []
        self.by_peer: dict[PeerId, "SimKad"] = {}
        self.requests = 0
        self.bytes = 0
        self.dead_refuse = False


class SimKad(KadDHT):
    """KadDHT whose requests cross the simulated network (encoded both ways)."""

    net: _DhtNet
    index: int
    alive: bool

    async def _request(self, peer: PeerId, msg: KadMessage, expect_response: bool) -> KadMessage | None:
        net = self.net
        remote = net.by_peer.get(peer)
        if remote is None:
            raise QueryError(f"{peer} is not in the simulation")
        delay = net.latency(self.index, remote.index)
        data = msg.encode()
        net.requests += 1
        net.bytes += len(data)
        await asyncio.sleep(delay)
        if not remote.alive:
            if net.dead_refuse:  # the dial is refused: we know after one round trip
                await asyncio.sleep(delay)
                raise QueryError(f"{peer} refused the connection")
            await asyncio.Event().wait()  # a departed node never answers: our request_timeout fires
        me = self.host.peer_id
        resp = await remote.handle_request(me, decode_message(data))
        remote._add_peer(me)  # identify would have told it we are a kad server
        if resp is None or not expect_response:
            return None
        out = resp.encode()
        net.bytes += len(out)
        await asyncio.sleep(delay)
        return decode_message(out)


@dataclass
class DhtConfig:
    n: int = 2000
    k: int = 20
    alpha: int = 3
    lookups: int = 500
    churn: float = 0.1
    join_gap: float = 0.05  # simulated seconds between two nodes joining
    lookup_gap: float = 0.05  # simulated seconds between two lookups starting
    request_timeout: float = 10.0
    dead: str = "silent"  # a departed node: "silent" (requests time out) or "refuse" (fail after one RTT)
    seed: int = 1


def _lookup_stats(samples: list[dict[str, Any]], n_live: int, k: int) -> dict[str, Any]:
    hops = [s["hops"] for s in samples]
    lat = [s["latency"] for s in samples]
    finds = [s for s in samples if s["kind"] == "peer"]
    keys = [s for s in samples if s["kind"] == "key"]
    return {
        "lookups": len(samples),
        "live_nodes": n_live,
        "log2_n": _r(math.log2(n_live)),
        "hops_mean": _r(statistics.mean(hops)),
        "hops_p50": pct(hops, 0.5),
        "hops_p95": pct(hops, 0.95),
        "hops_max": max(hops),
        "queries_mean": _r(statistics.mean(s["queries"] for s in samples), 1),
        "failed_requests_mean": _r(statistics.mean(s["failures"] for s in samples), 2),
        "find_peer_success": _r(sum(s["ok"] for s in finds) / max(1, len(finds)), 3),
        "k_closest_exact": _r(sum(s["ok"] for s in keys) / max(1, len(keys)), 3),
        "k_closest_recall": _r(statistics.mean(s["recall"] for s in keys) if keys else float("nan"), 3),
        "latency_ms_p50": _r(1000 * pct(lat, 0.5), 0),
        "latency_ms_p95": _r(1000 * pct(lat, 0.95), 0),
        "latency_ms_max": _r(1000 * max(lat), 0),
    }


async def simulate_dht(cfg: DhtConfig, latency: Latency, log: Callable[[str], None] = print) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    rng = random.Random(cfg.seed)
    net = _DhtNet(latency)
    net.dead_refuse = cfg.dead == "refuse"
    failed_joins = 0

    def new_node() -> SimKad:
        i = len(net.nodes)
        pid = PeerId.from_bytes(multihash.sha256(rng.randbytes(32)))
        d = SimKad(mode="server", k=cfg.k, alpha=cfg.alpha, refresh_interval=0, request_timeout=cfg.request_timeout,
                   clock=loop.time)
        d.net, d.index, d.alive = net, i, True
        d.attach(SimHost(pid, i))  # type: ignore[arg-type]
        net.nodes.append(d)
        net.by_peer[pid] = d
        return d

    async def join(d: SimKad, seed: SimKad, at: float) -> None:
        # go-libp2p-kad-dht's join: ask one known node about ourselves, then look ourselves up
        nonlocal failed_joins
        await asyncio.sleep(max(0.0, at - loop.time()))
        me = d.host.peer_id
        d.host.peerstore.add_addrs(seed.host.peer_id, seed.host.listen_addrs())
        try:
            await d.request(seed.host.peer_id, KadMessage(type=MessageType.FIND_NODE, key=me.to_bytes()))
            await d.find_closest_peers(me.to_bytes())
        except QueryError:
            failed_joins += 1

    async def join_many(count: int) -> None:
        start = loop.time()
        jobs = []
        for j in range(count):
            live = [x for x in net.nodes if x.alive]
            seed = live[rng.randrange(len(live))]
            jobs.append(join(new_node(), seed, start + j * cfg.join_gap))
        await asyncio.gather(*jobs)

    async def lookups(label: str) -> dict[str, Any]:
        live = [d for d in net.nodes if d.alive]
        positions = {d.host.peer_id: peer_position(d.host.peer_id) for d in live}
        plan = []
        for i in range(cfg.lookups):
            src = live[rng.randrange(len(live))]
            if i % 2 == 0:  # an existing peer: found = it is the closest answer
                tgt = src
                while tgt is src:
                    tgt = live[rng.randrange(len(live))]
                plan.append((src, tgt.host.peer_id.to_bytes(), tgt.host.peer_id))
            else:  # a random key: exact = the k closest live nodes, in order
                plan.append((src, rng.randbytes(32), None))
        samples: list[dict[str, Any]] = []
        start = loop.time()

        async def one(i: int) -> None:
            src, key, target = plan[i]
            await asyncio.sleep(max(0.0, start + i * cfg.lookup_gap - loop.time()))
            t = loop.time()
            res = await src.find_closest_peers(key)
            pos = key_position(key)
            me = src.host.peer_id
            truth = heapq.nsmallest(cfg.k, (p for p in positions if p != me), key=lambda p: positions[p] ^ pos)
            if target is not None:
                ok = bool(res.peers) and res.peers[0] == target
                recall = float("nan")
            else:
                ok = res.peers == truth
                recall = len(set(res.peers) & set(truth)) / max(1, len(truth))
            samples.append({"kind": "peer" if target is not None else "key", "ok": ok, "recall": recall,
                            "hops": res.hops, "queries": res.queries, "failures": res.failures,
                            "latency": loop.time() - t})

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(cfg.lookups)))
        out = _lookup_stats(samples, len(live), cfg.k)
        out["wall_s"] = _r(time.perf_counter() - t0, 1)
        tables = [d.routing_table for d in live]
        out["table_size_mean"] = _r(statistics.mean(len(t) for t in tables), 1)
        dead = sum(1 for t in tables for p in t.peers() if not net.by_peer[p].alive)
        out["dead_table_entries"] = _r(dead / max(1, sum(len(t) for t in tables)), 3)
        log(f"  dht {label}: {json.dumps(out)}")
        return out

    w0 = time.perf_counter()
    new_node()
    await join_many(cfg.n - 1)
    build_s = time.perf_counter() - w0
    gc.collect()
    result: dict[str, Any] = {
        "n": cfg.n, "k": cfg.k, "alpha": cfg.alpha, "build_wall_s": _r(build_s, 1),
        "build_sim_s": _r(loop.time(), 1), "failed_joins": failed_joins, "dead_peers": cfg.dead,
        "request_timeout_s": cfg.request_timeout,
        "rss_mib_after_build": _r(rss_mib(), 0),
    }
    log(f"  dht built: {json.dumps(result)}")
    net.requests = 0
    result["no_churn"] = await lookups("no churn")
    result["no_churn"]["requests_per_lookup"] = _r(net.requests / cfg.lookups, 1)
    if cfg.churn > 0:
        # churn without a rebuild: a fraction leaves (stops answering, tables untouched),
        # as many new nodes join through random live nodes, then the same lookups again
        count = int(round(cfg.churn * cfg.n))
        live = [d for d in net.nodes if d.alive]
        for d in rng.sample(live, count):
            d.alive = False
            await d.stop()
        w1 = time.perf_counter()
        failed_joins = 0
        await join_many(count)
        net.requests = 0
        churned = await lookups(f"after {cfg.churn:.0%} churn")
        churned["requests_per_lookup"] = _r(net.requests / cfg.lookups, 1)
        churned["left"] = count
        churned["joined"] = count
        churned["failed_joins"] = failed_joins
        churned["rejoin_wall_s"] = _r(time.perf_counter() - w1, 1)
        result["churn"] = churned
    result["rss_mib"] = _r(rss_mib(), 0)
    return result


# ============================================================================= gossipsub
class GNode:
    __slots__ = ("index", "peer", "key", "router", "alive", "links", "joined_at", "left_at", "last_arrival")

    def __init__(self, index: int, key: PrivateKey) -> None:
        self.index = index
        self.key = key
        self.peer = PeerId.from_public_key(key.public_key)
        self.router: GossipRouter | None = None
        self.alive = False
        self.links: set[PeerId] = set()
        self.joined_at = math.inf
        self.left_at = math.inf
        self.last_arrival: dict[int, float] = {}  # per outgoing link: keeps frames in order


@dataclass
class _Msg:
    t0: float
    origin: int
    arrivals: dict[int, float] = field(default_factory=dict)


@dataclass
class GossipConfig:
    n: int = 2000
    degree: int = 12  # mean connections per node (~D_hi)
    messages: int = 200
    size: int = 256
    churn: float = 0.0
    warmup: float = 10.0  # simulated seconds of heartbeats before the first publish
    publish_gap: float = 0.1
    drain: float = 6.0  # simulated seconds after the last publish (gossip has time to repair)
    detect: float | None = None  # seconds until neighbours notice a node left (None: one link latency)
    verify: bool = False
    max_px_dials: int = 16
    seed: int = 1


class GossipNet:
    def __init__(self, cfg: GossipConfig, latency: Latency, loop: asyncio.AbstractEventLoop) -> None:
        self.cfg = cfg
        self.latency = latency
        self.loop = loop
        self.rng = random.Random(cfg.seed)
        self.config = GossipsubConfig()
        self.nodes: list[GNode] = []
        self.by_peer: dict[PeerId, GNode] = {}
        self.msgs: dict[bytes, _Msg] = {}
        self.rpcs = 0
        self.bytes = 0
        self.lost_frames = 0
        self.bad_signatures = 0
        self.heartbeats = 0
        self.heartbeat_wall = 0.0
        self.px_dials = 0
        self._memo_rpc: RPC | None = None
        self._memo_frame = b""

    # --- nodes and links ---------------------------------------------------------------
    async def make_node(self) -> GNode:
        node = GNode(len(self.nodes), await PrivateKey.generate(KeyType.Ed25519))
        node.router = GossipRouter(
            node.peer, self.config, self._sender(node), self.loop.time, random.Random(self.rng.getrandbits(64)),
            on_px=lambda src, infos, node=node: self._on_px(node, infos), peer_record=lambda _p: None,
        )
        self.nodes.append(node)
        self.by_peer[node.peer] = node
        return node

    def start_node(self, node: GNode) -> None:
        node.alive = True
        node.joined_at = self.loop.time()
        cfg = self.config
        self.loop.call_later(cfg.heartbeat_initial_delay + self.rng.random() * cfg.heartbeat_interval,
                             self._heartbeat, node)

    def connect(self, a: GNode, b: GNode) -> None:
        """a dialed b: both routers learn the other (the hello with our topics crosses the wire)."""
        if b.peer in a.links or a is b or not (a.alive and b.alive):
            return
        a.links.add(b.peer)
        b.links.add(a.peer)
        assert a.router is not None and b.router is not None
        a.router.add_peer(b.peer, MeshsubV12, outbound=True)
        b.router.add_peer(a.peer, MeshsubV12, outbound=False)

    def leave(self, node: GNode) -> None:
        node.alive = False
        node.left_at = self.loop.time()
        for peer in list(node.links):
            other = self.by_peer[peer]
            delay = self.cfg.detect if self.cfg.detect is not None else self.latency(node.index, other.index)
            self.loop.call_later(delay, self._disconnected, other, node)

    def _disconnected(self, node: GNode, gone: GNode) -> None:
        if gone.peer in node.links:
            node.links.discard(gone.peer)
            assert node.router is not None
            node.router.remove_peer(gone.peer)

    def _on_px(self, node: GNode, infos: list[PeerInfoPB]) -> None:
        # what the service does with PX: dial the named peers (bounded); no peer records here
        for info in infos:
            if self.px_dials >= self.cfg.max_px_dials * len(self.nodes):
                return
            other = self.by_peer.get(PeerId.from_bytes(info.peer_id or b""))
            if other is None or other is node or other.peer in node.links:
                continue
            self.px_dials += 1
            self.loop.call_later(2 * self.latency(node.index, other.index), self.connect, node, other)

    # --- the wire ----------------------------------------------------------------------
    def _sender(self, node: GNode) -> Callable[[PeerId, RPC], bool]:
        loop = self.loop

        def send(peer: PeerId, rpc: RPC) -> bool:
            if not node.alive or peer not in node.links:
                return True
            dst = self.by_peer[peer]
            # the router sends one RPC object to several peers; its encoding is the same each time
            if rpc is self._memo_rpc:
                frame = self._memo_frame
            else:
                frame = rpc.encode()
                self._memo_rpc, self._memo_frame = rpc, frame
            self.rpcs += 1
            self.bytes += len(frame)
            at = loop.time() + self.latency(node.index, dst.index)
            last = node.last_arrival.get(dst.index, 0.0)
            if at <= last:
                at = last + 1e-9
            node.last_arrival[dst.index] = at
            loop.call_at(at, self._deliver, node, dst, frame)
            return True

        return send

    def _deliver(self, src: GNode, dst: GNode, frame: bytes) -> None:
        if not dst.alive or src.peer not in dst.links:
            self.lost_frames += 1
            return
        router = dst.router
        assert router is not None
        rpc = RPC.decode(frame)
        for msg, msg_id in router.handle_rpc(src.peer, rpc):
            if self.cfg.verify and _run_now(check_signature_policy(msg, SignaturePolicy.STRICT_SIGN)) is not None:
                self.bad_signatures += 1
                router.on_invalid_signature(src.peer, msg, msg_id)
                continue
            if router.on_validated(src.peer, msg, msg_id, ValidationResult.ACCEPT):
                rec = self.msgs.get(msg_id)
                if rec is not None and dst.index not in rec.arrivals:
                    rec.arrivals[dst.index] = self.loop.time() - rec.t0

    def _heartbeat(self, node: GNode) -> None:
        if not node.alive:
            return
        t = time.perf_counter()
        assert node.router is not None
        node.router.heartbeat()
        self.heartbeat_wall += time.perf_counter() - t
        self.heartbeats += 1
        self.loop.call_later(self.config.heartbeat_interval, self._heartbeat, node)

    def reset_counters(self) -> None:
        for node in self.nodes:
            if node.router is not None:
                for k in node.router.stats:
                    node.router.stats[k] = 0
        self.rpcs = self.bytes = self.lost_frames = self.heartbeats = 0
        self.heartbeat_wall = 0.0

    async def publish(self, node: GNode, seqno: int) -> None:
        assert node.router is not None
        data = self.rng.randbytes(self.cfg.size)
        msg = await sign_message(node.key, node.peer, TOPIC, data, seqno.to_bytes(8, "big"))
        msg_id = node.router.message_id(msg)
        self.msgs[msg_id] = _Msg(self.loop.time(), node.index)
        node.router.publish(msg, msg_id)


async def simulate_gossip(cfg: GossipConfig, latency: Latency, log: Callable[[str], None] = print) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    net = GossipNet(cfg, latency, loop)
    rng = net.rng
    w0 = time.perf_counter()
    churn_count = int(round(cfg.churn * cfg.n))
    for _ in range(cfg.n + churn_count):  # joiners' keys too, so no crypto runs mid-simulation
        await net.make_node()
    first = net.nodes[: cfg.n]
    joiners = net.nodes[cfg.n:]
    for node in first:
        net.start_node(node)
    # a random graph: each node dials degree/2 distinct random others (mean degree ~ degree)
    for node in first:
        others = rng.sample(first, cfg.degree // 2 + 1)
        for other in [o for o in others if o is not node][: cfg.degree // 2]:
            net.connect(node, other)
    for node in first:
        assert node.router is not None
        loop.call_later(rng.random() * 0.5, node.router.join, TOPIC)
    await asyncio.sleep(cfg.warmup)
    setup_s = time.perf_counter() - w0
    meshes = [len(n.router.mesh.get(TOPIC, ())) for n in first if n.router is not None]
    degrees = [len(n.links) for n in first]
    net.reset_counters()

    start = loop.time()
    window = cfg.messages * cfg.publish_gap
    if churn_count:
        leavers = rng.sample(first, churn_count)
        for node in leavers:
            loop.call_at(start + rng.random() * window, net.leave, node)
        for node in joiners:
            loop.call_at(start + rng.random() * window, _join_live, net, node, rng)
    w1 = time.perf_counter()
    for i in range(cfg.messages):
        await asyncio.sleep(max(0.0, start + i * cfg.publish_gap - loop.time()))
        # a publisher that has been up for a while (a fresh joiner's mesh is still forming)
        live = [n for n in net.nodes if n.alive and n.joined_at <= loop.time() - 5.0]
        await net.publish(live[rng.randrange(len(live))], i + 1)
    await asyncio.sleep(cfg.drain)
    run_wall = time.perf_counter() - w1
    end = loop.time()

    # expected receivers of a message: up when it was published and until the end
    lat: list[float] = []
    expected = delivered = 0
    complete = 0
    for rec in net.msgs.values():
        targets = [n.index for n in net.nodes if n.index != rec.origin and n.joined_at <= rec.t0 and n.left_at > end]
        got = [rec.arrivals[i] for i in targets if i in rec.arrivals]
        expected += len(targets)
        delivered += len(got)
        complete += len(got) == len(targets)
        lat += got
    stats: dict[str, int] = {}
    for n in net.nodes:
        if n.router is not None:
            for k, v in n.router.stats.items():
                stats[k] = stats.get(k, 0) + v
    out: dict[str, Any] = {
        "n": cfg.n,
        "churn": cfg.churn,
        "left": churn_count,
        "joined": churn_count,
        "degree_mean": _r(statistics.mean(degrees), 1),
        "mesh_mean": _r(statistics.mean(meshes), 1),
        "mesh_min": min(meshes),
        "mesh_max": max(meshes),
        "messages": len(net.msgs),
        "msg_size": cfg.size,
        "delivery_ratio": round(delivered / max(1, expected), 5),
        "fully_delivered_msgs": complete,
        "deliveries": delivered,
        "latency_ms_p50": _r(1000 * pct(lat, 0.5), 0),
        "latency_ms_p95": _r(1000 * pct(lat, 0.95), 0),
        "latency_ms_max": _r(1000 * max(lat), 0) if lat else float("nan"),
        "dup_per_delivery": _r(stats["duplicates"] / max(1, stats["delivered"])),
        "ihave_sent": stats["ihave_sent"],
        "iwant_sent": stats["iwant_sent"],
        "idontwant_sent": stats["idontwant_sent"],
        "graft_sent": stats["graft_sent"],
        "prune_sent": stats["prune_sent"],
        "rpcs": net.rpcs,
        "wire_mib": _r(net.bytes / 2**20, 1),
        "lost_frames": net.lost_frames,
        "bad_signatures": net.bad_signatures,
        "signatures_verified": cfg.verify,
        "heartbeat_us_per_node": _r(1e6 * net.heartbeat_wall / max(1, net.heartbeats), 0),
        "sim_s": _r(end, 1),
        "setup_wall_s": _r(setup_s, 1),
        "run_wall_s": _r(run_wall, 1),
        "rss_mib": _r(rss_mib(), 0),
    }
    log(f"  gossip churn {cfg.churn:.0%}: {json.dumps(out)}")
    return out


def _join_live(net: GossipNet, node: GNode, rng: random.Random) -> None:
    """A new node comes up, dials ``degree`` random live nodes and subscribes."""
    net.start_node(node)
    live = [n for n in net.nodes if n.alive and n is not node]
    for other in rng.sample(live, min(len(live), net.cfg.degree)):
        net.connect(node, other)
    assert node.router is not None
    node.router.join(TOPIC)


# ============================================================================= report
def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"# Scale simulation: N = {res['n']}",
        "",
        f"Command: `{res['command']}`",
        "",
        f"Latency: {res['latency']}. Wall time {res['wall_s']} s, peak RSS {res['peak_rss_mib']} MiB "
        f"(one process, {res['python']}). Real KadDHT and GossipRouter cores, every message through "
        "the protobuf codec, simulated network and clock (see benchmarks/scale_sim.py).",
        "",
    ]
    dht = res.get("dht")
    if dht:
        lines += [
            f"## DHT (k={dht['k']}, alpha={dht['alpha']}; build {dht['build_wall_s']} s wall, "
            f"{dht['build_sim_s']} s simulated, RSS {dht['rss_mib']} MiB)",
            "",
            "| run | live nodes | lookups | hops mean / p50 / p95 / max | log2(N) | find-peer success "
            "| k-closest exact / recall | requests per lookup | latency p50 / p95 / max | dead table entries |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for label, key in (("no churn", "no_churn"), (f"{res['churn']:.0%} churn, no rebuild", "churn")):
            s = dht.get(key)
            if not s:
                continue
            lines.append(
                f"| {label} | {s['live_nodes']} | {s['lookups']} | {s['hops_mean']} / {s['hops_p50']} / {s['hops_p95']} / "
                f"{s['hops_max']} | {s['log2_n']} | {s['find_peer_success']:.1%} | {s['k_closest_exact']:.1%} / "
                f"{s['k_closest_recall']:.1%} | {s['requests_per_lookup']} | {s['latency_ms_p50']:.0f} / "
                f"{s['latency_ms_p95']:.0f} / {s['latency_ms_max']:.0f} ms | {s['dead_table_entries']:.1%} |"
            )
        lines.append("")
    gossip = res.get("gossip") or []
    if gossip:
        lines += [
            "## gossipsub (D=6, D_lo=5, D_hi=12, heartbeat 1 s, flood publish)",
            "",
            "| churn | messages | delivery | latency p50 / p95 / max | duplicates per delivery | IHAVE / IWANT sent "
            "| mesh mean (min-max) | degree | wall s | RSS MiB |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for g in gossip:
            lines.append(
                f"| {g['churn']:.0%} ({g['left']} left, {g['joined']} joined) | {g['messages']} x {g['msg_size']} B | "
                f"{g['delivery_ratio']:.3%} ({g['fully_delivered_msgs']}/{g['messages']} to all) | "
                f"{g['latency_ms_p50']:.0f} / {g['latency_ms_p95']:.0f} / {g['latency_ms_max']:.0f} ms | "
                f"{g['dup_per_delivery']} | {g['ihave_sent']} / {g['iwant_sent']} | {g['mesh_mean']} ({g['mesh_min']}-{g['mesh_max']}) | "
                f"{g['degree_mean']} | {g['setup_wall_s'] + g['run_wall_s']:.0f} | {g['rss_mib']} |"
            )
        lines.append("")
    return "\n".join(lines)


def run(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, Any]:
    latency = Latency(args.latency, args.lat_lo, args.lat_hi, args.lat_median, args.lat_sigma, args.seed)
    t0 = time.perf_counter()
    res: dict[str, Any] = {
        "n": args.n, "seed": args.seed, "churn": args.churn, "latency": latency.describe(),
        "command": " ".join(["python", "benchmarks/scale_sim.py", *sys.argv[1:]]) if args.command is None else args.command,
        "python": f"CPython {sys.version.split()[0]}",
    }
    if args.only in ("all", "dht"):
        dcfg = DhtConfig(n=args.n, k=args.k, alpha=args.alpha, lookups=args.lookups, churn=args.churn,
                         request_timeout=args.request_timeout, dead=args.dead, seed=args.seed)
        res["dht"] = run_virtual(simulate_dht(dcfg, latency, log))
        gc.collect()
    if args.only in ("all", "gossip"):
        res["gossip"] = []
        for churn in sorted({0.0, args.churn}):
            gcfg = GossipConfig(n=args.n, degree=args.degree, messages=args.messages, size=args.size, churn=churn,
                                warmup=args.warmup, verify=args.verify, seed=args.seed)
            res["gossip"].append(run_virtual(simulate_gossip(gcfg, latency, log)))
            gc.collect()
    res["wall_s"] = _r(time.perf_counter() - t0, 1)
    res["peak_rss_mib"] = _r(peak_rss_mib(), 0)
    return res


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="nodes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--churn", type=float, default=0.1, help="fraction that leaves (and as many join); 0 runs once")
    ap.add_argument("--only", choices=("all", "dht", "gossip"), default="all")
    ap.add_argument("--latency", choices=("uniform", "lognormal"), default="uniform")
    ap.add_argument("--lat-lo", type=float, default=10.0, help="ms (lognormal: lower clip)")
    ap.add_argument("--lat-hi", type=float, default=100.0, help="ms (lognormal: upper clip)")
    ap.add_argument("--lat-median", type=float, default=40.0, help="ms, lognormal only")
    ap.add_argument("--lat-sigma", type=float, default=0.6, help="lognormal only")
    ap.add_argument("-k", type=int, default=20)
    ap.add_argument("--alpha", type=int, default=3)
    ap.add_argument("--lookups", type=int, default=500)
    ap.add_argument("--dead", choices=("silent", "refuse"), default="silent",
                    help="DHT: a departed node never answers (request timeout) or refuses dials (one RTT)")
    ap.add_argument("--request-timeout", type=float, default=10.0, help="DHT request timeout, s (KadDHT's default)")
    ap.add_argument("--degree", type=int, default=12, help="mean connections per gossipsub node")
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--size", type=int, default=256, help="payload bytes per message")
    ap.add_argument("--warmup", type=float, default=10.0, help="simulated seconds before publishing")
    ap.add_argument("--verify", action="store_true", help="check every signature at every receiver")
    ap.add_argument("--out", type=Path, default=RESULTS / "scale_latest", help="writes OUT.md and OUT.json ('' to skip)")
    ap.add_argument("--command", default=None, help=argparse.SUPPRESS)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    res = run(args, lambda s: print(s, flush=True))
    md = markdown(res)
    print(md)
    if str(args.out):
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(md)
        args.out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
