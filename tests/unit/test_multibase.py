"""Multibase: the multiformats/multibase test fixtures (tests/*.csv) plus strictness."""

from __future__ import annotations

import pytest

from pywasm.errors import MultibaseError
from pywasm.multiformats import multibase

# From multiformats/multibase tests/basic.csv, leading_zero.csv, two_leading_zeros.csv.
_FIXTURES: dict[bytes, dict[str, str]] = {
    b"yes mani !": {
        "base2": "001111001011001010111001100100000011011010110000101101110011010010010000000100001",
        "base8": "7362625631006654133464440102",
        "base10": "9573277761329450583662625",
        "base16": "f796573206d616e692021",
        "base16upper": "F796573206D616E692021",
        "base32": "bpfsxgidnmfxgsibb",
        "base32upper": "BPFSXGIDNMFXGSIBB",
        "base32hex": "vf5in683dc5n6i811",
        "base32hexupper": "VF5IN683DC5N6I811",
        "base32pad": "cpfsxgidnmfxgsibb",
        "base32padupper": "CPFSXGIDNMFXGSIBB",
        "base32hexpad": "tf5in683dc5n6i811",
        "base32hexpadupper": "TF5IN683DC5N6I811",
        "base32z": "hxf1zgedpcfzg1ebb",
        "base36": "k2lcpzo5yikidynfl",
        "base36upper": "K2LCPZO5YIKIDYNFL",
        "base58flickr": "Z7Pznk19XTTzBtx",
        "base58btc": "z7paNL19xttacUY",
        "base64": "meWVzIG1hbmkgIQ",
        "base64pad": "MeWVzIG1hbmkgIQ==",
        "base64url": "ueWVzIG1hbmkgIQ",
        "base64urlpad": "UeWVzIG1hbmkgIQ==",
        "identity": "\x00yes mani !",
    },
    b"\x00yes mani !": {
        "base2": "00000000001111001011001010111001100100000011011010110000101101110011010010010000000100001",
        "base8": "7000745453462015530267151100204",
        "base10": "90573277761329450583662625",
        "base16": "f00796573206d616e692021",
        "base16upper": "F00796573206D616E692021",
        "base32": "bab4wk4zanvqw42jaee",
        "base32upper": "BAB4WK4ZANVQW42JAEE",
        "base32hex": "v01smasp0dlgmsq9044",
        "base32hexupper": "V01SMASP0DLGMSQ9044",
        "base32pad": "cab4wk4zanvqw42jaee======",
        "base32padupper": "CAB4WK4ZANVQW42JAEE======",
        "base32hexpad": "t01smasp0dlgmsq9044======",
        "base32hexpadupper": "T01SMASP0DLGMSQ9044======",
        "base32z": "hybhskh3ypiosh4jyrr",
        "base36": "k02lcpzo5yikidynfl",
        "base36upper": "K02LCPZO5YIKIDYNFL",
        "base58flickr": "Z17Pznk19XTTzBtx",
        "base58btc": "z17paNL19xttacUY",
        "base64": "mAHllcyBtYW5pICE",
        "base64pad": "MAHllcyBtYW5pICE=",
        "base64url": "uAHllcyBtYW5pICE",
        "base64urlpad": "UAHllcyBtYW5pICE=",
    },
    b"\x00\x00yes mani !": {
        "base2": "0000000000000000001111001011001010111001100100000011011010110000101101110011010010010000000100001",
        "base8": "700000171312714403326055632220041",
        "base10": "900573277761329450583662625",
        "base16": "f0000796573206d616e692021",
        "base16upper": "F0000796573206D616E692021",
        "base32": "baaahszltebwwc3tjeaqq",
        "base32upper": "BAAAHSZLTEBWWC3TJEAQQ",
        "base32hex": "v0007ipbj41mm2rj940gg",
        "base32hexupper": "V0007IPBJ41MM2RJ940GG",
        "base32pad": "caaahszltebwwc3tjeaqq====",
        "base32padupper": "CAAAHSZLTEBWWC3TJEAQQ====",
        "base32hexpad": "t0007ipbj41mm2rj940gg====",
        "base32hexpadupper": "T0007IPBJ41MM2RJ940GG====",
        "base32z": "hyyy813murbssn5ujryoo",
        "base36": "k002lcpzo5yikidynfl",
        "base36upper": "K002LCPZO5YIKIDYNFL",
        "base58flickr": "Z117Pznk19XTTzBtx",
        "base58btc": "z117paNL19xttacUY",
        "base64": "mAAB5ZXMgbWFuaSAh",
        "base64pad": "MAAB5ZXMgbWFuaSAh",
        "base64url": "uAAB5ZXMgbWFuaSAh",
        "base64urlpad": "UAAB5ZXMgbWFuaSAh",
    },
}
VECTORS = [(name, data, text) for data, table in _FIXTURES.items() for name, text in table.items()]

