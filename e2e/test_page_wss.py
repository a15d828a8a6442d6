"""/wss from a pywasm page to pywasm-relay's own TLS WebSocket listener: the browser
WebSocket shim dials ``wss://`` and the same Python Noise + yamux stack runs over it.

The relay listens on ``/tls/ws`` with ``--tls-cert``/``--tls-key`` (a self-signed
certificate for localhost / 127.0.0.1, made here with `cryptography`); the page accepts
it only because this test's browser context ignores certificate errors.
"""

from __future__ import annotations

import json
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from e2e import browsers
from e2e.conftest import _LOGS, _attach_logging, _start_relay, _stop_relay
from e2e.harness import LOOPBACK_LISTEN, Relay, boot_node, must, must_py, run_js
from tests._certs import self_signed

pytestmark = pytest.mark.browser_feature("/wss (TLS WebSocket) page -> relay, Noise + yamux", needs=("WebSocket",))


@pytest.fixture
def wss_relay() -> Iterator[Relay]:
    """A relay of this test's own, listening on /tls/ws beside its usual addresses."""
    with tempfile.TemporaryDirectory(prefix="pywasm-e2e-tls-") as d:
        cert, key = self_signed(Path(d))
        r = _start_relay(listen=[*LOOPBACK_LISTEN, "/ip4/127.0.0.1/tcp/0/tls/ws"],
                         extra_args=["--tls-cert", str(cert), "--tls-key", str(key)])
        try:
            yield r
        finally:
            _stop_relay(r)


@pytest.fixture
def insecure_page(browser, browser_name, playwright_session) -> Iterator[Any]:
    """A page that accepts the test's self-signed certificate. TEST-ONLY, never elsewhere.

    Chromium: a separate Chromium with --ignore-certificate-errors (as before the browser
    matrix; one more launch, ~1 s). Firefox: a context with
    ignore_https_errors (BiDi acceptInsecureCerts). WebKitGTK: a page whose WebDriver
    session has acceptInsecureCerts.
    """
    own = browsers.launch("chromium", playwright_session, insecure=True) if browser_name == "chromium" else None
    b = own or browser
    ctx = None
    try:
        ctx = b.new_context(ignore_https_errors=True)
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        page.e2e_log = _attach_logging(page, "wss")
        yield page
    finally:
        if ctx is not None:
            ctx.close()
        if own is not None:
            own.close()
        _LOGS[:] = [(n, lines) for n, lines in _LOGS if n != "wss"]


def test_page_dials_relay_over_wss(insecure_page, wss_relay):
    page = insecure_page
    boot_node(page, wss_relay.url)
    pid = wss_relay.peer_id
    tls = wss_relay.tls_ws_addr.split("/p2p/")[0]  # /ip4/127.0.0.1/tcp/<port>/tls/ws
    port = int(tls.split("/tcp/")[1].split("/")[0])
    # the relay offers it to browsers
    with urllib.request.urlopen(wss_relay.url + "relay.json", timeout=10) as resp:
        info = json.load(resp)
    assert wss_relay.tls_ws_addr in info["multiaddrs"], info
    # the new spelling of wss, with the TLS server name apart from the IP
    tls_addr = f"/ip4/127.0.0.1/tcp/{port}/tls/sni/localhost/ws/p2p/{pid}"
    res = must(
        page,
        "const n = window.e2eNode; const remote = String(await n.dial(arg));"
        "const rtt = await n.ping(arg); return { remote, rtt, conns: n.connections() }",
        tls_addr,
        timeout=40,
    )
    print(f"E2E-WSS {tls_addr}: ping {res['rtt']:.2f} ms")
    assert res["remote"] == pid, res
    assert res["rtt"] > 0, res
    conns = [c for c in res["conns"] if c["peer"] == pid]
    assert conns and "/tls/" in conns[0]["addr"] and "noise" in conns[0]["security"], res

    # the classic spelling, from a second Host in the same page (no connection to reuse),
    # with a 256 KiB echo over the TLS connection
    dns_addr = f"/dns4/localhost/tcp/{port}/wss/p2p/{pid}"
    res2 = must_py(
        page,
        """
import os
from pywasm import browser_node
node = await browser_node.create()
try:
    result = {"remote": await node.dial(arg), "rtt": await node.ping(arg), "conns": node.connections()}
    s = await node.host.new_stream(arg, ["/echo/1.0.0"])
    data = os.urandom(256 * 1024)
    await s.write(data)
    await s.close_write()
    got = bytearray()
    while chunk := await s.read(65536):
        got += chunk
    result["echo_ok"] = bytes(got) == data
finally:
    await node.stop()
""",
        dns_addr,
        timeout=40,
    )
    print(f"E2E-WSS {dns_addr}: ping {res2['rtt']:.2f} ms")
    assert res2["remote"] == pid and res2["rtt"] > 0, res2
    assert any("/wss" in c["addr"] for c in res2["conns"]), res2
    assert res2["echo_ok"], res2
    run_js(page, "await window.e2eNode.stop()", timeout=15)
