"""/wss from a pywasm page: the browser WebSocket shim dials ``wss://`` and the same Python
Noise + yamux stack runs over it.

pywasm-relay has no TLS listener, so this test puts a test-only TLS front before the
relay's /ws port: an asyncio TLS server on 127.0.0.1 (self-signed certificate for
localhost / 127.0.0.1, made here with `cryptography`) that pipes the decrypted bytes to the
relay's plain /ws TCP port. The WebSocket handshake and everything above it is end to end
between the page and the relay.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from e2e import browsers
from e2e.conftest import _LOGS, _attach_logging
from e2e.harness import boot_node, must, must_py, run_js

pytestmark = pytest.mark.browser_feature("/wss (TLS WebSocket) page -> relay, Noise + yamux", needs=("WebSocket",))


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class TlsFront:
    """TLS on 127.0.0.1:<ephemeral> -> plain TCP to 127.0.0.1:<target>, on its own loop thread."""

    def __init__(self, target_port: int, cert: Path, key: Path) -> None:
        self.target_port = target_port
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(str(cert), str(key))
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.thread = threading.Thread(target=self._run, name="e2e-tls-front", daemon=True)
        self.thread.start()
        if not self._ready.wait(10):
            raise AssertionError("TLS front did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ctx)
        )
        self.port = self.server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        self.connections += 1
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(256 * 1024):
                    w.write(data)
                    await w.drain()
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
                pass
            finally:
                try:
                    w.close()
                except Exception:
                    pass

        try:
            await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        finally:
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]

    def close(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def tls_front(relay) -> Iterator[TlsFront]:
    ws = relay.ws_addr.split("/p2p/")[0]  # /ip4/127.0.0.1/tcp/<port>/ws
    port = int(ws.split("/tcp/")[1].split("/")[0])
    with tempfile.TemporaryDirectory(prefix="pywasm-e2e-tls-") as d:
        cert, key = _self_signed(Path(d))
        front = TlsFront(port, cert, key)
        try:
            yield front
        finally:
            front.close()


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


def test_page_dials_relay_over_wss(insecure_page, live_relay, tls_front):
    page = insecure_page
    boot_node(page, live_relay.url)
    pid = live_relay.peer_id
    # the new spelling of wss, with the TLS server name apart from the IP
    tls_addr = f"/ip4/127.0.0.1/tcp/{tls_front.port}/tls/sni/localhost/ws/p2p/{pid}"
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
    assert tls_front.connections >= 1

    # the classic spelling, from a second Host in the same page (no connection to reuse)
    dns_addr = f"/dns4/localhost/tcp/{tls_front.port}/wss/p2p/{pid}"
    before = tls_front.connections
    res2 = must_py(
        page,
        """
from pywasm import browser_node
node = await browser_node.create()
try:
    result = {"remote": await node.dial(arg), "rtt": await node.ping(arg), "conns": node.connections()}
finally:
    await node.stop()
""",
        dns_addr,
        timeout=40,
    )
    print(f"E2E-WSS {dns_addr}: ping {res2['rtt']:.2f} ms")
    assert res2["remote"] == pid and res2["rtt"] > 0, res2
    assert any("/wss" in c["addr"] for c in res2["conns"]), res2
    assert tls_front.connections > before
    run_js(page, "await window.e2eNode.stop()", timeout=15)
