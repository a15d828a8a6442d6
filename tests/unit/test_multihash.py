"""Multihash: known vectors, strict length handling."""

from __future__ import annotations

import pytest

from pywasm.errors import MultihashError
from pywasm.multiformats import multihash

FOO_SHA256 = "12202c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
FOO_SHA512 = (
    "1340f7fbba6e0636f890e56fbbf3283e524c6fa3204ae298382d624741d0dc6638326e282c41be5e"
    "4254d8820772c5518a2c5a8c0c7f7eda19594a7eb539453e1ed7"
)


def test_sha256_vector() -> None:
    assert multihash.sha256(b"foo").hex() == FOO_SHA256
    assert multihash.digest(multihash.SHA2_256, b"foo").hex() == FOO_SHA256


def test_sha512_vector() -> None:
    assert multihash.sha512(b"foo").hex() == FOO_SHA512
    assert multihash.digest(multihash.SHA2_512, b"foo").hex() == FOO_SHA512


def test_identity_vector() -> None:
    assert multihash.identity(b"foo").hex() == "0003666f6f"
    assert multihash.identity(b"").hex() == "0000"
    assert multihash.decode(bytes.fromhex("0003666f6f")) == (multihash.IDENTITY, b"foo")


def test_constants() -> None:
    assert (multihash.IDENTITY, multihash.SHA2_256, multihash.SHA2_512) == (0x00, 0x12, 0x13)


def test_decode_sha256() -> None:
    code, digest = multihash.decode(bytes.fromhex(FOO_SHA256))
    assert code == multihash.SHA2_256
    assert digest.hex() == FOO_SHA256[4:]


def test_encode_round_trip() -> None:
    digest = bytes(range(32))
    mh = multihash.encode(multihash.SHA2_256, digest)
    assert mh[:2] == b"\x12\x20"
    assert multihash.decode(mh) == (multihash.SHA2_256, digest)


def test_identity_with_long_payload_uses_varint_length() -> None:
    data = b"x" * 300
    mh = multihash.identity(data)
    assert mh[:3] == b"\x00\xac\x02"
    assert multihash.decode(mh) == (0, data)


def test_multi_byte_code() -> None:
    mh = multihash.encode(0xB220, b"\x01\x02")  # blake2b-256's code needs a 3-byte varint
    assert mh.hex() == "a0e402" + "02" + "0102"
    assert multihash.decode(mh) == (0xB220, b"\x01\x02")


def test_truncated_digest_allowed() -> None:
    # The spec allows digests shorter than the hash output.
    mh = multihash.encode(multihash.SHA2_256, b"\x01" * 20)
    assert multihash.decode(mh) == (multihash.SHA2_256, b"\x01" * 20)


def test_decode_prefix_allows_trailing() -> None:
    data = bytes.fromhex(FOO_SHA256) + b"tail"
    code, digest, used = multihash.decode_prefix(data)
    assert (code, used) == (multihash.SHA2_256, 34)
    assert multihash.decode_prefix(b"xx" + data, 2)[2] == 34


@pytest.mark.parametrize(
    "hexed",
    [
        "",  # nothing
        "12",  # no length
        "1220",  # no digest
        FOO_SHA256[:-2],  # one byte short
        FOO_SHA256 + "00",  # one byte extra
        "0003666f",  # identity truncated
        "1221" + "00" * 33,  # sha2-256 longer than 32 bytes
        "1341" + "00" * 65,  # sha2-512 longer than 64 bytes
        "8000",  # non-minimal varint code
        "ffffffffffffffffff01",  # code varint too long
        "0080",  # truncated length varint
    ],
)
def test_decode_invalid(hexed: str) -> None:
    with pytest.raises(MultihashError):
        multihash.decode(bytes.fromhex(hexed))
    assert not multihash.is_valid(bytes.fromhex(hexed))


def test_encode_rejects_too_long_digest() -> None:
    with pytest.raises(MultihashError):
        multihash.encode(multihash.SHA2_256, b"\x00" * 33)


def test_encode_rejects_bad_code() -> None:
    with pytest.raises(MultihashError):
        multihash.encode(-1, b"")


def test_digest_unknown_function() -> None:
    with pytest.raises(MultihashError):
        multihash.digest(0x9999, b"foo")
