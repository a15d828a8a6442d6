"""DCUtR (libp2p/specs relay/DCUtR.md) between pywasm and js-libp2p 3.3 + @libp2p/dcutr 3.0.

Each scenario runs in its own network namespace (``unshare -n``, root) with public-looking
addresses on ``lo``: @libp2p/dcutr ignores private and loopback addresses, both in the
CONNECT it receives and in the identify addresses it tries first. See
dcutr_netns_driver.py. The relay is an in-process pywasm Host with RelayHopService.

* pywasm dials js through the relay; js received the relayed connection, so js acts first:
  - pywasm announces a public address: js dials it directly ("unilateral" upgrade) and
    DCUtR never runs;
  - pywasm announces no public address (as behind NAT; the public one is in its CONNECT
    only): js initiates CONNECT/SYNC, pywasm answers and dials js when SYNC arrives.
* js dials pywasm through the relay; pywasm received it and initiates CONNECT/SYNC.
* the same on plain loopback, where js refuses to punch: we fail cleanly and keep the relay.

Each side then checks that it holds a direct (non-limited) connection to the other, and
uses it for ping and echo without opting in to limited connections.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.interop.dcutr_netns_driver import JS_IP, PY_IP
from tests.interop.harness import PEERS, ROOT, PeerMissing, PeerProcess, PeerSet, node_command

pytestmark = pytest.mark.interop


def _run(scenario: str) -> dict[str, Any]:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        raise PeerMissing("DCUtR interop needs `unshare -n` as root (util-linux) to build its network namespace")
    proc = subprocess.run(
        [unshare, "-n", sys.executable, "-m", "tests.interop.dcutr_netns_driver", scenario],
        cwd=str(ROOT), capture_output=True, text=True, timeout=180,
    )
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    assert proc.returncode == 0 and lines, f"driver failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    out: dict[str, Any] = json.loads(lines[-1])
    py = out["py"]
    print(
        f"{scenario}: direct after {py['direct_after_ms']:.0f} ms, dcutr rtt {py['last_rtt_ms']} ms, "
        f"ping over direct: pywasm {py.get('ping_ms', float('nan')):.1f} ms, "
        f"js {out['js']['direct'].get('ping_ms', float('nan')):.1f} ms",
        file=sys.stderr,
    )
    return out


def _check_direct_both_ways(out: dict[str, Any]) -> None:
    py, js = out["py"], out["js"]
    # pywasm: a non-limited connection to js, used by ping and echo (neither opts in to
    # limited connections, so both would refuse a relayed one)
    assert py["direct"] is not None and not py["direct"]["limited"], out
    assert "use_error" not in py and py["echo_ok"] and py["ping_ms"] > 0, py
    # js: the same from its side, over a non-relayed connection to us
    d = js["direct"]
    assert d.get("peer") == out["py_id"] and not d["limited"] and "/p2p-circuit" not in d["remote_addr"], js
    assert d.get("echo_ok") is True and d.get("ping_ms", 0) > 0, d
    assert any(not c["limited"] and c["status"] == "open" for c in js["conns"]), js["conns"]
    # js closed the relayed connection once its direct one was up; pywasm saw it go
    assert not any(c["limited"] for c in js["conns"]), js["conns"]
    assert py["conns"] and not any(c["limited"] for c in py["conns"]), py["conns"]


def test_pywasm_dials_js_through_relay_and_js_upgrades_unilaterally() -> None:
    out = _run("js-reserved-public")
    assert out["relayed_limited"], out
    _check_direct_both_ways(out)
    py, js = out["py"], out["js"]
    # js saw our public listen address in identify and dialed it straight away
    assert js["unilateral_ok"] and not js["dcutr_ok"], js["log"]
    assert py["direct"]["direction"] == "inbound", py
    assert js["direct"]["direction"] == "outbound" and f"/ip4/{PY_IP}/tcp/" in js["direct"]["remote_addr"]
    # so no DCUtR exchange ran on our side
    assert py["stats"]["attempts"] == 0 and py["stats"]["responded"] == 0, py


def test_pywasm_behind_nat_dials_js_and_js_initiates_dcutr() -> None:
    out = _run("js-reserved-nat")
    assert out["relayed_limited"], out
    _check_direct_both_ways(out)
    py, js = out["py"], out["js"]
    log = "\n".join(js["log"])
    assert "not attempting unilateral connection upgrade" in log, log
    # js (B) sent CONNECT, took our public address from our CONNECT, sent SYNC, dialed it
    assert "B sending connect" in log and "A sending sync" in log and js["dcutr_ok"], log
    assert f"/ip4/{PY_IP}/tcp/" in log.split("B dialing", 1)[1], log
    # we answered as A and dialed js's address on SYNC
    assert py["stats"]["responded"] >= 1 and py["results"].get(out["js_id"]) == "upgraded", py
    assert any(c["direction"] == "outbound" and c["remote_addr"].startswith(f"/ip4/{JS_IP}/tcp/") and not c["limited"]
               for c in py["conns"]), py["conns"]


def test_js_dials_pywasm_through_relay_and_pywasm_initiates_dcutr() -> None:
    out = _run("pywasm-reserved")
    assert out["js_dialed"]["event"] == "dialed" and out["js_dialed"]["limited"], out["js_dialed"]
    _check_direct_both_ways(out)
    py, js = out["py"], out["js"]
    log = "\n".join(js["log"])
    # js answered as A: CONNECT back, SYNC received, dialed our public address
    assert "A receiving connect" in log and "A receiving sync" in log and js["dcutr_ok"], log
    assert any("DCUtR to" in l and "succeeded" in l and f"/ip4/{PY_IP}/tcp/" in l for l in js["log"]), log
    # we initiated (B): one round, RTT measured over the relay, our own dial of js landed
    assert py["stats"]["attempts"] >= 1 and py["results"].get(out["js_id"]) == "upgraded", py
    assert py["last_rtt_ms"] is not None and py["last_rtt_ms"] > 0, py
    assert any(c["direction"] == "outbound" and c["remote_addr"].startswith(f"/ip4/{JS_IP}/tcp/") and not c["limited"]
               for c in py["conns"]), py["conns"]


async def test_on_loopback_js_refuses_and_the_relayed_connection_stays(peers: PeerSet) -> None:
    """Outside the namespace every address is loopback: js answers our CONNECT by resetting
    the stream (it finds no public address in it). We must give up after our retries with
    a failed result, promptly, and leave the relayed connection working."""
    from pywasm.identity import PeerId
    from pywasm.services.relay_client import RelayClientService
    from pywasm.services.relay_hop import RelayHopService
    from tests.interop.pw import bounded
    from tests.interop.test_js_relay import echo_limited, pywasm_node

    relay = await pywasm_node(RelayHopService())
    host = await pywasm_node(RelayClientService())
    try:
        (bound,) = await bounded(host.listen(f"{relay.addrs()[0]}/p2p-circuit"), 30)
        saved = os.environ.get("DEBUG")
        os.environ["DEBUG"] = "libp2p:dcutr*"  # read once, when the child starts
        try:
            js = PeerProcess("js-dcutr", [*node_command(), str(PEERS / "js_dcutr_peer.mjs"),
                                          "--listen", "/ip4/127.0.0.1/tcp/0", "--dial", str(bound)])
        finally:
            if saved is None:
                del os.environ["DEBUG"]
            else:
                os.environ["DEBUG"] = saved
        peers.peers.append(js)
        await asyncio.to_thread(js.wait_ready)
        dialed = await asyncio.to_thread(js.wait_event, lambda e: e.get("event") in ("dialed", "dial-failed"), 30)
        assert dialed["event"] == "dialed" and dialed["limited"], dialed
        js_id = PeerId.from_string(js.peer_id)
        svc = host.services["dcutr"]
        t0 = time.perf_counter()
        while svc.results.get(js_id) is None and time.perf_counter() - t0 < 30:
            await asyncio.sleep(0.05)
        assert svc.results.get(js_id) == "failed", (svc.results, svc.stats)
        assert svc.stats["attempts"] == svc.max_attempts, svc.stats
        print(f"loopback: dcutr gave up after {(time.perf_counter() - t0) * 1000:.0f} ms", file=sys.stderr)
        assert "B had no dialable multiaddrs" in js.stderr_text(200_000), js.describe()
        conns = host.connections_to(js_id)
        assert conns and all(c.limited for c in conns), conns
        await echo_limited(conns[0], 16 * 1024)
    finally:
        await host.stop()
        await relay.stop()
