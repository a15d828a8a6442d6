"""Headless Chromium against ``pywasm-relay --webtransport-backend aiopquic``, run *inside* a
private network namespace (aiopquic binds its UDP port on every address):

    unshare -n -- .venv/bin/python -m e2e.pquic_browser WORKDIR [ECHO_BYTES]

Everything lives in the namespace with only ``lo`` up: the relay (from
.cache/venv-relay-pquic, serving .cache/site), the js-libp2p page's static server, and
Chromium, which Playwright drives over a pipe. Prints one JSON object (last stdout line):
what the js-libp2p page (@libp2p/webtransport) and the pywasm page (Pyodide) saw when
dialing, pinging and echoing over WebTransport. e2e/test_webtransport_pquic.py asserts.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

from e2e.harness import CHROMIUM, CHROMIUM_ARGS, SITE, StaticServer, boot_node, build_js_page, must, must_py, run_js
from e2e.test_webtransport import JS_ECHO, PY_ECHO
from tests.native.pquic_scenarios import Relay, lo_up

WT_LISTEN = "/ip4/127.0.0.1/udp/0/quic-v1/webtransport"


def _wt(addrs: list[str]) -> str:
    return next(a for a in addrs if "/webtransport/" in a and "/p2p/" in a)


def _js_page(browser: Any, server: StaticServer, addr: str, size: int) -> dict[str, Any]:
    page = browser.new_page()
    try:
        page.goto(server.url)
        must(page, "while (!window.jsp2p) await new Promise(r => setTimeout(r, 20)); return true", timeout=20)
        dial = must(page, "return await window.jsp2p.dial(arg, 20000)", addr, timeout=30)
        echo = must(page, JS_ECHO, [addr, size], timeout=120)
        return {"dial": dial, "echo": echo}
    finally:
        page.close()


def _pywasm_page(browser: Any, url: str, addr: str, size: int) -> dict[str, Any]:
    page = browser.new_page()
    try:
        boot_node(page, url)
        # first a certhash the relay never had (before any connection to the relay exists,
        # which a dial would reuse): the browser refuses the session, the relay serves on
        head, peer = addr.split("/p2p/")
        bogus = head.split("/certhash/")[0] + "/certhash/uEiDrNhtdZ8oTuzdfwhGlVuPHQVbQ86qlFW4tMFRfCLSU0Q"
        bad = run_js(page, "return await window.e2eNode.dial(arg)", f"{bogus}/p2p/{peer}", timeout=30)
        remote = must(page, "return await window.e2eNode.dial(arg)", addr, timeout=30)
        rtt = must(page, "return await window.e2eNode.ping(arg)", addr, timeout=30)
        conns = must(page, "return window.e2eNode.connections()", timeout=10)
        echo = must_py(page, PY_ECHO, [addr, size], timeout=120)
        return {"remote": remote, "rtt": rtt, "conns": conns, "echo": echo,
                "bad_certhash": {"ok": bad["ok"], "error": bad.get("error", "")}}
    finally:
        page.close()


def main() -> None:
    work = Path(sys.argv[1])
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 20
    work.mkdir(parents=True, exist_ok=True)
    lo_up()
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    relay = Relay(work, site=SITE, listen=("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws", WT_LISTEN))
    server = StaticServer(build_js_page())
    try:
        url, addrs = relay.startup()
        addr = _wt(addrs)
        out["addr"] = addr
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True)
            try:
                out["version"] = browser.version
                for name, fn in (("js", lambda: _js_page(browser, server, addr, size)),
                                 ("pywasm", lambda: _pywasm_page(browser, url, addr, size))):
                    try:
                        out[name] = fn()
                    except Exception as exc:  # noqa: BLE001 - reported, the test asserts
                        out[name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-2000:]}
            finally:
                browser.close()
        out["relay_alive"] = relay.proc.poll() is None
    finally:
        server.close()
        out["relay_rc"] = relay.stop()
        out["relay_log_tail"] = relay.log_path.read_text(errors="replace")[-3000:]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
