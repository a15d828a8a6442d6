"""The OpenSSL backend (CPython only)."""

from __future__ import annotations

import pytest

pytest.importorskip("cryptography")

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305  # noqa: E402

from pywasm.crypto import get_backend, noise_nonce  # noqa: E402
from pywasm.crypto import native  # noqa: E402
from pywasm.crypto.native import NativeBackend  # noqa: E402
from pywasm.errors import CryptoError, DecryptError, InvalidKeyError  # noqa: E402
from pywasm.identity import KeyType, PrivateKey  # noqa: E402
from pywasm.identity import der  # noqa: E402
from pywasm.identity.keys import _KeyPB  # noqa: E402
from tests.unit import _key_vectors as V  # noqa: E402

KEY = bytes(range(32))


def test_default_backend_is_native() -> None:
    assert isinstance(get_backend(), NativeBackend)
    assert get_backend().name == "native"


# --- ChaCha20-Poly1305 ---------------------------------------------------------------------


async def test_aead_matches_reference() -> None:
    b = NativeBackend()
    ct = await b.aead_seal(KEY, 7, b"ad", b"hello")
    assert ct == ChaCha20Poly1305(KEY).encrypt(noise_nonce(7), b"hello", b"ad")
    assert len(ct) == 5 + 16
    assert await b.aead_open(KEY, 7, b"ad", ct) == b"hello"
    # Empty associated data is the same as none.
    assert await b.aead_seal(KEY, 0, b"", b"x") == ChaCha20Poly1305(KEY).encrypt(noise_nonce(0), b"x", None)


async def test_aead_rejects_tampering() -> None:
    b = NativeBackend()
    ct = await b.aead_seal(KEY, 1, b"", b"payload")
    for bad_ct, counter, ad in [
        (ct[:-1] + bytes([ct[-1] ^ 1]), 1, b""),
        (ct, 2, b""),
        (ct, 1, b"x"),
        (ct[:10], 1, b""),
        (b"", 1, b""),
    ]:
        with pytest.raises(DecryptError):
            await b.aead_open(KEY, counter, ad, bad_ct)
    with pytest.raises(DecryptError):
        await b.aead_open(bytes(32), 1, b"", ct)


async def test_aead_many() -> None:
    b = NativeBackend()
    pts = [b"a", b"", b"c" * 1000]
    cts = await b.aead_seal_many(KEY, 10, b"", pts)
    assert cts == [await b.aead_seal(KEY, 10 + i, b"", p) for i, p in enumerate(pts)]
    assert await b.aead_open_many(KEY, 10, b"", cts) == pts
    with pytest.raises(DecryptError):
        await b.aead_open_many(KEY, 11, b"", cts)


async def test_aead_cache_reuse_and_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    b = NativeBackend()
    await b.aead_seal(KEY, 0, b"", b"x")
    first = b._aead[KEY]
    await b.aead_open(KEY, 0, b"", await b.aead_seal(bytearray(KEY), 0, b"", b"x"))
    assert b._aead[KEY] is first and len(b._aead) == 1
    monkeypatch.setattr(native, "AEAD_CACHE_SIZE", 4)
    for i in range(10):
        await b.aead_seal(bytes([i]) * 32, 0, b"", b"")
    assert len(b._aead) == 4


async def test_aead_bad_inputs() -> None:
    b = NativeBackend()
    with pytest.raises(InvalidKeyError):
        await b.aead_seal(b"short", 0, b"", b"x")
    with pytest.raises(CryptoError):
        await b.aead_seal(KEY, -1, b"", b"x")
    with pytest.raises(CryptoError):
        await b.aead_seal(KEY, 1 << 64, b"", b"x")
    assert await b.aead_seal(KEY, (1 << 64) - 1, b"", b"x")


# --- X25519 (RFC 7748 section 6.1) -------------------------------------------------------------

ALICE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUB = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUB = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")


async def test_x25519_rfc7748() -> None:
    b = NativeBackend()
    assert await b.x25519_public(ALICE) == ALICE_PUB
    assert await b.x25519_public(BOB) == BOB_PUB
    assert await b.x25519(ALICE, BOB_PUB) == SHARED
    assert await b.x25519(BOB, ALICE_PUB) == SHARED


@pytest.mark.parametrize(
    "point",
    [
        bytes(32),  # zero
        b"\x01" + bytes(31),  # order 1... (u = 1)
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),  # order 8
    ],
)
async def test_x25519_low_order_points(point: bytes) -> None:
    with pytest.raises(CryptoError):
        await NativeBackend().x25519(ALICE, point)


async def test_x25519_bad_lengths() -> None:
    b = NativeBackend()
    with pytest.raises(InvalidKeyError):
        await b.x25519(ALICE[:31], BOB_PUB)
    with pytest.raises(InvalidKeyError):
        await b.x25519(ALICE, BOB_PUB[:31])
    with pytest.raises(InvalidKeyError):
        await b.x25519_public(b"")


# --- Ed25519 (RFC 8032 test 1) ------------------------------------------------------------------

ED_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
ED_PUB = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
ED_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


