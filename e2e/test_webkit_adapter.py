"""The page API the e2e tests rely on behaves alike in every browser: Playwright's pages in
Chromium and Firefox, and the WebDriver adapter for WebKitGTK (e2e/webkit/driver.py).

Run in all three, so the adapter is held to what Playwright does (navigation with a
response status, evaluate of a function with an argument or of an expression, errors
raised in Python, console messages and page errors reaching listeners, wait_for_function)
and so is run_js's deadline. No Pyodide: seconds per browser.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.harness import StaticServer, run_js

pytestmark = pytest.mark.browser_feature("harness: page API parity (Playwright / WebKit adapter)", matrix=False)

PAGE = """<!doctype html><meta charset="utf-8"><title>adapter</title>
<script>window.loaded = 'yes'</script>"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticServer]:
    d: Path = tmp_path_factory.mktemp("adapter")
    (d / "index.html").write_text(PAGE)
    s = StaticServer(d)
    try:
        yield s
    finally:
        s.close()


def test_navigation_and_evaluate(page: Any, site: StaticServer) -> None:
    resp = page.goto(site.url)
    assert resp is not None and resp.ok and resp.status == 200
    assert page.evaluate("window.loaded") == "yes"
    assert page.evaluate("(a) => a.x + a.y.length", {"x": 40, "y": [1, 2]}) == 42
    assert page.evaluate("async () => { await new Promise(r => setTimeout(r, 10)); return [1, 'two', null] }") == [1, "two", None]
    assert page.evaluate("() => undefined") is None
    # a secure context: what WebCrypto and WebTransport need
    assert page.evaluate("isSecureContext") is True
    missing = page.goto(site.url + "nope.html")
    assert missing is not None and not missing.ok and missing.status == 404


def test_errors_console_and_waiting(page: Any, site: StaticServer) -> None:
    seen: list[tuple[str, str]] = []
    errors: list[str] = []
    page.on("console", lambda m: seen.append((m.type, m.text)))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site.url)
    with pytest.raises(Exception) as info:
        page.evaluate("() => { throw new TypeError('adapter-boom') }")
    assert "adapter-boom" in str(info.value)
    page.evaluate("() => { console.log('adapter-hello', 7); console.warn('adapter-warn'); "
                  "setTimeout(() => { throw new Error('adapter-uncaught') }, 0) }")
    page.evaluate("() => { window.later = false; setTimeout(() => { window.later = true }, 150) }")
    t0 = time.monotonic()
    page.wait_for_function("window.later === true", timeout=5000)
    assert time.monotonic() - t0 < 5
    page.evaluate("1")  # the adapter delivers console lines with each evaluate
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (errors and len(seen) >= 2):
        time.sleep(0.05)  # Playwright delivers events asynchronously
        page.evaluate("1")
    assert ("log", "adapter-hello 7") in seen, seen
    assert ("warning", "adapter-warn") in seen, seen
    assert any("adapter-uncaught" in e for e in errors), errors


def test_run_js_deadline(page: Any, site: StaticServer) -> None:
    page.goto(site.url)
    ok = run_js(page, "return arg * 2", 21, timeout=5)
    assert ok["ok"] and ok["value"] == 42
    hung = run_js(page, "await new Promise(() => {})", None, timeout=1)
    assert not hung["ok"] and hung["timeout"], hung
    assert 900 <= hung["ms"] < 5000, hung
