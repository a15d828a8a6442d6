"""Relay capacity on this machine: pywasm-relay (and js-libp2p's relay, same load, same run).

    .venv/bin/python benchmarks/relay_capacity.py [--relays pywasm,js] [--steps 100,500,1000]
        [--workers 2] [--concurrency 32] [--pairs 1,8,32] [--stream-mib 64] [--no-write]

One relay process at a time (``pywasm-relay`` with its reservation and circuit limits raised
by flags, since every client here is 127.0.0.1; then a js-libp2p 3.3 Node relay with
``circuitRelayServer`` and its connection-manager limits raised likewise), driven by
``--workers`` client processes (this file, ``worker`` mode), each holding many pywasm Hosts
(TCP, Noise, yamux; identify, ping and the relay client: no DCUtR, so relayed connections
stay relayed). The same clients drive both relays.

* Reservations: ramp to each total in ``--steps`` (cumulative; all held at once). Every new
  client opens its own TCP connection to the relay (timed: ``connect``), then reserves a
  slot (timed: ``reserve``, the HOP RESERVE round trip), at most ``--concurrency`` in flight
  per worker. After each step: the relay's resident memory (VmRSS from /proc/PID/status,
  1 s after the step ends), so memory per reservation = (RSS now - RSS after a few warm-up
  reservations) / reservations counted since; it includes the client's connection (TCP + Noise + yamux + identify),
  which a reservation needs. Failures are counted with their first error.
* Relayed streams: P listeners (worker 0) and P dialers (worker 1), each a reserved client;
  every dialer opens a relayed connection (``/p2p-circuit``) to its listener and sends
  ``--stream-mib / P`` MiB on one stream, the listener acks the byte count. All P pairs at
  once; aggregate MiB/s = total bytes / wall time; relay CPU% = its utime+stime over that
  wall time (100% = one core; pywasm-relay is one Python thread), and MiB relayed per
  relay CPU-second (the relay's own cost per byte, whichever side is the bottleneck: the
  clients do twice the relay's crypto work per byte, Noise inside Noise).
* Relays are driven in turn, step by step (pywasm step 1, js step 1, pywasm step 2, ...),
  each by its own workers, so load from elsewhere on this shared machine hits both alike.

Prints one JSON document and a markdown table (ratios pywasm / js); writes
benchmarks/results/relay_capacity_latest.md unless ``--no-write``. Nothing depends on a
figure (no exit code does).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.native._proc import Proc, ProcError, child_env  # noqa: E402

RESULTS = HERE / "results"
MIB = 1 << 20
SINK = "/pywasm-bench/sink/1.0.0"
CMD_TIMEOUT = 600.0
OP_TIMEOUT = 60.0

# A js-libp2p relay for the side-by-side figures. Limits raised the way the pywasm relay's
# flags raise them: js refuses a 6th inbound connection per host per second, keeps 300
# connections and 15 reservations by default; every client here is 127.0.0.1. Its
# connection monitor (a ping per connection every 10 s, abort on a late answer) is off.
JS_RELAY = r"""
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'

