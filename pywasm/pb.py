"""A minimal protobuf wire codec for libp2p's small messages.

Schemas are declared as dataclasses whose fields carry protobuf metadata::

    @dataclass
    class PublicKeyPB(pb.Message):
        type: int = pb.field(1, "enum", required=True)
        data: bytes = pb.field(2, "bytes", required=True)

    raw = PublicKeyPB(1, b"...").encode()
    msg = PublicKeyPB.decode(raw)

Semantics (proto2, which libp2p uses for keys, identify, noise, relay, kad):

* A non-repeated field whose value is ``None`` is absent and not written; any other value
  (including ``0``, ``b""``, ``False``) is present and written. ``required=True`` fields
  must be present on both encode and decode.
* Encoding is deterministic: fields in field-number order, minimal varints, repeated
  values in list order. Repeated scalars are written unpacked unless ``packed=True``;
  decode accepts both forms.
* Decoding skips unknown fields (wire types 0, 1, 2, 5), keeps the last value of a
  repeated-in-the-wire singular field (sub-messages are not merged), and raises
  :class:`~pywasm.errors.ProtobufError` for truncated input, wrong wire types, invalid
  UTF-8, unknown enum values (when an enum class is given), groups, oversized input or
  nesting that is too deep. Nothing else escapes.

Supported kinds: ``uint32 uint64 int32 int64 sint32 sint64 bool enum fixed32 fixed64
sfixed32 sfixed64 bytes string message``.
"""

from __future__ import annotations

import dataclasses
import enum as _enum
from typing import Any, TypeVar

from .errors import ProtobufError

#: Default bound on the size of one encoded message accepted by :func:`decode`.
MAX_MESSAGE_SIZE = 4 * 1024 * 1024
#: Bound on sub-message nesting, so recursive schemas cannot exhaust the stack.
MAX_DEPTH = 32
MAX_FIELD_NUMBER = (1 << 29) - 1

_WT_VARINT = 0
_WT_I64 = 1
_WT_LEN = 2
_WT_I32 = 5

_U64 = 1 << 64
_U32 = 1 << 32

_VARINT_KINDS = {"uint32", "uint64", "int32", "int64", "sint32", "sint64", "bool", "enum"}
_FIXED_KINDS = {"fixed32": _WT_I32, "sfixed32": _WT_I32, "fixed64": _WT_I64, "sfixed64": _WT_I64}
_LEN_KINDS = {"bytes", "string", "message"}
KINDS = frozenset(_VARINT_KINDS | set(_FIXED_KINDS) | _LEN_KINDS)

_META_KEY = "pywasm.pb"

M = TypeVar("M", bound="Message")


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    number: int
    kind: str
    required: bool = False
    repeated: bool = False
    packed: bool = False
    message: Any = None  # a Message subclass, or a zero-argument callable returning one
    enum: type[_enum.IntEnum] | None = None


