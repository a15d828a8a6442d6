"""Deferred opening: Noise frames cut and decrypted where the received bytes are.

In the browser the Noise reader hands the WebSocket shim's pending read (a JS Promise of
the next messages) to the WebCrypto backend, whose JS awaits it, cuts the wire frames and
opens them, resolving to the plaintext: one Python await per burst, no ciphertext in
Python (browser/src/crypto.mjs ``aeadOpenFramed``). Checked here on the platform's backend
(JS under Pyodide, the Python default natively): frames split anywhere across calls, the
partial frame carried between calls, a frame too short for its tag, a bad tag, the end.
Then a NoiseConnection whose raw side has ``read_deferred`` (a memory pipe whose deferred
read is a coroutine, which the test backend awaits first) against the usual bad inputs.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

import pytest

from pywasm.crypto import CryptoBackend, get_backend
from pywasm.errors import DecryptError, NoiseError, StreamResetError
from pywasm.identity import KeyType, PeerId, PrivateKey
from pywasm.protocols.noise.transport import MAX_PLAINTEXT_LEN
from pywasm.security.noise import NoiseConnection, NoiseSecurity
from pywasm.transports.memory import memory_pipe
from tests._helpers import random_transfer

KEY = bytes(range(32))


def _frames() -> list[bytes]:
    return [os.urandom(n) for n in (1, 0, MAX_PLAINTEXT_LEN, 1000, 29, MAX_PLAINTEXT_LEN - 1, 5)]


async def _wire(frames: list[bytes], first: int = 0) -> bytes:
    return bytes(await get_backend().aead_seal_framed(KEY, first, b"", frames))


async def test_open_framed_across_arbitrary_splits() -> None:
    b = get_backend()
    frames = _frames()
    wire = await _wire(frames, 9)
    rng = random.Random(3)
    for _ in range(4):
        cuts = sorted(rng.sample(range(1, len(wire)), 6)) + [len(wire)]
        rest: object = None
        counter = 9
        out = bytearray()
        pos = 0
        for cut in [1, 2] + cuts:  # a 1-byte chunk: a length prefix split in two
            if cut <= pos:
                continue
            r = await b.aead_open_framed(KEY, counter, b"", rest, wire[pos:cut])
            assert not r.ended and r.malformed == -1
            counter += r.frames
            out += r.plaintext
            rest = r.rest
            pos = cut
        assert counter == 9 + len(frames)
        assert bytes(out) == b"".join(frames)
        assert len(rest) == 0  # type: ignore[arg-type]
        end = await b.aead_open_framed(KEY, counter, b"", rest, None)
        assert end.ended and end.frames == 0 and end.plaintext == b""


async def test_open_framed_end_keeps_the_partial_frame() -> None:
    b = get_backend()
    wire = await _wire([b"hello", b"world"])
    r = await b.aead_open_framed(KEY, 0, b"", None, wire[:-3])
    assert (r.frames, r.plaintext) == (1, b"hello")
    assert len(r.rest) == len(wire) - 3 - (2 + 5 + 16)  # type: ignore[arg-type]
    end = await b.aead_open_framed(KEY, 1, b"", r.rest, b"")
    assert end.ended and len(end.rest) == len(r.rest)  # type: ignore[arg-type]


async def test_open_framed_short_frame_delivers_what_came_before() -> None:
    b = get_backend()
    wire = await _wire([b"good"])
    r = await b.aead_open_framed(KEY, 0, b"", None, wire + b"\x00\x0f" + bytes(40))
    assert (r.frames, r.plaintext, r.malformed) == (1, b"good", 15)
    r = await b.aead_open_framed(KEY, 0, b"", None, b"\x00\x03abc")
    assert (r.frames, r.malformed) == (0, 3)


async def test_open_framed_bad_tag_raises() -> None:
    b = get_backend()
    wire = bytearray(await _wire([b"one", b"two", b"three"]))
    wire[-1] ^= 1
    with pytest.raises(DecryptError):
        await b.aead_open_framed(KEY, 0, b"", None, bytes(wire))
    with pytest.raises(DecryptError):  # wrong counter
        await b.aead_open_framed(KEY, 1, b"", None, await _wire([b"x"]))


# --- NoiseConnection over a raw connection with read_deferred ---------------------------------
class DeferredReadConn:
    """A memory-pipe end with ``read_deferred``: the deferred read is a coroutine."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.deferred_reads = 0
        self._pending = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def read(self, max_bytes: int = -1) -> bytes:
        assert not self._pending, "plain read while a deferred read is pending"
        return await self._inner.read(max_bytes)  # type: ignore[no-any-return]

    def read_deferred(self) -> Any:
        assert not self._pending, "two deferred reads at once"
        self._pending = True
        self.deferred_reads += 1
        return self._inner.read(65536)

    def read_deferred_done(self, ended: bool) -> None:
        assert self._pending
        self._pending = False


