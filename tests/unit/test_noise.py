"""Noise: spec vectors, the libp2p handshake over an in-memory pipe, and the transport."""

from __future__ import annotations

import asyncio
import os
import random

import pytest

from pywasm.crypto import get_backend
from pywasm.errors import (
    DecryptError,
    HandshakeTimeoutError,
    NoiseError,
    PeerIdMismatchError,
    PywasmError,
    StreamClosedError,
    StreamResetError,
)
from pywasm.identity import KeyType, PeerId, PrivateKey
from pywasm.protocols import multistream as ms
from pywasm.protocols.noise.handshake import HandshakeState, generate_keypair
from pywasm.protocols.noise.payload import (
    NoiseExtensions,
    NoiseHandshakePayload,
    decode_payload,
    make_payload,
    select_muxer,
    signed_data,
)
from pywasm.protocols.noise.transport import (
    MAX_FRAME_LEN,
    MAX_PLAINTEXT_LEN,
    FrameDecoder,
    NoiseTransport,
)
from pywasm.security.noise import NoiseConnection, NoiseSecurity
from pywasm.streams import BufferedReader
from pywasm.transports.memory import memory_pipe
from tests._helpers import random_transfer

h = bytes.fromhex

# cacophony test vector for Noise_XX_25519_ChaChaPoly_SHA256 (prologue "John Galt").
VEC_PROLOGUE = h("4a6f686e2047616c74")
VEC_INIT_STATIC = h("e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1")
VEC_INIT_EPHEMERAL = h("893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a")
VEC_RESP_STATIC = h("4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893")
VEC_RESP_EPHEMERAL = h("bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b")
VEC_HANDSHAKE_HASH = h("c8e5f64e846193be2a834104c2a009868d6c9f3bd3c186299888b488b2f1f58e")
# (payload, ciphertext): three handshake messages, then transport messages
VEC_MESSAGES: list[tuple[str, str]] = [
        ("4c756477696720766f6e204d69736573",
         "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944"
         "4c756477696720766f6e204d69736573"),
        ("4d757272617920526f746862617264",
         "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f14480884381cbad1f276e038c"
         "48378ffce2b65285e08d6b68aaa3629a5a8639392490e5b9bd5269c2f1e4f488ed8831161f19b781"
         "5528f8982ffe09be9b5c412f8a0db50f8814c7194e83f23dbd8d162c9326ad"),
        ("462e20412e20486179656b",
         "c7195ffacac1307ff99046f219750fc47693e23c3cb08b89c2af808b444850a80ae475b9df0f169a"
         "e80a89be0865b57f58c9fea0d4ec82a286427402f113e4b6ae769a1d95941d49b25030"),
        ("4361726c204d656e676572", "96763ed773f8e47bb3712f0e29b3060ffc956ffc146cee53d5e1df"),
        ("4a65616e2d426170746973746520536179",
         "3e40f15f6f3a46ae446b253bf8b1d9ffb6ed9b174d272328ff91a7e2e5c79c07f5"),
        ("457567656e2042f6686d20766f6e2042617765726b",
         "eb3f3515110702e047a6c9da4478b6ead94873c11c0f2d710ddb3f09fce024b3a58502ae3f"),
]


async def _vector_parties() -> tuple[HandshakeState, HandshakeState]:
    backend = get_backend()
    init = HandshakeState(
        True,
        VEC_INIT_STATIC,
        await backend.x25519_public(VEC_INIT_STATIC),
        prologue=VEC_PROLOGUE,
        ephemeral_private=VEC_INIT_EPHEMERAL,
    )
    resp = HandshakeState(
        False,
        VEC_RESP_STATIC,
        await backend.x25519_public(VEC_RESP_STATIC),
        prologue=VEC_PROLOGUE,
        ephemeral_private=VEC_RESP_EPHEMERAL,
    )
    return init, resp