def field(
    number: int,
    kind: str,
    *,
    required: bool = False,
    repeated: bool = False,
    packed: bool = False,
    message: Any = None,
    enum: type[_enum.IntEnum] | None = None,
    default: Any = None,
) -> Any:
    """Declare a protobuf field on a dataclass (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"unknown protobuf field kind {kind!r}")
    if not 1 <= number <= MAX_FIELD_NUMBER or 19000 <= number <= 19999:
        raise ValueError(f"invalid protobuf field number {number}")
    if required and repeated:
        raise ValueError("a field cannot be both required and repeated")
    if (kind == "message") != (message is not None):
        raise ValueError("message= is required for, and only for, kind 'message'")
    if enum is not None and kind != "enum":
        raise ValueError("enum= is only valid for kind 'enum'")
    if packed and (not repeated or kind in _LEN_KINDS):
        raise ValueError("packed= applies to repeated numeric fields only")
    spec = FieldSpec(number, kind, required, repeated, packed, message, enum)
    if repeated:
        return dataclasses.field(default_factory=list, metadata={_META_KEY: spec})
    return dataclasses.field(default=default, metadata={_META_KEY: spec})


# --- varints -------------------------------------------------------------------
# Not multiformats.varint on purpose: protobuf varints carry 64 bits in up to 10 bytes
# (negative int64 included) and need not be minimal; unsigned-varint stops at 63 bits / 9.

def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift >= 70:
            raise ProtobufError("varint longer than 10 bytes")
    if result >= _U64:
        raise ProtobufError("varint exceeds 64 bits")
    return result, pos


# --- per-kind value conversion ------------------------------------------------------


def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _check_int(value: Any, lo: int, hi: int, kind: str) -> int:
    if not isinstance(value, int) or not lo <= value <= hi:
        raise ProtobufError(f"{kind} value out of range: {value!r}")
    return int(value)


def _enc_scalar(kind: str, value: Any) -> int:
    """The unsigned wire integer for a varint/fixed kind."""
    if kind == "uint64" or kind == "fixed64":
        return _check_int(value, 0, _U64 - 1, kind)
    if kind == "uint32" or kind == "fixed32":
        return _check_int(value, 0, _U32 - 1, kind)
    if kind == "int64" or kind == "sfixed64":
        return _check_int(value, -(1 << 63), (1 << 63) - 1, kind) % _U64
    if kind == "int32" or kind == "enum":
        # Negative int32 values are sign-extended to 64 bits on the wire.
        return _check_int(value, -(1 << 31), (1 << 31) - 1, kind) % _U64
    if kind == "sfixed32":
        return _check_int(value, -(1 << 31), (1 << 31) - 1, kind) % _U32
    if kind == "sint64":
        v = _check_int(value, -(1 << 63), (1 << 63) - 1, kind)
        return (v << 1) ^ (v >> 63)
    if kind == "sint32":
        v = _check_int(value, -(1 << 31), (1 << 31) - 1, kind)
        return ((v << 1) ^ (v >> 31)) & 0xFFFFFFFF
    if kind == "bool":
        if not isinstance(value, int):
            raise ProtobufError(f"bool value expected, got {type(value).__name__}")
        return 1 if value else 0
    raise AssertionError(kind)  # pragma: no cover


def _dec_scalar(kind: str, v: int) -> Any:
    if kind == "uint64" or kind == "fixed64":
        return v
    if kind == "uint32" or kind == "fixed32":
        return v & 0xFFFFFFFF  # protobuf truncates oversized uint32 values
    if kind == "int64" or kind == "sfixed64":
        return _signed(v, 64)
    if kind == "int32" or kind == "enum" or kind == "sfixed32":
        return _signed(v, 32)
    if kind == "sint64":
        return (v >> 1) ^ -(v & 1)
    if kind == "sint32":
        v &= 0xFFFFFFFF
        return (v >> 1) ^ -(v & 1)
    if kind == "bool":
        return v != 0
    raise AssertionError(kind)  # pragma: no cover


# --- compiled schemas ---------------------------------------------------------------


class _Field:
    __slots__ = ("name", "spec", "kind", "wire_type", "key", "packed_key", "msg_cls", "enum")

    def __init__(self, name: str, spec: FieldSpec) -> None:
        self.name = name
        self.spec = spec
        self.kind = spec.kind
        if spec.kind in _VARINT_KINDS:
            self.wire_type = _WT_VARINT
        elif spec.kind in _FIXED_KINDS:
            self.wire_type = _FIXED_KINDS[spec.kind]
        else:
            self.wire_type = _WT_LEN
        self.key = _varint((spec.number << 3) | self.wire_type)
        self.packed_key = _varint((spec.number << 3) | _WT_LEN)
        self.msg_cls: type[Message] | None = None
        self.enum = spec.enum


class _Schema:
    __slots__ = ("fields", "by_number", "required")

    def __init__(self, cls: type) -> None:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass to be a protobuf message")
        fields = []
        for f in dataclasses.fields(cls):
            spec = f.metadata.get(_META_KEY)
            if spec is not None:
                fields.append(_Field(f.name, spec))
        fields.sort(key=lambda x: x.spec.number)
        self.fields = fields
        self.by_number: dict[int, _Field] = {}
        for fl in fields:
            if fl.spec.number in self.by_number:
                raise TypeError(f"{cls.__name__}: duplicate field number {fl.spec.number}")
            self.by_number[fl.spec.number] = fl
        self.required = [fl for fl in fields if fl.spec.required]
        # Resolve sub-message classes after registering ourselves, so self-referencing
        # schemas (message=lambda: Node) resolve without recursion.
        _SCHEMAS[cls] = self
        for fl in fields:
            if fl.kind == "message":
                m = fl.spec.message
                if not isinstance(m, type):
                    m = m()
                fl.msg_cls = m


_SCHEMAS: dict[type, _Schema] = {}


def _schema(cls: type) -> _Schema:
    s = _SCHEMAS.get(cls)
    if s is None:
        try:
            s = _Schema(cls)
        except BaseException:
            _SCHEMAS.pop(cls, None)
            raise
    return s


# --- encoding -------------------------------------------------------------------------


def _encode_value(fl: _Field, value: Any, out: bytearray, depth: int) -> None:
    kind = fl.kind
    wt = fl.wire_type
    if wt == _WT_LEN:
        if kind == "bytes":
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise ProtobufError(f"field {fl.name!r}: bytes expected, got {type(value).__name__}")
            payload = value
        elif kind == "string":
            if not isinstance(value, str):
                raise ProtobufError(f"field {fl.name!r}: str expected, got {type(value).__name__}")
            try:
                payload = value.encode("utf-8")
            except UnicodeEncodeError:
                raise ProtobufError(f"field {fl.name!r}: string is not valid UTF-8") from None
        else:
            if not isinstance(value, fl.msg_cls):  # type: ignore[arg-type]
                raise ProtobufError(
                    f"field {fl.name!r}: {fl.msg_cls.__name__} expected, got {type(value).__name__}"  # type: ignore[union-attr]
                )
            payload = _encode(value, depth + 1)
        out += fl.key
        out += _varint(len(payload))
        out += payload
        return
    v = _enc_scalar(kind, value)
    out += fl.key
    if wt == _WT_VARINT:
        out += _varint(v)
    elif wt == _WT_I32:
        out += v.to_bytes(4, "little")
    else:
        out += v.to_bytes(8, "little")


def _encode(msg: Any, depth: int = 0) -> bytes:
    if depth > MAX_DEPTH:
        raise ProtobufError("message nesting too deep")
    schema = _schema(type(msg))
    out = bytearray()
    for fl in schema.fields:
        value = getattr(msg, fl.name)
        if fl.spec.repeated:
            if value is None:
                continue
            if fl.spec.packed:
                if not value:
                    continue
                body = bytearray()
                for item in value:
                    v = _enc_scalar(fl.kind, item)
                    if fl.wire_type == _WT_VARINT:
                        body += _varint(v)
                    else:
                        body += v.to_bytes(4 if fl.wire_type == _WT_I32 else 8, "little")
                out += fl.packed_key
                out += _varint(len(body))
                out += body
            else:
                for item in value:
                    _encode_value(fl, item, out, depth)
        elif value is None:
            if fl.spec.required:
                raise ProtobufError(f"{type(msg).__name__}: required field {fl.name!r} is not set")
        else:
            _encode_value(fl, value, out, depth)
    return bytes(out)


def encode(msg: Any) -> bytes:
    """Encode a protobuf dataclass instance (deterministic)."""
    return _encode(msg)


# --- decoding -------------------------------------------------------------------------


def _decode_scalar_value(fl: _Field, buf: bytes, pos: int, end: int, wt: int) -> tuple[Any, int]:
    if wt == _WT_VARINT:
        v, pos = _read_varint(buf, pos, end)
    else:
        n = 4 if wt == _WT_I32 else 8
        if pos + n > end:
            raise ProtobufError(f"truncated fixed{n * 8} field")
        v = int.from_bytes(buf[pos : pos + n], "little")
        pos += n
    value = _dec_scalar(fl.kind, v)
    if fl.enum is not None:
        try:
            value = fl.enum(value)
        except ValueError:
            raise ProtobufError(f"field {fl.name!r}: unknown enum value {value}") from None
    return value, pos


def _decode(cls: type, buf: bytes, pos: int, end: int, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ProtobufError("message nesting too deep")
    schema = _schema(cls)
    by_number = schema.by_number
    values: dict[str, Any] = {}
    while pos < end:
        b = buf[pos]
        if b < 0x80:
            tag = b
            pos += 1
        else:
            tag, pos = _read_varint(buf, pos, end)
        number = tag >> 3
        wt = tag & 7
        if number == 0 or number > MAX_FIELD_NUMBER:
            raise ProtobufError(f"invalid field number {number}")
        fl = by_number.get(number)
        if fl is None:
            # Unknown field: skip it.
            if wt == _WT_VARINT:
                _, pos = _read_varint(buf, pos, end)
            elif wt == _WT_LEN:
                n, pos = _read_varint(buf, pos, end)
                if n > end - pos:
                    raise ProtobufError("truncated length-delimited field")
                pos += n
            elif wt == _WT_I64 or wt == _WT_I32:
                n = 8 if wt == _WT_I64 else 4
                if n > end - pos:
                    raise ProtobufError("truncated fixed-size field")
                pos += n
            else:
                raise ProtobufError(f"unsupported wire type {wt}")
            continue
        if wt == _WT_LEN:
            n, pos = _read_varint(buf, pos, end)
            if n > end - pos:
                raise ProtobufError(f"field {fl.name!r}: truncated")
            stop = pos + n
            kind = fl.kind
            if kind == "bytes":
                value: Any = buf[pos:stop]
            elif kind == "string":
                try:
                    value = buf[pos:stop].decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtobufError(f"field {fl.name!r}: invalid UTF-8") from None
            elif kind == "message":
                value = _decode(fl.msg_cls, buf, pos, stop, depth + 1)  # type: ignore[arg-type]
            elif fl.spec.repeated:
                # Packed repeated scalars.
                lst = values.setdefault(fl.name, [])
                while pos < stop:
                    item, pos = _decode_scalar_value(fl, buf, pos, stop, fl.wire_type)
                    lst.append(item)
                continue
            else:
                raise ProtobufError(f"field {fl.name!r}: wrong wire type {wt}")
            pos = stop
        elif wt == fl.wire_type:
            value, pos = _decode_scalar_value(fl, buf, pos, end, wt)
        else:
            raise ProtobufError(f"field {fl.name!r}: wrong wire type {wt}")
        if fl.spec.repeated:
            values.setdefault(fl.name, []).append(value)
        else:
            values[fl.name] = value
    if pos != end:  # pragma: no cover - every branch above checks bounds
        raise ProtobufError("truncated message")
    for fl in schema.required:
        if fl.name not in values:
            raise ProtobufError(f"{cls.__name__}: required field {fl.name!r} is missing")
    return cls(**values)


def decode(cls: type[M], data: bytes | bytearray | memoryview, *, max_size: int = MAX_MESSAGE_SIZE) -> M:
    """Decode ``data`` as a ``cls`` message; :class:`ProtobufError` on any malformation."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ProtobufError(f"protobuf input must be bytes, not {type(data).__name__}")
    if len(data) > max_size:
        raise ProtobufError(f"protobuf message of {len(data)} bytes exceeds the {max_size}-byte limit")
    buf = data if type(data) is bytes else bytes(data)
    return _decode(cls, buf, 0, len(buf), 0)


class Message:
    """Optional base class giving dataclass messages ``.encode()`` and ``.decode()``."""

    __slots__ = ()

    def encode(self) -> bytes:
        return _encode(self)

    @classmethod
    def decode(cls: type[M], data: bytes | bytearray | memoryview, *, max_size: int = MAX_MESSAGE_SIZE) -> M:
        return decode(cls, data, max_size=max_size)


__all__ = [
    "MAX_DEPTH",
    "MAX_MESSAGE_SIZE",
    "KINDS",
    "FieldSpec",
    "Message",
    "decode",
    "encode",
    "field",
]