def _opening_backend() -> CryptoBackend:
    base = type(get_backend())

    class Opening(base):  # type: ignore[valid-type,misc]
        can_open_framed = True

        async def aead_open_framed(self, key: bytes, first: int, ad: bytes, rest: object, data: object) -> Any:
            if asyncio.iscoroutine(data):  # our stand-in's read; a JS backend gets a Promise
                data = await data
            return await base.aead_open_framed(self, key, first, ad, rest, data)

    return Opening()


async def _pair() -> tuple[NoiseConnection, NoiseConnection, Any, DeferredReadConn]:
    ki = await PrivateKey.generate(KeyType.Ed25519)
    kr = await PrivateKey.generate(KeyType.Ed25519)
    a, b = memory_pipe()
    src = DeferredReadConn(b)
    ci, cr = await asyncio.gather(
        NoiseSecurity(ki).secure_outbound(a, PeerId.from_public_key(kr.public_key)),
        NoiseSecurity(kr, backend=_opening_backend()).secure_inbound(src),  # type: ignore[arg-type]
    )
    assert cr._deferred_source is not None and ci._deferred_source is None
    return ci, cr, a, src


async def test_noise_connection_reads_through_deferred_opening() -> None:
    ci, cr, _, src = await _pair()
    rng = random.Random(11)
    data = rng.randbytes(2 * 1024 * 1024 + 4321)
    got = await random_transfer(ci, cr, data, rng, [1, 100, 65519, 65520, 200000],
                                [1, 1000, 65536, 1 << 20, -1], read_timeout=10)
    assert got == data
    assert src.deferred_reads > 1
    assert await cr.read() == b""  # EOF stays EOF
    await cr.write(b"the other way")  # the send direction is untouched
    assert await asyncio.wait_for(ci.read(), 10) == b"the other way"


async def test_deferred_tampered_frame_fails_the_connection() -> None:
    ci, cr, a, _ = await _pair()
    await ci.write(b"first")
    assert await asyncio.wait_for(cr.read(), 10) == b"first"
    await a.write((32).to_bytes(2, "big") + os.urandom(32))
    with pytest.raises(DecryptError):
        await asyncio.wait_for(cr.read(), 10)
    with pytest.raises(NoiseError):  # the connection stays failed
        await cr.read()


async def test_deferred_short_frame_after_good_data() -> None:
    ci, cr, a, _ = await _pair()
    await ci.write(b"kept")
    await a.write(b"\x00\x0a" + bytes(10))  # too short to hold a tag
    assert await asyncio.wait_for(cr.read(), 10) == b"kept"
    with pytest.raises(NoiseError):
        await asyncio.wait_for(cr.read(), 10)
    with pytest.raises(StreamResetError):  # the raw connection was aborted
        await a.write(b"x")


async def test_deferred_eof_inside_frame() -> None:
    _, cr, a, _ = await _pair()
    await a.write(b"\x01\x00" + bytes(10))
    await a.close_write()
    with pytest.raises(NoiseError):
        await asyncio.wait_for(cr.read(), 10)


async def test_deferred_bytes_read_with_the_handshake_come_first() -> None:
    # the first transport frame may arrive in the same raw read as message 3: it is
    # opened before anything is read through read_deferred
    ki = await PrivateKey.generate(KeyType.Ed25519)
    kr = await PrivateKey.generate(KeyType.Ed25519)
    a, b = memory_pipe()
    src = DeferredReadConn(b)

    async def dialer() -> NoiseConnection:
        conn = await NoiseSecurity(ki).secure_outbound(a, PeerId.from_public_key(kr.public_key))
        await conn.write(b"early data")
        return conn

    async def listener() -> NoiseConnection:
        await asyncio.sleep(0.05)  # message 3 and the data are both queued by now... mostly
        return await NoiseSecurity(kr, backend=_opening_backend()).secure_inbound(src)  # type: ignore[arg-type]

    ci, cr = await asyncio.gather(dialer(), listener())
    assert await asyncio.wait_for(cr.read(), 10) == b"early data"
    await ci.write(b"later")
    assert await asyncio.wait_for(cr.read(), 10) == b"later"
