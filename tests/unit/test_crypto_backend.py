"""The CryptoBackend contract, checked against whichever backend this platform uses.

Natively that is NativeBackend (OpenSSL); inside Pyodide it is WebCryptoBackend (JS,
browser/src/crypto.mjs). Same vectors, same expected errors: the two must be
interchangeable, since a Noise session between a browser and a native node depends on it.
Known-answer vectors come from the RFCs or were made by OpenSSL / go-libp2p.
"""

from __future__ import annotations

import hashlib
import sys

import pytest

from pywasm.crypto import CryptoBackend, get_backend, noise_nonce
from pywasm.errors import CryptoError, DecryptError, InvalidKeyError

from . import _key_vectors as V


def backend() -> CryptoBackend:
    return get_backend()


def test_platform_backend() -> None:
    b = backend()
    if sys.platform == "emscripten":
        from pywasm.crypto.web import WebCryptoBackend

        assert isinstance(b, WebCryptoBackend)
    else:
        from pywasm.crypto.native import NativeBackend

        assert isinstance(b, NativeBackend)


def test_noise_nonce_layout() -> None:
    assert noise_nonce(0) == bytes(12)
    assert noise_nonce(0x0807060504030201) == bytes.fromhex("000000000102030405060708")


# --- ChaCha20-Poly1305 ---------------------------------------------------------------------
# RFC 8439 appendix A.5: its nonce 00000000 0102030405060708 happens to be the Noise layout
# (4 zero bytes, then the counter 0x0807060504030201 little-endian).
A5_KEY = bytes.fromhex("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0")
A5_COUNTER = 0x0807060504030201
A5_AD = bytes.fromhex("f33388860000000000004e91")
A5_PLAINTEXT = (
    b"Internet-Drafts are draft documents valid for a maximum of six months and may be "
    b"updated, replaced, or obsoleted by other documents at any time. It is inappropriate "
    b"to use Internet-Drafts as reference material or to cite them other than as "
    b"/\xe2\x80\x9cwork in progress./\xe2\x80\x9d"
)
A5_CIPHERTEXT = bytes.fromhex(
    "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb24c6cfc18755d43eea09ee94e"
    "382d26b0bdb7b73c321b0100d4f03b7f355894cf332f830e710b97ce98c8a84abd0b948114ad176e008d33bd"
    "60f982b1ff37c8559797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4b9166c76"
    "7b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523eaf4534d7f83fa1155b0047718cbc546a"
    "0d072b04b3564eea1b422273f548271a0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a67276"
    "27097a1049e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29a6ad5cb4022b0270"
    "9b"
    "eead9d67890cbb22392336fea1851f38"  # tag
)
KEY = bytes(range(32))
# Made by OpenSSL: seal(KEY, counter 7, ad b"ad", b"hello").
HELLO_CT = bytes.fromhex("996ae8244d093c7f4f2089037a941aad78f372dba4")


async def test_aead_rfc8439_vector() -> None:
    b = backend()
    assert await b.aead_seal(A5_KEY, A5_COUNTER, A5_AD, A5_PLAINTEXT) == A5_CIPHERTEXT
    assert await b.aead_open(A5_KEY, A5_COUNTER, A5_AD, A5_CIPHERTEXT) == A5_PLAINTEXT


async def test_aead_small_vectors() -> None:
    b = backend()
    assert await b.aead_seal(KEY, 7, b"ad", b"hello") == HELLO_CT
    assert await b.aead_open(KEY, 7, b"ad", HELLO_CT) == b"hello"
    # Empty plaintext and empty associated data: a bare tag.
    empty = await b.aead_seal(KEY, 0, b"", b"")
    assert len(empty) == 16
    assert await b.aead_open(KEY, 0, b"", empty) == b""
    # Buffer types other than bytes are accepted.
    assert await b.aead_seal(bytearray(KEY), 7, bytearray(b"ad"), memoryview(b"hello")) == HELLO_CT


async def test_aead_large_frame_round_trip() -> None:
    b = backend()
    data = hashlib.sha256(b"x").digest() * 2048  # 64 KiB
    ct = await b.aead_seal(KEY, 99, b"", data)
    assert len(ct) == len(data) + 16
    assert await b.aead_open(KEY, 99, b"", ct) == data


async def test_aead_tamper_raises_decrypt_error() -> None:
    b = backend()
    ct = await b.aead_seal(KEY, 1, b"", b"payload")
    cases = [
        (KEY, ct[:-1] + bytes([ct[-1] ^ 1]), 1, b""),  # tag bit
        (KEY, bytes([ct[0] ^ 0x80]) + ct[1:], 1, b""),  # ciphertext bit
        (KEY, ct, 2, b""),  # wrong counter
        (KEY, ct, 1, b"x"),  # wrong associated data
        (KEY, ct[:10], 1, b""),  # truncated below a tag
        (KEY, b"", 1, b""),  # empty
        (bytes(32), ct, 1, b""),  # wrong key
    ]
    for key, bad, counter, ad in cases:
        with pytest.raises(DecryptError):
            await b.aead_open(key, counter, ad, bad)


