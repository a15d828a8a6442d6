"""Plain-socket probes run inside the NAT topology's namespaces (nat_topology.py).

``python -m tests.interop.nat_socket_driver MODE ...`` prints one JSON line:

* ``listen PORT SECONDS``: accept on 0.0.0.0:PORT for SECONDS; ``{"accepted": [[ip, port], ...]}``
* ``connect IP PORT TIMEOUT``: one plain connect; ``{"ok": bool, "error": str}``
* ``simopen LPORT IP PORT AT``: a listener on LPORT and, at wall-clock time AT, a connect
  from LPORT (SO_REUSEADDR + SO_REUSEPORT on both, as libp2p's port reuse does) to IP:PORT.
  ``{"ok", "via": "connect"|"accept", "peer": [ip, port], "local": [...], "echo": bool}``:
  both sides send their name and read the other's over whichever socket got connected
* ``udp LPORT IP PORT AT``: from AT, send a datagram to IP:PORT every 50 ms for 3 s and
  collect what arrives; ``{"got": [[data, ip, port], ...]}``
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time
from typing import Any


def _reuse(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)


def _sleep_until(at: float) -> None:
    delay = at - time.time()
    if delay > 0:
        time.sleep(delay)


def listen(port: int, seconds: float) -> dict[str, Any]:
    srv = socket.socket()
    _reuse(srv)
    srv.bind(("0.0.0.0", port))
    srv.listen(8)
    srv.settimeout(0.1)
    accepted = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            conn, peer = srv.accept()
        except socket.timeout:
            continue
        accepted.append(list(peer))
        conn.close()
    return {"accepted": accepted}


def connect(ip: str, port: int, timeout: float) -> dict[str, Any]:
    s = socket.socket()
    s.settimeout(timeout)
    t0 = time.monotonic()
    try:
        s.connect((ip, port))
        return {"ok": True, "local": list(s.getsockname()), "ms": (time.monotonic() - t0) * 1000}
    except OSError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "ms": (time.monotonic() - t0) * 1000}
    finally:
        s.close()


def simopen(lport: int, ip: str, port: int, at: float, name: str) -> dict[str, Any]:
    srv = socket.socket()
    _reuse(srv)
    srv.bind(("0.0.0.0", lport))
    srv.listen(8)
    srv.setblocking(False)
    cli = socket.socket()
    _reuse(cli)
    cli.bind(("0.0.0.0", lport))
    cli.setblocking(False)
    _sleep_until(at)
    t0 = time.monotonic()
    err = cli.connect_ex((ip, port))
    out: dict[str, Any] = {"ok": False, "connect_ex": err}
    deadline = t0 + 8.0
    conn: socket.socket | None = None
    while conn is None and time.monotonic() < deadline:
        r, w, _ = select.select([srv], [cli], [], 0.05)
        if w:
            e = cli.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if e == 0:
                conn, out["via"] = cli, "connect"
            else:
                out["connect_error"] = e
                break
        if r and conn is None:
            conn, _peer = srv.accept()
            out["via"] = "accept"
    if conn is None:
        return out
    out["ms"] = (time.monotonic() - t0) * 1000
    conn.setblocking(True)
    conn.settimeout(5)
    out["peer"] = list(conn.getpeername())
    out["local"] = list(conn.getsockname())
    conn.sendall(name.encode() + b"\n")
    data = b""
    try:
        while not data.endswith(b"\n"):
            chunk = conn.recv(100)
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        out["recv_error"] = str(exc)
    out["got"] = data.decode(errors="replace").strip()
    out["ok"] = bool(out["got"])
    return out


def udp(lport: int, ip: str, port: int, at: float, name: str) -> dict[str, Any]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", lport))
    s.setblocking(False)
    _sleep_until(at)
    got: list[list[Any]] = []
    end = time.monotonic() + 3.0
    next_send = 0.0
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_send:
            s.sendto(name.encode(), (ip, port))
            next_send = now + 0.05
        r, _, _ = select.select([s], [], [], 0.02)
        if r:
            data, peer = s.recvfrom(2048)
            if len(got) < 100:
                got.append([data.decode(errors="replace"), *peer])
    return {"got": got}


def main() -> int:
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "listen":
        out = listen(int(args[0]), float(args[1]))
    elif mode == "connect":
        out = connect(args[0], int(args[1]), float(args[2]))
    elif mode == "simopen":
        out = simopen(int(args[0]), args[1], int(args[2]), float(args[3]), args[4])
    elif mode == "udp":
        out = udp(int(args[0]), args[1], int(args[2]), float(args[3]), args[4])
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
