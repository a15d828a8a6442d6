"""Hole punching through two real NATs (issue 5, item 4): DCUtR between pywasm peers and
with js-libp2p, each peer behind its own nftables masquerading router.

The topology (tests/interop/nat_topology.py) is rebuilt for every test: a public relay in
the "internet" namespace (7.7.7.7), router a (5.5.5.5) in front of host a (10.0.1.2) and
router b (6.6.6.6) in front of host b (10.0.2.2). The routers map ports the way Linux
conntrack does (port preserving when free, endpoint independent) and drop unsolicited
inbound packets. Every node runs in its own process inside its namespace
(nat_node_driver.py for pywasm, peers/js_nat_peer.mjs for js-libp2p).

In every DCUtR scenario: the node that reserved on the relay ("initiator", on host a)
receives the other node's relayed connection and initiates DCUtR; the other node
("responder", host b) answers. Both then hold a direct, non-limited connection whose
remote address is the other's router, used for ping and echo without opting in to
limited connections, and each router holds exactly ONE conntrack entry for it: both dials
met as a single TCP connection (simultaneous open).

Needs root, nftables and iproute2 (`bash scripts/setup_netns.sh`); without them the tests
fail with that hint, they are never skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.interop.harness import PEERS, PeerProcess, node_command
from tests.interop.nat_topology import HOST_IP, RELAY_IP, ROUTER_IP, NatTopology

pytestmark = pytest.mark.interop

PY = sys.executable
WAIT = 30.0
INIT_PORT = 4001  # host a (the initiator)
RESP_PORT = 4002  # host b (the responder)
INIT_PUBLIC = f"/ip4/{ROUTER_IP['a']}/tcp/{INIT_PORT}"
RESP_PUBLIC = f"/ip4/{ROUTER_IP['b']}/tcp/{RESP_PORT}"


@pytest.fixture
def nat() -> Iterator[tuple[NatTopology, list[PeerProcess]]]:
    topo = NatTopology().start()  # NatUnavailable (a failure, with the setup hint) if it cannot
    procs: list[PeerProcess] = []
    try:
        yield topo, procs
    finally:
        for p in reversed(procs):
            # shown by pytest only when the test failed: every node's own account
            print(f"--- {p.name} stderr ---\n{p.stderr_text(4000)}", file=sys.stderr)
            p.stop()
        for router in ("ra", "rb"):
            print(f"--- router {router} ---\n{topo.conntrack(router)}", file=sys.stderr)
        topo.stop()


def _socket_probe(topo: NatTopology, ns: str, *args: Any) -> Any:
    return topo.popen(ns, [PY, "-m", "tests.interop.nat_socket_driver", *map(str, args)],
                      stdout=subprocess.PIPE, text=True)


def _result(proc: Any, timeout: float = 20.0) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    lines = [l for l in out.splitlines() if l.startswith("{")]
    assert lines, f"socket probe printed nothing (exit {proc.returncode})"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _pywasm(topo: NatTopology, procs: list[PeerProcess], ns: str, name: str, *args: str) -> PeerProcess:
    p = PeerProcess(name, topo.wrap(ns, [PY, "-m", "tests.interop.nat_node_driver", *args]))
    procs.append(p)
    p.wait_ready()
    return p


def _js(topo: NatTopology, procs: list[PeerProcess], ns: str, name: str, *args: str) -> PeerProcess:
    saved = os.environ.get("DEBUG")
    os.environ["DEBUG"] = "libp2p:dcutr*"  # read once, when the child starts
    try:
        p = PeerProcess(name, topo.wrap(ns, [*node_command(), str(PEERS / "js_nat_peer.mjs"), *args]))
    finally:
        if saved is None:
            del os.environ["DEBUG"]
        else:
            os.environ["DEBUG"] = saved
    procs.append(p)
    p.wait_ready()
    return p


def _relay(topo: NatTopology, procs: list[PeerProcess]) -> str:
    return _pywasm(topo, procs, "inet", "relay", "relay", "--listen", f"/ip4/{RELAY_IP}/tcp/4000").addrs[0]


def _event(p: PeerProcess, kind: str, timeout: float = WAIT) -> dict[str, Any]:
    return p.wait_event(lambda e: e.get("event") == kind, timeout)


def _direct(p: PeerProcess, peer_id: str) -> dict[str, Any]:
    return p.wait_event(lambda e: e.get("event") == "direct" and e.get("peer") == peer_id, WAIT)


def _dcutr_outcome(p: PeerProcess, peer_id: str) -> dict[str, Any]:
    """The pywasm node's last DCUtR report once it has an outcome for ``peer_id``."""
    p.wait_event(lambda e: e.get("event") == "dcutr" and peer_id in e.get("results", {}), WAIT)
    return [e for e in p.events() if e.get("event") == "dcutr"][-1]