async def test_aead_many_matches_single() -> None:
    b = backend()
    frames = [b"a", b"", b"c" * 1000, bytes(range(256)) * 40]
    sealed = await b.aead_seal_many(KEY, 10, b"", frames)
    assert sealed == [await b.aead_seal(KEY, 10 + i, b"", f) for i, f in enumerate(frames)]
    assert await b.aead_open_many(KEY, 10, b"", sealed) == frames
    assert await b.aead_seal_many(KEY, 0, b"", []) == []
    assert await b.aead_open_many(KEY, 0, b"", []) == []
    with pytest.raises(DecryptError):
        await b.aead_open_many(KEY, 11, b"", sealed)  # counters shifted by one
    tampered = list(sealed)
    tampered[2] = tampered[2][:-1] + bytes([tampered[2][-1] ^ 1])
    with pytest.raises(DecryptError):
        await b.aead_open_many(KEY, 10, b"", tampered)
    with pytest.raises(DecryptError):
        await b.aead_open_many(KEY, 10, b"", [sealed[0], b"short"])


async def test_aead_seal_framed_lays_out_noise_frames() -> None:
    b = backend()
    frames = [b"a", b"", b"c" * 1000, memoryview(bytes(range(256)) * 40)[3:9000]]
    wire = bytes(await b.aead_seal_framed(KEY, 7, b"", frames))
    expected = b"".join(
        len(ct).to_bytes(2, "big") + ct for ct in await b.aead_seal_many(KEY, 7, b"", frames)
    )
    assert wire == expected
    assert bytes(await b.aead_seal_framed(KEY, 0, b"", [])) == b""


async def test_aead_bad_key_and_counter() -> None:
    b = backend()
    with pytest.raises(InvalidKeyError):
        await b.aead_seal(b"short", 0, b"", b"x")
    with pytest.raises(CryptoError):
        await b.aead_seal(KEY, -1, b"", b"x")
    with pytest.raises(CryptoError):
        await b.aead_seal(KEY, 1 << 64, b"", b"x")
    last = await b.aead_seal(KEY, (1 << 64) - 1, b"", b"x")
    assert await b.aead_open(KEY, (1 << 64) - 1, b"", last) == b"x"


# --- X25519 (RFC 7748 section 6.1) ----------------------------------------------------------
ALICE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUB = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUB = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")


async def test_x25519_rfc7748() -> None:
    b = backend()
    assert await b.x25519_public(ALICE) == ALICE_PUB
    assert await b.x25519_public(BOB) == BOB_PUB
    assert await b.x25519(ALICE, BOB_PUB) == SHARED
    assert await b.x25519(BOB, ALICE_PUB) == SHARED


@pytest.mark.parametrize(
    "point",
    [
        bytes(32),  # u = 0
        b"\x01" + bytes(31),  # u = 1
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),  # order 8
    ],
)
async def test_x25519_low_order_points(point: bytes) -> None:
    with pytest.raises(CryptoError):
        await backend().x25519(ALICE, point)


async def test_x25519_bad_lengths() -> None:
    b = backend()
    with pytest.raises(InvalidKeyError):
        await b.x25519(ALICE[:31], BOB_PUB)
    with pytest.raises(InvalidKeyError):
        await b.x25519(ALICE, BOB_PUB[:31])
    with pytest.raises(InvalidKeyError):
        await b.x25519_public(b"")


# --- Ed25519 (RFC 8032 section 7.1, tests 1-3) ----------------------------------------------
ED25519_RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


@pytest.mark.parametrize("seed,public,message,signature", ED25519_RFC8032)
async def test_ed25519_rfc8032(seed: str, public: str, message: str, signature: str) -> None:
    b = backend()
    sk, pk, msg, sig = (bytes.fromhex(x) for x in (seed, public, message, signature))
    assert await b.ed25519_public(sk) == pk
    assert await b.ed25519_sign(sk, msg) == sig
    assert await b.ed25519_verify(pk, msg, sig) is True
    assert await b.ed25519_verify(pk, msg + b"x", sig) is False
    assert await b.ed25519_verify(pk, msg, sig[:-1] + bytes([sig[-1] ^ 1])) is False
    assert await b.ed25519_verify(pk, msg, sig[:63]) is False
    assert await b.ed25519_verify(pk, msg, b"") is False


