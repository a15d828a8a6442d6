"""``/tls/1.0.0`` over a raw connection (libp2p/specs tls/tls.md): :class:`TLSSecurity`.

Native only (pyOpenSSL). OpenSSL runs on memory BIOs: we move ciphertext between its
buffers and any pywasm :class:`~pywasm.streams.Stream`, so the same code secures TCP,
relayed or any other raw connection.

Handshake: TLS 1.3 only, both sides present a libp2p certificate
(:mod:`.tls_cert`), the server requires the client's. OpenSSL's own chain check is
switched off (the certificates are self-signed by design); after the handshake each side
runs :func:`~.tls_cert.verify_certificate` on the peer's single certificate and, when
dialing, checks the peer id. No SNI is sent (the spec reserves it).

ALPN carries the muxer ("inlined muxer negotiation"): the client offers its muxers in
preference order then ``"libp2p"``; the server takes the first offered muxer it has, else
``"libp2p"`` (then multistream-select picks the muxer), and aborts when neither is offered.

Half-close: ``close_write`` sends TLS ``close_notify`` (TLS 1.3 closes only that
direction) and then half-closes the raw connection, so peers that watch either signal see
EOF; reading goes on until the peer does the same. A raw EOF without ``close_notify`` also
reads as EOF (as for Noise, the muxer above detects truncated frames).

Data path: writes go to OpenSSL in ``WRITE_CHUNK`` pieces (16 KiB records each) and each
piece's ciphertext is handed to the raw connection in one write; reads pull up to
``READ_CHUNK`` ciphertext and decrypt every complete record, which bounds the plaintext
buffered ahead.
"""

from __future__ import annotations

import asyncio
import datetime
from collections import deque
from typing import TYPE_CHECKING, Any, Sequence

from OpenSSL import SSL

from ..errors import (
    HandshakeError,
    HandshakeTimeoutError,
    PeerIdMismatchError,
    PywasmError,
    StreamClosedError,
    StreamResetError,
)
from .tls_cert import ALPN_LIBP2P, LibP2PCertificate, TLSCertificateError, generate_certificate, verify_certificate

if TYPE_CHECKING:
    from ..identity import PeerId, PrivateKey, PublicKey
    from ..interfaces import RawConnection

PROTOCOL_ID = "/tls/1.0.0"
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
# plaintext handed to OpenSSL per SSL_write; its ciphertext is one raw write
WRITE_CHUNK = 256 * 1024
# ciphertext pulled from the raw connection per read; bounds plaintext buffered ahead
READ_CHUNK = 256 * 1024
# one SSL_read returns at most one record (16 KiB of plaintext)
_RECORD = 16 * 1024 + 256
# what one bio_read may take: a whole WRITE_CHUNK's records with their overhead
_BIO_READ = WRITE_CHUNK + 64 * 1024
# close() bounds how long it waits for a write in flight and for close_notify to go out
CLOSE_TIMEOUT = 5.0
# a certificate is renewed when it has less than this left
RENEW_MARGIN = datetime.timedelta(days=1)


class TLSError(HandshakeError):
    """The TLS handshake failed, or a TLS record on an established connection was bad."""


def _reason(exc: BaseException) -> str:
    """One line out of an OpenSSL error (pyOpenSSL nests tuples of strings)."""
    if isinstance(exc, SSL.Error) and exc.args:
        parts: list[str] = []
        errs = exc.args[0]
        if isinstance(errs, list):
            for e in errs:
                if isinstance(e, tuple) and e:
                    parts.append(str(e[-1]))
        if parts:
            return ", ".join(parts)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _drain_bio(ssl: SSL.Connection) -> bytes:
    """Everything OpenSSL has queued for the wire."""
    out: list[bytes] = []
    while True:
        try:
            out.append(ssl.bio_read(_BIO_READ))
        except SSL.WantReadError:
            break
    if not out:
        return b""
    return out[0] if len(out) == 1 else b"".join(out)


