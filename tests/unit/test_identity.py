from __future__ import annotations

import os
import stat
import sys

import pytest

from pywasm import pb
from pywasm.errors import ConfigError, InvalidKeyError, InvalidPeerIdError, UnsupportedError
from pywasm.identity import KeyType, PeerId, PrivateKey, PublicKey, keyfile, load_or_create
from pywasm.identity import der
from pywasm.identity.keys import _P256, _SECP256K1, _KeyPB
from pywasm.multiformats import multihash

from . import _key_vectors as V

SPEC = {
    "ed25519": (V.ED25519_PRIVATE, V.ED25519_PUBLIC, KeyType.Ed25519),
    "secp256k1": (V.SECP256K1_PRIVATE, V.SECP256K1_PUBLIC, KeyType.Secp256k1),
    "ecdsa": (V.ECDSA_PRIVATE, V.ECDSA_PUBLIC, KeyType.ECDSA),
    "rsa": (V.RSA_PRIVATE, V.RSA_PUBLIC, KeyType.RSA),
}


async def _sign_or_skip(key: PrivateKey, msg: bytes) -> bytes:
    try:
        return await key.sign(msg)
    except UnsupportedError as e:  # RSA signing may be missing on the web backend
        pytest.skip(str(e))


# --- spec vectors -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SPEC))
async def test_spec_private_key_vector(name: str) -> None:
    priv_pb, pub_pb, kt = SPEC[name]
    key = await PrivateKey.from_protobuf(priv_pb)
    assert key.key_type == kt
    assert key.public_key.to_protobuf() == pub_pb
    assert key.to_protobuf() == priv_pb  # deterministic re-encoding


@pytest.mark.parametrize("name", list(SPEC))
def test_spec_public_key_vector(name: str) -> None:
    _, pub_pb, kt = SPEC[name]
    pk = PublicKey.from_protobuf(pub_pb)
    assert pk.key_type == kt
    assert pk.to_protobuf() == pub_pb
    assert PublicKey.from_protobuf(pk.to_protobuf()) == pk


@pytest.mark.parametrize("name", list(SPEC))
def test_spec_peer_ids(name: str) -> None:
    _, pub_pb, _ = SPEC[name]
    b58, cid = V.PEER_IDS[name]
    pid = PeerId.from_public_key(PublicKey.from_protobuf(pub_pb))
    assert str(pid) == b58
    assert pid.to_cid_string() == cid
    assert PeerId.from_string(b58) == pid
    assert PeerId.from_string(cid) == pid
    assert PeerId.from_bytes(pid.to_bytes()) == pid
    if len(pub_pb) <= 42:
        assert pid.to_bytes() == bytes([0, len(pub_pb)]) + pub_pb
        assert pid.public_key() == PublicKey.from_protobuf(pub_pb)
    else:
        assert pid.to_bytes()[:2] == b"\x12\x20"
        assert pid.public_key() is None
    assert pid.matches_public_key(PublicKey.from_protobuf(pub_pb))


