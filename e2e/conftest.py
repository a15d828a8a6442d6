"""Fixtures for the browser end-to-end tests.

* ``browser_name``: the browser of this test: every test that uses a browser runs once per
  selected browser (chromium, firefox, webkit; see e2e/browsers.py, ``--e2e-browser`` /
  ``PYWASM_E2E_BROWSERS``). Tests that launch something of their own can take just this.
* ``browser``: that browser, one per session per browser type (tests are grouped by
  browser): Debian Chromium or Firefox ESR through Playwright (never `playwright install`),
  or WebKitGTK through the adapter in e2e/webkit/. Its capabilities are probed once at
  launch; a test whose feature needs an API the browser lacks is recorded "unsupported"
  with the measured reason (``@pytest.mark.browser_feature(label, needs=(...))``).
* ``browser_caps``: that probe's result (dict), e.g. ``browser_caps["WebTransport"]``.
* ``page`` / ``new_page``: a fresh context + page whose console messages, page errors, crashes
  and failed requests are recorded and appended to the report of a failing test.
* ``pages_in``: for a test that drives several browsers itself (not parametrized, e.g. a
  Chromium page talking to a Firefox page; ``browser_feature(..., browsers=(...))``):
  ``pages_in("firefox")`` launches that browser for this test (probed and recorded like the
  session's) and returns a page factory for it. Such a test runs once, and only when every
  browser it names is selected (else it is deselected).
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

from e2e import browsers
from e2e.harness import SITE, Relay, StaticServer, build_js_page, require
from e2e.results_plugin import UNSUPPORTED, ResultsRecorder, browser_of, feature_of, multi_browsers
from tests.interop.conftest import mark_items_under, peers  # noqa: F401  (peers: the interop fixture)

_HERE = Path(__file__).resolve().parent

# every page/relay opened during the current test, for the failure report
_LOGS: list[tuple[str, list[str]]] = []
_RELAYS: list[Relay] = []
# browser name -> (version, capability probe); filled when the browser is launched
_CAPS: dict[str, tuple[str, dict[str, Any]]] = {}
_RECORDER = ResultsRecorder()
_CURRENT: list[pytest.Item] = []  # the test being set up/run (pages check its needs)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--e2e-browser", action="append", default=[], metavar="NAME",
        help=f"browser(s) for e2e/ (repeat or comma-separate; default: all of {', '.join(browsers.BROWSERS)}; "
        f"env {browsers.ENV_SELECT})",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "browser_feature(label, needs=(), matrix=True, browsers=()): the browser-matrix row of this test and "
        "the browser APIs it needs (matrix=False: a harness self-test, left out of the README table; "
        "browsers: a non-parametrized test driving these browsers itself through pages_in)",
    )
    if not config.pluginmanager.has_plugin("e2e-results"):
        config.pluginmanager.register(_RECORDER, "e2e-results")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "browser_name" in metafunc.fixturenames:
        names = browsers.selected(metafunc.config.getoption("--e2e-browser", default=[]))
        metafunc.parametrize("browser_name", names, indirect=True, scope="session")


def _unsupported(item: pytest.Item, name: str | None) -> str | None:
    if name is None or name not in _CAPS:
        return None
    version, caps = _CAPS[name]
    return browsers.unsupported_reason(name, version, caps, feature_of(item)[1])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_items_under(_HERE, pytest.mark.e2e, items)
    # a multi-browser test runs when all its browsers are selected (--e2e-browser firefox
    # alone must not launch Chromium); it is not run once per selected browser
    chosen = set(browsers.selected(config.getoption("--e2e-browser", default=[])))
    out = [i for i in items if not set(multi_browsers(i)) - chosen]
    if len(out) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in out])
        items[:] = out


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
    _CURRENT[:] = [item]
    for _, lines in _LOGS:
        lines.append(f"----- test {item.nodeid} -----")
    # known at once for every test after the first of its browser: no fixture is built
    reason = _unsupported(item, browser_of(item))
    if reason:
        pytest.skip(UNSUPPORTED + reason)


def _skip_if_unsupported() -> None:
    """Inside fixtures: the current test's browser lacks what its feature needs."""
    if _CURRENT:
        reason = _unsupported(_CURRENT[0], browser_of(_CURRENT[0]))
        if reason:
            pytest.skip(UNSUPPORTED + reason)


# ------------------------------------------------------------------ browser


@pytest.fixture(scope="session")
def browser_name(request: pytest.FixtureRequest) -> str:
    """The browser of this test (parametrized by pytest_generate_tests)."""
    return str(request.param)


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Any]:
    """A getter for the session's sync Playwright, started on first use (a WebKit-only run
    never starts it); stopped after every browser that used it."""
    holder: list[Any] = []

    def get() -> Any:
        if not holder:
            holder.append(browsers.start_playwright())
        return holder[0]

    try:
        yield get
    finally:
        if holder:
            holder[0].stop()


@pytest.fixture(scope="session")
def probe_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticServer]:
    """A blank page on http://127.0.0.1 (a secure context) for the capability probe."""
    d = tmp_path_factory.mktemp("probe")
    (d / "index.html").write_text("<!doctype html><meta charset=utf-8><title>probe</title>")
    s = StaticServer(d)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def browser(browser_name: str, playwright_session: Any, probe_server: StaticServer) -> Iterator[Any]:
    b = browsers.launch(browser_name, playwright_session)
    try:
        version = browsers.version_of(browser_name, b)
        ctx = b.new_context()
        try:
            page = ctx.new_page()
            page.goto(probe_server.url)
            caps = browsers.probe(page)
        finally:
            ctx.close()
        _CAPS[browser_name] = (version, caps)
        _RECORDER.record_browser(browser_name, version, caps)
        yield b
    finally:
        b.close()


@pytest.fixture(scope="session")
def browser_caps(browser_name: str, browser: Any) -> dict[str, Any]:
    """What the capability probe measured in this browser (e2e/browsers.py PROBE_JS)."""
    return _CAPS[browser_name][1]


@pytest.fixture(autouse=True)
def _browser_support(request: pytest.FixtureRequest) -> None:
    """The first test of each browser: its probe ran only when the browser launched."""
    if "browser_name" in request.fixturenames:
        request.getfixturevalue("browser")
        _skip_if_unsupported()


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
        _skip_if_unsupported()
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


@pytest.fixture
def pages_in(
    request: pytest.FixtureRequest, playwright_session: Any, probe_server: StaticServer
) -> Iterator[Any]:
    """``pages_in(name)``: a PageFactory in browser ``name`` launched for this test (see the
    module doc); browsers and their pages are closed afterwards."""
    launched: dict[str, tuple[Any, PageFactory]] = {}
    names = multi_browsers(request.node)

    def get(name: str) -> PageFactory:
        if name not in names:
            raise AssertionError(f"{request.node.nodeid} drives {name}: name it in browser_feature(browsers=...)")
        if name not in launched:
            b = browsers.launch(name, playwright_session)
            factory = PageFactory(b, name)
            launched[name] = (b, factory)
            version = browsers.version_of(name, b)
            ctx = b.new_context()
            try:
                page = ctx.new_page()
                page.goto(probe_server.url)
                caps = browsers.probe(page)
            finally:
                ctx.close()
            _RECORDER.record_browser(name, version, caps)
            reason = browsers.unsupported_reason(name, version, caps, feature_of(request.node)[1])
            if reason:
                pytest.skip(UNSUPPORTED + reason)
        return launched[name][1]

    try:
        yield get
    finally:
        for b, factory in launched.values():
            factory.close()
            try:
                b.close()
            except Exception:  # a browser that died already
                pass


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
