"""Unsigned varint: spec vectors (multiformats/unsigned-varint), limits, strictness."""

from __future__ import annotations

import pytest

from pywasm.errors import DecodeError, VarintError
from pywasm.multiformats.varint import (
    MAX_VARINT,
    MAX_VARINT_LEN,
    decode_varint,
    decode_varint_prefix,
    encode_varint,
)

try:  # hypothesis is a test extra; the vector tests below run without it (Pyodide).
    from hypothesis import given
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

# (value, hex) from the unsigned-varint spec README.
SPEC_VECTORS = [
    (0, "00"),
    (1, "01"),
    (127, "7f"),
    (128, "8001"),
    (255, "ff01"),
    (300, "ac02"),
    (16384, "808001"),
    (2**63 - 1, "ffffffffffffffff7f"),
]


@pytest.mark.parametrize("value,hexed", SPEC_VECTORS)
def test_spec_vectors_encode(value: int, hexed: str) -> None:
    assert encode_varint(value).hex() == hexed


@pytest.mark.parametrize("value,hexed", SPEC_VECTORS)
def test_spec_vectors_decode(value: int, hexed: str) -> None:
    data = bytes.fromhex(hexed)
    assert decode_varint(data) == (value, len(data))
    assert decode_varint_prefix(data) == (value, len(data))


def test_decode_at_offset_with_trailing_bytes() -> None:
    data = b"\xaa" + bytes.fromhex("ac02") + b"rest"
    assert decode_varint(data, 1) == (300, 2)


def test_max_is_nine_bytes() -> None:
    assert MAX_VARINT_LEN == 9
    assert len(encode_varint(MAX_VARINT)) == 9


@pytest.mark.parametrize("value", [-1, 2**63, 2**64])
def test_encode_out_of_range(value: int) -> None:
    with pytest.raises(VarintError):
        encode_varint(value)


def test_ten_byte_varint_rejected() -> None:
    # 2**63 would need 10 bytes; the 9-byte limit rejects it on decode.
    with pytest.raises(VarintError):
        decode_varint(bytes.fromhex("80808080808080808001"))


def test_nine_continuation_bytes_rejected_even_if_truncated() -> None:
    with pytest.raises(VarintError):
        decode_varint_prefix(b"\xff" * 9)


@pytest.mark.parametrize("hexed", ["8000", "ff00", "808000", "ac8000"])
def test_non_minimal_rejected(hexed: str) -> None:
    with pytest.raises(VarintError):
        decode_varint(bytes.fromhex(hexed))


@pytest.mark.parametrize("hexed", ["", "80", "ff", "8080"])
def test_truncated(hexed: str) -> None:
    data = bytes.fromhex(hexed)
    assert decode_varint_prefix(data) is None
    with pytest.raises(VarintError):
        decode_varint(data)


def test_varint_error_is_decode_error() -> None:
    assert issubclass(VarintError, DecodeError)


def test_accepts_bytearray_and_memoryview() -> None:
    assert decode_varint(bytearray(b"\xac\x02")) == (300, 2)
    assert decode_varint(memoryview(b"\x00\xac\x02"), 1) == (300, 2)


if given is not None:

    @given(st.integers(min_value=0, max_value=MAX_VARINT))
    def test_round_trip(value: int) -> None:
        data = encode_varint(value)
        assert 1 <= len(data) <= MAX_VARINT_LEN
        assert decode_varint(data + b"\x01\x02") == (value, len(data))