@pytest.mark.parametrize("name", list(SPEC))
async def test_spec_sign_verify(name: str) -> None:
    priv_pb, _, _ = SPEC[name]
    key = await PrivateKey.from_protobuf(priv_pb)
    sig = await _sign_or_skip(key, b"libp2p")
    assert await key.public_key.verify(b"libp2p", sig)
    assert not await key.public_key.verify(b"libp2q", sig)
    bad = bytearray(sig)
    bad[len(bad) // 2] ^= 1
    assert not await key.public_key.verify(b"libp2p", bytes(bad))
    assert not await key.public_key.verify(b"libp2p", b"")
    assert not await key.public_key.verify(b"libp2p", b"\x30\x00")


# --- signatures from other implementations ---------------------------------------------------


async def test_go_ed25519_signature() -> None:
    key = await PrivateKey.from_protobuf(V.GO_ED25519_PRIVATE)
    pk = PublicKey.from_protobuf(V.GO_ED25519_PUBLIC)
    assert key.public_key == pk
    assert await pk.verify(V.GO_MESSAGE, V.GO_ED25519_SIG)
    assert await key.sign(V.GO_MESSAGE) == V.GO_ED25519_SIG  # Ed25519 is deterministic


async def test_go_ed25519_legacy_96_byte_key() -> None:
    key = await PrivateKey.from_protobuf(V.GO_ED25519_LEGACY_PRIVATE)
    assert key.public_key == PublicKey.from_protobuf(V.GO_ED25519_LEGACY_PUBLIC)
    assert await key.public_key.verify(V.GO_MESSAGE, V.GO_ED25519_LEGACY_SIG)
    assert len(_KeyPB.decode(key.to_protobuf()).data) == 64  # written in the preferred form
    # Mismatched duplicate public halves are rejected.
    msg = _KeyPB.decode(V.GO_ED25519_LEGACY_PRIVATE)
    broken = _KeyPB(1, msg.data[:95] + bytes([msg.data[95] ^ 1])).encode()
    with pytest.raises(InvalidKeyError):
        await PrivateKey.from_protobuf(broken)


async def test_go_secp256k1_signature() -> None:
    key = await PrivateKey.from_protobuf(V.GO_SECP256K1_PRIVATE)
    pk = PublicKey.from_protobuf(V.GO_SECP256K1_PUBLIC)
    assert key.public_key == pk
    assert await pk.verify(V.GO_MESSAGE, V.GO_SECP256K1_SIG)
    assert not await pk.verify(V.GO_MESSAGE + b"!", V.GO_SECP256K1_SIG)
    key2 = await PrivateKey.from_protobuf(V.JS_SECP256K1_PRIVATE)
    assert key2.public_key.to_protobuf() == V.JS_SECP256K1_PUBLIC


async def test_go_rsa_signature() -> None:
    pk = PublicKey.from_protobuf(V.GO_RSA_PUBLIC)
    assert pk.to_protobuf() == V.GO_RSA_PUBLIC
    assert await pk.verify(V.GO_RSA_DATA, V.GO_RSA_SIG)
    assert not await pk.verify(V.GO_RSA_DATA[:-1], V.GO_RSA_SIG)


async def test_small_rsa_key_rejected() -> None:
    with pytest.raises(InvalidKeyError):
        await PrivateKey.from_protobuf(V.GO_RSA_512_PRIVATE)


# --- generation -------------------------------------------------------------------------------


@pytest.mark.parametrize("kt", list(KeyType))
async def test_generate_round_trip(kt: KeyType) -> None:
    try:
        key = await PrivateKey.generate(kt)
    except UnsupportedError as e:
        pytest.skip(str(e))
    assert key.key_type == kt
    again = await PrivateKey.from_protobuf(key.to_protobuf())
    assert again == key
    assert again.public_key == key.public_key
    pub = PublicKey.from_protobuf(key.public_key.to_protobuf())
    assert pub == key.public_key
    sig = await _sign_or_skip(key, b"msg")
    assert await pub.verify(b"msg", sig)
    pid = key.to_peer_id()
    assert PeerId.from_string(str(pid)) == pid
    assert PeerId.from_string(pid.to_cid_string()) == pid
    assert pid.matches_public_key(pub)
    assert "PrivateKey" in repr(key)
    assert key._secret.hex() not in repr(key)


async def test_generate_distinct() -> None:
    a = await PrivateKey.generate()
    b = await PrivateKey.generate()
    assert a.key_type == KeyType.Ed25519
    assert a != b and a.public_key != b.public_key
    assert a.to_peer_id() != b.to_peer_id()


async def test_generate_rejects_bad_rsa_size() -> None:
    with pytest.raises(InvalidKeyError):
        await PrivateKey.generate(KeyType.RSA, bits=1024)
    with pytest.raises(InvalidKeyError):
        await PrivateKey.generate(7)


async def test_secp256k1_signatures_are_low_s() -> None:
    key = await PrivateKey.generate(KeyType.Secp256k1)
    for i in range(16):
        r, s = der.parse_ecdsa_signature(await key.sign(bytes([i])))
        assert s <= _SECP256K1.n // 2


async def test_secp256k1_high_s_still_verifies() -> None:
    key = await PrivateKey.from_protobuf(V.GO_SECP256K1_PRIVATE)
    sig = await key.sign(b"x")
    r, s = der.parse_ecdsa_signature(sig)
    high = der.encode_ecdsa_signature(r, _SECP256K1.n - s)
    assert await key.public_key.verify(b"x", high)


# --- key parsing edge cases ----------------------------------------------------------------------


def test_secp256k1_uncompressed_public_is_normalised() -> None:
    pk = PublicKey.from_protobuf(V.SECP256K1_PUBLIC)
    full = pk._point
    assert len(full) == 65
    again = PublicKey.from_data(KeyType.Secp256k1, full)
    assert again == pk and len(again.data) == 33


@pytest.mark.parametrize(
    "kt,data",
    [
        (KeyType.Ed25519, b"\x00" * 31),
        (KeyType.Ed25519, b"\x00" * 33),
        (KeyType.Secp256k1, b"\x02" + b"\x00" * 31),
        (KeyType.Secp256k1, b"\x05" + b"\x00" * 32),
        (KeyType.Secp256k1, b"\x04" + b"\x01" * 64),  # not on the curve
        (KeyType.Secp256k1, b"\x02" + b"\xff" * 32),  # x >= p
        (KeyType.ECDSA, b"\x30\x00"),
        (KeyType.ECDSA, b""),
        (KeyType.RSA, b"\x30\x03\x02\x01\x01"),
        (KeyType.RSA, b""),
    ],
)
def test_bad_public_keys(kt: KeyType, data: bytes) -> None:
    with pytest.raises(InvalidKeyError):
        PublicKey.from_data(kt, data)
    with pytest.raises(InvalidKeyError):
        PublicKey.from_protobuf(_KeyPB(int(kt), data).encode())


def test_unsupported_curves_and_types() -> None:
    pk = PublicKey.from_protobuf(V.ECDSA_PUBLIC)
    p384 = der.encode_ec_public(der.OID_P384, pk._point)
    with pytest.raises(InvalidKeyError):
        PublicKey.from_data(KeyType.ECDSA, p384)
    with pytest.raises(InvalidKeyError):
        PublicKey.from_protobuf(_KeyPB(9, b"x" * 32).encode())
    with pytest.raises(InvalidKeyError):
        PublicKey.from_protobuf(b"\x08\x01")  # missing Data
    with pytest.raises(InvalidKeyError):
        PublicKey.from_protobuf("not bytes")  # type: ignore[arg-type]


def test_ecdsa_public_point_must_be_on_curve() -> None:
    pk = PublicKey.from_protobuf(V.ECDSA_PUBLIC)
    bad = pk._point[:-1] + bytes([pk._point[-1] ^ 1])
    with pytest.raises(InvalidKeyError):
        PublicKey.from_data(KeyType.ECDSA, der.encode_ec_public(der.OID_P256, bad))
    # A compressed point inside the SPKI is accepted and normalised.
    compressed = bytes([2 | (pk._point[-1] & 1)]) + pk._point[1:33]
    again = PublicKey.from_data(KeyType.ECDSA, der.encode_ec_public(der.OID_P256, compressed))
    assert again == pk


async def test_bad_private_keys() -> None:
    cases = [
        (KeyType.Ed25519, b"\x00" * 63),
        (KeyType.Secp256k1, b"\x00" * 32),  # zero scalar
        (KeyType.Secp256k1, _SECP256K1.n.to_bytes(32, "big")),  # scalar == n
        (KeyType.Secp256k1, b"\x01" * 31),
        (KeyType.ECDSA, b"\x30\x00"),
        (KeyType.RSA, b"\x30\x00"),
    ]
    for kt, data in cases:
        with pytest.raises(InvalidKeyError):
            await PrivateKey.from_data(kt, data)
    # Ed25519 seed that does not match the embedded public key.
    msg = _KeyPB.decode(V.ED25519_PRIVATE)
    with pytest.raises(InvalidKeyError):
        await PrivateKey.from_data(KeyType.Ed25519, msg.data[:63] + bytes([msg.data[63] ^ 1]))


async def test_ecdsa_private_key_forms() -> None:
    key = await PrivateKey.from_protobuf(V.ECDSA_PRIVATE)
    curve, scalar, point = der.parse_ec_private(_KeyPB.decode(V.ECDSA_PRIVATE).data)
    assert curve == der.OID_P256 and point == key.public_key._point
    # SEC1 without the optional public key.
    minimal = der.encode_sequence(
        der.encode_integer(1),
        der.encode_octet_string(scalar),
        der.encode_tlv(der.TAG_CTX0, der.encode_oid(der.OID_P256)),
    )
    assert await PrivateKey.from_data(KeyType.ECDSA, minimal) == key
    # PKCS#8 wrapping.
    pkcs8 = der.encode_sequence(
        der.encode_integer(0),
        der.encode_sequence(der.encode_oid(der.OID_EC_PUBLIC_KEY), der.encode_oid(der.OID_P256)),
        der.encode_octet_string(minimal),
    )
    assert await PrivateKey.from_data(KeyType.ECDSA, pkcs8) == key
    # Embedded public key that does not match.
    other = await PrivateKey.generate(KeyType.ECDSA)
    mismatched = der.encode_ec_private(der.OID_P256, scalar, other.public_key._point)
    with pytest.raises(InvalidKeyError):
        await PrivateKey.from_data(KeyType.ECDSA, mismatched)
    # No curve at all.
    no_curve = der.encode_sequence(der.encode_integer(1), der.encode_octet_string(scalar))
    with pytest.raises(InvalidKeyError):
        await PrivateKey.from_data(KeyType.ECDSA, no_curve)


async def test_rsa_public_derived_in_python_matches_spec() -> None:
    key = await PrivateKey.from_protobuf(V.RSA_PRIVATE)
    assert key.public_key.to_protobuf() == V.RSA_PUBLIC


def test_der_strictness() -> None:
    with pytest.raises(InvalidKeyError):
        der.parse_top(b"\x30\x81\x01\x00")  # non-minimal length
    with pytest.raises(InvalidKeyError):
        der.parse_top(b"\x30\x80\x00\x00")  # indefinite length
    with pytest.raises(InvalidKeyError):
        der.decode_integer(b"\x00\x01")
    with pytest.raises(InvalidKeyError):
        der.decode_integer(b"\xff")  # negative
    with pytest.raises(InvalidKeyError):
        der.parse_top(b"\x30\x00\x00")  # trailing byte
    assert der.decode_integer(b"\x00\x80") == 128
    assert der.encode_integer(128) == b"\x02\x02\x00\x80"
    assert der.encode_integer(0) == b"\x02\x01\x00"
    assert der.oid("1.2.840.10045.3.1.7").hex() == "2a8648ce3d030107"


def test_p256_params_consistent() -> None:
    # The base point of each curve satisfies its equation (catches a typo in the constants).
    gx = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
    gy = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5
    c = _P256
    assert (gy * gy - (gx**3 + c.a * gx + c.b)) % c.p == 0
    kx = 0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798
    ky = 0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8
    c = _SECP256K1
    assert (ky * ky - (kx**3 + c.b)) % c.p == 0


# --- peer ids -----------------------------------------------------------------------------------


def test_spec_example_peer_ids() -> None:
    a = PeerId.from_string("bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe")
    assert a.to_bytes()[:2] == b"\x12\x20"
    assert PeerId.from_string(str(a)) == a
    b = PeerId.from_string("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")
    assert str(b) == "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"
    c = PeerId.from_string("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA")
    pk = c.public_key()
    assert pk is not None and pk.key_type == KeyType.Ed25519
    assert c.matches_public_key(pk)
    assert not b.matches_public_key(pk)
    assert c.to_cid_string().startswith("bafz")


def test_base36_and_other_bases() -> None:
    pid = PeerId.from_string(V.PEER_IDS["ed25519"][0])
    k = pid.to_cid_string("base36")
    assert k.startswith("k")
    assert PeerId.from_string(k) == pid
    assert PeerId.from_string(pid.to_cid_string("base58btc")) == pid
    assert PeerId.from_string(pid.to_cid_string().upper()) == pid  # "B..." base32upper


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "Qm",
        "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5",  # truncated
        "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N0",  # '0' not base58
        "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",  # dag-pb CID
        "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xq",  # truncated CID
        "xyz",
        "z",
        "k",
        "b",
        "Qm" + "a" * 300,
        "\x00",
        "é",
    ],
)
def test_invalid_peer_id_strings(text: str) -> None:
    with pytest.raises(InvalidPeerIdError):
        PeerId.from_string(text)