async def test_cacophony_vector() -> None:
    init, resp = await _vector_parties()
    parties = [init, resp]
    for i, (payload, ct) in enumerate(VEC_MESSAGES[:3]):
        sender, receiver = parties[i % 2], parties[(i + 1) % 2]
        msg = await sender.write_message(h(payload))
        assert msg.hex() == ct
        assert await receiver.read_message(msg) == h(payload)
    assert init.complete and resp.complete
    assert init.handshake_hash == resp.handshake_hash == VEC_HANDSHAKE_HASH
    assert init.remote_static == await get_backend().x25519_public(VEC_RESP_STATIC)
    ti = NoiseTransport(*init.split())
    tr = NoiseTransport(*resp.split())
    # transport messages keep alternating: responder, initiator, responder
    for i, (tpayload, tct) in enumerate(VEC_MESSAGES[3:]):
        tsender, treceiver = (tr, ti) if i % 2 == 0 else (ti, tr)
        wire = await tsender.seal([h(tpayload)])
        assert wire[:2] == len(h(tct)).to_bytes(2, "big") and wire[2:].hex() == tct
        assert await treceiver.feed(wire) == [h(tpayload)]


async def test_handshake_state_misuse() -> None:
    init, resp = await _vector_parties()
    with pytest.raises(NoiseError):
        await resp.write_message(b"")  # the initiator speaks first
    with pytest.raises(NoiseError):
        await init.read_message(b"\x00" * 32)
    with pytest.raises(NoiseError):
        init.split()
    await resp.read_message(await init.write_message(b""))
    with pytest.raises(NoiseError):
        await init.read_message(b"\x01" * 31)  # shorter than an ephemeral key
    msg2 = bytearray(await resp.write_message(b"x"))
    msg2[40] ^= 1  # inside the encrypted static key
    with pytest.raises(NoiseError):
        await init.read_message(bytes(msg2))


async def test_handshake_payload_too_large() -> None:
    s_priv, s_pub = await generate_keypair()
    hs = HandshakeState(True, s_priv, s_pub)
    with pytest.raises(NoiseError):
        await hs.write_message(b"x" * MAX_FRAME_LEN)


# --- payload ---------------------------------------------------------------------------
def test_payload_codec() -> None:
    msg = NoiseHandshakePayload(
        identity_key=b"k",
        identity_sig=b"s",
        extensions=NoiseExtensions(webtransport_certhashes=[b"\x12\x20" + bytes(32)],
                                   stream_muxers=["/yamux/1.0.0"]),
    )
    decoded = decode_payload(msg.encode())
    assert decoded == msg
    for bad in [b"", NoiseHandshakePayload(identity_key=b"k").encode(), b"\x0a\x05ab"]:
        with pytest.raises(NoiseError):
            decode_payload(bad)


def test_select_muxer() -> None:
    # the initiator's preference wins
    assert select_muxer(["/yamux/1.0.0", "/mplex/6.7.0"], ["/mplex/6.7.0", "/yamux/1.0.0"]) == "/yamux/1.0.0"
    assert select_muxer(["/mplex/6.7.0"], ["/mplex/6.7.0", "/yamux/1.0.0"]) == "/mplex/6.7.0"
    assert select_muxer(["/a"], ["/b"]) is None
    assert select_muxer([], ["/b"]) is None


# --- full libp2p handshake over a pipe -------------------------------------------------------
async def _keys() -> tuple[PrivateKey, PrivateKey]:
    return await PrivateKey.generate(KeyType.Ed25519), await PrivateKey.generate(KeyType.Ed25519)


async def _pair(
    init_muxers: tuple[str, ...] = (),
    resp_muxers: tuple[str, ...] = (),
    certhashes: tuple[bytes, ...] = (),
    capacity: int | None = None,
) -> tuple[NoiseConnection, NoiseConnection, object, object]:
    ki, kr = await _keys()
    a, b = memory_pipe(capacity) if capacity else memory_pipe()
    si = NoiseSecurity(ki, init_muxers)
    sr = NoiseSecurity(kr, resp_muxers, webtransport_certhashes=certhashes)
    ci, cr = await asyncio.gather(
        si.secure_outbound(a, PeerId.from_public_key(kr.public_key)), sr.secure_inbound(b)
    )
    return ci, cr, a, b


