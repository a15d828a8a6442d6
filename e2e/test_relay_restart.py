"""The relay restarts under two browser pages (issue 5, "Reliability").

Both pages boot from a ``pywasm-relay`` of this test's own (fixed loopback ports, its own
data dir: a restart keeps its identity and addresses), reserve on it over ``/ws`` and
listen on ``<relay>/p2p-circuit``. The relay is stopped with SIGTERM and started again on
the same ports and data dir. Without anything from the test, each page's relay client
must notice, retry with backoff while the relay is down (its attempt log is checked: a
few attempts at growing delays, no hot loop) and reserve again once it is back; then page
B reaches page A through the new relay process (``/p2p-circuit`` address) and echoes
data over the relayed connection. The relay only connects B to a peer that holds a
reservation in *this* process, so that dial also proves the relay took A's fresh
reservation; each page's reservation expiry must have moved forward too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e import conftest as e2e_conftest
from e2e.harness import SITE, Relay, boot_node, closed_port, must_py, run_js

FEATURE_NEEDS = ("WebAssembly",)
ECHO = "/test/relayed-echo/1.0.0"
# short bounds so the test takes seconds: delays 0.2, 0.4, 0.8, 1.6, 2, 2 ... s (each
# shortened by up to half at random); the defaults are 1 s .. 60 s
BACKOFF_INITIAL = 0.2
BACKOFF_MAX = 2.0
DOWNTIME = 4.0


@pytest.fixture
def restartable_relay(tmp_path: Path) -> Iterator[Relay]:
    """A relay on fixed 127.0.0.1 ports with a data dir that outlives a stop, so ``start()``
    after ``stop()`` brings back the same identity and addresses."""
    listen = [f"/ip4/127.0.0.1/tcp/{closed_port()}", f"/ip4/127.0.0.1/tcp/{closed_port()}/ws"]
    # registered there: its output goes into the report of a failing test
    r = e2e_conftest._start_relay(site=SITE, listen=listen, http_port=closed_port(),
                                  data_dir=tmp_path / "relay-data", extra_args=["-v"])
    try:
        yield r
    finally:
        e2e_conftest._stop_relay(r)


# In a page: shorten the reservation keeper's backoff, serve a relayed echo, reserve.
SETUP_PY = """
svc = host.services["relay-client"]
svc.backoff_initial, svc.backoff_max = arg["initial"], arg["max"]

async def echo(stream, conn):
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            break
        await stream.write(chunk)
    await stream.close()

host.set_stream_handler(arg["echo"], echo, allow_limited=True)
result = [str(a) for a in await host.listen(arg["listen"])]
"""

# The keeper of the reservation on relay arg["relay"] (relay_client.keeper_state); with
# arg["wait"] > 0, first wait that long for it to hold a reservation again.
STATE_PY = """
import asyncio, time
from pywasm.identity import PeerId
svc = host.services["relay-client"]
relay = PeerId.from_string(arg["relay"])
end = time.monotonic() + arg["wait"]
while arg["wait"] and svc.reservation(relay) is None and time.monotonic() < end:
    await asyncio.sleep(0.05)
result = svc.keeper_state(relay)
result["listen_addrs"] = [str(a) for a in host.listen_addrs()]
"""

# Page B: dial A through the relay, echo arg["size"] bytes over the relayed connection.
DIAL_ECHO_PY = """
import asyncio, hashlib, time
t0 = time.perf_counter()
conn = await asyncio.wait_for(host.dial(arg["addr"]), 30)
dial_ms = (time.perf_counter() - t0) * 1000
data = hashlib.shake_256(b"relay-restart").digest(arg["size"])
s = await conn.new_stream([arg["echo"]], timeout=20, allow_limited=True)
t0 = time.perf_counter()
await s.write(data)
await s.close_write()
got = bytearray()
while True:
    chunk = await asyncio.wait_for(s.read(65536), 20)
    if not chunk:
        break
    got += chunk
await s.close()
result = {"peer": str(conn.remote_peer), "limited": conn.limited, "addr": str(conn.remote_addr),
          "dial_ms": dial_ms, "echo_ms": (time.perf_counter() - t0) * 1000, "equal": bytes(got) == data}