def test_invalid_peer_id_bytes() -> None:
    for raw in [
        b"",
        b"\x12\x20" + b"\x00" * 31,
        b"\x12\x10" + b"\x00" * 16,  # truncated sha256 digest
        b"\x11\x14" + b"\x00" * 20,  # sha1
        b"\x00\x2b" + b"\x00" * 43,  # identity longer than 42
        b"\x00\x02\x08\x01",  # identity but not a key
        multihash.identity(_KeyPB(2, b"\x02" + b"\xff" * 32).encode()),  # secp256k1 x >= p
    ]:
        with pytest.raises(InvalidPeerIdError):
            PeerId.from_bytes(raw)
    with pytest.raises(InvalidPeerIdError):
        PeerId.from_string(b"Qm")  # type: ignore[arg-type]


def test_peer_id_value_semantics() -> None:
    a = PeerId.from_string(V.PEER_IDS["ecdsa"][0])
    b = PeerId.from_string(V.PEER_IDS["ecdsa"][1])
    c = PeerId.from_string(V.PEER_IDS["rsa"][0])
    assert a == b and hash(a) == hash(b) and a != c
    assert len({a, b, c}) == 2
    assert sorted([c, a]) == sorted([a, c])
    assert bytes(a) == a.to_bytes()
    assert repr(a) == f"PeerId('{a}')"
    with pytest.raises(AttributeError):
        a._mh = b""  # type: ignore[misc]
    assert a.to_cid().codec == 0x72
    assert multihash.decode(a.to_bytes())[0] == multihash.SHA2_256


