"""The OpenSSL backend (CPython only): checks against the `cryptography` reference and
NativeBackend internals (the AEAD cache).

The known-answer vectors, tamper/bad-input cases, X25519, Ed25519 and ECDSA bad-key
checks live in tests/unit/test_crypto_backend.py, which runs them on every backend
(natively: this one)."""

from __future__ import annotations

import pytest

pytest.importorskip("cryptography")

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305  # noqa: E402

from pywasm.crypto import get_backend, noise_nonce  # noqa: E402
from pywasm.crypto import native  # noqa: E402
from pywasm.crypto.native import NativeBackend  # noqa: E402
from pywasm.errors import InvalidKeyError  # noqa: E402
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
