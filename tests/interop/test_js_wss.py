"""js-libp2p 3.3 (Node, @libp2p/websockets over the `ws` package) dials a pywasm host
listening on ``/tls/ws``: TLS with a certificate Node trusts through NODE_EXTRA_CA_CERTS,
then Noise, yamux, identify, ping and a 1 MiB echo, as over plain ``/ws``."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from pathlib import Path

import pytest

from pywasm.transports.tcp import TCPTransport
from pywasm.transports.websocket import WebSocketTransport, server_tls_context
from tests.interop.harness import PeerSet
from tests.interop.pw import NOISE, check_dial_report, pywasm_host

pytestmark = pytest.mark.interop


def _certificate(directory: Path) -> tuple[str, str]:
    """A self-signed ECDSA certificate for 127.0.0.1 and localhost (cert, key paths)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


async def test_js_dials_pywasm_over_tls_ws(peers: PeerSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = _certificate(tmp_path)
    ws = WebSocketTransport(server_ssl_context=server_tls_context(cert, key))
    async with pywasm_host(listen=["/ip4/127.0.0.1/tcp/0/tls/ws"], transports=[TCPTransport(), ws]) as host:
        (target,) = [str(a) for a in host.addrs() if "/tls/ws/p2p/" in str(a)]
        # without trusting the certificate, js's WebSocket refuses the connection
        with pytest.raises(AssertionError, match="js-dialer failed: .*network error"):
            await asyncio.to_thread(peers.dial, "js", target, "--timeout-ms", "10000")
        monkeypatch.setenv("NODE_EXTRA_CA_CERTS", cert)  # read by the dialer process at start
        res = await asyncio.to_thread(peers.dial, "js", target, "--muxer", "yamux")
        ident = check_dial_report(res, host, "yamux")
        assert res["encryption"] == NOISE
        assert ident["agent"], ident
        assert res["echo"]["ok"] and res["echo"]["bytes"] == 1024 * 1024, res["echo"]