def _one_tcp_flow(topo: NatTopology, live: bool = True) -> None:
    """Both dials became one TCP connection: each host holds one socket from its listening
    port to the other's router and that port, and (where the kernel shows conntrack) each
    router tracks one flow for it, mapped to the same public port (port preserving).
    ``live``: still established (else it may be closing already)."""
    for ns, local, remote in (("ha", f"{HOST_IP['a']}:{INIT_PORT}", f"{ROUTER_IP['b']}:{RESP_PORT}"),
                              ("hb", f"{HOST_IP['b']}:{RESP_PORT}", f"{ROUTER_IP['a']}:{INIT_PORT}")):
        if not live:
            break  # the sockets may be gone already (only one side keeps a TIME_WAIT)
        socks = [l.split() for l in topo.tcp_sockets(ns)]
        mine = [f for f in socks if len(f) >= 5 and f[3] == local and f[4] == remote]
        assert len(mine) == 1 and mine[0][0] == "ESTAB", (ns, socks)
    for router, flow in (("ra", f"src={HOST_IP['a']} dst={ROUTER_IP['b']} sport={INIT_PORT} dport={RESP_PORT} "
                                f"src={ROUTER_IP['b']} dst={ROUTER_IP['a']} sport={RESP_PORT} dport={INIT_PORT}"),
                         ("rb", f"src={HOST_IP['b']} dst={ROUTER_IP['a']} sport={RESP_PORT} dport={INIT_PORT} "
                                f"src={ROUTER_IP['a']} dst={ROUTER_IP['b']} sport={INIT_PORT} dport={RESP_PORT}")):
        entries = topo.conntrack_entries(router)
        if entries is None:
            continue  # the host-side check above still holds
        hits = [l for l in entries if flow in l]
        assert len(hits) == 1 and (not live or "ESTABLISHED" in hits[0]), topo.conntrack(router)


def _check_pywasm_direct(d: dict[str, Any], remote_public: str, local_port: int, host_ip: str) -> None:
    assert not d["limited"] and "p2p-circuit" not in d["remote_addr"], d
    assert d["remote_addr"] == remote_public, d
    assert d["local_addr"] == f"/ip4/{host_ip}/tcp/{local_port}", d
    assert d["direction"] == "outbound", d  # our hole-punching dial, whichever role it took
    assert "error" not in d and d["echo_ok"] is True and d["ping_ms"] > 0, d


# ------------------------------------------------------------------ the NAT itself