async def test_handshake_and_echo() -> None:
    ci, cr, _, _ = await _pair()
    assert ci.remote_peer == cr.local_peer and cr.remote_peer == ci.local_peer
    assert ci.remote_public_key.to_protobuf() and ci.early_muxer is None and cr.early_muxer is None
    assert ci.handshake_hash == cr.handshake_hash
    await ci.write(b"hello")
    assert await cr.read(100) == b"hello"
    await cr.write(memoryview(b"world"))
    assert await ci.read() == b"world"
    # small frames coalesce into one read, partial reads keep the rest
    await ci.write(b"ab")
    await ci.write(b"cd")
    await ci.write(b"")  # no frame at all
    assert await cr.read(4) == b"abcd"
    await ci.write(b"efgh")
    assert await cr.read(3) == b"efg"
    assert await cr.read(3) == b"h"


async def test_key_types() -> None:
    for kt in (KeyType.Secp256k1, KeyType.ECDSA):
        ki = await PrivateKey.generate(kt)
        kr = await PrivateKey.generate(KeyType.Ed25519)
        a, b = memory_pipe()
        ci, cr = await asyncio.gather(
            NoiseSecurity(ki).secure_outbound(a, PeerId.from_public_key(kr.public_key)),
            NoiseSecurity(kr).secure_inbound(b),
        )
        assert cr.remote_peer == PeerId.from_public_key(ki.public_key)


async def test_extensions_exchanged() -> None:
    certhash = b"\x12\x20" + bytes(range(32))
    ci, cr, _, _ = await _pair(
        ("/yamux/1.0.0", "/mplex/6.7.0"), ("/mplex/6.7.0", "/yamux/1.0.0"), (certhash,)
    )
    assert ci.early_muxer == cr.early_muxer == "/yamux/1.0.0"
    assert ci.remote_stream_muxers == ("/mplex/6.7.0", "/yamux/1.0.0")
    assert cr.remote_stream_muxers == ("/yamux/1.0.0", "/mplex/6.7.0")
    # the responder (a WebTransport server) announces its certhashes to the initiator
    assert ci.webtransport_certhashes == (certhash,)
    assert cr.webtransport_certhashes == ()


async def test_no_common_muxer_falls_back() -> None:
    ci, cr, _, _ = await _pair(("/yamux/1.0.0",), ("/mplex/6.7.0",))
    assert ci.early_muxer is None and cr.early_muxer is None
    ci, cr, _, _ = await _pair(("/yamux/1.0.0",), ())
    assert ci.early_muxer is None and cr.early_muxer is None


async def test_wrong_peer_id_rejected() -> None:
    ki, kr = await _keys()
    other = await PrivateKey.generate(KeyType.Ed25519)
    a, b = memory_pipe()
    out, inn = await asyncio.gather(
        NoiseSecurity(ki).secure_outbound(a, PeerId.from_public_key(other.public_key)),
        NoiseSecurity(kr, handshake_timeout=2).secure_inbound(b),
        return_exceptions=True,
    )
    assert isinstance(out, PeerIdMismatchError)
    assert isinstance(inn, PywasmError)  # the raw connection was reset under it


async def _evil_responder(conn: object, identity: PrivateKey, sign_other_key: bool) -> None:
    """A responder that signs a different static key than the one it uses."""
    reader = BufferedReader(conn)  # type: ignore[arg-type]
    s_priv, s_pub = await generate_keypair()
    hs = HandshakeState(False, s_priv, s_pub)
    n = int.from_bytes(await reader.read_exactly(2), "big")
    await hs.read_message(await reader.read_exactly(n))
    _, other_pub = await generate_keypair()
    payload = await make_payload(identity, other_pub if sign_other_key else s_pub)
    msg = await hs.write_message(payload)
    await conn.write(len(msg).to_bytes(2, "big") + msg)  # type: ignore[attr-defined]


async def test_bad_signature_rejected() -> None:
    ki, kr = await _keys()
    a, b = memory_pipe()
    results = await asyncio.gather(
        NoiseSecurity(ki).secure_outbound(a, None),
        _evil_responder(b, kr, sign_other_key=True),
        return_exceptions=True,
    )
    assert isinstance(results[0], NoiseError)
    assert "signature" in str(results[0])