async def test_ed25519_go_signature_and_bad_keys() -> None:
    b = backend()
    public = V.GO_ED25519_PUBLIC[-32:]
    assert await b.ed25519_verify(public, V.GO_MESSAGE, V.GO_ED25519_SIG) is True
    with pytest.raises(InvalidKeyError):
        await b.ed25519_verify(public[:31], b"", V.GO_ED25519_SIG)
    with pytest.raises(InvalidKeyError):
        await b.ed25519_sign(bytes(31), b"")
    with pytest.raises(InvalidKeyError):
        await b.ed25519_public(b"")


# --- ECDSA over SHA-256 ---------------------------------------------------------------------------
# Fixed keys and OpenSSL signatures of b"pywasm" (both with a high S: OpenSSL does not
# normalize, and a verifier must accept them).
ECDSA_FIXED = {
    "p256": (
        "03094f7a7ecf3ec81c570d132f912fb06bfc616901735e84cfa04297807e874b",
        "04b21661ccc57731a3cbf62cc6d574003e74b12c147ab92883f0cc9919bda271713cef418ead006ce57c54dd"
        "445dfdcf5ce7ff59d95661114b99afc3d19fad61e2",
        "3046022100f33e32a3a97d4d4e7df27c241462c2823e4165e64d1c9c7e67fb54470adfea6e022100cad2b872"
        "3bc89077bdd7266a749c2816e1908a72865f35340ec5e070e27de48a",
    ),
    "secp256k1": (
        "7c9ff2b099baf58a8278b75462efcec8936e9919ea3d93722da5714512d619e4",
        "04612dd5552febc63f23c89ad3aa4af2b35a8a27bfb2effba97fac2d06c30e351df65b29711bc44aa4825b7d"
        "925b45d69f8f8c64ced6cdf5323948668b56e3004b",
        "3045022100a9354719b6e036910c8cd0c599d6a36a81f3fb549219980eb4dc550763be9acd02204e101fdd"
        "aab49ce1a296a636b90d4d41f5e24d104d52253617230d78df42a380",
    ),
}
ORDERS = {
    "p256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "secp256k1": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
}