def test_nat_blocks_unsolicited_inbound_and_lets_punched_tcp_and_udp_through(nat: Any) -> None:
    topo, _ = nat
    t0 = time.monotonic()
    listener = _socket_probe(topo, "ha", "listen", INIT_PORT, 3.5)
    time.sleep(0.5)
    b_probe = _socket_probe(topo, "hb", "connect", ROUTER_IP["a"], INIT_PORT, 2)
    internet_probe = _socket_probe(topo, "inet", "connect", ROUTER_IP["a"], INIT_PORT, 2)
    from_b, from_internet = _result(b_probe), _result(internet_probe)
    # dropped, not refused: the SYN dies at the router, the dialer times out
    assert not from_b["ok"] and "timed out" in from_b["error"], from_b
    assert not from_internet["ok"] and "timed out" in from_internet["error"], from_internet
    assert _result(listener)["accepted"] == [], "an unsolicited connection reached the private host"

    relay = _socket_probe(topo, "inet", "listen", 4000, 3)
    time.sleep(0.5)
    out = _result(_socket_probe(topo, "ha", "connect", RELAY_IP, 4000, 2))
    assert out["ok"], out
    # the relay sees router a, with host a's source port kept (port-preserving mapping)
    assert _result(relay)["accepted"] == [[ROUTER_IP["a"], out["local"][1]]]

    # TCP simultaneous open: both connect() from their listening ports at the same time
    at = time.time() + 1.0
    a = _socket_probe(topo, "ha", "simopen", INIT_PORT, ROUTER_IP["b"], RESP_PORT, at, "A")
    b = _socket_probe(topo, "hb", "simopen", RESP_PORT, ROUTER_IP["a"], INIT_PORT, at, "B")
    ra, rb = _result(a), _result(b)
    assert ra["ok"] and rb["ok"], (ra, rb)
    assert ra["peer"] == [ROUTER_IP["b"], RESP_PORT] and rb["peer"] == [ROUTER_IP["a"], INIT_PORT], (ra, rb)
    assert ra["got"] == "B" and rb["got"] == "A", (ra, rb)
    # no listener accepted it: the two connect() calls became one connection
    assert ra["via"] == "connect" and rb["via"] == "connect", (ra, rb)
    _one_tcp_flow(topo, live=False)

    # UDP: each side's first datagrams open its own NAT for the other's
    at = time.time() + 1.0
    a = _socket_probe(topo, "ha", "udp", 5001, ROUTER_IP["b"], 5002, at, "A")
    b = _socket_probe(topo, "hb", "udp", 5002, ROUTER_IP["a"], 5001, at + 0.3, "B")
    ua, ub = _result(a), _result(b)
    assert ua["got"] and all(g == ["B", ROUTER_IP["b"], 5002] for g in ua["got"]), ua
    assert ub["got"] and all(g == ["A", ROUTER_IP["a"], 5001] for g in ub["got"]), ub
    print(f"nat sockets: tcp simultaneous open {ra['ms']:.1f}/{rb['ms']:.1f} ms, udp {len(ua['got'])}/"
          f"{len(ub['got'])} datagrams, {time.monotonic() - t0:.1f} s", file=sys.stderr)


# ------------------------------------------------------------------ DCUtR


def test_pywasm_to_pywasm_dcutr_through_two_nats(nat: Any) -> None:
    topo, procs = nat
    relay = _relay(topo, procs)
    init = _pywasm(topo, procs, "ha", "initiator", "peer", "--port", str(INIT_PORT), "--relay", relay, "--reserve")
    # identify through the NAT: the relay saw router a, with our listening port (port reuse)
    assert _event(init, "observed")["addrs"] == [INIT_PUBLIC]
    # the initiator listens, yet its public address does not answer a plain dial from host b.
    # (From an ephemeral port: a failed dial between the very ports the hole punch then uses
    # leaves a SYN_SENT conntrack entry on router b; the initiator's punch SYN matches it
    # and reaches the responder's listener first, whose SYN-ACK conntrack then refuses.)
    probe = _result(_socket_probe(topo, "hb", "connect", ROUTER_IP["a"], INIT_PORT, 2))
    assert not probe["ok"] and "timed out" in probe["error"], probe
    t0 = time.monotonic()
    resp = _pywasm(topo, procs, "hb", "responder", "peer", "--port", str(RESP_PORT), "--relay", relay,
                   "--dial", init.addrs[0])
    assert _event(resp, "observed")["addrs"] == [RESP_PUBLIC]
    dialed = _event(resp, "dialed")
    assert dialed["limited"] and "/p2p-circuit/" in dialed["remote_addr"], dialed

    d_init = _direct(init, resp.peer_id)
    d_resp = _direct(resp, init.peer_id)
    elapsed = time.monotonic() - t0
    _check_pywasm_direct(d_init, RESP_PUBLIC, INIT_PORT, HOST_IP["a"])
    _check_pywasm_direct(d_resp, INIT_PUBLIC, RESP_PORT, HOST_IP["b"])
    # one connection, agreed roles: the initiator (spec "B") is the client, as in go-libp2p
    assert d_init["security_initiator"] is True and d_init["muxer_initiator"] is True, d_init
    assert d_resp["security_initiator"] is False and d_resp["muxer_initiator"] is False, d_resp
    _one_tcp_flow(topo)

    out_init = _dcutr_outcome(init, resp.peer_id)
    out_resp = _dcutr_outcome(resp, init.peer_id)
    assert out_init["results"][resp.peer_id] == "upgraded" and out_init["stats"]["attempts"] == 1, out_init
    assert out_resp["results"][init.peer_id] == "upgraded" and out_resp["stats"]["responded"] == 1, out_resp
    print(f"pywasm<->pywasm: relayed -> direct in {d_init['since_relayed_ms']:.0f} ms (initiator's view), "
          f"{elapsed * 1000:.0f} ms after the responder started, "
          f"dcutr rtt {out_init['last_rtt_ms']:.1f} ms, ping {d_init['ping_ms']:.2f} ms", file=sys.stderr)


