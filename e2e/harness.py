"""Helpers for the browser end-to-end tests: the relay process, a static file server, the
js-libp2p page bundle, and bounded JavaScript evaluation in a Playwright page.

Everything binds 127.0.0.1. Only processes started here are signalled, by their own PID.
"""

from __future__ import annotations

import functools
import http.server
import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.interop.harness import terminate

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
SITE = CACHE / "site"
RELAY_BIN = ROOT / ".venv" / "bin" / "pywasm-relay"
CHROMIUM = Path(os.environ.get("PYWASM_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
JS_PAGE_SRC = Path(__file__).resolve().parent / "js-page"
JS_PAGE_OUT = CACHE / "e2e" / "js-page"

RELAY_START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
SETUP_HINT = "run `bash scripts/setup.sh` (installs Chromium and playwright) and `bash scripts/build_site.sh`"


class Missing(AssertionError):
    """A prerequisite is absent: e2e tests fail with this (never skip silently)."""


def require(path: Path, what: str) -> Path:
    if not path.exists():
        raise Missing(f"{what} missing at {path}; {SETUP_HINT}")
    return path


# ------------------------------------------------------------------ relay


LOOPBACK_LISTEN = ("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws")


@dataclass
class Relay:
    """`pywasm-relay`; stdout parsed on a thread. By default on ephemeral ports with a
    temporary data dir (removed at stop). Fixed ``listen`` addresses, ``http_port`` and a
    ``data_dir`` of the caller's (kept) make a restart bring back the same identity and
    addresses: :meth:`start` may be called again after :meth:`stop`."""

    site: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    listen: list[str] = field(default_factory=lambda: list(LOOPBACK_LISTEN))
    http_port: int = 0
    data_dir: Path | None = None
    url: str = ""
    addrs: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    _lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _stdout: list[str] = field(default_factory=list)
    _temp_data: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)

    def start(self, timeout: float = RELAY_START_TIMEOUT) -> "Relay":
        require(RELAY_BIN, "pywasm-relay")
        assert not self.alive(), "relay already running"
        if self.proc is not None:  # a restart: this run's output only
            self.url, self.addrs, self._lines = "", [], queue.Queue()
            self._stdout.append("----- restart -----")
        data_dir = self.data_dir
        if data_dir is None:
            self._temp_data = tempfile.TemporaryDirectory(prefix="pywasm-e2e-relay-")
            data_dir = Path(self._temp_data.name)
        self._stderr = tempfile.TemporaryFile()
        self.argv = [
            str(RELAY_BIN),
            *(arg for a in self.listen for arg in ("--listen", a)),
            "--http", f"127.0.0.1:{self.http_port}",
            "--data-dir", str(data_dir),
            *(["--site", str(self.site)] if self.site else []),
            *self.extra_args,
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            self.argv, cwd=str(ROOT), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._stderr, env=env,
        )
        threading.Thread(target=self._pump, args=(self.proc, self._lines), name="relay-stdout", daemon=True).start()
        deadline = time.monotonic() + timeout
        # ready once the http URL and a /ws address are printed; give the rest 0.3 s to follow
        settle: float | None = None
        while True:
            now = time.monotonic()
            if settle is not None and now >= settle:
                break
            if now >= deadline:
                self.stop()
                raise AssertionError(f"relay printed no http URL and /ws address in {timeout:.0f}s\n{self.describe()}")
            try:
                line = self._lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"relay exited during startup\n{self.describe()}")
            line = line.strip()
            if line.startswith("http://") and not self.url:
                self.url = line if line.endswith("/") else line + "/"
            elif line.startswith("/"):
                self.addrs.append(line)
            if settle is None and self.url and any("/ws" in a for a in self.addrs):
                settle = time.monotonic() + 0.3
        return self

    def _pump(self, proc: subprocess.Popen[bytes], lines: queue.Queue[str | None]) -> None:
        # this run's process and queue: a restart's pump does not mix into the next run's
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._stdout.append(line)
            lines.put(line)
        lines.put(None)

    @property
    def tls_ws_addr(self) -> str:
        """The /tls/ws (wss) address, when the relay listens on one (--tls-cert)."""
        for a in self.addrs:
            if a.split("/p2p/")[0].endswith("/tls/ws") and "/p2p/" in a:
                return a
        raise AssertionError(f"relay has no /tls/ws/p2p/ address among {self.addrs}")

    @property
    def ws_addr(self) -> str:
        for a in self.addrs:
            transport = a.split("/p2p/")[0]
            if transport.endswith("/ws") and "/tls/" not in transport and "/p2p/" in a:
                return a
        raise AssertionError(f"relay has no /ws/p2p/ address among {self.addrs}")

    @property
    def peer_id(self) -> str:
        return self.ws_addr.rsplit("/p2p/", 1)[1]

    @property
    def port(self) -> int:
        return int(self.url.rstrip("/").rsplit(":", 1)[1])

    def stderr_text(self, limit: int = 6000) -> str:
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode("utf-8", "replace")[-limit:]
        except (OSError, ValueError, AttributeError):
            return ""

    def describe(self) -> str:
        rc = self.proc.poll() if self.proc else None
        return (
            f"pywasm-relay (pid {self.proc.pid if self.proc else '-'}, exit {rc if rc is not None else 'running'})\n"
            f"argv: {' '.join(getattr(self, 'argv', []))}\n--- stdout ---\n" + "\n".join(self._stdout[-40:])
            + f"\n--- stderr (tail) ---\n{self.stderr_text()}"
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM this PID, SIGKILL after STOP_TIMEOUT; returns the exit code. A data dir
        of the caller's stays."""
        if self.proc is None:
            return None
        terminate(self.proc, STOP_TIMEOUT)
        if self._temp_data is not None:
            try:
                self._temp_data.cleanup()
            except OSError:
                pass
            self._temp_data = None
        return self.proc.returncode


# ------------------------------------------------------------------ static files


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".wasm": "application/wasm",
    }

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class StaticServer:
    """Serves one directory on http://127.0.0.1:<ephemeral>/ from a thread (a secure context)."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="e2e-static", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def build_js_page(out: Path = JS_PAGE_OUT) -> Path:
    """esbuild bundle of js-libp2p for the browser (e2e/js-page/) into ``out``."""
    node = shutil.which("node")
    if not node:
        raise Missing(f"node not found; {SETUP_HINT}")
    require(ROOT / "node_modules" / "esbuild" / "package.json", "esbuild (node_modules)")
    res = subprocess.run(
        [node, str(JS_PAGE_SRC / "build.mjs"), str(out)], cwd=str(ROOT), capture_output=True, text=True, timeout=120
    )
    if res.returncode != 0:
        raise AssertionError(f"js-page build failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return out


# ------------------------------------------------------------------ ports


def closed_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte: a peer that does not answer."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._run, name="e2e-silent", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            self.conns.append(c)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


# ------------------------------------------------------------------ page evaluation

# Runs an async function body in the page under a hard deadline, so no test can hang on a
# promise that never settles. Resolves to {ok, value, ms} or {ok: false, error, ms}.
_BOUNDED = """
async ([body, arg, ms]) => {
  const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor
  const fn = new AsyncFunction('arg', body)
  const t0 = performance.now()
  let timer
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`e2e deadline: no result after ${ms} ms`)), ms)
  })
  try {
    const value = await Promise.race([fn(arg), deadline])
    return { ok: true, value, ms: performance.now() - t0 }
  } catch (e) {
    const error = (e && (e.stack || e.message)) ? `${e.name || 'Error'}: ${e.message}` : String(e)
    return { ok: false, error, ms: performance.now() - t0, timeout: String(e && e.message).startsWith('e2e deadline') }
  } finally {
    clearTimeout(timer)
  }
}
"""


def run_js(page: Any, body: str, arg: Any = None, timeout: float = 30.0) -> dict[str, Any]:
    """Evaluate ``body`` (an async function body using ``arg``) with a deadline of ``timeout`` s."""
    return page.evaluate(_BOUNDED, [body, arg, int(timeout * 1000)])


def boot_node(page: Any, url: str) -> None:
    """Open ``url`` (a relay's site) and create ``window.e2eNode`` with createNode()."""
    page.goto(url)
    must(
        page,
        "const { createNode } = await import('/pywasm.mjs'); window.e2eNode = await createNode(); return true",
        timeout=90,
    )


def must(page: Any, body: str, arg: Any = None, timeout: float = 30.0) -> Any:
    res = run_js(page, body, arg, timeout)
    if not res["ok"]:
        raise AssertionError(f"page script failed after {res['ms']:.0f} ms: {res['error']}")
    return res["value"]


# ------------------------------------------------------------------ Python in the page

# Runs Python source in the page's Pyodide (window[nodeVar].pyodide) with top-level await,
# in a fresh namespace holding `arg` (from JSON) and `host` (the node's Python Host). The
# code leaves its result in `result`; it comes back through JSON.
_PY_IN_PAGE = """
const [nodeVar, code, payload] = arg
const node = window[nodeVar]
if (!node) throw new Error(`no window.${nodeVar}: create the node first`)
const py = node.pyodide
const ns = py.globals.get('dict')()
try {
  ns.set('host', node.host)
  ns.set('_arg_json', JSON.stringify(payload ?? null))
  await py.runPythonAsync('import json as _json\\narg = _json.loads(_arg_json)\\nresult = None\\n' + code +
                          '\\n_result_json = _json.dumps(result)', { globals: ns })
  return JSON.parse(ns.get('_result_json'))
} finally {
  ns.destroy()
}
"""


def must_py(page: Any, code: str, arg: Any = None, timeout: float = 30.0, node_var: str = "e2eNode") -> Any:
    """Run ``code`` (Python, may ``await``) in the page's Pyodide; returns its ``result``."""
    return must(page, _PY_IN_PAGE, [node_var, code, arg], timeout)