class TLSConnection:
    """A TLS-secured connection: implements SecureConnection and the Stream contract."""

    def __init__(
        self,
        raw: "RawConnection",
        ssl: SSL.Connection,
        *,
        local_peer: "PeerId",
        remote_public_key: "PublicKey",
        early_muxer: str | None,
        alpn: str | None,
        is_initiator: bool,
    ) -> None:
        from ..identity import PeerId

        self.raw = raw
        self.local_peer = local_peer
        self.remote_public_key = remote_public_key
        self.remote_peer: PeerId = PeerId.from_public_key(remote_public_key)
        self.early_muxer = early_muxer
        self.alpn = alpn
        self.is_initiator = is_initiator
        self._ssl = ssl
        # decrypted records not yet returned; _head/_head_pos is the partly read one
        self._plain: deque[bytes] = deque()
        self._head = b""
        self._head_pos = 0
        self._eof = False  # close_notify or raw EOF seen
        self._error: PywasmError | None = None
        self._write_closed = False
        self._reset = False
        self._read_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._flush_task: asyncio.Task[None] | None = None

    @property
    def local_addr(self) -> object:
        return getattr(self.raw, "local_addr", None)

    @property
    def remote_addr(self) -> object:
        return getattr(self.raw, "remote_addr", None)

    # --- reading --------------------------------------------------------------
    async def _fail(self, exc: PywasmError) -> None:
        self._error = exc
        self._plain.clear()
        self._head = b""
        try:
            await self.raw.reset()
        except PywasmError:
            pass

    def _decrypt(self) -> None:
        """Move every complete record from OpenSSL's input buffer into ``_plain``."""
        ssl = self._ssl
        plain = self._plain
        while True:
            try:
                data = ssl.recv(_RECORD)
            except SSL.WantReadError:
                return
            except SSL.ZeroReturnError:  # close_notify: the peer's write side is done
                self._eof = True
                return
            if data:
                plain.append(data)

    def _schedule_flush(self) -> None:
        """Send what reading made OpenSSL queue (e.g. a KeyUpdate reply, an alert).

        Only ever drained under the write lock, so records keep their order on the wire;
        a task, so a reader never waits behind a congested writer.
        """
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            async with self._write_lock:
                out = _drain_bio(self._ssl)
                if out and not self._reset:
                    await self.raw.write(out)
        except Exception:  # noqa: BLE001 - the reader or writer reports the failure
            pass

    async def _fill(self) -> bool:
        """Decrypt at least one non-empty record into the queue; False at EOF."""
        while not self._plain:
            if self._eof:
                return False
            try:
                self._decrypt()
            except SSL.Error as exc:
                err = TLSError(f"bad TLS record from {self.remote_peer}: {_reason(exc)}")
                await self._fail(err)
                raise err from None
            self._schedule_flush()
            if self._plain or self._eof:
                continue
            chunk = await self.raw.read(READ_CHUNK)
            if not chunk:
                self._eof = True
                return False
            self._ssl.bio_write(chunk)
        return True

    async def read(self, max_bytes: int = -1) -> bytes:
        if max_bytes == 0:
            return b""
        async with self._read_lock:
            if self._error is not None:
                raise TLSError(f"TLS connection failed earlier: {self._error}")
            head = self._head
            if not head:
                if not self._plain and not await self._fill():
                    return b""
                head = self._plain.popleft()
                self._head_pos = 0
            pos = self._head_pos
            avail = len(head) - pos
            if max_bytes < 0 or max_bytes >= avail:
                data = head if pos == 0 else head[pos:]
                self._head = b""
                if self._plain and (max_bytes < 0 or max_bytes > avail):
                    # coalesce queued records up to max_bytes: fewer, larger reads
                    parts = [data]
                    total = avail
                    while self._plain and (max_bytes < 0 or total + len(self._plain[0]) <= max_bytes):
                        nxt = self._plain.popleft()
                        parts.append(nxt)
                        total += len(nxt)
                    if len(parts) > 1:
                        data = b"".join(parts)
                return data
            self._head = head
            self._head_pos = pos + max_bytes
            return head[pos : pos + max_bytes]

    # --- writing ----------------------------------------------------------------
    def _check_writable(self) -> None:
        if self._reset:
            raise StreamResetError("TLS connection was reset")
        if self._write_closed:
            raise StreamClosedError("write side of the TLS connection is closed")
        if self._error is not None:
            raise TLSError(f"TLS connection failed earlier: {self._error}")

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self._check_writable()
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        total = len(view)
        if not total:
            return
        ssl = self._ssl
        async with self._write_lock:
            self._check_writable()
            pos = 0
            while pos < total:
                end = min(pos + WRITE_CHUNK, total)
                try:
                    while pos < end:
                        pos += ssl.send(view[pos:end])
                except SSL.Error as exc:
                    err = TLSError(f"TLS write failed: {_reason(exc)}")
                    await self._fail(err)
                    raise err from None
                await self.raw.write(_drain_bio(ssl))

    async def close_write(self) -> None:
        if self._write_closed:
            return
        async with self._write_lock:
            if self._write_closed:
                return
            self._write_closed = True
            await self._send_close_notify()
            await self.raw.close_write()

    async def _send_close_notify(self) -> None:
        # caller holds the write lock
        if self._error is not None or self._reset:
            return
        try:
            self._ssl.shutdown()
        except SSL.Error:
            return
        out = _drain_bio(self._ssl)
        if out:
            await self.raw.write(out)

    async def close(self) -> None:
        if not self._write_closed:
            self._write_closed = True
            try:
                # wait briefly for a write in flight so its records are not cut in half,
                # then say goodbye properly
                await asyncio.wait_for(self._write_lock.acquire(), CLOSE_TIMEOUT)
                try:
                    await asyncio.wait_for(self._send_close_notify(), CLOSE_TIMEOUT)
                except (asyncio.TimeoutError, PywasmError, OSError):
                    pass
                finally:
                    self._write_lock.release()
            except asyncio.TimeoutError:
                pass
        await self.raw.close()

    async def reset(self) -> None:
        self._reset = True
        self._write_closed = True
        await self.raw.reset()

    @property
    def is_closed(self) -> bool:
        return bool(getattr(self.raw, "is_closed", False)) or self._error is not None

    def __repr__(self) -> str:
        role = "initiator" if self.is_initiator else "responder"
        return f"<TLSConnection {role} remote={self.remote_peer} alpn={self.alpn}>"


