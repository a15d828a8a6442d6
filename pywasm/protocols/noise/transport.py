"""Post-handshake Noise framing for libp2p (noise spec, "Wire Format").

Every Noise message on the wire is ``uint16_be(len) || message`` with ``len <= 65535``.
After the handshake each message is a ChaCha20-Poly1305 ciphertext (plaintext + 16-byte
tag) under the direction's key and a counter nonce starting at 0, with empty associated
data. So one frame carries at most :data:`MAX_PLAINTEXT_LEN` = 65519 plaintext bytes.

This module stays sans-IO: :class:`FrameDecoder` cuts complete ciphertext frames out of
arbitrary byte chunks, and :class:`NoiseTransport` seals/opens whole batches of frames
with one backend call each (one FFI crossing per burst under Pyodide).
"""

from __future__ import annotations

from typing import Iterator, Sequence

from ...crypto.backend import CryptoBackend, get_backend
from ...errors import CryptoError, DecryptError, NoiseError
from .handshake import MAX_NONCE, TAGLEN, CipherState

MAX_FRAME_LEN = 65535
MAX_PLAINTEXT_LEN = MAX_FRAME_LEN - TAGLEN  # 65519
LENGTH_PREFIX_LEN = 2
# How many frames one write seals in one backend call and sends in one raw write: 16
# full frames is ~1 MiB, which amortises the per-call cost while bounding the memory a
# single huge write pins (ciphertext list + joined buffer).
MAX_BATCH_FRAMES = 16

_EMPTY_AD = b""


class FrameDecoder:
    """Split a byte stream into Noise frames (the ciphertexts, without their prefix).

    Bounded: it holds at most one partial frame (< 65537 bytes) between calls.
    """

    __slots__ = ("_partial", "error")

    def __init__(self) -> None:
        self._partial = bytearray()
        # A malformed frame is remembered rather than raised at once, so the frames
        # that arrived intact before it are still delivered; the reader raises it next.
        self.error: NoiseError | None = None

    @property
    def has_partial(self) -> bool:
        return bool(self._partial)

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[bytes | memoryview]:
        """Return every frame completed by ``chunk``; keep the rest for the next call.

        Frames from the middle of ``chunk`` are zero-copy views of it, so ``chunk`` must
        not be mutated afterwards (stream reads return fresh ``bytes``; anything else is
        copied once here).
        """
        if self.error is not None:
            raise self.error
        if not isinstance(chunk, bytes):
            chunk = bytes(chunk)
        view = memoryview(chunk)
        end = len(view)
        frames: list[bytes | memoryview] = []
        pos = 0
        partial = self._partial
        if partial:
            # Finish the frame left over from the previous chunk, taking only its bytes
            # from this chunk (never copying the whole chunk onto the partial).
            if len(partial) < LENGTH_PREFIX_LEN:
                take = min(LENGTH_PREFIX_LEN - len(partial), end)
                partial += view[:take]
                pos = take
                if len(partial) < LENGTH_PREFIX_LEN:
                    return frames
            length = (partial[0] << 8) | partial[1]
            if length < TAGLEN:
                return self._malformed(frames, length)
            need = LENGTH_PREFIX_LEN + length - len(partial)
            take = min(need, end - pos)
            partial += view[pos : pos + take]
            pos += take
            if take < need:
                return frames
            frames.append(bytes(partial[LENGTH_PREFIX_LEN:]))
            partial.clear()
        while end - pos >= LENGTH_PREFIX_LEN:
            length = (view[pos] << 8) | view[pos + 1]
            if length < TAGLEN:
                return self._malformed(frames, length)
            stop = pos + LENGTH_PREFIX_LEN + length
            if stop > end:
                break
            frames.append(view[pos + LENGTH_PREFIX_LEN : stop])
            pos = stop
        if pos < end:
            partial += view[pos:]
        return frames

    def _malformed(
        self, frames: list[bytes | memoryview], length: int
    ) -> list[bytes | memoryview]:
        self.error = NoiseError(f"Noise frame of {length} bytes is shorter than its tag")
        self._partial.clear()
        if not frames:
            raise self.error
        return frames


