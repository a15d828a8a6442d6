"""noise-libp2p over a raw connection: :class:`NoiseSecurity` and :class:`NoiseConnection`.

The handshake (``/noise``, XX; empty prologue unless the caller gives one, as WebRTC
does) runs over the raw connection with the 2-byte length framing; the resulting
:class:`NoiseConnection` is a :class:`~pywasm.streams.Stream` that encrypts writes and
decrypts reads.

Performance notes (the hot path is bulk transfer through a muxer):

* ``write`` cuts data into 65519-byte frames as memoryviews (no copy), seals up to
  ``MAX_BATCH_FRAMES`` frames in one backend call and hands the raw connection one
  joined buffer per batch.
* ``read`` pulls large chunks from the raw connection, decrypts every complete frame in
  one backend call, and returns whole plaintext frames without slicing when they fit.
  In the browser the raw connection's next read is not even awaited here: the WebSocket
  shim's pending result goes straight to the backend, which waits for the messages, cuts
  and opens the frames in JS and resolves to the plaintext (``_fill_deferred``), so a
  burst of received messages costs one Python await and ciphertext never enters Python.
* In the browser (WebCrypto backend + WebSocket transport) a batch is not awaited at all:
  the backend starts sealing it in JS and the raw connection's ``write_sealed`` hands the
  pending result to the WebSocket shim, which sends it in order once sealed. Awaiting a JS
  Promise from Python costs far more than the encryption of a 64 KiB frame (Pyodide turns
  it into a Future, proxies and an event-loop task), so this took a third of the page's
  CPU time off a bulk upload. Nonces are still taken here, in Python, before the call.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from typing import TYPE_CHECKING, Callable, Sequence

from ..crypto.backend import CryptoBackend, get_backend
from ..errors import (
    DecodeError,
    HandshakeTimeoutError,
    NoiseError,
    PeerIdMismatchError,
    PywasmError,
    StreamClosedError,
    StreamResetError,
)
from ..protocols.noise.handshake import HandshakeState
from ..protocols.noise.payload import (
    RemoteIdentity,
    make_payload,
    select_muxer,
    signed_data,
    verify_payload,
)
from ..protocols.noise.transport import MAX_FRAME_LEN, NoiseTransport
from ..streams import BufferedReader

if TYPE_CHECKING:
    from ..identity import PeerId, PrivateKey, PublicKey
    from ..interfaces import RawConnection

PROTOCOL_ID = "/noise"
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
# How much ciphertext one read pulls from the raw connection: several full frames, so
# one backend call decrypts a burst. Plaintext buffered ahead is bounded by this too,
# because we only read the raw connection once the plaintext queue is empty. (A deferred
# read, see _fill_deferred, takes whatever the raw connection has queued instead: the
# WebSocket shim bounds that by its max_buffered, as it bounded what read() returned.)
READ_CHUNK = 256 * 1024
# close() bounds how long it waits for a write in flight before closing anyway.
CLOSE_TIMEOUT = 5.0


async def _read_handshake_frame(reader: BufferedReader) -> bytes:
    try:
        header = await reader.read_exactly(2)
        length = int.from_bytes(header, "big")
        return await reader.read_exactly(length)
    except DecodeError as exc:
        raise NoiseError(f"connection ended during the Noise handshake: {exc}") from exc


def _frame(message: bytes) -> bytes:
    if len(message) > MAX_FRAME_LEN:
        raise NoiseError(f"Noise message of {len(message)} bytes exceeds {MAX_FRAME_LEN}")
    return len(message).to_bytes(2, "big") + message


class NoiseConnection:
    """A secured connection: implements SecureConnection and the Stream contract."""

    def __init__(
        self,
        raw: "RawConnection",
        transport: NoiseTransport,
        *,
        local_peer: "PeerId",
        remote: RemoteIdentity,
        early_muxer: str | None,
        is_initiator: bool,
        handshake_hash: bytes,
        initial: bytes = b"",
        backend: CryptoBackend | None = None,
    ) -> None:
        self.raw = raw
        self.local_peer = local_peer
        self.remote_peer: "PeerId" = remote.peer_id
        self.remote_public_key: "PublicKey" = remote.public_key
        self.early_muxer = early_muxer
        self.is_initiator = is_initiator
        self.handshake_hash = handshake_hash
        self.remote_stream_muxers = remote.stream_muxers
        self.webtransport_certhashes = remote.webtransport_certhashes
        self._t = transport
        # decrypted frames not yet returned; _head/_head_pos is the partly read one
        self._plain: deque[bytes] = deque()
        self._head = b""
        self._head_pos = 0
        self._initial = initial  # ciphertext read past the handshake
        self._eof = False
        self._error: PywasmError | None = None
        self._write_closed = False
        self._reset = False
        self._read_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        # A raw connection that can send frames still being sealed (the browser WebSocket)
        # paired with a backend that seals without blocking (WebCrypto): see write_parts.
        sink = getattr(raw, "write_sealed", None)
        self._sealed_sink = sink if sink is not None and transport.can_defer_seal else None
        # The receive mirror: a raw connection that hands out its next read unconverted
        # (the browser WebSocket: a JS Promise of the next messages) paired with a backend
        # that frames and opens in JS: see _fill_deferred.
        source = getattr(raw, "read_deferred", None)
        self._deferred_source = source if source is not None and transport.can_open_deferred else None

    # the raw connection's addresses, for the host's bookkeeping
    @property
    def local_addr(self) -> object:
        return getattr(self.raw, "local_addr", None)

    @property
    def remote_addr(self) -> object:
        return getattr(self.raw, "remote_addr", None)

    # --- reading --------------------------------------------------------------
    async def _fail(self, exc: PywasmError) -> None:
        """A bad frame ends the connection: remember why, and abort the raw side."""
        self._error = exc
        self._plain.clear()
        self._head = b""
        try:
            await self.raw.reset()
        except PywasmError:
            pass

    async def _fill(self) -> bool:
        """Decrypt at least one non-empty frame into the queue; False at clean EOF."""
        if self._deferred_source is not None:
            return await self._fill_deferred(self._deferred_source)
        while not self._plain:
            if self._t.decoder.error is not None:
                await self._fail(self._t.decoder.error)
                raise self._t.decoder.error
            if self._initial:
                chunk, self._initial = self._initial, b""
            else:
                chunk = await self.raw.read(READ_CHUNK)
                if not chunk:
                    if self._t.decoder.has_partial:
                        err = NoiseError("connection ended inside a Noise frame")
                        await self._fail(err)
                        raise err
                    self._eof = True
                    return False
            try:
                plaintexts = await self._t.feed(chunk)
            except PywasmError as exc:
                await self._fail(exc)
                raise
            # Empty frames are legal (a zero-length message) but must not read as EOF.
            self._plain.extend(p for p in plaintexts if p)
        return True

    async def _fill_deferred(self, source: Callable[[], object]) -> bool:
        """_fill when the raw connection has ``read_deferred``: its next read goes to the
        backend unconverted and comes back decrypted, one await per burst of messages."""
        t = self._t
        while not self._plain:
            if t.decoder.error is not None:
                await self._fail(t.decoder.error)
                raise t.decoder.error
            from_raw = not self._initial
            if from_raw:
                data: object = source()
            else:
                data, self._initial = self._initial, b""
            try:
                plain, ended = await t.open_deferred(data)
            except PywasmError as exc:
                await self._fail(exc)
                raise
            if from_raw:
                # closed or reset while we waited, or the socket failed: raises
                self.raw.read_deferred_done(ended)  # type: ignore[attr-defined]
            if ended:
                if t.has_partial_deferred:
                    err = NoiseError("connection ended inside a Noise frame")
                    await self._fail(err)
                    raise err
                self._eof = True
                return False
            if plain:
                self._plain.append(plain)
        return True

    async def read(self, max_bytes: int = -1) -> bytes:
        if max_bytes == 0:
            return b""
        async with self._read_lock:
            if self._error is not None:
                raise NoiseError(f"Noise connection failed earlier: {self._error}")
            head = self._head
            if not head:
                if not self._plain:
                    if self._eof or not await self._fill():
                        return b""
                head = self._plain.popleft()
                self._head_pos = 0
            pos = self._head_pos
            avail = len(head) - pos
            if max_bytes < 0 or max_bytes >= avail:
                # Whole frame (or its rest): no slicing when nothing was read from it.
                data = head if pos == 0 else head[pos:]
                self._head = b""
                if self._plain and (max_bytes < 0 or max_bytes > avail):
                    # Small frames (muxer headers, acks) coalesce into one read.
                    parts = [data]
                    total = avail
                    while self._plain and (
                        max_bytes < 0 or total + len(self._plain[0]) <= max_bytes
                    ):
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
    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            await self.write_parts((data,))
        elif self._reset:
            raise StreamResetError("Noise connection was reset")
        elif self._write_closed:
            raise StreamClosedError("write side of the Noise connection is closed")

    async def write_parts(self, parts: Sequence[bytes | bytearray | memoryview]) -> None:
        """Write consecutive pieces as if joined, without joining them (see batches_of_parts).

        Muxers use this for their header + payload frames so payload bytes are copied
        only into the ciphertext buffer.
        """
        if self._reset:
            raise StreamResetError("Noise connection was reset")
        if self._write_closed:
            raise StreamClosedError("write side of the Noise connection is closed")
        if self._error is not None:
            raise NoiseError(f"Noise connection failed earlier: {self._error}")
        t = self._t
        raw = self.raw
        async with self._write_lock:
            if self._write_closed:
                raise StreamClosedError("write side of the Noise connection is closed")
            sink = self._sealed_sink
            if sink is not None:
                # Sealing finishes in JS and the shim sends the result: no await per batch
                # here except the socket's back-pressure.
                for batch in t.batches_of_parts(parts):
                    handle, size = t.seal_deferred(batch)
                    await sink(handle, size)
                return
            for batch in t.batches_of_parts(parts):
                await raw.write(await t.seal(batch))

    async def close_write(self) -> None:
        # Noise has no close message of its own: half-closing the raw connection is
        # how every libp2p implementation signals EOF through Noise.
        if self._write_closed:
            return
        async with self._write_lock:
            if self._write_closed:
                return
            self._write_closed = True
            await self.raw.close_write()

    async def close(self) -> None:
        if not self._write_closed:
            self._write_closed = True
            try:
                # wait briefly for a write in flight so its frames are not cut in half
                await asyncio.wait_for(self._write_lock.acquire(), CLOSE_TIMEOUT)
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
        return f"<NoiseConnection {role} remote={self.remote_peer}>"


class NoiseSecurity:
    """noise-libp2p as a :class:`~pywasm.interfaces.SecurityProtocol`.

    ``muxers`` (in order of preference) are offered for early muxer negotiation in the
    handshake extensions; ``webtransport_certhashes`` (multihash bytes) are sent when we
    are the responder, as a WebTransport server does. The Noise static key is generated
    once per instance (the spec allows this) and its signature is cached.
    """

    protocol_id = PROTOCOL_ID

    def __init__(
        self,
        private_key: "PrivateKey",
        muxers: Sequence[str] = (),
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        *,
        webtransport_certhashes: Sequence[bytes] = (),
        backend: CryptoBackend | None = None,
    ) -> None:
        self.private_key = private_key
        self.muxers = tuple(muxers)
        self.webtransport_certhashes = tuple(bytes(h) for h in webtransport_certhashes)
        self.handshake_timeout = handshake_timeout
        self._backend = backend
        self._static: tuple[bytes, bytes, bytes] | None = None  # (priv, pub, signature)
        self._local_peer: "PeerId | None" = None

    @property
    def backend(self) -> CryptoBackend:
        return self._backend if self._backend is not None else get_backend()

    @property
    def local_peer(self) -> "PeerId":
        if self._local_peer is None:
            from ..identity import PeerId

            self._local_peer = PeerId.from_public_key(self.private_key.public_key)
        return self._local_peer

    async def _static_key(self) -> tuple[bytes, bytes, bytes]:
        # No lock: two first handshakes racing here each make a valid key pair and the
        # last one is kept, which is harmless (and a lock would tie us to one loop).
        static = self._static
        if static is None:
            private = os.urandom(32)
            public = await self.backend.x25519_public(private)
            signature = await self.private_key.sign(signed_data(public))
            static = self._static = (private, public, signature)
        return static

    async def secure_outbound(
        self,
        conn: "RawConnection",
        remote_peer: "PeerId | None",
        *,
        reader: BufferedReader | None = None,
        prologue: bytes = b"",
        check_remote: Callable[[RemoteIdentity], None] | None = None,
    ) -> NoiseConnection:
        """Handshake as initiator; :class:`PeerIdMismatchError` if the remote is not
        ``remote_peer``. ``reader`` carries bytes already read from ``conn`` (e.g. by
        multistream-select). ``prologue``: the Noise prologue both sides must agree on
        (empty for noise-libp2p; WebRTC binds the DTLS fingerprints with it).
        ``check_remote`` sees the responder's verified identity and extensions once
        message 2 is read and *before* message 3 (our identity) goes out; whatever it
        raises aborts the handshake (WebTransport's certhash rule uses it)."""
        return await self._run(conn, True, remote_peer, reader, prologue, check_remote)

    async def secure_inbound(
        self,
        conn: "RawConnection",
        *,
        reader: BufferedReader | None = None,
        prologue: bytes = b"",
    ) -> NoiseConnection:
        """Handshake as responder (the remote's identity is learnt, not checked)."""
        return await self._run(conn, False, None, reader, prologue)

    async def _run(
        self,
        conn: "RawConnection",
        initiator: bool,
        remote_peer: "PeerId | None",
        reader: BufferedReader | None,
        prologue: bytes = b"",
        check_remote: Callable[[RemoteIdentity], None] | None = None,
    ) -> NoiseConnection:
        coro = self._handshake(conn, initiator, remote_peer, reader, prologue, check_remote)
        try:
            if self.handshake_timeout is None:
                return await coro
            try:
                return await asyncio.wait_for(coro, self.handshake_timeout)
            except asyncio.TimeoutError as exc:
                raise HandshakeTimeoutError(
                    f"Noise handshake did not finish within {self.handshake_timeout} s"
                ) from exc
        except BaseException:
            # Any failure (bad peer, timeout, cancellation) ends the raw connection.
            try:
                await conn.reset()
            except Exception:  # noqa: BLE001 - already failing; the first error matters
                pass
            raise

    async def _handshake(
        self,
        conn: "RawConnection",
        initiator: bool,
        remote_peer: "PeerId | None",
        reader: BufferedReader | None,
        prologue: bytes = b"",
        check_remote: Callable[[RemoteIdentity], None] | None = None,
    ) -> NoiseConnection:
        backend = self.backend
        s_priv, s_pub, signature = await self._static_key()
        if reader is None:
            reader = BufferedReader(conn)
        hs = HandshakeState(initiator, s_priv, s_pub, prologue=bytes(prologue), backend=backend)
        if initiator:
            # -> e  (no payload: message 1 has no secrecy)
            await conn.write(_frame(await hs.write_message(b"")))
            # <- e, ee, s, es + responder payload
            payload = await hs.read_message(await _read_handshake_frame(reader))
            remote = await verify_payload(payload, hs.remote_static or b"")
            if remote_peer is not None and remote.peer_id != remote_peer:
                raise PeerIdMismatchError(
                    f"expected peer {remote_peer}, but the remote authenticated as {remote.peer_id}"
                )
            if check_remote is not None:
                check_remote(remote)
            # -> s, se + our payload (our muxers, in preference order)
            ours = await make_payload(
                self.private_key, s_pub, stream_muxers=self.muxers, signature=signature
            )
            await conn.write(_frame(await hs.write_message(ours)))
            early = select_muxer(self.muxers, remote.stream_muxers)
        else:
            # <- e  (the initiator must not send a payload; ignore one if present)
            await hs.read_message(await _read_handshake_frame(reader))
            ours = await make_payload(
                self.private_key,
                s_pub,
                stream_muxers=self.muxers,
                webtransport_certhashes=self.webtransport_certhashes,
                signature=signature,
            )
            await conn.write(_frame(await hs.write_message(ours)))
            payload = await hs.read_message(await _read_handshake_frame(reader))
            remote = await verify_payload(payload, hs.remote_static or b"")
            early = select_muxer(remote.stream_muxers, self.muxers)
        send, recv = hs.split()
        return NoiseConnection(
            conn,
            NoiseTransport(send, recv, backend),
            local_peer=self.local_peer,
            remote=remote,
            early_muxer=early,
            is_initiator=initiator,
            handshake_hash=hs.handshake_hash,
            initial=reader.take_buffer(),
            backend=backend,
        )


__all__ = [
    "PROTOCOL_ID",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "READ_CHUNK",
    "NoiseConnection",
    "NoiseSecurity",
]