async def test_signature_by_other_identity_rejected() -> None:
    # A payload whose signature was made by another identity than the one it names.
    ki, kr = await _keys()
    mallory = await PrivateKey.generate(KeyType.Ed25519)
    s_priv, s_pub = await generate_keypair()
    forged = NoiseHandshakePayload(
        identity_key=kr.public_key.to_protobuf(),
        identity_sig=await mallory.sign(signed_data(s_pub)),
    ).encode()
    from pywasm.protocols.noise.payload import verify_payload

    with pytest.raises(NoiseError):
        await verify_payload(forged, s_pub)
    good = await make_payload(kr, s_pub)
    ident = await verify_payload(good, s_pub)
    assert ident.peer_id == PeerId.from_public_key(kr.public_key)


async def test_unspecified_remote_accepts_anyone() -> None:
    ki, kr = await _keys()
    a, b = memory_pipe()
    ci, cr = await asyncio.gather(
        NoiseSecurity(ki).secure_outbound(a, None), NoiseSecurity(kr).secure_inbound(b)
    )
    assert ci.remote_peer == PeerId.from_public_key(kr.public_key)


async def test_tampered_frame_rejected() -> None:
    ci, cr, a, b = await _pair()
    await ci.write(b"first")
    assert await cr.read() == b"first"
    # forge a frame on the raw connection: right length, garbage ciphertext
    await a.write((32).to_bytes(2, "big") + os.urandom(32))  # type: ignore[attr-defined]
    with pytest.raises(DecryptError):
        await cr.read()
    with pytest.raises(NoiseError):  # the connection stays failed
        await cr.read()


async def test_flipped_bit_rejected() -> None:
    ki, kr = await _keys()
    a, b = memory_pipe()

    class Flipper:
        """Raw side that flips one bit of the first transport frame after the handshake."""

        def __init__(self, inner: object) -> None:
            self.inner = inner
            self.armed = False

        async def write(self, data: bytes) -> None:
            if self.armed:
                flipped = bytearray(data)
                flipped[-1] ^= 0x80
                data = bytes(flipped)
            await self.inner.write(data)  # type: ignore[attr-defined]

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    fa = Flipper(a)
    ci, cr = await asyncio.gather(
        NoiseSecurity(ki).secure_outbound(fa, None),  # type: ignore[arg-type]
        NoiseSecurity(kr).secure_inbound(b),
    )
    fa.armed = True
    await ci.write(b"payload")
    with pytest.raises(DecryptError):
        await cr.read()


async def test_frame_sizes_and_limit() -> None:
    ci, cr, a, b = await _pair()
    data = os.urandom(3 * MAX_PLAINTEXT_LEN + 1000)
    writer = asyncio.ensure_future(ci.write(data))
    # read the raw ciphertext as the peer would, checking the framing
    decoder = FrameDecoder()
    frames: list[bytes] = []
    total = 0
    expect_frames = 4
    while len(frames) < expect_frames:
        chunk = await b.read(65536)  # type: ignore[attr-defined]
        assert chunk
        frames += [bytes(f) for f in decoder.feed(chunk)]
    await writer
    assert [len(f) for f in frames] == [MAX_FRAME_LEN] * 3 + [1000 + 16]
    total = sum(len(f) - 16 for f in frames)
    assert total == len(data)
    # a frame too short to hold a tag is a protocol error
    with pytest.raises(NoiseError):
        FrameDecoder().feed(b"\x00\x0f" + bytes(15))


async def test_bulk_transfer_random_reads() -> None:
    ci, cr, _, _ = await _pair(capacity=128 * 1024)
    rng = random.Random(7)
    data = rng.randbytes(2 * 1024 * 1024 + 12345)
    got = await random_transfer(ci, cr, data, rng, [1, 100, 65519, 65520, 200000, 1 << 20],
                                [1, 7, 1000, 65536, 1 << 20, -1])
    assert got == data


async def test_half_close_and_write_after_close() -> None:
    ci, cr, _, _ = await _pair()
    await ci.write(b"bye")
    await ci.close_write()
    assert await cr.read() == b"bye"
    assert await cr.read() == b""
    with pytest.raises(StreamClosedError):
        await ci.write(b"more")
    await cr.write(b"still open")  # the other direction still works
    assert await ci.read() == b"still open"
    await cr.close()
    await ci.close()


