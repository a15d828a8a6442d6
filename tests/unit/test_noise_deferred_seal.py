"""Deferred sealing: Noise frames handed to the transport while still being encrypted.

In the browser the WebCrypto backend starts sealing a batch and returns a JS box holding a
Promise of the framed bytes; the WebSocket shim sends it when it resolves, so the Noise
writer never awaits the encryption (browser/src/crypto.mjs ``aeadSealFramedLater``,
browser/src/websocket.mjs ``sendLater``). Checked here: the deferred output is byte for
byte what the awaited path produces, inputs are validated before anything is started,
and a NoiseConnection over a transport with ``write_sealed`` keeps nonces and order.

Natively the OpenSSL backend cannot defer (``can_defer_seal`` is False); the connection
tests then run the same logic with a backend subclass whose handle is the sealing
coroutine itself, so the NoiseConnection/NoiseTransport side is covered on both platforms.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, Sequence

import pytest

from pywasm.crypto import CryptoBackend, get_backend
from pywasm.errors import CryptoError, DecryptError
from pywasm.identity import KeyType, PeerId, PrivateKey
from pywasm.protocols.noise.transport import MAX_PLAINTEXT_LEN, FrameDecoder
from pywasm.security.noise import NoiseConnection, NoiseSecurity
from pywasm.transports.memory import memory_pipe

KEY = bytes(range(32))
IN_PYODIDE = sys.platform == "emscripten"


async def _resolve(handle: Any) -> bytes:
    """The framed bytes behind a deferred-seal handle (JS box, or a coroutine natively)."""
    if asyncio.iscoroutine(handle):
        return bytes(await handle)
    pending = handle.pending
    if hasattr(pending, "then"):
        pending = await pending
    return bytes(pending.to_bytes())


def _deferring_backend() -> CryptoBackend:
    backend = get_backend()
    if backend.can_defer_seal:
        return backend
    from pywasm.crypto.native import NativeBackend

    class Deferring(NativeBackend):
        can_defer_seal = True

        def aead_seal_framed_deferred(
            self, key: bytes, first_counter: int, ad: bytes, plaintexts: Sequence[bytes]
        ) -> tuple[object, int] | None:
            size = sum(len(p) + 18 for p in plaintexts)
            # copy now: the caller may reuse its buffers once this returns
            frozen = [bytes(p) for p in plaintexts]
            return self.aead_seal_framed(key, first_counter, ad, frozen), size

    return Deferring()


def _frames() -> list[bytes]:
    return [os.urandom(n) for n in (1, 0, MAX_PLAINTEXT_LEN, 1000, 29, MAX_PLAINTEXT_LEN - 1)]


async def test_platform_backend_defers_only_in_pyodide() -> None:
    b = get_backend()
    assert b.can_defer_seal is IN_PYODIDE
    if not IN_PYODIDE:
        assert b.aead_seal_framed_deferred(KEY, 0, b"", [b"x"]) is None


async def test_deferred_seal_matches_awaited_and_per_frame() -> None:
    b = _deferring_backend()
    frames = _frames()
    out = b.aead_seal_framed_deferred(KEY, 41, b"", frames)
    assert out is not None
    handle, size = out
    wire = await _resolve(handle)
    assert size == len(wire) == sum(len(f) + 18 for f in frames)
    assert wire == bytes(await b.aead_seal_framed(KEY, 41, b"", frames))
    # and frame by frame: 2-byte big-endian length, ciphertext || tag, counter + i
    expected = b""
    for i, f in enumerate(frames):
        ct = await b.aead_seal(KEY, 41 + i, b"", f)
        expected += len(ct).to_bytes(2, "big") + ct
    assert wire == expected
    # memoryview slices of a larger buffer are accepted and copied before the call returns
    buf = bytearray(b"".join(frames[:3]))
    views = [memoryview(buf)[0:1], memoryview(buf)[1:1], memoryview(buf)[1 : 1 + MAX_PLAINTEXT_LEN]]
    handle, _ = b.aead_seal_framed_deferred(KEY, 41, b"", views)  # type: ignore[misc]
    buf[:] = bytes(len(buf))  # the caller reuses its buffer at once
    wire2 = await _resolve(handle)
    assert wire2 == expected[: len(wire2)]


async def test_deferred_seal_round_trips_through_open_many() -> None:
    b = _deferring_backend()
    frames = _frames()
    handle, _ = b.aead_seal_framed_deferred(KEY, 7, b"", frames)  # type: ignore[misc]
    cts = FrameDecoder().feed(await _resolve(handle))
    assert [bytes(p) for p in await b.aead_open_many(KEY, 7, b"", cts)] == frames


async def test_batch_open_with_one_bad_tag_raises_decrypt_error() -> None:
    b = _deferring_backend()
    frames = _frames()
    handle, _ = b.aead_seal_framed_deferred(KEY, 0, b"", frames)  # type: ignore[misc]
    cts = [bytes(c) for c in FrameDecoder().feed(await _resolve(handle))]
    for bad in (0, 3, len(cts) - 1):
        tampered = list(cts)
        tampered[bad] = tampered[bad][:-1] + bytes([tampered[bad][-1] ^ 1])
        with pytest.raises(DecryptError):
            await b.aead_open_many(KEY, 0, b"", tampered)
    # the untouched batch still opens (nothing was consumed by the failures)
    assert [bytes(p) for p in await b.aead_open_many(KEY, 0, b"", cts)] == frames


async def test_deferred_seal_checks_inputs_up_front() -> None:
    b = get_backend()
    if not b.can_defer_seal:  # natively: nothing is ever started, whatever the input
        assert b.aead_seal_framed_deferred(KEY, 0, b"", [bytes(MAX_PLAINTEXT_LEN + 1)]) is None
        return
    with pytest.raises(CryptoError):
        b.aead_seal_framed_deferred(KEY, 0, b"", [bytes(MAX_PLAINTEXT_LEN + 1)])
    with pytest.raises(CryptoError):
        b.aead_seal_framed_deferred(KEY, (1 << 64) - 1, b"", [b"a", b"b"])
    assert b.aead_seal_framed_deferred(KEY, 0, b"", []) is None


# --- NoiseConnection over a transport that sends sealed handles -------------------------------
class SealedSinkConn:
    """A memory-pipe end with ``write_sealed``: resolves each handle, writes it in order
    (everything else goes to the pipe end)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.sealed_writes = 0
        self.sealed_bytes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def write_sealed(self, handle: Any, nbytes: int) -> None:
        wire = await _resolve(handle)
        assert len(wire) == nbytes
        self.sealed_writes += 1
        self.sealed_bytes += nbytes
        await self._inner.write(wire)


