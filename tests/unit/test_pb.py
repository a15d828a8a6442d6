from __future__ import annotations

import enum
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pywasm import pb
from pywasm.errors import ProtobufError


class Color(enum.IntEnum):
    RED = 0
    GREEN = 1
    BLUE = 2


@dataclass
class Inner(pb.Message):
    name: str | None = pb.field(1, "string")
    blobs: list[bytes] = pb.field(2, "bytes", repeated=True)


@dataclass
class Everything(pb.Message):
    u64: int | None = pb.field(1, "uint64")
    u32: int | None = pb.field(2, "uint32")
    i64: int | None = pb.field(3, "int64")
    i32: int | None = pb.field(4, "int32")
    s64: int | None = pb.field(5, "sint64")
    s32: int | None = pb.field(6, "sint32")
    flag: bool | None = pb.field(7, "bool")
    color: Color | None = pb.field(8, "enum", enum=Color)
    f32: int | None = pb.field(9, "fixed32")
    f64: int | None = pb.field(10, "fixed64")
    sf32: int | None = pb.field(11, "sfixed32")
    sf64: int | None = pb.field(12, "sfixed64")
    data: bytes | None = pb.field(13, "bytes")
    text: str | None = pb.field(14, "string")
    inner: Inner | None = pb.field(15, "message", message=Inner)
    inners: list[Inner] = pb.field(16, "message", repeated=True, message=Inner)
    nums: list[int] = pb.field(17, "uint64", repeated=True)
    packed: list[int] = pb.field(18, "int32", repeated=True, packed=True)
    names: list[str] = pb.field(19, "string", repeated=True)


@dataclass
class KeyPB(pb.Message):
    type: int = pb.field(1, "enum", required=True)
    data: bytes = pb.field(2, "bytes", required=True)


@dataclass
class Node(pb.Message):
    value: int | None = pb.field(1, "uint32")
    child: Node | None = pb.field(2, "message", message=lambda: Node)


# --- known encodings ------------------------------------------------------------------


def test_known_key_encoding() -> None:
    raw = bytes.fromhex("080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e")
    msg = KeyPB.decode(raw)
    assert msg.type == 1 and len(msg.data) == 32
    assert msg.encode() == raw
    assert pb.encode(msg) == raw
    assert pb.decode(KeyPB, raw) == msg


def test_field_order_is_by_number_and_zero_values_are_present() -> None:
    msg = Everything(text="", u64=0, flag=False)
    assert msg.encode() == bytes([0x08, 0x00, 0x38, 0x00, 0x72, 0x00])


def test_none_fields_are_absent() -> None:
    assert Everything().encode() == b""
    assert Everything.decode(b"") == Everything()


def test_negative_int32_is_ten_bytes() -> None:
    enc = Everything(i32=-1).encode()
    assert enc == bytes([0x20]) + b"\xff" * 9 + b"\x01"
    assert Everything.decode(enc).i32 == -1


def test_zigzag() -> None:
    assert Everything(s64=-1).encode() == bytes([0x28, 0x01])
    assert Everything(s64=1).encode() == bytes([0x28, 0x02])
    assert Everything(s32=-2).encode() == bytes([0x30, 0x03])


def test_packed_and_unpacked_both_decode() -> None:
    packed = Everything(packed=[1, 2, 300]).encode()
    assert packed == bytes([0x92, 0x01, 0x04, 0x01, 0x02, 0xAC, 0x02])
    unpacked = bytes([0x88, 0x01, 0x01, 0x88, 0x01, 0x02])  # nums as unpacked
    assert Everything.decode(unpacked).nums == [1, 2]
    packed_nums = bytes([0x8A, 0x01, 0x02, 0x05, 0x06])  # nums sent packed
    assert Everything.decode(packed_nums).nums == [5, 6]


def test_nested_and_repeated_messages() -> None:
    msg = Everything(inner=Inner("a", [b"x", b""]), inners=[Inner(), Inner("b")], names=["p", "q"])
    assert Everything.decode(msg.encode()) == msg


def test_recursive_schema() -> None:
    n = Node(1, Node(2, Node(3)))
    assert Node.decode(n.encode()) == n


def test_unknown_fields_are_skipped() -> None:
    base = KeyPB(1, b"abc").encode()
    extra = (
        bytes([0x18, 0x96, 0x01])  # field 3 varint
        + bytes([0x21]) + b"\x00" * 8  # field 4 fixed64
        + bytes([0x2A, 0x02]) + b"hi"  # field 5 bytes
        + bytes([0x35]) + b"\x00" * 4  # field 6 fixed32
    )
    assert KeyPB.decode(extra + base) == KeyPB(1, b"abc")


def test_last_value_wins() -> None:
    assert KeyPB.decode(bytes([0x08, 0x01, 0x08, 0x02, 0x12, 0x00])).type == 2


