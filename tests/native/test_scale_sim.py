"""benchmarks/scale_sim.py at small N: the simulator itself stays correct and working.

Native only because it imports the benchmarks/ tree (the Pyodide runner copies tests/
and the package, not benchmarks/); the simulator's loop has no sockets."""

from __future__ import annotations

import asyncio
import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.scale_sim import (  # noqa: E402
    DhtConfig,
    GossipConfig,
    Latency,
    SimulationStalled,
    main,
    run_virtual,
    simulate_dht,
    simulate_gossip,
)

N = 100
LAT = Latency("uniform", 10.0, 100.0, seed=3)


def quiet(_: str) -> None:
    pass


def test_virtual_clock_jumps_and_timeouts_fire() -> None:
    async def body() -> tuple[float, bool]:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(3600)  # an hour of simulated time
        try:
            await asyncio.wait_for(asyncio.Event().wait(), 10)
            timed_out = False
        except asyncio.TimeoutError:
            timed_out = True
        return loop.time(), timed_out

    now, timed_out = run_virtual(body())
    assert timed_out and now == pytest.approx(3610.0)


def test_waiting_on_nothing_is_reported() -> None:
    with pytest.raises(SimulationStalled):
        run_virtual(asyncio.Event().wait())


def test_latency_model_is_symmetric_bounded_and_seeded() -> None:
    vals = [LAT(a, b) for a in range(30) for b in range(30) if a != b]
    assert all(0.010 <= v <= 0.100 for v in vals)
    assert LAT(3, 17) == LAT(17, 3)
    assert len(set(vals)) > 300  # spread over links, not one value
    assert Latency("uniform", seed=4)(3, 17) != LAT(3, 17)
    logn = Latency("lognormal", 5.0, 400.0, 40.0, 0.6)
    lv = sorted(logn(a, b) for a in range(40) for b in range(a + 1, 40))
    assert 0.030 < lv[len(lv) // 2] < 0.055  # median near 40 ms
    assert all(0.005 <= v <= 0.400 for v in lv)


def test_dht_lookups_find_every_target_and_churn_is_survived() -> None:
    res = run_virtual(simulate_dht(DhtConfig(n=N, lookups=60, churn=0.1, seed=2), LAT, quiet))
    assert res["failed_joins"] == 0
    base = res["no_churn"]
    assert base["live_nodes"] == N and base["lookups"] == 60
    assert base["find_peer_success"] == 1.0
    assert base["k_closest_recall"] >= 0.99
    assert base["hops_mean"] <= math.log2(N) + 2
    assert base["failed_requests_mean"] == 0 and base["dead_table_entries"] == 0
    # simulated latency: at least one round trip (>= 20 ms), bounded by the lookup timeout
    assert 20 <= base["latency_ms_p50"] < 60_000
    churn = res["churn"]
    assert churn["left"] == churn["joined"] == 10 and churn["live_nodes"] == N
    assert churn["dead_table_entries"] > 0  # nobody rebuilt: departed nodes are still in tables
    assert churn["failed_requests_mean"] > 0  # ... so lookups ask some of them
    # a silent dead peer costs a request timeout (10 s) in simulated time, no wall time
    assert churn["latency_ms_p95"] >= 10_000
    assert churn["find_peer_success"] >= 0.95


def test_gossip_delivers_everything_without_churn() -> None:
    res = run_virtual(simulate_gossip(GossipConfig(n=N, messages=30, warmup=6.0, verify=True, seed=2), LAT, quiet))
    assert res["messages"] == 30
    assert res["delivery_ratio"] == 1.0 and res["fully_delivered_msgs"] == 30
    assert res["deliveries"] == 30 * (N - 1)
    assert res["bad_signatures"] == 0 and res["lost_frames"] == 0
    assert 5 <= res["mesh_min"] and res["mesh_max"] <= 12  # D_lo .. D_hi
    # one link is 10-100 ms: nobody gets it faster than one link, and a mesh of ~8 spreads it in a few hops
    assert 10 <= res["latency_ms_p50"] <= res["latency_ms_p95"] <= res["latency_ms_max"] < 1000
    assert 1 <= res["dup_per_delivery"] < 12
    assert res["ihave_sent"] > 0


def test_gossip_under_churn_still_reaches_nodes_that_stay() -> None:
    res = run_virtual(simulate_gossip(GossipConfig(n=N, messages=30, warmup=6.0, churn=0.1, seed=2), LAT, quiet))
    assert res["left"] == res["joined"] == 10
    assert res["lost_frames"] > 0  # frames sent to departed nodes are lost
    assert res["delivery_ratio"] >= 0.99


def test_command_line_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "scale"
    main(["-n", "60", "--lookups", "20", "--messages", "10", "--warmup", "5", "--churn", "0", "--out", str(out)])
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["n"] == 60 and data["dht"]["no_churn"]["find_peer_success"] == 1.0
    assert [g["churn"] for g in data["gossip"]] == [0.0]
    assert data["gossip"][0]["delivery_ratio"] == 1.0
    md = out.with_suffix(".md").read_text()
    assert "| no churn | 60 |" in md and "log2(N)" in md