"""

RELAY_PING_PY = """
import asyncio
from pywasm.identity import PeerId
result = (await asyncio.wait_for(host.services["ping"].ping(PeerId.from_string(arg)), 20)) * 1000
"""

def _dial_echo(b: Any, addr: str, a_id: str, size: int) -> dict[str, Any]:
    out = must_py(b, DIAL_ECHO_PY, {"addr": addr, "echo": ECHO, "size": size}, timeout=60)
    assert out["peer"] == a_id and out["limited"] and out["equal"], out
    assert out["addr"] == addr, out
    return out


def _check_backoff(state: dict[str, Any], downtime: float) -> list[dict[str, Any]]:
    """The failed attempts of the outage (after the last success): paced, not a loop."""
    attempts = state["attempts"]
    last_ok = max(i for i, x in enumerate(attempts) if x["ok"])
    failed = attempts[last_ok + 1 :]
    assert failed and not any(x["ok"] for x in failed), attempts
    # the outage began while the relay shut down, a little before the test's clock started:
    # at most 4 delays below the cap, then >= BACKOFF_MAX/2 apart. Firefox paces failed
    # WebSocket connects itself too (network.websocket.delay-failed-reconnects), so its
    # attempts last longer and there are fewer of them; the lower bound allows for that.
    top = 1 + 4 + int((downtime + 1.0) / (BACKOFF_MAX / 2))
    assert 2 <= len(failed) <= top, (downtime, failed)
    delays = [x["delay"] for x in failed]
    assert max(delays) <= BACKOFF_MAX, delays
    below_cap = [d for d in delays if d < BACKOFF_MAX / 2]
    assert below_cap == sorted(below_cap), delays
    starts = [x["started"] for x in failed]
    assert all(later - earlier >= d * 0.9 for earlier, later, d in zip(starts, starts[1:], delays)), failed
    assert state["failures"] == len(failed), state
    return failed


@pytest.mark.browser_feature(
    "relay restart: pages reserve again with backoff, then reach each other through it", needs=FEATURE_NEEDS
)
def test_pages_reserve_again_after_relay_restart(new_page: Any, restartable_relay: Relay) -> None:
    relay = restartable_relay
    relay_id, ws = relay.peer_id, relay.ws_addr
    first_pid = relay.proc.pid if relay.proc else 0
    a, b = new_page("relay-restart-a"), new_page("relay-restart-b")
    boot_node(a, relay.url)
    boot_node(b, relay.url)
    a_id = must_py(a, "result = str(host.peer_id)")
    setup = {"initial": BACKOFF_INITIAL, "max": BACKOFF_MAX, "echo": ECHO, "listen": ws + "/p2p-circuit"}
    for p in (a, b):
        bound = must_py(p, SETUP_PY, setup, timeout=60)
        assert any(x.startswith(ws + "/p2p-circuit/p2p/") for x in bound), bound
    a_addr = f"{ws}/p2p-circuit/p2p/{a_id}"
    _dial_echo(b, a_addr, a_id, 1024)
    before = {p: must_py(p, STATE_PY, {"relay": relay_id, "wait": 0}) for p in (a, b)}
    for st in before.values():
        assert st["reserved"] and st["failures"] == 0, st

    # --- the relay goes down -------------------------------------------------------------
    assert relay.stop() == 0, relay.describe()
    t_down = time.monotonic()
    time.sleep(DOWNTIME)
    during = {p: must_py(p, STATE_PY, {"relay": relay_id, "wait": 0}) for p in (a, b)}
    downtime = time.monotonic() - t_down
    failed = {}
    for p, st in during.items():
        assert not st["reserved"], st
        assert not any("/p2p-circuit" in x for x in st["listen_addrs"]), st["listen_addrs"]
        failed[p] = _check_backoff(st, downtime)

    # --- and comes back on the same ports, with the same identity -------------------------
    relay.start()
    assert relay.proc is not None and relay.proc.pid != first_pid
    assert (relay.peer_id, relay.ws_addr) == (relay_id, ws), relay.addrs
    t_up = time.monotonic()
    after = {p: must_py(p, STATE_PY, {"relay": relay_id, "wait": BACKOFF_MAX + 10}, timeout=40) for p in (a, b)}
    back_s = time.monotonic() - t_up
    for p, st in after.items():
        assert st["reserved"] and st["failures"] == 0 and st["attempts"][-1]["ok"], st
        assert st["expire"] >= before[p]["expire"], (before[p], st)
        assert ws + "/p2p-circuit" in st["listen_addrs"], st["listen_addrs"]

    # B reaches A through the new relay process; B's own connection to the relay works too
    out = _dial_echo(b, a_addr, a_id, 32 * 1024)
    relay_rtt = must_py(b, RELAY_PING_PY, relay_id)
    assert relay_rtt > 0
    measured = {
        "downtime_s": round(downtime, 2), "reserved_again_s": round(back_s, 2),
        "failed_attempts": [len(failed[a]), len(failed[b])],
        "delays_a": [round(x["delay"], 2) for x in failed[a]],
        "attempt_ms_a": [round(x["duration"] * 1000) for x in failed[a]],
        "dial_ms": round(out["dial_ms"], 1), "echo_32k_ms": round(out["echo_ms"], 1), "relay_rtt_ms": round(relay_rtt, 2),
    }
    print("E2E-RELAY-RESTART " + json.dumps(measured))
    for p in (a, b):
        run_js(p, "await window.e2eNode.stop()", timeout=15)
