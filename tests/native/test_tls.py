"""``/tls/1.0.0`` (pywasm.security.tls) over real loopback TCP: pywasm <-> pywasm.

The Stream contract of the secured connection is checked with the shared conformance
suite; hosts run identify/ping/echo over TLS with yamux and mplex, the muxer agreed in
ALPN (no multistream round for it), and bad peers get typed errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
from typing import Any, AsyncIterator

import pytest

pytest.importorskip("OpenSSL")

from OpenSSL import SSL  # noqa: E402

from pywasm.errors import DialError, HandshakeError, PeerIdMismatchError, PywasmError  # noqa: E402
from pywasm.host import Host, upgrader  # noqa: E402
from pywasm.identity import KeyType, PeerId, PrivateKey  # noqa: E402
from pywasm.multiformats.multiaddr import Multiaddr  # noqa: E402
from pywasm.muxers import MplexMuxer, YamuxMuxer  # noqa: E402
from pywasm.security.noise import NoiseSecurity  # noqa: E402
from pywasm.security.tls import TLSConnection, TLSError, TLSSecurity  # noqa: E402
from pywasm.security.tls_cert import TLSCertificateError, generate_certificate  # noqa: E402
from pywasm.streams import Stream  # noqa: E402
from pywasm.transports.tcp import TCPTransport  # noqa: E402
from tests.conformance.stream_suite import STREAM_CHECKS, StreamTraits, _with_timeout, read_exactly  # noqa: E402

MIB = 1024 * 1024
TIMEOUT = 30.0
MUXERS = {"yamux": YamuxMuxer, "mplex": MplexMuxer}


async def bounded(aw: Any, timeout: float = TIMEOUT) -> Any:
    return await asyncio.wait_for(aw, timeout)


# --- raw TCP pairs, secured by TLS directly ------------------------------------------------


@contextlib.asynccontextmanager
async def tcp_pair() -> AsyncIterator[tuple[Any, Any]]:
    accepted: asyncio.Queue[Any] = asyncio.Queue()
    gone = asyncio.Event()

    async def handler(conn: Any) -> None:
        await accepted.put(conn)
        await gone.wait()

    transport = TCPTransport()
    listener = await transport.listen(Multiaddr("/ip4/127.0.0.1/tcp/0"), handler)
    try:
        dialed = await transport.dial(listener.addrs[0])
        inbound = await bounded(accepted.get(), 5)
        try:
            yield dialed, inbound
        finally:
            for end in (dialed, inbound):
                with contextlib.suppress(PywasmError):
                    await end.reset()
    finally:
        gone.set()
        await listener.close()


async def secure_pair(
    a_raw: Any, b_raw: Any, a_muxers: tuple[str, ...] = (), b_muxers: tuple[str, ...] = ()
) -> tuple[TLSConnection, TLSConnection]:
    ka, kb = await PrivateKey.generate(), await PrivateKey.generate(KeyType.Secp256k1)
    sa, sb = TLSSecurity(ka, a_muxers), TLSSecurity(kb, b_muxers)
    return await bounded(
        asyncio.gather(sa.secure_outbound(a_raw, kb.to_peer_id()), sb.secure_inbound(b_raw))
    )


@contextlib.asynccontextmanager
async def tls_pair() -> AsyncIterator[tuple[Stream, Stream]]:
    async with tcp_pair() as (a_raw, b_raw):
        a, b = await secure_pair(a_raw, b_raw)
        try:
            yield a, b
        finally:
            for end in (a, b):
                with contextlib.suppress(PywasmError):
                    await end.close()


# TCP's own buffers (tests/native/test_transports.py) plus one TLS write chunk
TLS_TRAITS = StreamTraits(max_unread_bytes=16 * MIB + 512 * 1024)


@pytest.mark.parametrize("check", STREAM_CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
async def test_tls_stream_conformance(check: Any) -> None:
    await _with_timeout(check(tls_pair, TLS_TRAITS))


async def test_identities_and_alpn() -> None:
    async with tcp_pair() as (a_raw, b_raw):
        ka, kb = await PrivateKey.generate(KeyType.RSA), await PrivateKey.generate(KeyType.ECDSA)
        a, b = await bounded(
            asyncio.gather(
                TLSSecurity(ka, ["/yamux/1.0.0", "/mplex/6.7.0"]).secure_outbound(a_raw, kb.to_peer_id()),
                TLSSecurity(kb, ["/mplex/6.7.0"]).secure_inbound(b_raw),
            )
        )
        assert a.remote_peer == kb.to_peer_id() and b.remote_peer == ka.to_peer_id()
        assert a.remote_public_key == kb.public_key and b.remote_public_key == ka.public_key
        assert a.local_peer == ka.to_peer_id()
        # the server takes the first muxer of the client's list that it has
        assert a.early_muxer == b.early_muxer == "/mplex/6.7.0"
        await a.write(b"ping")
        assert await bounded(read_exactly(b, 4)) == b"ping"


async def test_alpn_libp2p_only() -> None:
    async with tcp_pair() as (a_raw, b_raw):
        a, b = await secure_pair(a_raw, b_raw, ("/yamux/1.0.0",), ())
        assert a.alpn == b.alpn == "libp2p"
        assert a.early_muxer is None and b.early_muxer is None


async def test_half_close_keeps_the_other_direction() -> None:
    async with tls_pair() as (a, b):
        await a.write(b"request")
        await a.close_write()
        assert await bounded(read_exactly(b, 7)) == b"request"
        assert await bounded(b.read()) == b""
        big = os.urandom(3 * MIB)
        await bounded(b.write(big))
        await b.close_write()
        assert await bounded(read_exactly(a, len(big))) == big
        assert await bounded(a.read()) == b""


async def test_wrong_peer_rejected_directly() -> None:
    async with tcp_pair() as (a_raw, b_raw):
        stranger = (await PrivateKey.generate()).to_peer_id()
        server = TLSSecurity(await PrivateKey.generate())
        inbound = asyncio.ensure_future(server.secure_inbound(b_raw))
        with pytest.raises(PeerIdMismatchError):
            await bounded(TLSSecurity(await PrivateKey.generate()).secure_outbound(a_raw, stranger))
        # the server either finished (then sees the reset) or fails typed; never hangs
        with contextlib.suppress(PywasmError):
            conn = await bounded(inbound)
            with pytest.raises(PywasmError):
                while await bounded(conn.read()):
                    pass
                raise PywasmError("EOF")  # a clean EOF is fine too


@pytest.mark.parametrize(
    "garbage",
    [b"GET / HTTP/1.1\r\n\r\n" * 4, os.urandom(4096), b"\x16\x03\x01\x00\x05hello", b"\x16\x03\x01\xff\xff" + b"A" * 60000],
    ids=["http", "random", "short-record", "huge-record"],
)
async def test_garbage_handshake_is_a_typed_error(garbage: bytes) -> None:
    async with tcp_pair() as (a_raw, b_raw):
        server = TLSSecurity(await PrivateKey.generate(), handshake_timeout=3.0)
        inbound = asyncio.ensure_future(server.secure_inbound(b_raw))
        await a_raw.write(garbage)
        await a_raw.close_write()
        with pytest.raises(TLSError, match="TLS handshake failed|closed during the TLS handshake") as info:
            await bounded(inbound, 10)
        assert "\n" not in str(info.value)


async def test_silent_peer_times_out() -> None:
    async with tcp_pair() as (a_raw, b_raw):
        server = TLSSecurity(await PrivateKey.generate(), handshake_timeout=0.5)
        with pytest.raises(HandshakeError, match="did not finish"):
            await bounded(server.secure_inbound(b_raw), 5)
        del a_raw


def _foreign_client_context(alpn: list[bytes], cert: Any | None) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
    ctx.set_verify(SSL.VERIFY_PEER, lambda *a: True)
    ctx.set_alpn_protos(alpn)
    if cert is not None:
        ctx.use_certificate(cert.certificate)
        ctx.use_privatekey(cert.private_key)
    return ctx


async def _foreign_client(raw: Any, ctx: SSL.Context) -> None:
    """A plain OpenSSL client driven over ``raw`` until its handshake ends either way."""
    ssl = SSL.Connection(ctx, None)
    ssl.set_connect_state()
    while True:
        try:
            ssl.do_handshake()
            break
        except SSL.WantReadError:
            pass
        out = b""
        with contextlib.suppress(SSL.WantReadError):
            out = ssl.bio_read(65536)
        if out:
            await raw.write(out)
        chunk = await raw.read(65536)
        if not chunk:
            return
        ssl.bio_write(chunk)
    with contextlib.suppress(SSL.WantReadError):
        await raw.write(ssl.bio_read(65536))


async def test_server_rejects_alpn_without_libp2p() -> None:
    async with tcp_pair() as (a_raw, b_raw):
        cert = await generate_certificate(await PrivateKey.generate())
        server = TLSSecurity(await PrivateKey.generate(), ["/yamux/1.0.0"])
        inbound = asyncio.ensure_future(server.secure_inbound(b_raw))
        client = asyncio.ensure_future(_foreign_client(a_raw, _foreign_client_context([b"h2"], cert)))
        with pytest.raises(TLSError, match="ALPN"):
            await bounded(inbound, 10)
        with contextlib.suppress(Exception):
            await bounded(client, 5)


async def test_server_requires_a_client_certificate() -> None:
    async with tcp_pair() as (a_raw, b_raw):
        server = TLSSecurity(await PrivateKey.generate())
        inbound = asyncio.ensure_future(server.secure_inbound(b_raw))
        client = asyncio.ensure_future(_foreign_client(a_raw, _foreign_client_context([b"libp2p"], None)))
        with pytest.raises(HandshakeError):
            await bounded(inbound, 10)
        with contextlib.suppress(Exception):
            await bounded(client, 5)


async def test_plain_certificate_is_rejected() -> None:
    # a client certificate without the libp2p extension: TLS succeeds, libp2p must not
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plain")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )

    class Plain:
        certificate = cert
        private_key = key

    async with tcp_pair() as (a_raw, b_raw):
        server = TLSSecurity(await PrivateKey.generate())
        inbound = asyncio.ensure_future(server.secure_inbound(b_raw))
        client = asyncio.ensure_future(_foreign_client(a_raw, _foreign_client_context([b"libp2p"], Plain)))
        with pytest.raises(TLSCertificateError, match="no libp2p public key extension"):
            await bounded(inbound, 10)
        with contextlib.suppress(Exception):
            await bounded(client, 5)


# --- hosts ---------------------------------------------------------------------------------


async def tls_host(listen: list[str], muxers: list[str] | None = None, *, tls_muxers: bool = True) -> Host:
    key = await PrivateKey.generate()
    mux = [MUXERS[m]() for m in (muxers or ["yamux", "mplex"])]
    offered = [m.protocol_id for m in mux] if tls_muxers else []
    return await Host.create(key, listen=listen, security=[TLSSecurity(key, offered)], muxers=mux)


@contextlib.asynccontextmanager
async def host_pair(
    server_muxers: list[str] | None = None, client_muxers: list[str] | None = None, *, tls_muxers: bool = True
) -> AsyncIterator[tuple[Host, Host, str]]:
    server = await tls_host(["/ip4/127.0.0.1/tcp/0"], server_muxers, tls_muxers=tls_muxers)
    client = await tls_host([], client_muxers, tls_muxers=tls_muxers)
    try:
        yield server, client, str(server.addrs()[0])
    finally:
        await bounded(client.stop())
        await bounded(server.stop())


@contextlib.contextmanager
def count_negotiations(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Count multistream-select rounds the upgrader runs (security + maybe muxer)."""
    calls: list[str] = []
    for name in ("negotiate_outbound", "negotiate_inbound"):
        real = getattr(upgrader, name)

        def spy(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            calls.append(_name)
            return _real(*args, **kw)

        monkeypatch.setattr(upgrader, name, spy)
    yield calls


@pytest.mark.parametrize("muxer", ["yamux", "mplex"])
async def test_host_session_over_tls(muxer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with count_negotiations(monkeypatch) as calls:
        async with host_pair([muxer], ["yamux", "mplex"]) as (server, client, addr):
            conn = await bounded(client.dial(addr))
            assert conn.security_protocol == "/tls/1.0.0"
            assert conn.muxer_protocol == MUXERS[muxer].protocol_id
            # ALPN agreed the muxer: one multistream round (the security one) per side
            await bounded(asyncio.sleep(0.05))
            assert sorted(calls) == ["negotiate_inbound", "negotiate_outbound"]

            info = await bounded(client.services["identify"].identified(conn))
            assert info.public_key == server.private_key.public_key
            assert 0 <= await bounded(client.services["ping"].ping(conn)) < 5
            data = os.urandom(16 * MIB)
            assert await bounded(client.services["echo"].echo(conn, data), 60) == data
            (server_conn,) = server.connections_to(client.peer_id)
            assert server_conn.security_protocol == "/tls/1.0.0"


async def test_host_without_alpn_muxers_negotiates(monkeypatch: pytest.MonkeyPatch) -> None:
    with count_negotiations(monkeypatch) as calls:
        async with host_pair(tls_muxers=False) as (_server, client, addr):
            conn = await bounded(client.dial(addr))
            assert conn.muxer_protocol == "/yamux/1.0.0"
            await bounded(asyncio.sleep(0.05))
            # "libp2p" in ALPN: the muxer goes through multistream-select as well
            assert len(calls) == 4
            assert 0 <= await bounded(client.services["ping"].ping(conn)) < 5


async def test_host_wrong_peer_id() -> None:
    async with host_pair() as (_server, client, addr):
        stranger = PeerId.from_public_key((await PrivateKey.generate(KeyType.Ed25519)).public_key)
        wrong = addr.rsplit("/p2p/", 1)[0] + f"/p2p/{stranger}"
        with pytest.raises(DialError) as info:
            await bounded(client.dial(wrong))
        assert "\n" not in str(info.value) and str(stranger) in str(info.value)
        await bounded(client.dial(addr))


async def test_noise_and_tls_side_by_side() -> None:
    # a host offering both (noise first) talks to a TLS-only and a noise-only peer
    key = await PrivateKey.generate()
    ids = ["/yamux/1.0.0", "/mplex/6.7.0"]
    both = await Host.create(
        key,
        listen=["/ip4/127.0.0.1/tcp/0"],
        security=[NoiseSecurity(key, ids), TLSSecurity(key, ids)],
    )
    tls_only = await tls_host([])
    nkey = await PrivateKey.generate()
    noise_only = await Host.create(nkey, listen=[], security=[NoiseSecurity(nkey, ids)])
    try:
        addr = str(both.addrs()[0])
        c1 = await bounded(tls_only.dial(addr))
        c2 = await bounded(noise_only.dial(addr))
        assert (c1.security_protocol, c2.security_protocol) == ("/tls/1.0.0", "/noise")
        for h, c in ((tls_only, c1), (noise_only, c2)):
            assert 0 <= await bounded(h.services["ping"].ping(c)) < 5
    finally:
        for h in (tls_only, noise_only, both):
            await bounded(h.stop())


def _multistream_msg(text: str) -> bytes:
    body = text.encode() + b"\n"
    return bytes([len(body)]) + body


async def test_garbage_after_selecting_tls_keeps_host_serving() -> None:
    async with host_pair() as (server, client, addr):
        port = int(addr.split("/tcp/")[1].split("/")[0])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(_multistream_msg("/multistream/1.0.0") + _multistream_msg("/tls/1.0.0"))
            await writer.drain()
            got = b""
            while got.count(b"\n") < 2:
                chunk = await bounded(reader.read(100), 5)
                assert chunk
                got += chunk
            assert b"/tls/1.0.0\n" in got
            writer.write(os.urandom(2000))
            await writer.drain()
            # the server gives up on us: EOF or reset, within the handshake timeout
            with contextlib.suppress(ConnectionError):
                while await bounded(reader.read(65536), 15):
                    pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        # ... and keeps serving everyone else
        conn = await bounded(client.dial(addr))
        assert 0 <= await bounded(client.services["ping"].ping(conn)) < 5
        assert all(c.security_protocol == "/tls/1.0.0" for c in server.connections)


async def test_certificate_made_once_and_renewed() -> None:
    sec = TLSSecurity(await PrivateKey.generate())
    first = await sec.certificate()
    assert await sec.certificate() is first
    # a certificate with less than a day left is replaced on next use
    expiring = await generate_certificate(sec.private_key, valid_for=datetime.timedelta(hours=1))
    sec._cert = expiring
    renewed = await sec.certificate()
    assert renewed is not expiring
    assert renewed.not_after - datetime.datetime.now(datetime.timezone.utc) > datetime.timedelta(days=300)
