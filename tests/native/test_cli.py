"""The CLI contract, run as subprocesses (``python -m pywasm ...``).

Every process started here is tracked by its PID and only those are signalled.
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from pywasm.identity import PeerId
from tests.native._proc import ROOT, Proc, child_env, tracked

RUN_TIMEOUT = 60.0


def _env() -> dict[str, str]:
    return child_env(ROOT)


def run_cli(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pywasm", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=_env(),
    )


class Listener(Proc):
    """``pywasm listen`` in a subprocess; its stdout lines arrive through a queue."""

    name = "listen"

    def __init__(self, *args: str) -> None:
        super().__init__([sys.executable, "-m", "pywasm", "listen", *args], _env())

    def addrs(self, count: int) -> list[str]:
        out: list[str] = []
        for _ in range(count):
            out.append(self.next_line(str(out)))
        return out


@pytest.fixture
def listener() -> Iterator[Listener]:
    # (native-only suite: fixtures are fine here)
    yield from tracked(Listener)  # type: ignore[misc]


def _check_addr(addr: str) -> str:
    assert addr.startswith("/"), addr
    assert "/p2p/" in addr, addr
    peer = addr.rsplit("/p2p/", 1)[1]
    PeerId.from_string(peer)
    return peer


def test_listen_ping_perf_and_sigterm(listener: "type[Listener]") -> None:
    lst = listener()
    addrs = lst.addrs(3)
    peers = {_check_addr(a) for a in addrs}
    assert len(peers) == 1
    tcp = next(a for a in addrs if "/tcp/" in a and "/ws/" not in a)
    ws = next(a for a in addrs if "/ws/" in a)
    quic = next(a for a in addrs if "/quic-v1/" in a)
    assert tcp.startswith("/ip4/127.0.0.1/tcp/") and ws.startswith("/ip4/127.0.0.1/tcp/")
    assert quic.startswith("/ip4/127.0.0.1/udp/")

    for addr, count in ((tcp, 3), (ws, 2), (quic, 2)):
        res = run_cli("ping", addr, "--count", str(count))
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        assert len(lines) == count, res.stdout
        assert all("ms" in line and "rtt=" in line for line in lines), lines

    res = run_cli("perf", tcp, "--upload", "1048576", "--download", "2MiB")
    assert res.returncode == 0, res.stderr
    (line,) = res.stdout.splitlines()
    result = json.loads(line)
    assert result["upload_bytes"] == 1048576 and result["download_bytes"] == 2 * 1048576
    assert result["seconds"] > 0
    for key in ("upload_mib_per_s", "download_mib_per_s", "upload_bytes_per_s", "download_bytes_per_s"):
        assert result[key] > 0, key

    assert lst.signal(signal.SIGTERM) == 0, "".join(lst.stderr)
    assert lst.lines.get(timeout=5) is None  # nothing else on stdout


def test_listen_with_key_and_address_then_sigint(listener: "type[Listener]", tmp_path: Path) -> None:
    key = tmp_path / "node.key"
    lst = listener("--listen", "/ip4/127.0.0.1/tcp/0", "--key", str(key))
    (addr,) = lst.addrs(1)
    peer = _check_addr(addr)
    assert "/ws" not in addr
    res = run_cli("id", "--key", str(key))
    assert res.returncode == 0 and res.stdout.strip() == peer
    assert lst.signal(signal.SIGINT) == 0, "".join(lst.stderr)


def test_id_creates_key_file_0600(tmp_path: Path) -> None:
    key = tmp_path / "sub" / "identity.key"
    res = run_cli("id", "--key", str(key))
    assert res.returncode == 0, res.stderr
    peer = res.stdout.strip()
    assert len(res.stdout.splitlines()) == 1
    PeerId.from_string(peer)
    assert key.exists()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert [p for p in key.parent.iterdir() if p != key] == []  # no temporary files left
    again = run_cli("id", "--key", str(key))
    assert again.returncode == 0 and again.stdout.strip() == peer
    fresh = run_cli("id")
    assert fresh.returncode == 0 and fresh.stdout.strip() != peer


def test_bad_flags_exit_2_with_one_line(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.key"
    corrupt.write_bytes(b"not a key")
    cases = [
        [],
        ["bogus"],
        ["ping"],
        ["ping", "/nope/1"],
        ["ping", "/ip4/127.0.0.1/tcp/1", "--count", "0"],
        ["perf", "/ip4/127.0.0.1/tcp/1", "--upload", "x", "--download", "1"],
        ["perf", "/ip4/127.0.0.1/tcp/1", "--upload", "1"],
        ["listen", "--listen", "/ip4/127.0.0.1/sctp/1"],
        ["listen", "--bogus"],
        ["id", "--key", str(corrupt)],
    ]
    for args in cases:
        res = run_cli(*args)
        assert res.returncode == 2, (args, res.returncode, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1, (args, res.stderr)
        assert res.stdout == "", (args, res.stdout)


def test_ping_failure_one_line(listener: "type[Listener]") -> None:
    res = run_cli("ping", "/ip4/127.0.0.1/tcp/1")
    assert res.returncode == 1
    assert len(res.stderr.strip().splitlines()) == 1 and "refused" in res.stderr
    assert res.stdout == ""

    lst = listener("--listen", "/ip4/127.0.0.1/tcp/0")
    (addr,) = lst.addrs(1)
    stranger = "12D3KooWPXdrmzssqxsb8dKFRY2sV2CBkAhQnxjQNuTpiHFNDUgr"
    res = run_cli("ping", addr.rsplit("/p2p/", 1)[0] + f"/p2p/{stranger}")
    assert res.returncode == 1
    (line,) = res.stderr.strip().splitlines()
    assert stranger in line
    assert lst.signal(signal.SIGTERM) == 0