# tests/case_insensitivity.csv: mixed case must decode (payload "hello world").
CASE_INSENSITIVE = [
    "f68656c6c6f20776F726C64",
    "F68656c6c6f20776F726C64",
    "bnbswy3dpeB3W64TMMQ",
    "Bnbswy3dpeB3W64TMMQ",
    "vd1imor3f41RMUSJCCG",
    "Vd1imor3f41RMUSJCCG",
    "cnbswy3dpeB3W64TMMQ======",
    "Cnbswy3dpeB3W64TMMQ======",
    "td1imor3f41RMUSJCCG======",
    "Td1imor3f41RMUSJCCG======",
    "kfUvrsIvVnfRbjWaJo",
    "KfUVrSIVVnFRbJWAJo",
]


@pytest.mark.parametrize("name,data,text", VECTORS)
def test_fixture_encode(name: str, data: bytes, text: str) -> None:
    assert multibase.encode(name, data) == text


@pytest.mark.parametrize("name,data,text", VECTORS)
def test_fixture_decode(name: str, data: bytes, text: str) -> None:
    assert multibase.decode(text) == data
    assert multibase.decode_with_base(text) == (name, data)


@pytest.mark.parametrize("text", CASE_INSENSITIVE)
def test_case_insensitive_decode(text: str) -> None:
    assert multibase.decode(text) == b"hello world"


@pytest.mark.parametrize("name", [n for n in multibase.BASE_NAMES if n != "identity"])
@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00\x00", b"\x01", b"\xff" * 7, bytes(range(256))])
def test_round_trip_all_bases(name: str, data: bytes) -> None:
    assert multibase.decode(multibase.encode(name, data)) == data


def test_empty_payload() -> None:
    assert multibase.encode("base58btc", b"") == "z"
    assert multibase.decode("z") == b""
    assert multibase.decode("k") == b""


def test_base58_leading_zeros() -> None:
    assert multibase.b58encode(b"\x00\x00\x01") == "112"
    assert multibase.b58decode("112") == b"\x00\x00\x01"
    assert multibase.b58decode("111") == b"\x00\x00\x00"


def test_plain_helpers() -> None:
    assert multibase.b58encode(b"yes mani !") == "7paNL19xttacUY"
    assert multibase.b58decode("7paNL19xttacUY") == b"yes mani !"
    assert multibase.b32encode(b"yes mani !") == "pfsxgidnmfxgsibb"
    assert multibase.b32decode("PFSXGIDNMFXGSIBB") == b"yes mani !"
    assert multibase.b36encode(b"yes mani !") == "2lcpzo5yikidynfl"
    assert multibase.b36decode("2lcpzo5yikidynfl") == b"yes mani !"
    assert multibase.b64urlencode(b"\xfb\xff") == "-_8"
    assert multibase.b64urldecode("-_8") == b"\xfb\xff"
    assert multibase.b64encode(b"\xfb\xff") == "+/8"
    assert multibase.b16encode(b"\xab") == "ab"
    assert multibase.b16decode("AB") == b"\xab"


def test_prefix_of() -> None:
    assert multibase.prefix_of("base58btc") == "z"
    assert multibase.prefix_of("base36") == "k"
    with pytest.raises(MultibaseError):
        multibase.prefix_of("base1")


@pytest.mark.parametrize(
    "text",
    [
        "",  # no prefix
        "?abc",  # unknown prefix
        "1abc",  # reserved prefix
        "z0OIl",  # not base58btc characters
        "zabc\u0661",  # non-ASCII
        "f0",  # odd hex
        "fzz",  # not hex
        "f00 11",  # whitespace
        "b1",  # not base32
        "ba",  # impossible base32 length
        "baaa",  # impossible base32 length
        "bmfrgg===",  # padding on an unpadded base
        "cmfrgg",  # missing padding on a padded base
        "cmfrgg==",  # wrong padding
        "ma",  # impossible base64 length
        "mYQ==",  # padding on an unpadded base
        "m-_",  # url alphabet in standard base64
        "u+/",  # standard alphabet in base64url
        "MYQ",  # missing padding
        "k-1",  # not base36
        "k\u212a",  # Kelvin sign lowers to "k": must not pass as base36
        "b\u0131",  # dotless i uppers to "I": must not pass as base32
        "02",  # not binary
        "0101",  # base2 needs whole bytes
        "78",  # not octal
        "9a",  # not decimal
        "9+1",  # int() would accept a sign
        "9_1",  # int() would accept an underscore
        "\x00\ud800",  # identity text that is not UTF-8-encodable
    ],
)
def test_invalid_rejected(text: str) -> None:
    with pytest.raises(MultibaseError):
        multibase.decode(text)


def test_radix_input_is_bounded() -> None:
    with pytest.raises(MultibaseError):
        multibase.decode("z" + "2" * (multibase.MAX_RADIX_DECODE_LEN + 1))


def test_unknown_base_name() -> None:
    with pytest.raises(MultibaseError):
        multibase.encode("base1", b"x")


def test_identity_requires_utf8_payload() -> None:
    with pytest.raises(MultibaseError):
        multibase.encode("identity", b"\xff")


def test_decode_rejects_non_str() -> None:
    with pytest.raises(MultibaseError):
        multibase.decode(b"zabc")  # type: ignore[arg-type]