const N = Number(process.argv[2] ?? 100000)
const node = await createLibp2p({
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionManager: { maxConnections: N, inboundConnectionThreshold: N, maxIncomingPendingConnections: N },
  // js pings every connection each 10 s and aborts those that answer late: on this loaded
  // machine that dropped hundreds of (slow, busy) clients with their reservations.
  // pywasm-relay does not, so both hold their clients on the same terms.
  connectionMonitor: { enabled: false },
  services: {
    identify: identify(),
    ping: ping(),
    relay: circuitRelayServer({
      maxInboundHopStreams: 64,
      maxOutboundStopStreams: N,
      reservations: { maxReservations: N, applyDefaultLimit: false }
    })
  }
})
for (const ma of node.getMultiaddrs()) process.stdout.write(`${ma.toString()}\n`)
process.stdout.write('ready\n')
const stop = async () => { try { await node.stop() } finally { process.exit(0) } }
process.on('SIGTERM', stop)
process.stdin.on('end', stop)
process.stdin.resume()
"""


# ====================================================================== worker (client side)


class Worker:
    """Many pywasm Hosts in one process, commanded by JSON lines on stdin."""

    def __init__(self) -> None:
        self.hosts: list[Any] = []
        self.listeners: list[Any] = []

    async def _new_host(self) -> Any:
        from pywasm.host import Host
        from pywasm.host.host import default_transports
        from pywasm.services import IdentifyService, PingService
        from pywasm.services.relay_client import RelayClientService
        from pywasm.transports.circuit import CircuitTransport

        return await Host.create(
            listen=[],
            transports=[*default_transports(), CircuitTransport()],
            services=[IdentifyService(), PingService(), RelayClientService()],
        )

    async def reserve(self, relay: str, n: int, concurrency: int) -> dict[str, Any]:
        from pywasm.multiformats.multiaddr import Multiaddr

        ma = Multiaddr(relay)
        sem = asyncio.Semaphore(concurrency)
        connect_ms: list[float] = []
        reserve_ms: list[float] = []
        errors: list[str] = []

        async def one() -> None:
            async with sem:
                h = await self._new_host()
                try:
                    t0 = time.perf_counter()
                    await asyncio.wait_for(h.dial(ma), OP_TIMEOUT)
                    t1 = time.perf_counter()
                    await asyncio.wait_for(h.services["relay-client"].reserve(ma), OP_TIMEOUT)
                    t2 = time.perf_counter()
                except Exception as exc:  # every failure is a result: counted, first kept
                    errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    await h.stop()
                    return
                connect_ms.append((t1 - t0) * 1000)
                reserve_ms.append((t2 - t1) * 1000)
                self.hosts.append(h)

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return {"ok": len(reserve_ms), "failed": len(errors), "errors": errors[:3],
                "connect_ms": connect_ms, "reserve_ms": reserve_ms, "wall_s": time.perf_counter() - t0,
                "held": len(self.hosts)}

    async def listen(self, relay: str, n: int) -> dict[str, Any]:
        """The first n reserved hosts accept relayed connections and sink SINK streams."""

        async def sink(stream: Any, conn: Any) -> None:
            total = 0
            while True:
                b = await asyncio.wait_for(stream.read(1 << 20), OP_TIMEOUT)
                if not b:
                    break
                total += len(b)
            await stream.write(total.to_bytes(8, "big"))
            await stream.close()

        if len(self.hosts) < n:  # listeners need a reservation: top up
            await self.reserve(relay, n - len(self.hosts), 8)
        addrs = []
        for h in self.hosts[:n]:
            if h not in self.listeners:
                h.set_stream_handler(SINK, sink, allow_limited=True)
                await h.listen("/p2p-circuit")
                self.listeners.append(h)
            addrs.append(f"{relay}/p2p-circuit/p2p/{h.peer_id}")
        # how many clients (of this worker) still hold their connection to the relay
        from pywasm.identity import PeerId

        rid = PeerId.from_string(relay.rsplit("/p2p/", 1)[1])
        return {"addrs": addrs, "connected": sum(1 for h in self.hosts if h.is_connected(rid)), "hosts": len(self.hosts)}

    async def count(self, relay: str) -> dict[str, Any]:
        """Clients still connected to the relay (a dropped connection takes its reservation)."""
        from pywasm.identity import PeerId

        rid = PeerId.from_string(relay.rsplit("/p2p/", 1)[1])
        return {"connected": sum(1 for h in self.hosts if h.is_connected(rid)), "hosts": len(self.hosts)}

    async def stream(self, targets: list[str], nbytes: int, chunk: int) -> dict[str, Any]:
        """Host i dials targets[i] through the relay and sends nbytes on one SINK stream."""
        from pywasm.multiformats.multiaddr import Multiaddr

        payload = memoryview(os.urandom(chunk))
        per_pair: list[float] = []
        errors: list[str] = []

        async def one(h: Any, target: str) -> None:
            try:
                t0 = time.perf_counter()
                conn = await asyncio.wait_for(h.dial(Multiaddr(target)), OP_TIMEOUT)
                s = await asyncio.wait_for(conn.new_stream([SINK], OP_TIMEOUT, allow_limited=True), OP_TIMEOUT)
                sent = 0
                while sent < nbytes:
                    part = payload[: min(chunk, nbytes - sent)]
                    await asyncio.wait_for(s.write(part), OP_TIMEOUT)
                    sent += len(part)
                await s.close_write()
                ack = await asyncio.wait_for(s.read(8), OP_TIMEOUT)
                if int.from_bytes(ack, "big") != nbytes:
                    raise RuntimeError(f"listener got {int.from_bytes(ack, 'big')} of {nbytes} bytes")
                await s.close()
                per_pair.append(nbytes / MIB / (time.perf_counter() - t0))
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[-300:])

        # one dialer per target; top up with fresh clients already connected to the relay
        relay = Multiaddr(targets[0].split("/p2p-circuit")[0]) if targets else None
        while len(self.hosts) < len(targets):
            h = await self._new_host()
            await asyncio.wait_for(h.dial(relay), OP_TIMEOUT)
            self.hosts.append(h)
        t0 = time.perf_counter()
        await asyncio.gather(*(one(h, t) for h, t in zip(self.hosts, targets)))
        return {"ok": len(per_pair), "failed": len(errors), "errors": errors[:3],
                "wall_s": time.perf_counter() - t0, "per_pair_mib_s": per_pair}

    async def stop(self) -> dict[str, Any]:
        await asyncio.gather(*(asyncio.wait_for(h.stop(), 15) for h in self.hosts), return_exceptions=True)
        return {"stopped": len(self.hosts)}


async def worker_main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    w = Worker()
    await w._new_host()  # imports pywasm before the first timed step (the host is dropped)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            await w.stop()
            return
        cmd = json.loads(line)
        op = cmd.pop("op")
        try:
            out = await getattr(w, op)(**cmd)
        except Exception as exc:
            out = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
        if op == "stop":
            return


# ====================================================================== orchestrator


class Child(Proc):
    """A relay or a worker (tests/native/_proc.Proc, with a stdin pipe: the workers take
    their commands there, and closing it asks either to exit)."""

    def __init__(self, argv: list[str], name: str) -> None:
        super().__init__(argv, child_env(), stdin=subprocess.PIPE, preexec_fn=_raise_nofile)
        self.name = name

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = CMD_TIMEOUT) -> dict[str, Any]:
        out = json.loads(self.next_line(timeout=timeout))
        if "error" in out:
            raise RuntimeError(f"{self.name}: {out['error']}\n{self.stderr_tail()}")
        return out

    def stderr_tail(self) -> str:
        return self.stderr_text()[-3000:]

    def stop(self, timeout: float = 20.0) -> None:
        """Close stdin and wait; then SIGTERM, then SIGKILL, this PID only."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout)
        except (subprocess.TimeoutExpired, OSError):
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib(pid: int) -> int:
    for ln in Path(f"/proc/{pid}/status").read_text().splitlines():
        if ln.startswith("VmRSS:"):
            return int(ln.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (fields 14, 15 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RelayUnderTest:
    def __init__(self, impl: str, max_n: int) -> None:
        self.impl = impl
        if impl == "pywasm":
            import tempfile

            self._tmp = tempfile.TemporaryDirectory(prefix="relay-capacity-")
            site = Path(self._tmp.name) / "site"
            site.mkdir()
            n = str(max_n)
            relay_bin = ROOT / ".venv" / "bin" / "pywasm-relay"
            argv = [str(relay_bin), "--listen", "/ip4/127.0.0.1/tcp/0", "--max-connections", str(max_n + 64),
                    "--http", "127.0.0.1:0", "--site", str(site), "--data-dir", str(Path(self._tmp.name) / "data"),
                    "--relay-max-reservations", n, "--relay-max-reservations-per-ip", n,
                    "--relay-max-circuits", n, "--relay-max-circuits-per-peer", n,
                    "--relay-circuit-duration", "0", "--relay-circuit-data", "0"]
        else:
            from tests.interop.harness import node_command

            script = ROOT / ".cache" / "bench" / "js_relay_capacity.mjs"  # under ROOT: finds node_modules
            script.parent.mkdir(parents=True, exist_ok=True)
            script.write_text(JS_RELAY)
            argv = [*node_command(), str(script), str(max_n)]
        self.proc = Child(argv, f"{impl}-relay")
        self.addr = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ln = self.proc.next_line(self.addr, 60).strip()
            if ln.startswith("/ip4/") and "/tcp/" in ln and "/ws" not in ln and "/p2p/" in ln and not self.addr:
                self.addr = ln
            if self.addr and (impl == "js" and ln == "ready" or impl == "pywasm"):
                break
        if not self.addr:
            raise RuntimeError(f"{impl} relay printed no TCP address\n{self.proc.stderr_tail()}")
        self.pid = self.proc.pid

    def stop(self) -> None:
        if self.impl == "pywasm" and self.proc.proc.poll() is None:
            self.proc.proc.terminate()
        self.proc.stop()


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


class ImplRun:
    """One relay plus its own worker processes; steps are called in turn for every relay
    (interleaved, so a noisy moment on this shared machine hits both alike)."""

    WARMUP_PER_WORKER = 2

    def __init__(self, impl: str, args: argparse.Namespace, max_n: int) -> None:
        self.impl, self.args = impl, args
        self.relay = RelayUnderTest(impl, max_n)
        self.workers: list[Child] = []
        self.out: dict[str, Any] = {"impl": impl, "relay_addr": self.relay.addr, "reservations": [], "streams": []}
        self.held = 0
        self.listen_addrs: list[str] = []

    def start(self) -> None:
        self.workers = [Child([sys.executable, str(Path(__file__).resolve()), "worker"], f"{self.impl}-worker{i}")
                        for i in range(self.args.workers)]
        for w in self.workers:
            if w.next_line(timeout=120) != "ready":
                raise RuntimeError(f"{w.name} did not start\n{w.stderr_tail()}")
        time.sleep(0.5)
        self.out["rss_idle_mib"] = round(rss_kib(self.relay.pid) / 1024, 1)
        # warm-up (JIT, first-use allocations, imports): a few reservations, held but not counted
        self._reserve([self.WARMUP_PER_WORKER] * len(self.workers))
        time.sleep(1.0)
        self.warm = self.held
        self.base = rss_kib(self.relay.pid)
        self.out["rss_after_warmup_mib"] = round(self.base / 1024, 1)
        self.out["warmup_reservations"] = self.warm

    def _reserve(self, shares: list[int]) -> tuple[list[dict[str, Any]], float, float]:
        c0, t0 = cpu_s(self.relay.pid), time.perf_counter()
        for w, k in zip(self.workers, shares):
            w.send({"op": "reserve", "relay": self.relay.addr, "n": k, "concurrency": self.args.concurrency})
        res = [w.result() for w in self.workers]
        wall = time.perf_counter() - t0
        self.held = sum(r["held"] for r in res)
        return res, wall, cpu_s(self.relay.pid) - c0

    def step(self, total: int) -> None:
        add = total - (self.held - self.warm)
        if add <= 0:
            return
        n = len(self.workers)
        probe_n = min(self.args.probe, max(add - n, 0))
        add -= probe_n
        res, wall, cpu = self._reserve([add // n + (1 if i < add % n else 0) for i in range(n)])
        # then latency with the relay holding that many, no burst: one at a time, one worker
        probe: dict[str, Any] = {"connect_ms": [], "reserve_ms": []}
        if probe_n:
            self.workers[0].send({"op": "reserve", "relay": self.relay.addr, "n": probe_n, "concurrency": 1})
            probe = self.workers[0].result()
            self.held += probe["ok"]
        time.sleep(1.0)
        rss = rss_kib(self.relay.pid)
        counted = self.held - self.warm
        for w in self.workers:
            w.send({"op": "count", "relay": self.relay.addr})
        still = sum(w.result()["connected"] for w in self.workers) - self.warm
        conn = [x for r in res for x in r["connect_ms"]]
        rsv = [x for r in res for x in r["reserve_ms"]]
        st = {
            "target": total, "held": counted,
            # reservations made whose client is still connected 1 s after the step
            "still_connected": still, "new_ok": len(rsv), "failed": sum(r["failed"] for r in res) + probe.get("failed", 0),
            "errors": [e for r in res for e in r["errors"]][:3],
            "wall_s": round(wall, 2), "per_s": round(len(rsv) / wall, 1) if wall else None,
            "connect_ms_p50": round(_pct(conn, 0.5), 1), "connect_ms_p95": round(_pct(conn, 0.95), 1),
            "reserve_ms_p50": round(_pct(rsv, 0.5), 1), "reserve_ms_p95": round(_pct(rsv, 0.95), 1),
            "relay_cpu_pct": round(100 * cpu / wall) if wall else None,
            # the relay's own cost of one client (connection + Noise + yamux + identify +
            # reservation), whichever side limits the rate
            "relay_cpu_ms_per_reservation": round(1000 * cpu / len(rsv), 2) if rsv else None,
            "probe_n": len(probe["reserve_ms"]),
            "probe_connect_ms_p50": round(_pct(probe["connect_ms"], 0.5), 1),
            "probe_reserve_ms_p50": round(_pct(probe["reserve_ms"], 0.5), 1),
            "probe_reserve_ms_p95": round(_pct(probe["reserve_ms"], 0.95), 1),
            "rss_mib": round(rss / 1024, 1),
            "kib_per_reservation": round((rss - self.base) / counted, 1) if counted else None,
        }
        self.out["reservations"].append(st)
        print(json.dumps({self.impl: st}), flush=True)

    def streams(self, p: int) -> None:
        if len(self.workers) < 2:
            return
        if len(self.listen_addrs) < p:
            self.workers[0].send({"op": "listen", "relay": self.relay.addr, "n": p})
            got = self.workers[0].result()
            self.listen_addrs = got["addrs"]
            # a client whose connection the relay dropped has lost its reservation with it
            self.out["worker0_still_connected"] = f"{got['connected']} of {got['hosts']}"
        if p > len(self.listen_addrs):
            return
        per = int(self.args.stream_mib * MIB) // p
        c0, t0 = cpu_s(self.relay.pid), time.perf_counter()
        self.workers[1].send({"op": "stream", "targets": self.listen_addrs[:p], "nbytes": per, "chunk": 65536})
        r = self.workers[1].result()
        wall = time.perf_counter() - t0
        cpu = cpu_s(self.relay.pid) - c0
        moved = per * r["ok"] / MIB
        st = {
            "pairs": p, "ok": r["ok"], "failed": r["failed"], "errors": r["errors"],
            "mib_per_pair": round(per / MIB, 2),
            "aggregate_mib_s": round(moved / r["wall_s"], 1) if r["wall_s"] else None,
            "per_pair_mib_s_p50": round(_pct(r["per_pair_mib_s"], 0.5), 1),
            "relay_cpu_pct": round(100 * cpu / wall),
            # what one core of relay CPU moves: the relay's own cost, whoever the bottleneck is
            "mib_per_relay_cpu_s": round(moved / cpu, 1) if cpu > 0 else None,
            "rss_mib": round(rss_kib(self.relay.pid) / 1024, 1),
        }
        self.out["streams"].append(st)
        print(json.dumps({self.impl: st}), flush=True)

    def stop(self) -> None:
        for w in self.workers:
            try:
                w.send({"op": "stop"})
            except (BrokenPipeError, OSError):
                pass
        for w in self.workers:
            try:
                w.result(60)
            except (RuntimeError, ProcError):
                pass
            w.stop()
        self.relay.stop()


def run_all(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    steps = [int(x) for x in args.steps.split(",")]
    pairs = [int(x) for x in args.pairs.split(",")] if args.pairs else []
    max_n = max(steps) + args.workers * ImplRun.WARMUP_PER_WORKER + 100
    runs: list[ImplRun] = []
    try:
        for impl in [i for i in args.relays.split(",") if i]:
            runs.append(ImplRun(impl, args, max_n))
            runs[-1].start()
        for total in steps:
            for r in runs:
                r.step(total)
        for p in pairs:
            for r in runs:
                r.streams(p)
    finally:
        for r in runs:
            r.stop()
    return {r.impl: r.out for r in runs}


def _fmt(x: Any) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    return f"{x:g}" if isinstance(x, float) else str(x)


def render(results: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    impls = list(results)
    both = "pywasm" in results and "js" in results
    lines = [f"# Relay capacity ({meta['date']}, {meta['host']}, loadavg {meta['loadavg_before']} -> {meta['loadavg_after']})",
             "", f"Command: `{meta['command']}`", "",
             "Clients: pywasm Hosts (TCP/Noise/yamux) in "
             f"{meta['workers']} worker processes, {meta['concurrency']} reservations in flight per worker; "
             "memory per reservation = (relay RSS after the step - RSS after the warm-up) / reservations held "
             "since the warm-up, "
             "connection included. CPU% of one core.", ""]
    cols = ["reservations made (still connected)", "failed", "burst: reserve/s", "burst: connect p50/p95 ms", "burst: reserve p50/p95 ms",
            "burst: relay CPU %", "relay CPU ms per reservation", "one at a time: connect p50 ms", "one at a time: reserve p50/p95 ms",
            "relay RSS MiB", "KiB per reservation"]
    lines.append("| relay | " + " | ".join(cols) + " |")
    lines.append("|---" * (len(cols) + 1) + "|")
    for impl in impls:
        r = results[impl]
        lines.append(f"| {impl} idle / after {r['warmup_reservations']} warm-up reservations | - | - | - | - | - | - | - | - | - | "
                     f"{r['rss_idle_mib']} / {r['rss_after_warmup_mib']} | - |")
        for s in r["reservations"]:
            lines.append(f"| {impl} | {s['held']} ({s['still_connected']}) | {s['failed']} | {_fmt(s['per_s'])} | "
                         f"{_fmt(s['connect_ms_p50'])} / {_fmt(s['connect_ms_p95'])} | "
                         f"{_fmt(s['reserve_ms_p50'])} / {_fmt(s['reserve_ms_p95'])} | {_fmt(s['relay_cpu_pct'])} | "
                         f"{_fmt(s['relay_cpu_ms_per_reservation'])} | "
                         f"{_fmt(s['probe_connect_ms_p50'])} | {_fmt(s['probe_reserve_ms_p50'])} / {_fmt(s['probe_reserve_ms_p95'])} | "
                         f"{s['rss_mib']} | {_fmt(s['kib_per_reservation'])} |")
    if any(results[i]["streams"] for i in impls):
        lines += ["", f"Relayed streams: P pairs at once, {meta['stream_mib']} MiB in total split over the pairs, "
                  "one way, each on its own relayed connection.", "",
                  "| relay | pairs | ok / failed | aggregate MiB/s | per-pair MiB/s p50 | relay CPU % | MiB per relay CPU-s | relay RSS MiB |",
                  "|---|---|---|---|---|---|---|---|"]
        for impl in impls:
            for s in results[impl]["streams"]:
                lines.append(f"| {impl} | {s['pairs']} | {s['ok']} / {s['failed']} | {_fmt(s['aggregate_mib_s'])} | "
                             f"{_fmt(s['per_pair_mib_s_p50'])} | {_fmt(s['relay_cpu_pct'])} | {_fmt(s['mib_per_relay_cpu_s'])} | {s['rss_mib']} |")
    if both:
        lines += ["", "Ratios pywasm / js (same clients, same run):", ""]
        for a, b in zip(results["pywasm"]["reservations"], results["js"]["reservations"]):
            if a["held"] and b["held"] and a["kib_per_reservation"] and b["kib_per_reservation"]:
                probe = (f"x{a['probe_reserve_ms_p50'] / b['probe_reserve_ms_p50']:.2f} (one at a time), "
                         if a["probe_n"] and b["probe_n"] else "")
                lines.append(f"- {a['target']} reservations: memory per reservation x{a['kib_per_reservation'] / b['kib_per_reservation']:.2f}, "
                             f"reserve p50 x{a['reserve_ms_p50'] / b['reserve_ms_p50']:.2f} (burst), {probe}"
                             f"connect p50 x{a['connect_ms_p50'] / b['connect_ms_p50']:.2f} (burst), "
                             f"reservations/s x{a['per_s'] / b['per_s']:.2f}"
                             + (f", relay CPU per reservation x{a['relay_cpu_ms_per_reservation'] / b['relay_cpu_ms_per_reservation']:.2f}"
                                if a["relay_cpu_ms_per_reservation"] and b["relay_cpu_ms_per_reservation"] else ""))
        for a, b in zip(results["pywasm"]["streams"], results["js"]["streams"]):
            if a["aggregate_mib_s"] and b["aggregate_mib_s"]:
                lines.append(f"- {a['pairs']} relayed pairs: aggregate throughput x{a['aggregate_mib_s'] / b['aggregate_mib_s']:.2f}"
                             + (f", MiB per relay CPU-second x{a['mib_per_relay_cpu_s'] / b['mib_per_relay_cpu_s']:.2f}"
                                if a["mib_per_relay_cpu_s"] and b["mib_per_relay_cpu_s"] else ""))
    for impl in impls:
        for s in results[impl]["reservations"] + results[impl]["streams"]:
            if s.get("errors"):
                lines.append(f"\n{impl} first errors ({s.get('target', s.get('pairs'))}): {s['errors']}")
    return "\n".join(lines) + "\n"


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        asyncio.run(worker_main())
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--relays", default="pywasm,js")
    ap.add_argument("--steps", default="100,500,1000", help="cumulative reservation totals")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=32, help="reservations in flight per worker")
    ap.add_argument("--probe", type=int, default=10, help="per step, this many reservations one at a time "
                    "after the burst (latency without the burst's queueing)")
    ap.add_argument("--pairs", default="1,8,32", help="relayed stream pairs at once ('' to skip)")
    ap.add_argument("--stream-mib", type=float, default=64.0, help="MiB per stream step, split over the pairs")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--json", action="store_true", help="print only the JSON document")
    ap.add_argument("--json-out", default=None, help="also write the JSON document to this file")
    args = ap.parse_args()
    _raise_nofile()
    meta = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": f"{platform.machine()}, {os.cpu_count()} cores", "loadavg_before": _loadavg(),
        "workers": args.workers, "concurrency": args.concurrency, "stream_mib": args.stream_mib,
        "command": ".venv/bin/python benchmarks/relay_capacity.py " + " ".join(sys.argv[1:]),
    }
    results = run_all(args)
    meta["loadavg_after"] = _loadavg()
    md = render(results, meta)
    doc = {"meta": meta, "results": results}
    print(json.dumps(doc, indent=1))
    if not args.json:
        print(md)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(doc, indent=1) + "\n")
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "relay_capacity_latest.md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
