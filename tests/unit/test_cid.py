"""CIDs as libp2p uses them: libp2p-key CIDv1 peer ids, legacy CIDv0."""

from __future__ import annotations

import pytest

from pywasm.errors import CidError, DecodeError
from pywasm.multiformats import cid as cidmod
from pywasm.multiformats import multibase, multihash
from pywasm.multiformats.cid import CID, DAG_PB, LIBP2P_KEY, RAW

# One Ed25519 peer id in its three spellings (go-multiaddr test vectors).
ED_B58 = "12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV"
ED_B36 = "k51qzi5uqu5dhb6l8spkdx7yxafegfkee5by8h7lmjh2ehc2sgg34z7c15vzqs"
ED_B32 = "bafzaajaiaejcalj543iwv2d7pkjt7ykvefrkfu7qjfi6sduakhso4lay6abn2d5u"

# One sha2-256 (RSA-style) peer id.
RSA_B58 = "QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC"
RSA_B32 = "bafzbeigvf25ytwc3akrijfecaotc74udrhcxzh2cx3we5qqnw5vgrei4bm"
RSA_B36 = "k2k4r8oqamigqdo6o7hsbfwd45y70oyynp98usk7zmyfrzpqxh1pohl7"


def test_ed25519_peer_id_forms() -> None:
    mh = multibase.b58decode(ED_B58)
    c = CID.v1(LIBP2P_KEY, mh)
    assert c.encode() == ED_B32
    assert str(c) == ED_B32
    assert c.encode("base36") == ED_B36
    assert cidmod.decode(ED_B36) == c
    assert cidmod.decode(ED_B32) == c
    assert c.multihash == mh
    assert c.to_bytes() == b"\x01\x72" + mh


def test_sha256_peer_id_forms() -> None:
    c = cidmod.decode(RSA_B32)
    assert (c.version, c.codec) == (1, LIBP2P_KEY)
    assert multibase.b58encode(c.multihash) == RSA_B58
    assert c.encode("base36") == RSA_B36


def test_cidv0() -> None:
    c = cidmod.decode(RSA_B58)
    assert (c.version, c.codec) == (0, DAG_PB)
    assert str(c) == RSA_B58
    assert c.to_bytes() == multibase.b58decode(RSA_B58)
    assert CID.from_bytes(c.to_bytes()) == c
    v1 = c.to_v1()
    assert (v1.version, v1.codec, v1.multihash) == (1, DAG_PB, c.multihash)
    assert str(v1).startswith("bafy")
    with pytest.raises(CidError):
        c.encode("base32")


def test_raw_cid_round_trip() -> None:
    c = CID.v1(RAW, multihash.sha256(b"hello"))
    assert str(c).startswith("bafkrei")
    assert cidmod.decode(str(c)) == c
    assert cidmod.from_bytes(c.to_bytes()) == c
    assert hash(c) == hash(cidmod.decode(c.encode("base58btc")))


def test_immutable() -> None:
    c = cidmod.decode(ED_B32)
    with pytest.raises(AttributeError):
        c._codec = 1  # type: ignore[misc]


def test_repr() -> None:
    assert repr(cidmod.decode(ED_B32)) == f"CID('{ED_B32}')"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Qm",  # too short for CIDv0 and not multibase
        RSA_B58[:-1] + "0",  # "0" is not base58
        "zQm",  # multibase-wrapped garbage
        "z" + RSA_B58,  # a multibase-wrapped CIDv0 is forbidden
        "b" + multibase.b32encode(b"\x02\x72" + multihash.sha256(b"x")),  # version 2
        "b" + multibase.b32encode(b"\x01\x72\x12\x20" + b"\x00" * 31),  # truncated digest
        "b" + multibase.b32encode(b"\x01\x72"),  # no multihash
        "b" + multibase.b32encode(b"\x01"),  # no codec
        "?abc",
    ],
)
def test_invalid_text(text: str) -> None:
    with pytest.raises(CidError):
        cidmod.decode(text)


@pytest.mark.parametrize(
    "hexed",
    [
        "",
        "00",  # version 0 in the v1 layout
        "1220" + "00" * 31,  # truncated v0
        "0172",  # no multihash
        "017212" + "20" + "00" * 32 + "00",  # trailing byte
        "03721220" + "00" * 32,  # version 3
    ],
)
def test_invalid_bytes(hexed: str) -> None:
    with pytest.raises(CidError):
        cidmod.from_bytes(bytes.fromhex(hexed))


def test_cid_error_is_decode_error() -> None:
    assert issubclass(CidError, DecodeError)


def test_v0_requires_sha256() -> None:
    with pytest.raises(CidError):
        CID.v0(multihash.identity(b"abc"))