async def _sealed_pair() -> tuple[NoiseConnection, NoiseConnection, SealedSinkConn]:
    ki = await PrivateKey.generate(KeyType.Ed25519)
    kr = await PrivateKey.generate(KeyType.Ed25519)
    a, b = memory_pipe()
    sink = SealedSinkConn(a)
    backend = _deferring_backend()
    ci, cr = await asyncio.gather(
        NoiseSecurity(ki, backend=backend).secure_outbound(sink, PeerId.from_public_key(kr.public_key)),
        NoiseSecurity(kr).secure_inbound(b),
    )
    return ci, cr, sink


async def _read_n(conn: NoiseConnection, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = await asyncio.wait_for(conn.read(1 << 20), 10)
        assert chunk, f"EOF after {got} of {n} bytes"
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


async def test_noise_connection_uses_the_sealed_sink_and_keeps_order() -> None:
    ci, cr, sink = await _sealed_pair()
    assert ci._sealed_sink is not None
    payload = os.urandom(3 * 1024 * 1024 + 12345)
    view = memoryview(payload)
    # mixed sizes: small writes, a gather write (header + payload, as a muxer does), a big one
    pieces = [view[:5], view[5:70000], view[70000:70012], view[70012:2_000_000], view[2_000_000:]]

    async def writer() -> None:
        await ci.write(pieces[0])
        await ci.write(pieces[1])
        await ci.write_parts([pieces[2], pieces[3]])
        await ci.write(pieces[4])

    _, got = await asyncio.gather(writer(), _read_n(cr, len(payload)))
    assert got == payload
    assert sink.sealed_writes >= 4
    assert sink.sealed_bytes > len(payload)  # framing + tags went through the sink
    # the other direction is the ordinary path; nonces on both sides stay in step
    await cr.write(b"pong")
    assert await asyncio.wait_for(ci.read(), 10) == b"pong"
    await ci.write(b"again")
    assert await asyncio.wait_for(cr.read(), 10) == b"again"
    await ci.close()
    await cr.close()


async def test_noise_connection_without_sink_uses_awaited_path() -> None:
    ki = await PrivateKey.generate(KeyType.Ed25519)
    kr = await PrivateKey.generate(KeyType.Ed25519)
    a, b = memory_pipe()
    ci, cr = await asyncio.gather(
        NoiseSecurity(ki, backend=_deferring_backend()).secure_outbound(a, PeerId.from_public_key(kr.public_key)),
        NoiseSecurity(kr).secure_inbound(b),
    )
    assert ci._sealed_sink is None  # the memory pipe has no write_sealed
    await ci.write(b"x" * 100_000)
    assert await _read_n(cr, 100_000) == b"x" * 100_000
    await ci.close()
    await cr.close()