def test_enum_class_conversion() -> None:
    assert Everything.decode(bytes([0x40, 0x02])).color is Color.BLUE
    with pytest.raises(ProtobufError):
        Everything.decode(bytes([0x40, 0x07]))


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        bytes([0x08]),  # truncated varint value
        bytes([0x08, 0x80]),  # truncated varint
        bytes([0x12, 0x05, 0x01]),  # truncated bytes
        bytes([0x0A, 0x00, 0x12, 0x00]),  # wrong wire type for enum field 1
        bytes([0x10, 0x01]),  # wrong wire type for bytes field 2
        bytes([0x12, 0x00]),  # missing required type
        bytes([0x08, 0x01]),  # missing required data
        bytes([0x00]),  # field number 0
        bytes([0x0B]),  # group start
        bytes([0x1C]),  # group end
        bytes([0x08]) + b"\xff" * 10 + b"\x01",  # varint too long
        bytes([0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),  # > 64 bits
        bytes([0x19, 0x00]),  # truncated unknown fixed64
        bytes([0x1D, 0x00]),  # truncated unknown fixed32
        bytes([0x1A, 0x05]),  # truncated unknown bytes
    ],
)
def test_malformed_key(raw: bytes) -> None:
    with pytest.raises(ProtobufError):
        KeyPB.decode(raw)


def test_invalid_utf8() -> None:
    with pytest.raises(ProtobufError):
        Everything.decode(bytes([0x72, 0x02, 0xC3, 0x28]))


def test_max_size() -> None:
    raw = KeyPB(1, b"x" * 100).encode()
    with pytest.raises(ProtobufError):
        KeyPB.decode(raw, max_size=50)
    assert KeyPB.decode(raw, max_size=len(raw)).data == b"x" * 100


def test_depth_limit() -> None:
    raw = b""
    for _ in range(pb.MAX_DEPTH + 5):
        inner = raw
        raw = bytes([0x12]) + pb._varint(len(inner)) + inner
    with pytest.raises(ProtobufError):
        Node.decode(raw)
    ok = b""
    for _ in range(pb.MAX_DEPTH):
        ok = bytes([0x12]) + pb._varint(len(ok)) + ok
    Node.decode(ok)


def test_encode_errors() -> None:
    with pytest.raises(ProtobufError):
        KeyPB(1, None).encode()  # type: ignore[arg-type]
    with pytest.raises(ProtobufError):
        Everything(u32=1 << 32).encode()
    with pytest.raises(ProtobufError):
        Everything(u64=-1).encode()
    with pytest.raises(ProtobufError):
        Everything(data="text").encode()  # type: ignore[arg-type]
    with pytest.raises(ProtobufError):
        Everything(text="\ud800").encode()
    with pytest.raises(ProtobufError):
        Everything(inner=KeyPB(1, b"")).encode()  # type: ignore[arg-type]


def test_bad_declarations() -> None:
    with pytest.raises(ValueError):
        pb.field(1, "float")
    with pytest.raises(ValueError):
        pb.field(0, "bytes")
    with pytest.raises(ValueError):
        pb.field(1, "message")
    with pytest.raises(ValueError):
        pb.field(1, "bytes", required=True, repeated=True)
    with pytest.raises(ValueError):
        pb.field(1, "bytes", repeated=True, packed=True)


# --- properties -------------------------------------------------------------------------

_u64 = st.integers(0, (1 << 64) - 1)
_u32 = st.integers(0, (1 << 32) - 1)
_i64 = st.integers(-(1 << 63), (1 << 63) - 1)
_i32 = st.integers(-(1 << 31), (1 << 31) - 1)
_opt = st.none().__or__

inner_st = st.builds(Inner, name=_opt(st.text(max_size=20)), blobs=st.lists(st.binary(max_size=20), max_size=3))
everything_st = st.builds(
    Everything,
    u64=_opt(_u64),
    u32=_opt(_u32),
    i64=_opt(_i64),
    i32=_opt(_i32),
    s64=_opt(_i64),
    s32=_opt(_i32),
    flag=_opt(st.booleans()),
    color=_opt(st.sampled_from(Color)),
    f32=_opt(_u32),
    f64=_opt(_u64),
    sf32=_opt(_i32),
    sf64=_opt(_i64),
    data=_opt(st.binary(max_size=50)),
    text=_opt(st.text(max_size=50)),
    inner=_opt(inner_st),
    inners=st.lists(inner_st, max_size=3),
    nums=st.lists(_u64, max_size=5),
    packed=st.lists(_i32, max_size=5),
    names=st.lists(st.text(max_size=10), max_size=3),
)


@given(everything_st)
@settings(max_examples=300, deadline=None)
def test_round_trip(msg: Everything) -> None:
    raw = msg.encode()
    back = Everything.decode(raw)
    assert back == msg
    assert back.encode() == raw  # deterministic


@given(st.binary(max_size=200))
@settings(max_examples=1000, deadline=None)
def test_fuzz_only_protobuf_error(raw: bytes) -> None:
    for cls in (Everything, KeyPB, Node, Inner):
        try:
            cls.decode(raw)
        except ProtobufError:
            pass


@given(everything_st, st.data())
@settings(max_examples=300, deadline=None)
def test_fuzz_mutations(msg: Everything, data: st.DataObject) -> None:
    raw = bytearray(msg.encode())
    if raw:
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(raw)))
        raw = raw[:cut]
    try:
        Everything.decode(bytes(raw))
    except ProtobufError:
        pass