async def test_ed25519_rfc8032() -> None:
    b = NativeBackend()
    assert await b.ed25519_public(ED_SEED) == ED_PUB
    assert await b.ed25519_sign(ED_SEED, b"") == ED_SIG
    assert await b.ed25519_verify(ED_PUB, b"", ED_SIG)
    assert not await b.ed25519_verify(ED_PUB, b"x", ED_SIG)
    assert not await b.ed25519_verify(ED_PUB, b"", ED_SIG[:63])
    with pytest.raises(InvalidKeyError):
        await b.ed25519_verify(ED_PUB[:31], b"", ED_SIG)
    with pytest.raises(InvalidKeyError):
        await b.ed25519_sign(ED_SEED[:31], b"")


# --- ECDSA ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("curve,cls", [("p256", ec.SECP256R1), ("secp256k1", ec.SECP256K1)])
async def test_ecdsa_against_reference(curve: str, cls: type) -> None:
    b = NativeBackend()
    ref = ec.generate_private_key(cls())
    scalar = ref.private_numbers().private_value.to_bytes(32, "big")
    pub = ref.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    compressed = ref.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    assert await b.ecdsa_public(curve, scalar) == pub  # type: ignore[arg-type]
    sig = await b.ecdsa_sign(curve, scalar, b"msg")  # type: ignore[arg-type]
    ref.public_key().verify(sig, b"msg", ec.ECDSA(hashes.SHA256()))
    other = ref.sign(b"msg", ec.ECDSA(hashes.SHA256()))
    for point in (pub, compressed):
        assert await b.ecdsa_verify(curve, point, b"msg", sig)  # type: ignore[arg-type]
        assert await b.ecdsa_verify(curve, point, b"msg", other)  # type: ignore[arg-type]
        assert not await b.ecdsa_verify(curve, point, b"msh", sig)  # type: ignore[arg-type]
        assert not await b.ecdsa_verify(curve, point, b"msg", b"\x30\x00")  # type: ignore[arg-type]
        assert not await b.ecdsa_verify(curve, point, b"msg", b"")  # type: ignore[arg-type]


async def test_ecdsa_bad_keys() -> None:
    b = NativeBackend()
    with pytest.raises(InvalidKeyError):
        await b.ecdsa_public("p256", bytes(32))
    with pytest.raises(InvalidKeyError):
        await b.ecdsa_public("p256", b"\xff" * 32)
    with pytest.raises(InvalidKeyError):
        await b.ecdsa_public("p256", b"\x01" * 31)
    with pytest.raises(InvalidKeyError):
        await b.ecdsa_public("p384", b"\x01" * 32)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        await b.ecdsa_verify("p256", b"\x04" + b"\x01" * 64, b"m", b"\x30\x00")
    with pytest.raises(InvalidKeyError):
        await b.ecdsa_verify("secp256k1", b"\x04" * 10, b"m", b"\x30\x00")


# --- RSA --------------------------------------------------------------------------------------------


async def test_rsa_generate_sign_verify() -> None:
    b = NativeBackend()
    private, public = await b.rsa_generate(2048)
    assert await b.rsa_public_from_private(private) == public
    n, e = der.parse_rsa_public(public)
    assert n.bit_length() == 2048 and e == 65537
    assert der.parse_rsa_private(private)[0] == n
    sig = await b.rsa_sign(private, b"msg")
    assert len(sig) == 256
    assert await b.rsa_verify(public, b"msg", sig)
    assert not await b.rsa_verify(public, b"msh", sig)
    assert not await b.rsa_verify(public, b"msg", sig[:-1])
    assert not await b.rsa_verify(public, b"msg", b"")


async def test_rsa_spec_key_and_python_spki() -> None:
    b = NativeBackend()
    key = await PrivateKey.from_protobuf(V.RSA_PRIVATE)
    assert key.key_type == KeyType.RSA
    spki = await b.rsa_public_from_private(key._secret)
    assert spki == key.public_key.data  # the pure-Python SPKI is byte-identical to OpenSSL's
    sig = await key.sign(b"hello")
    assert await b.rsa_verify(spki, b"hello", sig)


async def test_rsa_bad_keys() -> None:
    b = NativeBackend()
    with pytest.raises(InvalidKeyError):
        await b.rsa_sign(b"\x30\x00", b"m")
    with pytest.raises(InvalidKeyError):
        await b.rsa_verify(b"\x30\x00", b"m", b"s")
    ec_spki = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(InvalidKeyError):
        await b.rsa_verify(ec_spki, b"m", b"s")
    with pytest.raises(InvalidKeyError):
        await b.rsa_generate(100)


async def test_ecdsa_spki_matches_openssl() -> None:
    key = await PrivateKey.generate(KeyType.ECDSA)
    loaded = serialization.load_der_public_key(key.public_key.data)
    assert loaded.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == key.public_key.data
    priv = serialization.load_der_private_key(_KeyPB.decode(key.to_protobuf()).data, None)
    assert isinstance(priv, ec.EllipticCurvePrivateKey)
    sig = priv.sign(b"m", ec.ECDSA(hashes.SHA256()))
    assert await key.public_key.verify(b"m", sig)
