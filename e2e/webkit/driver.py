"""WebKitGTK behind the slice of Playwright's sync page API that e2e/ uses.

Playwright cannot drive Debian's WebKitGTK (its own WebKit build is a download that fails
offline), so this adapter speaks classic WebDriver to Debian's ``WebKitWebDriver``, which
starts ``MiniBrowser --automation`` on an X display: an ``Xvfb`` started here and tracked
by its PID (``-displayfd`` picks a free display, so parallel runs do not collide).

WebKitWebDriver holds one session at a time, so each page is its own driver process and
MiniBrowser (~0.5 s to start): pages never share cookies or caches, like Playwright
contexts. Supported: ``goto`` (with a response status), ``evaluate`` (a function source
called with ``arg``, or an expression), ``wait_for_function``, ``on("console"|"pageerror")``
(console calls are captured by a hook installed after each navigation and drained with
every evaluate; messages logged before the load event are not seen), timeouts, ``close``.
"""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.interop.harness import terminate

WEBKIT_DRIVER = Path(os.environ.get("PYWASM_WEBKIT_DRIVER", "/usr/bin/WebKitWebDriver"))
XVFB = Path(os.environ.get("PYWASM_XVFB", "/usr/bin/Xvfb"))
DRIVER_START_TIMEOUT = 15.0
XVFB_START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
# Outer bound on one script in the page; e2e's run_js puts its own, shorter deadline inside.
SCRIPT_TIMEOUT_S = 300.0
CONSOLE_CAP = 2000  # console lines kept in the page between two drains


class WebKitError(AssertionError):
    """WebKitGTK could not be started or driven (fails the test; never a skip)."""


def minibrowser() -> Path:
    """Debian's MiniBrowser (package libwebkit2gtk-4.1-0; 4.0 on older releases)."""
    env = os.environ.get("PYWASM_MINIBROWSER")
    if env:
        return Path(env)
    found = sorted(glob.glob("/usr/lib/*/webkit2gtk-4.*/MiniBrowser"), reverse=True)
    if not found:
        raise WebKitError("MiniBrowser not found under /usr/lib/*/webkit2gtk-4.*/; run `bash scripts/setup_browsers.sh`")
    return Path(found[0])


