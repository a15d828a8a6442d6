"""``pywasm-relay --webtransport-backend aiopquic`` (relay-server/pywasm_relay/webtransport_pquic.py)
against our native aioquic WebTransport client.

aiopquic binds its UDP port on every address, so each scenario runs in a private network
namespace with only ``lo`` (``unshare -n``, root): tests/native/pquic_scenarios.py does the
work there and reports JSON; the assertions are here. Needs .cache/venv-relay-pquic
(``bash scripts/setup_pquic.sh``: CPython >= 3.12 + aiopquic); without it these tests fail
and say so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.native.pquic_scenarios import ECHO_BYTES, PQUIC_PYTHON, ROOT


def _run(name: str, python: str, work: Path) -> dict[str, Any]:
    assert os.geteuid() == 0 and shutil.which("unshare"), "needs root and unshare (a network namespace)"
    assert PQUIC_PYTHON.exists(), f"{PQUIC_PYTHON} missing: run `bash scripts/setup_pquic.sh`"
    proc = subprocess.run(["unshare", "-n", "--", python, "-m", "tests.native.pquic_scenarios", name, str(work)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1])


def _echo_ok(r: dict[str, Any], peer: str) -> None:
    assert r["peer"] == peer and r["security"] == "/noise"
    assert r["echo_ok"] and r["echo_len"] == ECHO_BYTES
    assert r["many_ok"] == [True] * 4
    assert 0 < r["rtt"] < 5


def test_native_client_against_the_aiopquic_relay(tmp_path: Path) -> None:
    r = _run("relay", sys.executable, tmp_path)
    addr = r["addr"]
    peer = addr.rsplit("/p2p/", 1)[1]
    assert addr.count("/certhash/") == 2 and "/quic-v1/webtransport/" in addr
    _echo_ok(r["first"], peer)
    # the certificate is checked against the address before anything else happens
    assert r["wrong_certhash"].startswith("DialError") and "certhash" in r["wrong_certhash"], r["wrong_certhash"]
    # garbage instead of Noise: that session is closed at once (well inside the 10 s handshake timeout) ...
    assert r["garbage"]["closed"], r["garbage"]
    assert r["garbage"]["secs"] < 5, r["garbage"]
    # ... and the relay keeps serving everyone else
    _echo_ok(r["after_garbage"], peer)
    assert r["relay_alive"] and r["relay_rc"] == 0, r["relay_log_tail"]


def test_certificate_rotation_restarts_the_aiopquic_listener(tmp_path: Path) -> None:
    r = _run("rotation", str(PQUIC_PYTHON), tmp_path)
    assert r["changed"] and r["new_cert"] and r["restarts"] == 1
    assert f"/udp/{r['port_kept']}/" in r["addr1"] and f"/udp/{r['port_kept']}/" in r["addr2"]
    assert r["old_session"] != "still alive"  # sessions drop with the old listener
    _echo_ok(r["after"], r["addr2"].rsplit("/p2p/", 1)[1])
    assert r["new_only"] == "", r["new_only"]  # it serves the new certificate ...
    assert r["old_only"].startswith("DialError") and "certhash" in r["old_only"], r["old_only"]  # ... not the old


def test_half_open_eviction_and_one_session_per_connection(tmp_path: Path) -> None:
    r = _run("limits", str(PQUIC_PYTHON), tmp_path)
    # max_half_open=2: the third session stuck before Noise closes the first, not itself
    assert r["closed"] == [True, False, False], r
    assert r["stats"]["evicted_half_open"] == 1 and r["stats"]["sessions"] == 0, r["stats"]
    # an honest client still gets through (making room by evicting one more stuck session)
    _echo_ok(r["honest"], r["honest"]["peer"])
    assert r["stats_after"]["sessions"] == 1 and r["stats_after"]["evicted_half_open"] == 2, r["stats_after"]
    assert r["second_session_closed"] and r["refused_sessions"] == 1, r


def test_a_stream_nobody_reads_is_reset_past_its_buffer_bound(tmp_path: Path) -> None:
    # aiopquic grants credit as its loop drains, not as the handler reads: the bound is ours
    r = _run("unread", str(PQUIC_PYTHON), tmp_path)
    assert r["parked"] and r["write_end"] == "StreamResetError", r
    assert 16 <= r["sent_mib"] <= 24, r  # max_stream_buffer (16 MiB) plus what was in flight
    assert r["ping_after"] >= 0  # the session outlives the stream
