"""The WebTransport dialer's certhash rule runs on Noise message 2, before message 3.

libp2p/specs webtransport: the dialer must check that the certhashes it dialed are a
subset of the responder's ``webtransport_certhashes`` Noise extension. Checking it when
message 2 arrives means a server that does not vouch for them never receives message 3,
which carries the dialer's identity. A real Noise responder (pywasm's) plays the server;
the "session" only hands out one in-memory stream, which records what the dialer writes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pywasm.errors import PywasmError
from pywasm.identity import KeyType, PeerId, PrivateKey
from pywasm.multiformats import multibase
from pywasm.security.noise import NoiseSecurity
from pywasm.transports.memory import memory_pipe
from pywasm.transports.webtransport_addr import (
    CerthashMismatchError,
    certhash_of,
    parse_webtransport,
    secure_dialed_session,
    webtransport_multiaddr,
)

BASE = "/ip4/127.0.0.1/udp/4433/quic-v1/webtransport"
# Noise message 1 (-> e) framed: 2-byte length + a 32-byte ephemeral key, no payload
MESSAGE_1_FRAMED = 2 + 32


class RecordingStream:
    """One end of a memory pipe that remembers every write (the dialer's Noise frames)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.writes: list[bytes] = []

    async def read(self, max_bytes: int = -1) -> bytes:
        return await self.inner.read(max_bytes)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        await self.inner.write(data)

    async def close_write(self) -> None:
        await self.inner.close_write()

    async def close(self) -> None:
        await self.inner.close()

    async def reset(self) -> None:
        await self.inner.reset()

    @property
    def is_closed(self) -> bool:
        return bool(self.inner.is_closed)


class OneStreamSession:
    def __init__(self, stream: RecordingStream) -> None:
        self.stream = stream

    async def open_stream(self) -> RecordingStream:
        return self.stream


async def _dial(dialed: list[bytes], offered: list[bytes]) -> tuple[Any, Any, RecordingStream]:
    kd = await PrivateKey.generate(KeyType.Ed25519)
    ks = await PrivateKey.generate(KeyType.Ed25519)
    addr = webtransport_multiaddr(BASE, dialed).encapsulate(f"/p2p/{PeerId.from_public_key(ks.public_key)}")
    wa = parse_webtransport(addr)
    assert wa is not None
    a, b = memory_pipe()
    rec = RecordingStream(a)
    server = NoiseSecurity(ks, webtransport_certhashes=offered, handshake_timeout=3)
    dialer, responder = await asyncio.gather(
        secure_dialed_session(OneStreamSession(rec), kd, wa, addr),
        server.secure_inbound(b),
        return_exceptions=True,
    )
    return dialer, responder, rec


async def test_mismatch_aborts_before_message_3() -> None:
    accepted, other, unrelated = certhash_of(b"accepted cert"), certhash_of(b"other"), certhash_of(b"unrelated")
    dialer, responder, rec = await _dial([accepted, other], [other, unrelated])
    assert isinstance(dialer, CerthashMismatchError), dialer
    # the error names the hash the server did not vouch for
    assert multibase.encode("base64url", accepted) in str(dialer)
    # only message 1 left the dialer: no message 3, so no identity for this server
    assert b"".join(rec.writes) == rec.writes[0] and len(rec.writes[0]) == MESSAGE_1_FRAMED, \
        [len(w) for w in rec.writes]
    # and the responder never completed a handshake (the stream was reset under it)
    assert isinstance(responder, PywasmError), responder


async def test_subset_passes_and_sends_message_3() -> None:
    h1, h2, h3 = certhash_of(b"1"), certhash_of(b"2"), certhash_of(b"3")
    dialer, responder, rec = await _dial([h2], [h1, h2, h3])
    assert not isinstance(dialer, BaseException), dialer
    assert not isinstance(responder, BaseException), responder
    assert responder.remote_peer == dialer.local_peer
    assert len(rec.writes) == 2 and len(rec.writes[1]) > MESSAGE_1_FRAMED  # message 3 with our payload


@pytest.mark.parametrize("offered", [[], [b"\x12\x20" + bytes(32)]])
async def test_no_extension_or_other_hash_fails_at_message_2(offered: list[bytes]) -> None:
    accepted = certhash_of(b"accepted cert")
    dialer, _, rec = await _dial([accepted], offered)
    assert isinstance(dialer, CerthashMismatchError), dialer
    assert len(rec.writes) == 1