def webkit_version() -> str:
    """The installed WebKitGTK version, from dpkg (no browser start needed)."""
    for pkg in ("libwebkit2gtk-4.1-0", "libwebkit2gtk-4.0-37"):
        out = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True, timeout=10
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().split("-")[0]
    return "unknown"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Xvfb:
    """A virtual X server of our own; stopped by its PID."""

    def __init__(self) -> None:
        if not XVFB.exists():
            raise WebKitError(f"Xvfb missing at {XVFB}; run `bash scripts/setup_browsers.sh`")
        r, w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [str(XVFB), "-displayfd", str(w), "-screen", "0", "1280x900x24", "-nolisten", "tcp", "-noreset"],
                pass_fds=(w,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        finally:
            os.close(w)
        try:
            self.display = f":{self._read_display(r)}"
        except Exception:
            terminate(self.proc, STOP_TIMEOUT)
            raise
        finally:
            os.close(r)

    def _read_display(self, fd: int) -> str:
        import selectors

        buf = b""
        deadline = time.monotonic() + XVFB_START_TIMEOUT
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while not buf.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise WebKitError(f"Xvfb printed no display number (exit {self.proc.poll()})")
                if sel.select(left):
                    chunk = os.read(fd, 64)
                    if not chunk:
                        raise WebKitError(f"Xvfb closed -displayfd without a display (exit {self.proc.poll()})")
                    buf += chunk
        return buf.decode().strip()

    def stop(self) -> None:
        terminate(self.proc, STOP_TIMEOUT)


@dataclass
class ConsoleMessage:
    """What Playwright's console listeners read: ``.type`` and ``.text``."""

    type: str
    text: str


@dataclass
class Response:
    status: int

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


# Installed after each navigation: copies console calls and uncaught errors into a bounded
# queue that every evaluate drains (classic WebDriver has no console events).
_CONSOLE_HOOK = """
if (!window.__e2eConsole) {
  const q = window.__e2eConsole = [];
  const text = (a) => {
    if (typeof a === 'string') return a;
    if (a instanceof Error) return a.stack || String(a);
    try { return JSON.stringify(a); } catch { return String(a); }
  };
  const push = (type, args) => { if (q.length < %d) q.push([type, args.map(text).join(' ')]); };
  for (const t of ['log', 'info', 'warn', 'error', 'debug']) {
    const orig = console[t].bind(console);
    console[t] = (...a) => { push(t === 'warn' ? 'warning' : t, a); orig(...a); };
  }
  addEventListener('error', (e) => push('pageerror', [e.message || String(e)]));
  addEventListener('unhandledrejection', (e) =>
    push('pageerror', ['unhandled rejection: ' + ((e.reason && (e.reason.stack || e.reason.message)) || e.reason)]));
}
""" % CONSOLE_CAP

# `expr` is spliced in: a function source (called with the argument) or an expression.
_EVALUATE = """
const done = arguments[arguments.length - 1];
const arg = arguments[0];
const drain = () => (window.__e2eConsole ? window.__e2eConsole.splice(0) : []);
(async () => {
  const f = (%s);
  return typeof f === 'function' ? await f(arg) : await f;
})().then(
  (v) => done({ ok: true, v: v === undefined ? null : v, log: drain() }),
  (e) => done({ ok: false, e: (e && (e.stack || e.message)) ? `${e.name || 'Error'}: ${e.message}` : String(e), log: drain() }),
);
"""


class WebKitPage:
    """One WebKitWebDriver process + one MiniBrowser session."""

    def __init__(self, browser: "WebKitBrowser", insecure: bool) -> None:
        from selenium import webdriver
        from selenium.webdriver.remote.client_config import ClientConfig
        from selenium.webdriver.remote.remote_connection import RemoteConnection
        from selenium.webdriver.webkitgtk.options import Options

        self._listeners: dict[str, list[Callable[[Any], None]]] = {}
        self._timeout_ms = 30_000.0
        self._nav_timeout_ms = 30_000.0
        self.url = "about:blank"
        self.e2e_log: list[str] | None = None
        self.driver_proc: subprocess.Popen[bytes] | None = None
        port = _free_port()
        env = dict(os.environ, DISPLAY=browser.xvfb.display, NO_AT_BRIDGE="1", LIBGL_ALWAYS_SOFTWARE="1")
        self.driver_proc = subprocess.Popen(
            [str(WEBKIT_DRIVER), f"--port={port}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        try:
            self._wait_listening(port)
            opts = Options()
            opts.binary_location = str(browser.minibrowser)
            opts.add_argument("--automation")
            if insecure:
                # TEST-ONLY: trust the throwaway certificate of a local TLS front
                opts.set_capability("acceptInsecureCerts", True)
            # the HTTP read timeout must outlast the longest script (WebDriver answers at its end)
            conn = RemoteConnection(client_config=ClientConfig(
                remote_server_addr=f"http://127.0.0.1:{port}", timeout=int(SCRIPT_TIMEOUT_S) + 30))
            self.session = webdriver.Remote(command_executor=conn, options=opts)
            self.session.set_script_timeout(SCRIPT_TIMEOUT_S)
            browser._saw_version(self.session.capabilities.get("browserVersion", ""))
        except BaseException:
            terminate(self.driver_proc, STOP_TIMEOUT)
            raise

    def _wait_listening(self, port: int) -> None:
        deadline = time.monotonic() + DRIVER_START_TIMEOUT
        assert self.driver_proc is not None
        while time.monotonic() < deadline:
            if self.driver_proc.poll() is not None:
                raise WebKitError(f"WebKitWebDriver exited at start (code {self.driver_proc.returncode})")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise WebKitError(f"WebKitWebDriver not listening on 127.0.0.1:{port} after {DRIVER_START_TIMEOUT:.0f}s")

    # ------------------------------------------------------------- Playwright-like API

    def on(self, event: str, callback: Callable[[Any], None]) -> None:
        # "crash" and "requestfailed" have no WebDriver equivalent: never fired here
        self._listeners.setdefault(event, []).append(callback)

    def set_default_timeout(self, ms: float) -> None:
        self._timeout_ms = float(ms)

    def set_default_navigation_timeout(self, ms: float) -> None:
        self._nav_timeout_ms = float(ms)

    def goto(self, url: str, wait_until: str = "load", timeout: float | None = None) -> Response:
        self.session.set_page_load_timeout((timeout or self._nav_timeout_ms) / 1000)
        self.session.get(url)
        self.url = url
        self.session.execute_script(_CONSOLE_HOOK)
        status = self.evaluate("() => { const n = performance.getEntriesByType('navigation')[0]; return n && n.responseStatus }")
        return Response(int(status) if status else _http_status(url))

    def evaluate(self, expression: str, arg: Any = None) -> Any:
        res = self.session.execute_async_script(_EVALUATE % expression, arg)
        if not isinstance(res, dict):
            raise WebKitError(f"evaluate: unexpected WebDriver result {res!r}")
        self._dispatch(res.get("log") or [])
        if not res.get("ok"):
            raise WebKitError(f"page script threw: {res.get('e')}")
        return res.get("v")

    def wait_for_function(self, expression: str, timeout: float | None = None, polling: float = 50) -> Any:
        deadline = time.monotonic() + (timeout or self._timeout_ms) / 1000
        while True:
            v = self.evaluate(expression)
            if v:
                return v
            if time.monotonic() >= deadline:
                raise WebKitError(f"wait_for_function({expression!r}) not truthy after {timeout or self._timeout_ms:.0f} ms")
            time.sleep(polling / 1000)

    def close(self) -> None:
        try:
            self.session.quit()
        except Exception:
            pass
        finally:
            if self.driver_proc is not None:
                terminate(self.driver_proc, STOP_TIMEOUT)

    def _dispatch(self, entries: list[list[str]]) -> None:
        for kind, text in entries:
            if kind == "pageerror":
                for cb in self._listeners.get("pageerror", []):
                    cb(text)
            else:
                msg = ConsoleMessage(kind, text)
                for cb in self._listeners.get("console", []):
                    cb(msg)


def _http_status(url: str) -> int:
    """Fallback when the navigation entry has no responseStatus: ask the server directly."""
    if not url.startswith("http"):
        return 200
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


class WebKitContext:
    def __init__(self, browser: "WebKitBrowser", insecure: bool) -> None:
        self.browser = browser
        self.insecure = insecure
        self.pages: list[WebKitPage] = []

    def new_page(self) -> WebKitPage:
        p = WebKitPage(self.browser, self.insecure)
        self.pages.append(p)
        return p

    def close(self) -> None:
        for p in self.pages:
            p.close()
        self.pages.clear()


class WebKitBrowser:
    """The Xvfb for the session; contexts/pages start their own driver + MiniBrowser."""

    def __init__(self) -> None:
        if not WEBKIT_DRIVER.exists():
            raise WebKitError(f"WebKitWebDriver missing at {WEBKIT_DRIVER}; run `bash scripts/setup_browsers.sh`")
        try:
            import selenium  # noqa: F401
        except ImportError as exc:
            raise WebKitError("selenium missing in .venv; run `bash scripts/setup_browsers.sh`") from exc
        self.minibrowser = minibrowser()
        self._version = webkit_version()
        self.xvfb = Xvfb()
        self.contexts: list[WebKitContext] = []

    @property
    def version(self) -> str:
        return self._version

    def _saw_version(self, v: str) -> None:
        if v:
            self._version = v

    def new_context(self, ignore_https_errors: bool = False, **_: Any) -> WebKitContext:
        ctx = WebKitContext(self, ignore_https_errors)
        self.contexts.append(ctx)
        return ctx

    def close(self) -> None:
        for ctx in self.contexts:
            ctx.close()
        self.contexts.clear()
        self.xvfb.stop()