# --- key files ------------------------------------------------------------------------------------


async def test_keyfile_create_and_reload(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "sub", "identity.key")
    key = await load_or_create(path)
    assert key.key_type == KeyType.Ed25519
    if sys.platform != "emscripten":
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = await load_or_create(path)
    assert again == key
    assert await keyfile.load(path) == key
    with open(path, "rb") as f:
        assert f.read() == key.to_protobuf()
    assert os.listdir(os.path.dirname(path)) == ["identity.key"]  # no temp files left


async def test_keyfile_other_type_and_overwrite(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "k")
    key = await load_or_create(path, KeyType.Secp256k1)
    assert key.key_type == KeyType.Secp256k1
    other = await PrivateKey.generate(KeyType.ECDSA)
    keyfile.save(path, other)
    assert await keyfile.load(path) == other


async def test_keyfile_reads_spec_key(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "spec.key")
    with open(path, "wb") as f:
        f.write(V.ED25519_PRIVATE)
    key = await keyfile.load(path)
    assert str(key.to_peer_id()) == V.PEER_IDS["ed25519"][0]


@pytest.mark.parametrize("content", [b"", b"garbage", b"\x08\x01\x12\x03abc", b"\x00" * 70000])
async def test_keyfile_corrupt(tmp_path: object, content: bytes) -> None:
    path = os.path.join(str(tmp_path), "bad.key")
    with open(path, "wb") as f:
        f.write(content)
    with pytest.raises(ConfigError) as exc:
        await load_or_create(path)
    msg = str(exc.value)
    assert path in msg and "\n" not in msg
    with open(path, "rb") as f:
        assert f.read() == content  # never overwritten


async def test_keyfile_missing(tmp_path: object) -> None:
    with pytest.raises(ConfigError):
        await keyfile.load(os.path.join(str(tmp_path), "missing.key"))


def test_keyfile_pb_schema_is_deterministic() -> None:
    assert pb.encode(_KeyPB(1, b"\x01" * 32)) == b"\x08\x01\x12\x20" + b"\x01" * 32
