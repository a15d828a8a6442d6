"""``pywasm-relay`` (docs/browser-plan.md), run as a subprocess on ports 0.

Every process started here is tracked by its PID and only those are signalled.
"""

from __future__ import annotations

import http.client
import json
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

import pytest

from pywasm.host import Host
from pywasm.identity import PeerId
from tests.native._proc import ROOT, Proc, child_env, tracked

RELAY_SCRIPT = Path(sys.executable).parent / "pywasm-relay"
PORTS_0 = ["--http", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/tcp/0/ws"]
WASM_BYTES = b"\x00asm\x01\x00\x00\x00"


def _command() -> list[str]:
    # the installed console script is the contract; `-m` keeps the test usable before
    # scripts/setup.sh has re-installed the project
    if RELAY_SCRIPT.exists():
        return [str(RELAY_SCRIPT)]
    return [sys.executable, "-m", "pywasm_relay"]


def _env() -> dict[str, str]:
    return child_env(ROOT, ROOT / "relay-server")


class Relay(Proc):
    """``pywasm-relay`` in a subprocess; its stdout lines arrive through a queue."""

    name = "relay"

    def __init__(self, *args: str) -> None:
        super().__init__([*_command(), *args], _env())

    def startup(self, n_addrs: int) -> tuple[str, list[str]]:
        """The http URL and the listen multiaddrs it printed."""
        url = ""
        addrs: list[str] = []
        while not url or len(addrs) < n_addrs:
            line = self.next_line(f"{url!r} {addrs}")
            if line.startswith("http://"):
                url = line
            else:
                assert line.startswith("/"), line
                addrs.append(line)
        return url, addrs


StartRelay = Callable[..., Relay]


@pytest.fixture
def relay() -> Iterator[StartRelay]:
    yield from tracked(Relay)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "pyodide").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>pywasm</title>\n")
    (root / "pywasm.mjs").write_text("export const createNode = () => null;\n")
    (root / "pyodide" / "pyodide.asm.wasm").write_bytes(WASM_BYTES)
    (root / "pyodide" / "pyodide-lock.json").write_text("{}\n")
    (tmp_path / "secret.txt").write_text("outside the site\n")
    return root