def _der_int(v: int) -> bytes:
    body = v.to_bytes((v.bit_length() + 8) // 8, "big")  # room for a sign bit
    return b"\x02" + bytes([len(body)]) + body


def _der_sig(r: int, s: int) -> bytes:
    body = _der_int(r) + _der_int(s)
    return b"\x30" + bytes([len(body)]) + body


def _parse_der_sig(sig: bytes) -> tuple[int, int]:
    assert sig[0] == 0x30 and sig[1] == len(sig) - 2
    rlen = sig[3]
    r = int.from_bytes(sig[4 : 4 + rlen], "big")
    slen = sig[5 + rlen]
    s = int.from_bytes(sig[6 + rlen : 6 + rlen + slen], "big")
    return r, s


def _compress(point: bytes) -> bytes:
    return bytes([2 + (point[64] & 1)]) + point[1:33]


@pytest.mark.parametrize("curve", ["p256", "secp256k1"])
async def test_ecdsa_fixed_vectors(curve: str) -> None:
    b = backend()
    priv_hex, pub_hex, sig_hex = ECDSA_FIXED[curve]
    priv, pub, sig = bytes.fromhex(priv_hex), bytes.fromhex(pub_hex), bytes.fromhex(sig_hex)
    assert await b.ecdsa_public(curve, priv) == pub  # type: ignore[arg-type]
    r, s = _parse_der_sig(sig)
    n = ORDERS[curve]
    flipped = _der_sig(r, n - s)  # the other S of the same signature
    for point in (pub, _compress(pub)):
        assert await b.ecdsa_verify(curve, point, b"pywasm", sig) is True  # type: ignore[arg-type]
        assert await b.ecdsa_verify(curve, point, b"pywasm", flipped) is True  # type: ignore[arg-type]
        assert await b.ecdsa_verify(curve, point, b"pywasn", sig) is False  # type: ignore[arg-type]
        assert await b.ecdsa_verify(curve, point, b"pywasm", _der_sig(r, s ^ 1)) is False  # type: ignore[arg-type]
        assert await b.ecdsa_verify(curve, point, b"pywasm", b"\x30\x00") is False  # type: ignore[arg-type]
        assert await b.ecdsa_verify(curve, point, b"pywasm", b"") is False  # type: ignore[arg-type]
        assert await b.ecdsa_verify(curve, point, b"pywasm", sig[:-1]) is False  # type: ignore[arg-type]


@pytest.mark.parametrize("curve", ["p256", "secp256k1"])
async def test_ecdsa_round_trip(curve: str) -> None:
    b = backend()
    priv = hashlib.sha256(b"round trip " + curve.encode()).digest()
    pub = await b.ecdsa_public(curve, priv)  # type: ignore[arg-type]
    assert len(pub) == 65 and pub[0] == 4
    for msg in (b"", b"m", bytes(10000)):
        sig = await b.ecdsa_sign(curve, priv, msg)  # type: ignore[arg-type]
        assert sig[0] == 0x30 and len(sig) <= 72
        assert await b.ecdsa_verify(curve, pub, msg, sig) is True  # type: ignore[arg-type]
        assert await b.ecdsa_verify(curve, pub, msg + b"!", sig) is False  # type: ignore[arg-type]


async def test_secp256k1_go_signature() -> None:
    b = backend()
    public = V.GO_SECP256K1_PUBLIC[-33:]
    assert await b.ecdsa_verify("secp256k1", public, V.GO_MESSAGE, V.GO_SECP256K1_SIG) is True
    assert await b.ecdsa_verify("secp256k1", public, V.GO_MESSAGE + b"!", V.GO_SECP256K1_SIG) is False
    # The private half derives the same public point.
    point = await b.ecdsa_public("secp256k1", V.GO_SECP256K1_PRIVATE[-32:])
    assert _compress(point) == public


async def test_ecdsa_bad_keys() -> None:
    b = backend()
    for curve, priv in [
        ("p256", bytes(32)),  # zero scalar
        ("p256", b"\xff" * 32),  # >= n
        ("p256", b"\x01" * 31),  # length
        ("p384", b"\x01" * 32),  # unsupported curve
    ]:
        with pytest.raises(InvalidKeyError):
            await b.ecdsa_public(curve, priv)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        await b.ecdsa_verify("p256", b"\x04" + b"\x01" * 64, b"m", b"\x30\x00")  # not on the curve
    with pytest.raises(InvalidKeyError):
        await b.ecdsa_verify("secp256k1", b"\x04" * 10, b"m", b"\x30\x00")


# --- RSA PKCS#1 v1.5 SHA-256 ------------------------------------------------------------------------
GO_RSA_SPKI = V.GO_RSA_PUBLIC[5:]  # strip the libp2p protobuf header (08 00 12 a6 02)


async def test_rsa_verify_go_signature() -> None:
    b = backend()
    assert await b.rsa_verify(GO_RSA_SPKI, V.GO_RSA_DATA, V.GO_RSA_SIG) is True
    assert await b.rsa_verify(GO_RSA_SPKI, V.GO_RSA_DATA[:-1], V.GO_RSA_SIG) is False
    bad = V.GO_RSA_SIG[:-1] + bytes([V.GO_RSA_SIG[-1] ^ 1])
    assert await b.rsa_verify(GO_RSA_SPKI, V.GO_RSA_DATA, bad) is False
    assert await b.rsa_verify(GO_RSA_SPKI, V.GO_RSA_DATA, V.GO_RSA_SIG[:-1]) is False
    assert await b.rsa_verify(GO_RSA_SPKI, V.GO_RSA_DATA, b"") is False


async def test_rsa_bad_public_keys() -> None:
    b = backend()
    with pytest.raises(InvalidKeyError):
        await b.rsa_verify(b"\x30\x00", b"m", b"s")
    ec_spki = bytes.fromhex(  # a P-256 SubjectPublicKeyInfo: not RSA
        "3059301306072a8648ce3d020106082a8648ce3d03010703420004de3d300fa36ae0e8f5d530899d83abab44"
        "abf3161f162a4bc901d8e6ecda020e8b6d5f8da30525e71d6851510c098e5c47c646a597fb4dcec034e9f77c"
        "409e62"
    )
    with pytest.raises(InvalidKeyError):
        await b.rsa_verify(ec_spki, b"m", b"s")


async def test_rsa_spec_key_sign_verify() -> None:
    # The libp2p spec's RSA key: PKCS#1 private key inside the protobuf (header 08 00 12 ae 12).
    b = backend()
    private = V.RSA_PRIVATE[5:]
    public = await b.rsa_public_from_private(private)
    assert public == V.RSA_PUBLIC[5:]
    sig = await b.rsa_sign(private, b"hello")
    assert len(sig) == 512  # 4096-bit key
    assert await b.rsa_verify(public, b"hello", sig) is True
    assert await b.rsa_verify(public, b"hellp", sig) is False
    # PKCS#1 v1.5 is deterministic: signing twice gives the same bytes.
    assert await b.rsa_sign(private, b"hello") == sig
    with pytest.raises(InvalidKeyError):
        await b.rsa_sign(b"\x30\x00", b"m")


async def test_rsa_generate_round_trip() -> None:
    b = backend()
    private, public = await b.rsa_generate(2048)
    assert await b.rsa_public_from_private(private) == public
    sig = await b.rsa_sign(private, b"msg")
    assert len(sig) == 256
    assert await b.rsa_verify(public, b"msg", sig) is True
    assert await b.rsa_verify(public, b"msh", sig) is False
    with pytest.raises(InvalidKeyError):
        await b.rsa_generate(100)