def _accept_any(conn: SSL.Connection, cert: Any, errno: int, depth: int, ok: int) -> bool:
    # The certificate is self-signed by design; verify_certificate() checks it afterwards.
    return True


class TLSSecurity:
    """libp2p TLS 1.3 as a :class:`~pywasm.interfaces.SecurityProtocol`.

    ``muxers`` (in order of preference) are offered through ALPN. The certificate is made
    on first use and reused (the spec allows it) until it nears expiry.
    """

    protocol_id = PROTOCOL_ID

    def __init__(
        self,
        private_key: "PrivateKey",
        muxers: Sequence[str] = (),
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        self.private_key = private_key
        self.muxers = tuple(muxers)
        self.handshake_timeout = handshake_timeout
        self._cert: LibP2PCertificate | None = None
        self._contexts: tuple[SSL.Context, SSL.Context] | None = None  # (client, server)
        self._local_peer: "PeerId | None" = None

    @property
    def local_peer(self) -> "PeerId":
        if self._local_peer is None:
            from ..identity import PeerId

            self._local_peer = PeerId.from_public_key(self.private_key.public_key)
        return self._local_peer

    @property
    def alpn_protocols(self) -> list[bytes]:
        return [m.encode() for m in self.muxers] + [ALPN_LIBP2P.encode()]

    async def certificate(self) -> LibP2PCertificate:
        """Our certificate, made (or renewed) when needed."""
        cert = self._cert
        now = datetime.datetime.now(datetime.timezone.utc)
        if cert is None or cert.not_after - now < RENEW_MARGIN:
            # No lock: racing first handshakes each make a valid certificate; one is kept.
            cert = await generate_certificate(self.private_key)
            self._cert = cert
            self._contexts = None
        return cert

    def _select_alpn(self, conn: SSL.Connection, offered: list[bytes]) -> bytes:
        # the client's preference wins; "libp2p" means "negotiate the muxer afterwards"
        ours = {m.encode() for m in self.muxers}
        for proto in offered:
            if proto in ours:
                return proto
        if ALPN_LIBP2P.encode() in offered:
            return ALPN_LIBP2P.encode()
        # raising makes OpenSSL abort the handshake; pyOpenSSL re-raises it to us
        raise TLSError(f"the client offered no ALPN protocol we support: {offered!r}")

    async def _context(self, server: bool) -> SSL.Context:
        cert = await self.certificate()
        if self._contexts is None:
            made = []
            for is_server in (False, True):
                ctx = SSL.Context(SSL.TLS_METHOD)
                ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
                ctx.use_certificate(cert.certificate)
                ctx.use_privatekey(cert.private_key)
                ctx.check_privatekey()
                ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
                ctx.set_options(SSL.OP_NO_TICKET)
                if is_server:
                    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _accept_any)
                    ctx.set_alpn_select_callback(self._select_alpn)
                else:
                    ctx.set_verify(SSL.VERIFY_PEER, _accept_any)
                    ctx.set_alpn_protos(self.alpn_protocols)
                made.append(ctx)
            self._contexts = (made[0], made[1])
        return self._contexts[1 if server else 0]

    async def secure_outbound(self, conn: "RawConnection", remote_peer: "PeerId | None") -> TLSConnection:
        """Handshake as client; :class:`PeerIdMismatchError` if the server is not ``remote_peer``."""
        return await self._run(conn, True, remote_peer)

    async def secure_inbound(self, conn: "RawConnection") -> TLSConnection:
        """Handshake as server (the client's identity is learnt, not checked)."""
        return await self._run(conn, False, None)

    async def _run(self, conn: "RawConnection", initiator: bool, remote_peer: "PeerId | None") -> TLSConnection:
        coro = self._handshake(conn, initiator, remote_peer)
        try:
            if self.handshake_timeout is None:
                return await coro
            try:
                return await asyncio.wait_for(coro, self.handshake_timeout)
            except asyncio.TimeoutError as exc:
                raise HandshakeTimeoutError(
                    f"TLS handshake did not finish within {self.handshake_timeout} s"
                ) from exc
        except BaseException:
            try:
                await conn.reset()
            except Exception:  # noqa: BLE001 - already failing; the first error matters
                pass
            raise

    async def _handshake(self, conn: "RawConnection", initiator: bool, remote_peer: "PeerId | None") -> TLSConnection:
        ctx = await self._context(server=not initiator)
        ssl = SSL.Connection(ctx, None)
        if initiator:
            ssl.set_connect_state()
        else:
            ssl.set_accept_state()
        role = "client" if initiator else "server"
        while True:
            try:
                ssl.do_handshake()
                break
            except SSL.WantReadError:
                pass
            except TLSError:
                # our ALPN callback refused; OpenSSL queued an alert for the peer
                await self._send_alert(conn, ssl)
                raise
            except SSL.Error as exc:
                await self._send_alert(conn, ssl)
                raise TLSError(f"TLS handshake failed ({role}): {_reason(exc)}") from None
            out = _drain_bio(ssl)
            if out:
                await conn.write(out)
            chunk = await conn.read(READ_CHUNK)
            if not chunk:
                raise TLSError(f"connection closed during the TLS handshake ({role})")
            ssl.bio_write(chunk)
        out = _drain_bio(ssl)  # the client's certificate and Finished; tickets
        if out:
            await conn.write(out)

        chain = ssl.get_peer_cert_chain(as_cryptography=True) or []
        leaf = ssl.get_peer_certificate(as_cryptography=True)
        if leaf is None:
            raise TLSCertificateError(f"the TLS {'server' if initiator else 'client'} sent no certificate")
        # OpenSSL lists the leaf in the chain on the client side only
        if any(c != leaf for c in chain):
            raise TLSCertificateError(f"expected exactly one certificate, got {len({*chain, leaf})}")
        from cryptography.hazmat.primitives.serialization import Encoding

        remote_key = await verify_certificate(leaf.public_bytes(Encoding.DER))

        raw_alpn = ssl.get_alpn_proto_negotiated()
        alpn = raw_alpn.decode("utf-8", "replace") if raw_alpn else None
        if initiator and alpn is not None and alpn != ALPN_LIBP2P and alpn not in self.muxers:
            raise TLSError(f"the server selected ALPN {alpn!r}, which we did not offer")
        early = alpn if alpn is not None and alpn != ALPN_LIBP2P else None

        secured = TLSConnection(
            conn,
            ssl,
            local_peer=self.local_peer,
            remote_public_key=remote_key,
            early_muxer=early,
            alpn=alpn,
            is_initiator=initiator,
        )
        if remote_peer is not None and secured.remote_peer != remote_peer:
            raise PeerIdMismatchError(
                f"expected peer {remote_peer}, but the remote authenticated as {secured.remote_peer}"
            )
        return secured

    @staticmethod
    async def _send_alert(conn: "RawConnection", ssl: SSL.Connection) -> None:
        """Best effort: tell the peer why (the alert OpenSSL queued) before we reset."""
        try:
            out = _drain_bio(ssl)
            if out:
                await asyncio.wait_for(conn.write(out), 1.0)
        except Exception:  # noqa: BLE001 - the handshake error is what matters
            pass


__all__ = [
    "PROTOCOL_ID",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "TLSConnection",
    "TLSError",
    "TLSSecurity",
]
