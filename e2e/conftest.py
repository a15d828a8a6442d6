"""Fixtures for the browser end-to-end tests.

* ``browser``: Debian Chromium (/usr/bin/chromium) headless, launched by Playwright for
  Python (never `playwright install`); one per session.
* ``page`` / ``new_page``: a fresh context + page whose console messages, page errors, crashes
  and failed requests are recorded and appended to the report of a failing test.
* ``relay``: ``pywasm-relay`` on ephemeral ports (tcp, ws, http) with a temporary data dir,
  its stdout parsed for the http URL and multiaddrs; stopped by its own PID.
* ``peers``: the interop harness (tests/interop/harness.py) for js-libp2p Node peers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.harness import CHROMIUM, CHROMIUM_ARGS, SITE, Relay, StaticServer, build_js_page, require
from tests.interop.conftest import mark_items_under, peers  # noqa: F401  (peers: the interop fixture)

_HERE = Path(__file__).resolve().parent

# every page/relay opened during the current test, for the failure report
_LOGS: list[tuple[str, list[str]]] = []
_RELAYS: list[Relay] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_items_under(_HERE, pytest.mark.e2e, items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]):
    report = yield
    if report.failed:
        for name, lines in _LOGS:
            if lines:
                report.sections.append((f"browser console: {name}", "\n".join(lines[-150:])))
        for r in _RELAYS:
            report.sections.append(("pywasm-relay", r.describe()))
    return report


def pytest_runtest_setup(item: pytest.Item) -> None:
    for _, lines in _LOGS:
        lines.append(f"----- test {item.nodeid} -----")


# ------------------------------------------------------------------ browser


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    require(CHROMIUM, "Chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise AssertionError("python playwright missing in .venv; run `bash scripts/setup.sh`") from exc
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _attach_logging(page: Any, name: str) -> list[str]:
    lines: list[str] = []
    t0 = time.monotonic()

    def stamp() -> str:
        return f"{time.monotonic() - t0:7.2f}s"

    page.on("console", lambda m: lines.append(f"{stamp()} console.{m.type}: {m.text}"))
    page.on("pageerror", lambda e: lines.append(f"{stamp()} PAGE ERROR: {e}"))
    page.on("crash", lambda _p: lines.append(f"{stamp()} PAGE CRASHED"))
    page.on(
        "requestfailed",
        lambda r: lines.append(f"{stamp()} request failed: {r.method} {r.url} ({r.failure})"),
    )
    _LOGS.append((name, lines))
    return lines


class PageFactory:
    def __init__(self, browser: Any, scope: str) -> None:
        self.browser = browser
        self.scope = scope
        self.contexts: list[Any] = []
        self.logs: list[list[str]] = []

    def __call__(self, name: str = "page") -> Any:
        ctx = self.browser.new_context()
        self.contexts.append(ctx)
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        page.set_default_navigation_timeout(60_000)
        page.e2e_log = _attach_logging(page, f"{self.scope}:{name}")
        self.logs.append(page.e2e_log)
        return page

    def close(self) -> None:
        _LOGS[:] = [(n, lines) for n, lines in _LOGS if not any(lines is l for l in self.logs)]
        for ctx in self.contexts:
            try:
                ctx.close()
            except Exception:
                pass
        self.contexts.clear()


def _pages(browser: Any, scope: str) -> Iterator[PageFactory]:
    """Fixture body: a PageFactory whose contexts are closed afterwards."""
    f = PageFactory(browser, scope)
    try:
        yield f
    finally:
        f.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[PageFactory]:
    yield from _pages(browser, "test")


@pytest.fixture
def page(new_page: PageFactory) -> Any:
    return new_page("page")


@pytest.fixture(scope="module")
def module_pages(browser: Any) -> Iterator[PageFactory]:
    yield from _pages(browser, "module")


# ------------------------------------------------------------------ relay and peers


def _start_relay(**kw: Any) -> Relay:
    require(SITE / "pywasm.mjs", "site bundle (.cache/site/pywasm.mjs)")
    r = Relay(**kw).start()
    _RELAYS.append(r)
    return r


def _stop_relay(r: Relay) -> None:
    r.stop()
    if r in _RELAYS:
        _RELAYS.remove(r)


def _relay_lifetime() -> Iterator[Relay]:
    """Fixture body: a relay for the fixture's scope, stopped by its PID afterwards."""
    r = _start_relay()
    try:
        yield r
    finally:
        _stop_relay(r)


@pytest.fixture(scope="session")
def relay() -> Iterator[Relay]:
    """One relay for the session (serving .cache/site/); tests must not stop it."""
    yield from _relay_lifetime()


@pytest.fixture
def live_relay(relay: Relay) -> Relay:
    assert relay.alive(), f"the session relay died\n{relay.describe()}"
    return relay


@pytest.fixture
def fresh_relay() -> Iterator[Relay]:
    """A relay of this test's own (for tests that stop or break it)."""
    yield from _relay_lifetime()


@pytest.fixture(scope="session")
def js_page_server() -> Iterator[StaticServer]:
    out = build_js_page()
    s = StaticServer(out)
    try:
        yield s
    finally:
        s.close()