def _js_log(js: PeerProcess) -> str:
    return "\n".join(l for l in js.stderr_text(400_000).splitlines() if "dcutr" in l)


def test_pywasm_initiates_dcutr_with_js_through_two_nats(nat: Any) -> None:
    """pywasm reserved on the relay, js-libp2p dials it there: pywasm is "B"."""
    topo, procs = nat
    relay = _relay(topo, procs)
    init = _pywasm(topo, procs, "ha", "initiator", "peer", "--port", str(INIT_PORT), "--relay", relay, "--reserve")
    assert _event(init, "observed")["addrs"] == [INIT_PUBLIC]
    t0 = time.monotonic()
    js = _js(topo, procs, "hb", "js-responder", "--local-port", str(RESP_PORT), "--announce", RESP_PUBLIC,
             "--dial", init.addrs[0])
    dialed = _event(js, "dialed")
    assert dialed["limited"], dialed

    d_init = _direct(init, js.peer_id)
    d_js = _direct(js, init.peer_id)
    elapsed = time.monotonic() - t0
    _check_pywasm_direct(d_init, RESP_PUBLIC, INIT_PORT, HOST_IP["a"])
    assert not d_js["limited"] and d_js["remote_addr"].startswith(INIT_PUBLIC + "/"), d_js
    assert d_js["echo_ok"] is True and d_js["ping_ms"] > 0, d_js
    # js-libp2p 3.3 dials as a plain client in both DCUtR roles (the `initiator: false`
    # its B passes is dropped by the dial queue), so we took the listener's roles
    assert d_init["security_initiator"] is False, d_init
    _one_tcp_flow(topo)

    log = _js_log(js)
    assert "A receiving connect" in log and "A receiving sync" in log, log
    assert f"succeeded via {INIT_PUBLIC}/" in log, log
    out = _dcutr_outcome(init, js.peer_id)
    assert out["results"][js.peer_id] == "upgraded" and out["stats"]["attempts"] == 1, out
    print(f"pywasm->js: relayed -> direct in {d_init['since_relayed_ms']:.0f} ms (pywasm's view), "
          f"{elapsed * 1000:.0f} ms after js started, dcutr rtt {out['last_rtt_ms']:.1f} ms", file=sys.stderr)


def test_js_initiates_dcutr_with_pywasm_through_two_nats(nat: Any) -> None:
    """js-libp2p reserved on the relay, pywasm dials it there: js is "B", we answer."""
    topo, procs = nat
    relay = _relay(topo, procs)
    js = _js(topo, procs, "ha", "js-initiator", "--local-port", str(INIT_PORT), "--announce", INIT_PUBLIC,
             "--relay", relay)
    t0 = time.monotonic()
    resp = _pywasm(topo, procs, "hb", "responder", "peer", "--port", str(RESP_PORT), "--relay", relay,
                   "--dial", js.addrs[0])
    assert _event(resp, "observed")["addrs"] == [RESP_PUBLIC]
    dialed = _event(resp, "dialed")
    assert dialed["limited"], dialed

    d_resp = _direct(resp, js.peer_id)
    d_js = _direct(js, resp.peer_id)
    elapsed = time.monotonic() - t0
    _check_pywasm_direct(d_resp, INIT_PUBLIC, RESP_PORT, HOST_IP["b"])
    assert not d_js["limited"] and d_js["remote_addr"].startswith(RESP_PUBLIC + "/"), d_js
    assert d_js["echo_ok"] is True and d_js["ping_ms"] > 0, d_js
    assert d_resp["security_initiator"] is False, d_resp
    _one_tcp_flow(topo)

    log = _js_log(js)
    # our identify announces no public address (0.0.0.0 only): js skips its unilateral
    # dial and runs CONNECT/SYNC, dialing the address our CONNECT carried
    assert "not attempting unilateral connection upgrade" in log, log
    assert "B sending connect" in log and "A sending sync" in log, log
    assert f"succeeded to address {RESP_PUBLIC}/" in log, log
    out = _dcutr_outcome(resp, js.peer_id)
    assert out["results"][js.peer_id] == "upgraded" and out["stats"]["responded"] == 1, out
    print(f"js->pywasm: relayed -> direct in {d_resp['since_relayed_ms']:.0f} ms (pywasm's view), "
          f"{elapsed * 1000:.0f} ms after pywasm started", file=sys.stderr)