class NoiseTransport:
    """The two post-handshake cipher directions, sealing/opening frames in batches."""

    __slots__ = ("_backend", "_send_key", "_send_n", "_recv_key", "_recv_n", "decoder", "_rest", "_rest_len")

    def __init__(
        self,
        send: CipherState,
        recv: CipherState,
        backend: CryptoBackend | None = None,
    ) -> None:
        if send.k is None or recv.k is None:
            raise NoiseError("Noise transport needs keys from a completed handshake")
        self._backend = backend if backend is not None else get_backend()
        self._send_key: bytes = send.k
        self._send_n = send.n
        self._recv_key: bytes = recv.k
        self._recv_n = recv.n
        self.decoder = FrameDecoder()
        # open_deferred's partial frame (opaque: a JS Uint8Array under Pyodide) and its size
        self._rest: object = None
        self._rest_len = 0

    def _reserve(self, counter: int, count: int) -> None:
        if counter + count > MAX_NONCE:
            raise NoiseError("Noise nonce space exhausted; the connection must end")

    async def seal(self, plaintexts: Sequence[bytes | memoryview]) -> bytes | bytearray:
        """Encrypt frames (each <= 65519 bytes) and return their framed wire bytes."""
        first = self._send_n
        self._reserve(first, len(plaintexts))
        # Take the counters before awaiting, so concurrent callers never share a nonce.
        self._send_n = first + len(plaintexts)
        try:
            # memoryview slices avoid copying a large write; backends accept any
            # bytes-like plaintext (the ABC says bytes for brevity)
            return await self._backend.aead_seal_framed(
                self._send_key, first, _EMPTY_AD, plaintexts  # type: ignore[arg-type]
            )
        except CryptoError:
            raise
        except Exception as exc:  # a backend bug must not look like a success
            raise CryptoError(f"AEAD seal failed: {exc}") from exc

    @property
    def can_defer_seal(self) -> bool:
        return bool(self._backend.can_defer_seal)

    def seal_deferred(self, plaintexts: Sequence[bytes | memoryview]) -> "tuple[object, int]":
        """Start sealing frames without waiting: ``(handle, wire length)`` for a transport
        that sends the handle itself (see CryptoBackend.aead_seal_framed_deferred)."""
        first = self._send_n
        self._reserve(first, len(plaintexts))
        try:
            out = self._backend.aead_seal_framed_deferred(
                self._send_key, first, _EMPTY_AD, plaintexts  # type: ignore[arg-type]
            )
        except CryptoError:
            raise
        except Exception as exc:  # a backend bug must not look like a success
            raise CryptoError(f"AEAD seal failed: {exc}") from exc
        if out is None:
            raise CryptoError("this crypto backend cannot seal without waiting")
        # counters are taken only once the frames are really on their way
        self._send_n = first + len(plaintexts)
        return out

    def batches_of_parts(
        self, parts: Sequence[bytes | bytearray | memoryview]
    ) -> Iterator[list[bytes | memoryview]]:
        """Cut data given as consecutive pieces (a gather write) into frame-sized batches.

        Frames are at most 65519 bytes and grouped :data:`MAX_BATCH_FRAMES` to a batch,
        one backend call each. A muxer hands us ``[header, payload, header, payload ...]``; joining those would
        copy every payload byte once more. Instead a frame that fits inside one piece is
        a view of it, and only a frame straddling pieces is assembled (at most one
        frame's worth of copying per piece boundary).
        """
        step = MAX_PLAINTEXT_LEN
        batch: list[bytes | memoryview] = []
        pending: list[memoryview] = []
        pending_len = 0
        for part in parts:
            view = memoryview(part)
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast("B")
            n = len(view)
            pos = 0
            while pos < n:
                take = min(step - pending_len, n - pos)
                if pending_len == 0 and take == step:
                    batch.append(view[pos : pos + take])
                else:
                    pending.append(view[pos : pos + take])
                    pending_len += take
                    if pending_len == step:
                        batch.append(b"".join(pending))
                        pending = []
                        pending_len = 0
                pos += take
                if len(batch) == MAX_BATCH_FRAMES:
                    yield batch
                    batch = []
        if pending:
            batch.append(pending[0] if len(pending) == 1 else b"".join(pending))
        if batch:
            yield batch

    async def open(self, frames: Sequence[bytes | memoryview]) -> list[bytes]:
        """Decrypt consecutive frames; :class:`DecryptError` if any tag is wrong."""
        if not frames:
            return []
        first = self._recv_n
        self._reserve(first, len(frames))
        self._recv_n = first + len(frames)
        try:
            return await self._backend.aead_open_many(
                self._recv_key, first, _EMPTY_AD, frames  # type: ignore[arg-type]
            )
        except DecryptError:
            raise
        except CryptoError as exc:
            raise DecryptError(f"Noise frame failed to decrypt: {exc}") from exc

    async def feed(self, chunk: bytes | bytearray | memoryview) -> list[bytes]:
        """Decrypt every frame ``chunk`` completes (framing errors raise NoiseError)."""
        return await self.open(self.decoder.feed(chunk))

    @property
    def can_open_deferred(self) -> bool:
        return bool(self._backend.can_open_framed)

    @property
    def has_partial_deferred(self) -> bool:
        """:meth:`open_deferred` holds part of a frame."""
        return self._rest_len > 0

    async def open_deferred(self, data: object) -> tuple[bytes, bool]:
        """Open every frame completed by ``data``, after the partial frame kept from the
        previous call: ``(plaintexts joined, ended)``; ``ended`` when ``data`` was the end.

        ``data`` is bytes or a raw connection's deferred read (``read_deferred``: under
        Pyodide the WebSocket shim's JS result, awaited and framed in JS, see
        CryptoBackend.aead_open_framed). The receive counter advances by the frames opened,
        known only afterwards: a single reader at a time (NoiseConnection's read lock). A
        frame shorter than its tag is remembered in ``decoder.error`` once the frames
        before it are returned, as :meth:`feed` does; a bad tag raises DecryptError.
        """
        dec = self.decoder
        if dec.error is not None:
            raise dec.error
        first = self._recv_n
        try:
            r = await self._backend.aead_open_framed(self._recv_key, first, _EMPTY_AD, self._rest, data)
        except DecryptError:
            raise
        except CryptoError as exc:
            raise DecryptError(f"Noise frame failed to decrypt: {exc}") from exc
        self._reserve(first, r.frames)
        self._recv_n = first + r.frames
        self._rest = r.rest
        self._rest_len = len(r.rest) if r.rest is not None else 0  # type: ignore[arg-type]
        if r.malformed >= 0:
            dec.error = NoiseError(f"Noise frame of {r.malformed} bytes is shorter than its tag")
            self._rest = None
            self._rest_len = 0
            if not r.frames:
                raise dec.error
        return r.plaintext, r.ended


__all__ = [
    "MAX_FRAME_LEN",
    "MAX_PLAINTEXT_LEN",
    "MAX_BATCH_FRAMES",
    "FrameDecoder",
    "NoiseTransport",
]