def _get(url: str, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def _raw(url: str, data: bytes) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_http_site_and_relay_json(relay: StartRelay, site: Path, tmp_path: Path) -> None:
    r = relay(*PORTS_0, "--site", str(site), "--data-dir", str(tmp_path / "data"))
    url, addrs = r.startup(2)
    assert url.startswith("http://127.0.0.1:") and url.endswith("/")
    peer = addrs[0].rsplit("/p2p/", 1)[1]
    PeerId.from_string(peer)

    status, headers, body = _get(url, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert body == (site / "index.html").read_bytes()
    assert int(headers["content-length"]) == len(body)

    status, headers, body = _get(url, "/relay.json")
    assert status == 200 and headers["content-type"] == "application/json"
    info = json.loads(body)
    assert info["peerId"] == peer
    assert info["multiaddrs"] and all("/ws/p2p/" in a for a in info["multiaddrs"])
    assert set(info["multiaddrs"]) <= set(addrs)
    # the hop's state: nobody reserved yet
    assert info["relay"]["reservations"] == 0 and info["relay"]["circuits"] == 0
    assert info["relay"]["reservations_accepted"] == 0

    status, headers, body = _get(url, "/pyodide/pyodide.asm.wasm")
    assert status == 200 and headers["content-type"] == "application/wasm" and body == WASM_BYTES
    status, headers, body = _get(url, "/pywasm.mjs")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    status, headers, _ = _get(url, "/pyodide/pyodide-lock.json")
    assert headers["content-type"] == "application/json"

    # HEAD: headers only; revalidation with the ETag
    status, headers, body = _get(url, "/pyodide/pyodide.asm.wasm", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) == len(WASM_BYTES)
    status, _, body = _get(url, "/pyodide/pyodide.asm.wasm", headers={"If-None-Match": headers["etag"]})
    assert status == 304 and body == b""

    # a directory without its slash redirects; missing files and other methods fail cleanly
    status, headers, _ = _get(url, "/pyodide")
    assert status == 301 and headers["location"] == "/pyodide/"
    assert _get(url, "/nope.html")[0] == 404
    assert _get(url, "/", method="POST")[0] in (405, 413)
    assert _get(url, "/", method="DELETE")[0] == 405

    # path traversal, however spelled, is a 404 and never leaks the file
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/pyodide/../../secret.txt",
                 "/pyodide/%2E%2E/%2e%2e/secret.txt", "/..%2fsecret.txt", "/%5c..%5csecret.txt",
                 "/.%2e/secret.txt", "/index.html%00", "//etc/passwd"):
        status, _, body = _get(url, path)
        assert status == 404 and b"outside" not in body, path
    raw = _raw(url, b"GET /../secret.txt HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 404") and b"outside" not in raw

    # bounded request head; malformed request lines
    assert _raw(url, b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431")
    many = b"".join(b"X-%d: y\r\n" % i for i in range(100))
    assert _raw(url, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n").startswith(b"HTTP/1.1 431")
    assert _raw(url, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400")

    # keep-alive: two requests on one connection
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    for _ in range(2):
        conn.request("GET", "/relay.json")
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["peerId"] == peer
    conn.close()

    assert r.signal(signal.SIGTERM) == 0, "".join(r.stderr)


async def test_dial_tcp_and_ws_identify_ping(relay: StartRelay, site: Path, tmp_path: Path) -> None:
    r = relay(*PORTS_0, "--site", str(site), "--data-dir", str(tmp_path / "data"))
    _, addrs = r.startup(2)
    tcp = next(a for a in addrs if "/ws/" not in a)
    ws = next(a for a in addrs if "/ws/" in a)
    async with await Host.create(listen=[]) as host:
        for addr in (tcp, ws):
            conn = await host.dial(addr)
            assert str(conn.remote_peer) == addr.rsplit("/p2p/", 1)[1]
            info = await host.services["identify"].identify(conn)
            assert info is not None
            rtt = await host.services["ping"].ping(addr)
            assert 0 < rtt < 10
            stream = await host.new_stream(conn, ["/echo/1.0.0"])
            await stream.write(b"hello relay")
            await stream.close_write()
            assert await stream.read_exactly(11) == b"hello relay"
            await stream.close()
    assert r.signal(signal.SIGINT) == 0, "".join(r.stderr)


def test_identity_persists_across_restarts(relay: StartRelay, site: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = relay(*PORTS_0, "--site", str(site), "--data-dir", str(data))
    _, addrs = first.startup(2)
    peer = addrs[0].rsplit("/p2p/", 1)[1]
    assert first.signal(signal.SIGTERM) == 0, "".join(first.stderr)
    assert first.lines.get(timeout=5) is None  # nothing more on stdout

    keys = list(data.iterdir())
    assert len(keys) == 1 and stat.S_IMODE(keys[0].stat().st_mode) == 0o600

    second = relay(*PORTS_0, "--site", str(site), "--data-dir", str(data))
    url, addrs2 = second.startup(2)
    assert {a.rsplit("/p2p/", 1)[1] for a in addrs2} == {peer}
    assert json.loads(_get(url, "/relay.json")[2])["peerId"] == peer
    assert second.signal(signal.SIGTERM) == 0, "".join(second.stderr)

    other = relay(*PORTS_0, "--site", str(site), "--data-dir", str(tmp_path / "other"))
    _, addrs3 = other.startup(2)
    assert addrs3[0].rsplit("/p2p/", 1)[1] != peer
    assert other.signal(signal.SIGTERM) == 0


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_command(), *args], capture_output=True, text=True, timeout=60, cwd=ROOT, env=_env())


def test_missing_site_and_bad_flags_exit_2(site: Path, tmp_path: Path) -> None:
    res = _run(*PORTS_0, "--site", str(tmp_path / "no-such-site"), "--data-dir", str(tmp_path / "d"))
    assert res.returncode == 2, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "scripts/build_site.sh" in line
    assert res.stdout == ""

    cases = [
        ["--bogus"],
        ["--http", "nope"],
        ["--http", "127.0.0.1:99999"],
        ["--http", "example.com:80"],
        ["--listen", "/nope/1"],
        ["--listen", "/ip4/127.0.0.1/sctp/1"],
        ["--listen", "/ip4/127.0.0.1/tcp/0/tls/ws"],  # wss needs a certificate
        ["--tls-cert", str(tmp_path / "cert.pem")],  # and its key
        ["--tls-cert", str(tmp_path / "no-cert.pem"), "--tls-key", str(tmp_path / "no-key.pem")],
    ]
    for args in cases:
        res = _run(*args, "--site", str(site), "--data-dir", str(tmp_path / "d"))
        assert res.returncode == 2, (args, res.returncode, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1, (args, res.stderr)
        assert res.stdout == "", (args, res.stdout)


def test_aiopquic_backend_on_python_3_11_explains_itself(site: Path, tmp_path: Path) -> None:
    """aiopquic exists only for Python >= 3.12: asking the 3.11 relay for it is a usage
    error naming the venv that has it, not a traceback."""
    if sys.version_info >= (3, 12):
        raise AssertionError("this test is about the project's Python 3.11 venv")
    res = _run(*PORTS_0, "--webtransport-backend", "aiopquic", "--site", str(site), "--data-dir", str(tmp_path / "d"))
    assert res.returncode == 2, res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert "Python >= 3.12" in line and "scripts/setup_pquic.sh" in line, line
    assert res.stdout == ""