async def test_eof_inside_frame() -> None:
    ci, cr, a, b = await _pair()
    await a.write(b"\x01\x00" + bytes(10))  # type: ignore[attr-defined]
    await a.close_write()  # type: ignore[attr-defined]
    with pytest.raises(NoiseError):
        await cr.read()


async def test_handshake_timeout() -> None:
    ki, _ = await _keys()
    a, _b = memory_pipe()
    sec = NoiseSecurity(ki, handshake_timeout=0.05)
    with pytest.raises(HandshakeTimeoutError):
        await sec.secure_outbound(a, None)
    with pytest.raises(PywasmError):  # the raw connection was reset on failure
        await a.write(b"x")


async def test_garbage_handshake_rejected() -> None:
    ki, _ = await _keys()
    a, b = memory_pipe()
    await a.write(b"\x00\x05hello")  # too short for an ephemeral key
    with pytest.raises(NoiseError):
        await NoiseSecurity(ki).secure_inbound(b)
    a, b = memory_pipe()
    await a.write(b"\x00")
    await a.close_write()
    with pytest.raises(NoiseError):
        await NoiseSecurity(ki).secure_inbound(b)


async def test_bytes_after_handshake_are_kept() -> None:
    # The initiator's first transport frame arrives in the same read as message 3,
    # and multistream-select leftovers (lazy select + message 1 in one burst) feed the
    # responder's handshake.
    ki, kr = await _keys()
    a, b = memory_pipe()

    async def dialer() -> NoiseConnection:
        _, reader = await ms.negotiate_outbound(a, ["/noise"], lazy=True)
        conn = await NoiseSecurity(ki).secure_outbound(
            a, PeerId.from_public_key(kr.public_key), reader=reader
        )
        await conn.write(b"early data")
        return conn

    async def listener() -> NoiseConnection:
        _, reader = await ms.negotiate_inbound(b, ["/noise"])
        return await NoiseSecurity(kr).secure_inbound(b, reader=reader)

    ci, cr = await asyncio.gather(dialer(), listener())
    assert await cr.read() == b"early data"
    await cr.write(b"reply")
    assert await ci.read() == b"reply"


async def test_reset_propagates() -> None:
    ci, cr, _, _ = await _pair()
    await ci.reset()
    with pytest.raises(StreamResetError):
        await ci.write(b"x")
    with pytest.raises(StreamResetError):
        await ci.read()
    with pytest.raises(PywasmError):
        await cr.read()


async def test_concurrent_writers_keep_nonce_order() -> None:
    ci, cr, _, _ = await _pair(capacity=64 * 1024)
    blobs = [bytes([i]) * 150_000 for i in range(8)]

    async def recv() -> bytes:
        out = bytearray()
        while len(out) < sum(map(len, blobs)):
            out += await cr.read(1 << 20)
        return bytes(out)

    receiver = asyncio.ensure_future(recv())
    await asyncio.gather(*(ci.write(x) for x in blobs))
    got = await receiver
    # each write is contiguous (the write lock), and everything decrypts
    assert sorted(got[i : i + 150_000] for i in range(0, len(got), 150_000)) == blobs


@pytest.mark.parametrize("seed", range(5))
async def test_gather_write_frames_match_joined_data(seed: int) -> None:
    """batches_of_parts cuts pieces exactly as the joined bytes would be cut."""
    init, resp = await _vector_parties()
    for i, (payload, _ct) in enumerate(VEC_MESSAGES[:3]):
        sender, receiver = (init, resp) if i % 2 == 0 else (resp, init)
        await receiver.read_message(await sender.write_message(h(payload)))
    t = NoiseTransport(*init.split())
    rng = random.Random(seed)
    parts = [rng.randbytes(rng.choice([0, 1, 12, 700, MAX_PLAINTEXT_LEN, 262144])) for _ in range(12)]
    frames = [bytes(f) for batch in t.batches_of_parts(parts) for f in batch]
    batches = list(t.batches_of_parts(parts))
    assert b"".join(frames) == b"".join(parts)
    assert all(len(f) == MAX_PLAINTEXT_LEN for f in frames[:-1])
    assert all(0 < len(b) <= 16 for b in batches)
    assert list(t.batches_of_parts([b"", b""])) == []
