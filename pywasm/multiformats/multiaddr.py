"""Multiaddr: composable, self-describing network addresses (multiformats/multiaddr).

Text form ``/ip4/127.0.0.1/tcp/4001/p2p/12D3Koo...``; binary form is a sequence of
``<varint protocol code><value>`` where the value is fixed-size, varint-length-prefixed,
or absent depending on the protocol (see ``_PROTOCOLS`` below, codes from the multicodec
table). Both forms are validated fully on parse; every malformed input raises
:class:`MultiaddrError`, whatever went wrong underneath.

Parsing sits on hot paths (dial, identify, peerstore), so: protocol lookups are dicts
keyed by name and code, parse results are memoised in a small LRU, and the canonical
text of a text-parsed address is only rebuilt when someone asks for it.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Callable, Iterator, Union

from ..errors import DecodeError, MultiaddrError
from . import multibase, multihash
from .cid import LIBP2P_KEY, CID
from .varint import decode_varint, encode_varint

BytesLike = Union[bytes, bytearray, memoryview]

# Distinct inputs whose parse result we keep (a node sees the same few addresses over
# and over: its own listen addresses, its peers', bootstrap lists).
PARSE_CACHE_SIZE = 1024


def _short(value: object, limit: int = 60) -> str:
    """Quote offending input in error messages without dumping megabytes."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# --- value codecs: (text -> bytes, bytes -> text), both validating --------------------
def _ascii_uint(text: str, limit: int, what: str) -> int:
    # isdigit() alone accepts non-ASCII digits (e.g. Arabic-Indic) that int() parses.
    if not text or not text.isascii() or not text.isdigit() or len(text) > 20:
        raise MultiaddrError(f"invalid {what} {_short(text)}")
    value = int(text)
    if value > limit:
        raise MultiaddrError(f"{what} {value} out of range 0..{limit}")
    return value


def _ip4_t2b(text: str) -> bytes:
    try:
        return ipaddress.IPv4Address(text).packed
    except ValueError:
        raise MultiaddrError(f"invalid ip4 address {_short(text)}") from None


def _ip4_b2t(raw: bytes) -> str:
    return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"


def _ip6_t2b(text: str) -> bytes:
    # ipaddress accepts "fe80::1%eth0" scope ids; multiaddr keeps zones in /ip6zone.
    if "%" in text:
        raise MultiaddrError(f"invalid ip6 address {_short(text)} (zones go in /ip6zone)")
    try:
        return ipaddress.IPv6Address(text).packed
    except ValueError:
        raise MultiaddrError(f"invalid ip6 address {_short(text)}") from None


def _ip6_b2t(raw: bytes) -> str:
    addr = ipaddress.IPv6Address(raw)
    mapped = addr.ipv4_mapped
    # Python 3.13 changed how str() prints IPv4-mapped addresses; pin the dotted form
    # (as go-multiaddr prints it) so text is identical on 3.11 and Pyodide 3.14.
    if mapped is not None:
        return "::ffff:" + str(mapped)
    return addr.compressed


def _port_t2b(text: str) -> bytes:
    return _ascii_uint(text, 0xFFFF, "port").to_bytes(2, "big")


def _port_b2t(raw: bytes) -> str:
    return str((raw[0] << 8) | raw[1])


def _cidr_t2b(text: str) -> bytes:
    return bytes((_ascii_uint(text, 0xFF, "ipcidr mask"),))


def _cidr_b2t(raw: bytes) -> str:
    return str(raw[0])


def _u64_t2b(text: str) -> bytes:
    return _ascii_uint(text, (1 << 64) - 1, "memory address").to_bytes(8, "big")


def _u64_b2t(raw: bytes) -> str:
    return str(int.from_bytes(raw, "big"))


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MultiaddrError(f"{what} is not valid UTF-8") from None


def _name_t2b(text: str) -> bytes:
    # dns*, sni, ip6zone: any non-empty name without "/" (the text splitter already
    # guarantees no "/"; binary input is checked in _name_b2t).
    if not text:
        raise MultiaddrError("empty name")
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise MultiaddrError(f"name {_short(text)} is not encodable as UTF-8") from None


def _name_b2t(raw: bytes) -> str:
    text = _utf8(raw, "name")
    if "/" in text:
        raise MultiaddrError(f"name {_short(text)} contains '/'")
    return text


def _unix_t2b(text: str) -> bytes:
    # ``text`` is "/" + the rest of the address (see the parser); same rules as binary.
    raw = _name_t2b(text)
    _unix_check(raw)
    return raw


def _unix_check(raw: bytes) -> None:
    # The text form writes the path after "/unix", so it must start with "/" to split
    # back correctly, and cannot end with "/" (trailing slashes are trimmed on parse).
    if len(raw) < 2 or raw[0] != 0x2F or raw[-1] == 0x2F:
        raise MultiaddrError(f"invalid unix path {_short(raw)}")


def _unix_b2t(raw: bytes) -> str:
    _unix_check(raw)
    return _utf8(raw, "unix path")


def _check_peer_multihash(raw: bytes) -> None:
    try:
        code, digest = multihash.decode(raw)
    except DecodeError as exc:
        raise MultiaddrError(f"invalid p2p multihash: {exc}") from exc
    # Peer ids are sha2-256 (full 32 bytes) or identity multihashes (peer-ids spec).
    if code == multihash.SHA2_256:
        if len(digest) != 32:
            raise MultiaddrError(f"p2p sha2-256 digest must be 32 bytes, not {len(digest)}")
    elif code == multihash.IDENTITY:
        if not digest:
            raise MultiaddrError("p2p identity multihash is empty")
    else:
        raise MultiaddrError(f"p2p multihash must be sha2-256 or identity, not 0x{code:x}")


def _p2p_t2b(text: str) -> bytes:
    try:
        # Legacy base58btc multihash ("Qm..." sha2-256, "1..." identity).
        if text.startswith(("Qm", "1")):
            raw = multibase.b58decode(text)
        else:
            cid = CID.from_string(text)
            if cid.codec != LIBP2P_KEY:
                raise MultiaddrError(f"p2p CID codec must be libp2p-key, not 0x{cid.codec:x}")
            raw = cid.multihash
    except MultiaddrError:
        raise
    except DecodeError as exc:
        raise MultiaddrError(f"invalid peer id {_short(text)}: {exc}") from exc
    _check_peer_multihash(raw)
    return raw


def _p2p_b2t(raw: bytes) -> str:
    _check_peer_multihash(raw)
    return multibase.b58encode(raw)


def _certhash_t2b(text: str) -> bytes:
    try:
        raw = multibase.decode(text)
        multihash.decode(raw)
    except DecodeError as exc:
        raise MultiaddrError(f"invalid certhash {_short(text)}: {exc}") from exc
    return raw


def _certhash_b2t(raw: bytes) -> str:
    try:
        multihash.decode(raw)
    except DecodeError as exc:
        raise MultiaddrError(f"invalid certhash multihash: {exc}") from exc
    return multibase.encode("base64url", raw)


_HEX = frozenset("0123456789abcdefABCDEF")
# RFC 3986 unreserved characters stay literal; everything else is %XX in our output.
_PATH_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _http_path_t2b(text: str) -> bytes:
    if not text:
        raise MultiaddrError("empty http-path")
    pieces = text.split("%")
    try:
        out = bytearray(pieces[0].encode("utf-8"))
        for piece in pieces[1:]:
            # Strict: every "%" must be followed by two hex digits.
            if len(piece) < 2 or piece[0] not in _HEX or piece[1] not in _HEX:
                raise MultiaddrError(f"bad percent-encoding in http-path {_short(text)}")
            out.append(int(piece[:2], 16))
            out += piece[2:].encode("utf-8")
    except UnicodeEncodeError:
        raise MultiaddrError(f"http-path {_short(text)} is not encodable as UTF-8") from None
    return bytes(out)


def _http_path_b2t(raw: bytes) -> str:
    safe = _PATH_SAFE
    return "".join(chr(b) if b in safe else f"%{b:02X}" for b in raw)


# Tor onion (v2: 10-byte host, v3: 35-byte key) + non-zero port, "host:port".
def _onion_t2b(text: str, host_chars: int) -> bytes:
    host, sep, port = text.partition(":")
    if not sep or len(host) != host_chars:
        raise MultiaddrError(f"invalid onion address {_short(text)}")
    try:
        host_bytes = multibase.b32decode(host)
    except DecodeError:
        raise MultiaddrError(f"invalid onion host {_short(host)}") from None
    number = _ascii_uint(port, 0xFFFF, "onion port")
    if number == 0:
        raise MultiaddrError("onion port must be non-zero")
    return host_bytes + number.to_bytes(2, "big")


def _onion_b2t(raw: bytes) -> str:
    port = (raw[-2] << 8) | raw[-1]
    if port == 0:
        raise MultiaddrError("onion port must be non-zero")
    return f"{multibase.b32encode(raw[:-2])}:{port}"


# I2P: base64 with "-~" instead of "+/" (padded), or base32 lower without padding.
_GARLIC64_TO_STD = str.maketrans("-~", "+/")
_GARLIC64_FROM_STD = str.maketrans("+/", "-~")


def _garlic64_check(raw: bytes) -> None:
    # A garlic64 destination is at least 386 bytes (i2p spec; go-multiaddr checks this).
    if len(raw) < 386:
        raise MultiaddrError(f"garlic64 destination too short: {len(raw)} bytes")


def _garlic64_t2b(text: str) -> bytes:
    if "+" in text or "/" in text:
        raise MultiaddrError("invalid garlic64 character")
    try:
        raw = multibase.decode("M" + text.translate(_GARLIC64_TO_STD))
    except DecodeError:
        raise MultiaddrError(f"invalid garlic64 address {_short(text)}") from None
    _garlic64_check(raw)
    return raw


def _garlic64_b2t(raw: bytes) -> str:
    _garlic64_check(raw)
    return multibase.encode("base64pad", raw)[1:].translate(_GARLIC64_FROM_STD)


def _garlic32_check(raw: bytes) -> None:
    # 32 bytes (hash of the destination) or >= 35 (encrypted leaseset, b32encrypted).
    if len(raw) != 32 and len(raw) < 35:
        raise MultiaddrError(f"invalid garlic32 length {len(raw)}")


def _garlic32_t2b(text: str) -> bytes:
    if text != text.lower():
        raise MultiaddrError(f"garlic32 must be lower case: {_short(text)}")
    try:
        raw = multibase.b32decode(text)
    except DecodeError:
        raise MultiaddrError(f"invalid garlic32 address {_short(text)}") from None
    _garlic32_check(raw)
    return raw


def _garlic32_b2t(raw: bytes) -> str:
    _garlic32_check(raw)
    return multibase.b32encode(raw)


# --- the protocol table ------------------------------------------------------------
VAR_SIZE = -1  # value is varint-length-prefixed


class Protocol:
    """One multiaddr protocol: code, name, value size and value codec."""

    __slots__ = ("code", "name", "size", "path", "vcode", "t2b", "b2t")

    def __init__(
        self,
        code: int,
        name: str,
        size: int = 0,
        t2b: Callable[[str], bytes] | None = None,
        b2t: Callable[[bytes], str] | None = None,
        path: bool = False,
    ) -> None:
        self.code = code
        self.name = name
        # 0: no value; > 0: fixed size in bytes; VAR_SIZE: length-prefixed.
        self.size = size
        self.path = path  # the value swallows the rest of the text address (unix)
        self.vcode = encode_varint(code)
        self.t2b = t2b
        self.b2t = b2t

    def __repr__(self) -> str:
        return f"Protocol({self.name!r}, code={self.code})"


def _fixed(code: int, name: str, nbytes: int, t2b: Callable[[str], bytes], b2t: Callable[[bytes], str]) -> Protocol:
    return Protocol(code, name, nbytes, t2b, b2t)


def _var(
    code: int, name: str, t2b: Callable[[str], bytes], b2t: Callable[[bytes], str], path: bool = False
) -> Protocol:
    return Protocol(code, name, VAR_SIZE, t2b, b2t, path)


_PROTOCOLS: tuple[Protocol, ...] = (
    _fixed(4, "ip4", 4, _ip4_t2b, _ip4_b2t),
    _fixed(6, "tcp", 2, _port_t2b, _port_b2t),
    _fixed(273, "udp", 2, _port_t2b, _port_b2t),
    _fixed(33, "dccp", 2, _port_t2b, _port_b2t),
    _fixed(41, "ip6", 16, _ip6_t2b, _ip6_b2t),
    _var(42, "ip6zone", _name_t2b, _name_b2t),
    _fixed(43, "ipcidr", 1, _cidr_t2b, _cidr_b2t),
    _var(53, "dns", _name_t2b, _name_b2t),
    _var(54, "dns4", _name_t2b, _name_b2t),
    _var(55, "dns6", _name_t2b, _name_b2t),
    _var(56, "dnsaddr", _name_t2b, _name_b2t),
    _fixed(132, "sctp", 2, _port_t2b, _port_b2t),
    Protocol(301, "udt"),
    Protocol(302, "utp"),
    _var(400, "unix", _unix_t2b, _unix_b2t, path=True),
    _var(421, "p2p", _p2p_t2b, _p2p_b2t),
    _fixed(444, "onion", 12, lambda t: _onion_t2b(t, 16), _onion_b2t),
    _fixed(445, "onion3", 37, lambda t: _onion_t2b(t, 56), _onion_b2t),
    _var(446, "garlic64", _garlic64_t2b, _garlic64_b2t),
    _var(447, "garlic32", _garlic32_t2b, _garlic32_b2t),
    Protocol(448, "tls"),
    _var(449, "sni", _name_t2b, _name_b2t),
    Protocol(454, "noise"),
    Protocol(460, "quic"),
    Protocol(461, "quic-v1"),
    Protocol(465, "webtransport"),
    _var(466, "certhash", _certhash_t2b, _certhash_b2t),
    Protocol(480, "http"),
    _var(481, "http-path", _http_path_t2b, _http_path_b2t),
    Protocol(443, "https"),
    Protocol(477, "ws"),
    Protocol(478, "wss"),
    Protocol(479, "p2p-websocket-star"),
    Protocol(277, "p2p-stardust"),
    Protocol(275, "p2p-webrtc-star"),
    Protocol(276, "p2p-webrtc-direct"),
    Protocol(280, "webrtc-direct"),
    Protocol(281, "webrtc"),
    Protocol(290, "p2p-circuit"),
    # A fixed 8-byte big-endian u64, as go-multiaddr and rust-multiaddr encode it.
    _fixed(777, "memory", 8, _u64_t2b, _u64_b2t),
    Protocol(7367777, "plaintextv2"),
)

PROTOCOLS_BY_CODE: dict[int, Protocol] = {p.code: p for p in _PROTOCOLS}
PROTOCOLS_BY_NAME: dict[str, Protocol] = {p.name: p for p in _PROTOCOLS}
# /ipfs/<id> is the legacy spelling of /p2p/<id>: parsed, never printed.
PROTOCOLS_BY_NAME["ipfs"] = PROTOCOLS_BY_CODE[421]
_P2P = PROTOCOLS_BY_CODE[421]


def protocol_by_name(name: str) -> Protocol:
    proto = PROTOCOLS_BY_NAME.get(name)
    if proto is None:
        raise MultiaddrError(f"unknown multiaddr protocol {_short(name)}")
    return proto


def protocol_by_code(code: int) -> Protocol:
    proto = PROTOCOLS_BY_CODE.get(code)
    if proto is None:
        raise MultiaddrError(f"unknown multiaddr protocol code {code}")
    return proto


# --- parsing -----------------------------------------------------------------------
# A parsed address: parallel tuples of protocols and raw values (b"" when valueless).
_Parts = tuple[tuple[Protocol, ...], tuple[bytes, ...]]


def _value_t2b(proto: Protocol, text: str) -> bytes:
    assert proto.t2b is not None
    try:
        return proto.t2b(text)
    except MultiaddrError:
        raise
    except (ValueError, UnicodeError, OverflowError, TypeError) as exc:
        # Codecs raise MultiaddrError themselves; this is the net under them so that
        # nothing but a PywasmError can leave the parser.
        raise MultiaddrError(f"invalid {proto.name} value {_short(text)}: {exc}") from exc


def _value_b2t(proto: Protocol, raw: bytes) -> str:
    assert proto.b2t is not None
    try:
        return proto.b2t(raw)
    except MultiaddrError:
        raise
    except (ValueError, UnicodeError, OverflowError, TypeError, IndexError) as exc:
        raise MultiaddrError(f"invalid {proto.name} value {_short(raw)}: {exc}") from exc


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE)
def _parse_text(text: str) -> tuple[bytes, _Parts]:
    if not text.startswith("/"):
        raise MultiaddrError(f"multiaddr must begin with '/': {_short(text)}")
    # Trailing slashes are allowed ("/ip4/1.2.3.4/tcp/1/"), as in go-multiaddr.
    segments = text.rstrip("/").split("/")
    count = len(segments)
    if count < 2:
        raise MultiaddrError("empty multiaddr")
    protos: list[Protocol] = []
    values: list[bytes] = []
    out = bytearray()
    i = 1
    by_name = PROTOCOLS_BY_NAME
    while i < count:
        name = segments[i]
        i += 1
        proto = by_name.get(name)
        if proto is None:
            raise MultiaddrError(f"unknown multiaddr protocol {_short(name)} in {_short(text)}")
        out += proto.vcode
        protos.append(proto)
        if proto.size == 0:
            values.append(b"")
            continue
        if i >= count:
            raise MultiaddrError(f"missing value for /{proto.name} in {_short(text)}")
        if proto.path:
            # A path value (unix) is everything that follows, slashes included.
            value_text = "/" + "/".join(segments[i:])
            i = count
        else:
            value_text = segments[i]
            i += 1
        raw = _value_t2b(proto, value_text)
        if proto.size > 0:
            if len(raw) != proto.size:  # pragma: no cover - codecs return fixed sizes
                raise MultiaddrError(f"/{proto.name} value must be {proto.size} bytes")
        else:
            if not raw:
                raise MultiaddrError(f"empty value for /{proto.name}")
            out += encode_varint(len(raw))
        out += raw
        values.append(raw)
    return bytes(out), (tuple(protos), tuple(values))


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE)
def _parse_bytes(data: bytes) -> tuple[_Parts, tuple[str | None, ...]]:
    """Parse and validate binary; also returns each value's canonical text."""
    if not data:
        raise MultiaddrError("empty multiaddr")
    protos: list[Protocol] = []
    raws: list[bytes] = []
    texts: list[str | None] = []
    end = len(data)
    i = 0
    by_code = PROTOCOLS_BY_CODE
    try:
        while i < end:
            if protos and protos[-1].path:
                raise MultiaddrError("no component may follow a path component (unix)")
            code = data[i]
            if code < 0x80:  # one-byte code: the common case, skip the varint call
                i += 1
            else:
                code, used = decode_varint(data, i)
                i += used
            proto = by_code.get(code)
            if proto is None:
                raise MultiaddrError(f"unknown multiaddr protocol code {code}")
            size = proto.size
            if size == 0:
                protos.append(proto)
                raws.append(b"")
                texts.append(None)
                continue
            if size == VAR_SIZE:
                size, used = decode_varint(data, i)
                i += used
                if size == 0:
                    raise MultiaddrError(f"empty value for /{proto.name}")
            if i + size > end:
                raise MultiaddrError(f"truncated /{proto.name} value: needs {size} bytes, {end - i} left")
            raw = data[i : i + size]
            i += size
            texts.append(_value_b2t(proto, raw))
            protos.append(proto)
            raws.append(raw)
    except MultiaddrError:
        raise
    except DecodeError as exc:  # a bad varint
        raise MultiaddrError(f"malformed multiaddr bytes: {exc}") from exc
    return (tuple(protos), tuple(raws)), tuple(texts)


def _join(protos: tuple[Protocol, ...], raws: tuple[bytes, ...]) -> bytes:
    out = bytearray()
    for proto, raw in zip(protos, raws):
        out += proto.vcode
        if proto.size == VAR_SIZE:
            out += encode_varint(len(raw))
        out += raw
    return bytes(out)


# --- the public type ---------------------------------------------------------------
class Multiaddr:
    """An immutable, validated multiaddr; equal and hashed by its binary form.

    ``Multiaddr(text_or_bytes)`` parses; ``str()`` gives canonical text (p2p in
    base58btc, certhash in base64url, ip6 compressed), ``to_bytes()`` the binary form.
    An empty multiaddr cannot be parsed, but ``decapsulate``/``without_peer_id`` may
    return one (it is falsy and its text is ``""``).
    """

    __slots__ = ("_bytes", "_protos", "_raws", "_texts", "_str", "_hash")

    _bytes: bytes
    _protos: tuple[Protocol, ...]
    _raws: tuple[bytes, ...]
    _texts: tuple[str | None, ...] | None
    _str: str | None
    _hash: int | None

    def __init__(self, addr: str | BytesLike | Multiaddr) -> None:
        texts: tuple[str | None, ...] | None = None
        if isinstance(addr, str):
            data, (protos, raws) = _parse_text(addr)
        elif isinstance(addr, (bytes, bytearray, memoryview)):
            data = bytes(addr)
            (protos, raws), texts = _parse_bytes(data)
        elif isinstance(addr, Multiaddr):
            data, protos, raws, texts = addr._bytes, addr._protos, addr._raws, addr._texts
        else:
            raise TypeError(f"Multiaddr() takes str, bytes or Multiaddr, not {type(addr).__name__}")
        self._init(data, protos, raws, texts)

    def _init(
        self,
        data: bytes,
        protos: tuple[Protocol, ...],
        raws: tuple[bytes, ...],
        texts: tuple[str | None, ...] | None,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "_bytes", data)
        setattr_(self, "_protos", protos)
        setattr_(self, "_raws", raws)
        setattr_(self, "_texts", texts)
        setattr_(self, "_str", None)
        setattr_(self, "_hash", None)

    @classmethod
    def _from_parts(cls, protos: tuple[Protocol, ...], raws: tuple[bytes, ...]) -> Multiaddr:
        # Parts of an already-validated address: no need to parse again.
        obj = cls.__new__(cls)
        obj._init(_join(protos, raws), protos, raws, None)
        return obj

    # --- immutability ---------------------------------------------------------------
    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Multiaddr is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Multiaddr is immutable")

    # --- forms -----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        return self._bytes

    def __bytes__(self) -> bytes:
        return self._bytes

    def _values(self) -> tuple[str | None, ...]:
        texts = self._texts
        if texts is None:
            # Going through the (memoised) binary parser shares the canonical value
            # texts between every Multiaddr object of the same address.
            texts = _parse_bytes(self._bytes)[1] if self._bytes else ()
            object.__setattr__(self, "_texts", texts)
        return texts

    def __str__(self) -> str:
        text = self._str
        if text is None:
            parts: list[str] = []
            for proto, value in zip(self._protos, self._values()):
                parts.append("/" + proto.name)
                if value is not None:
                    # A path value already starts with "/".
                    parts.append(value if proto.path else "/" + value)
            text = "".join(parts)
            object.__setattr__(self, "_str", text)
        return text

    def __repr__(self) -> str:
        return f"Multiaddr({str(self)!r})"

    # --- structure -------------------------------------------------------------------
    def components(self) -> list[tuple[str, str | None]]:
        """``[(protocol name, value text or None), ...]`` in order."""
        return [(proto.name, value) for proto, value in zip(self._protos, self._values())]

    def protocols(self) -> list[str]:
        return [proto.name for proto in self._protos]

    def protocol_codes(self) -> list[int]:
        return [proto.code for proto in self._protos]

    def __len__(self) -> int:
        return len(self._protos)

    def __bool__(self) -> bool:
        return bool(self._protos)

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        return iter(self.components())

    def has_protocol(self, name: str) -> bool:
        proto = protocol_by_name(name)
        return proto in self._protos

    def value_for(self, name: str) -> str | None:
        """Value text of the first ``name`` component; ``""`` if it takes no value,
        ``None`` if absent. ``"ipfs"`` and ``"p2p"`` are the same protocol."""
        proto = protocol_by_name(name)
        for i, p in enumerate(self._protos):
            if p is proto:
                value = self._values()[i]
                return "" if value is None else value
        return None

    def raw_value_for(self, name: str) -> bytes | None:
        """Binary value of the first ``name`` component (e.g. the p2p multihash)."""
        proto = protocol_by_name(name)
        for p, raw in zip(self._protos, self._raws):
            if p is proto:
                return raw
        return None

    # --- composition -----------------------------------------------------------------
    def encapsulate(self, other: Multiaddr | str | BytesLike) -> Multiaddr:
        """``self`` followed by ``other``."""
        inner = other if isinstance(other, Multiaddr) else Multiaddr(other)
        if not inner._protos:
            return self
        if self._protos and self._protos[-1].path:
            raise MultiaddrError(f"cannot encapsulate after a path component: {self}")
        return Multiaddr._from_parts(self._protos + inner._protos, self._raws + inner._raws)

    def decapsulate(self, what: Multiaddr | str) -> Multiaddr:
        """Drop the last occurrence of ``what`` and everything after it.

        ``what`` is a protocol name (``"p2p"``), a multiaddr text (``"/tcp/1"``) or a
        Multiaddr; a multiaddr matches as a whole sequence of components. When there is
        no occurrence the address is returned unchanged.
        """
        if isinstance(what, str) and not what.startswith("/"):
            return self._cut_at(self._last_index_of_proto(protocol_by_name(what)))
        pattern = what if isinstance(what, Multiaddr) else Multiaddr(what)
        n = len(pattern._protos)
        if n == 0:
            return self
        codes = tuple(p.code for p in pattern._protos)
        for start in range(len(self._protos) - n, -1, -1):
            if (
                tuple(p.code for p in self._protos[start : start + n]) == codes
                and self._raws[start : start + n] == pattern._raws
            ):
                return self._cut_at(start)
        return self

    def decapsulate_code(self, code: int) -> Multiaddr:
        return self._cut_at(self._last_index_of_proto(protocol_by_code(code)))

    def _last_index_of_proto(self, proto: Protocol) -> int:
        for i in range(len(self._protos) - 1, -1, -1):
            if self._protos[i] is proto:
                return i
        return -1

    def _cut_at(self, index: int) -> Multiaddr:
        if index < 0:
            return self
        return Multiaddr._from_parts(self._protos[:index], self._raws[:index])

    def peer_id(self) -> str | None:
        """base58btc text of the last /p2p component, or None."""
        index = self._last_index_of_proto(_P2P)
        if index < 0:
            return None
        return self._values()[index]

    def without_peer_id(self) -> Multiaddr:
        """The address without its last /p2p component and what follows it.

        For a relayed address ``.../p2p/RELAY/p2p-circuit/p2p/TARGET`` this keeps the
        relay part: ``.../p2p/RELAY/p2p-circuit``.
        """
        return self._cut_at(self._last_index_of_proto(_P2P))

    def split(self) -> list[Multiaddr]:
        """One single-component Multiaddr per component."""
        return [Multiaddr._from_parts((p,), (raw,)) for p, raw in zip(self._protos, self._raws)]

    # --- value semantics -------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if isinstance(other, Multiaddr):
            return self._bytes == other._bytes
        return NotImplemented

    def __hash__(self) -> int:
        value = self._hash
        if value is None:
            value = hash(self._bytes)
            object.__setattr__(self, "_hash", value)
        return value

    def __reduce__(self) -> tuple[Callable[[bytes], Multiaddr], tuple[bytes]]:
        # __setattr__ is blocked, so pickle/copy must rebuild through a function.
        return (_restore, (self._bytes,))


def _restore(data: bytes) -> Multiaddr:
    if not data:
        return Multiaddr._from_parts((), ())
    return Multiaddr(data)


def is_valid(addr: str | BytesLike) -> bool:
    """True when ``addr`` (text or binary) parses as a multiaddr."""
    try:
        Multiaddr(addr)
    except MultiaddrError:
        return False
    except TypeError:
        return False
    return True


__all__ = [
    "PARSE_CACHE_SIZE",
    "PROTOCOLS_BY_CODE",
    "PROTOCOLS_BY_NAME",
    "VAR_SIZE",
    "Multiaddr",
    "Protocol",
    "is_valid",
    "protocol_by_code",
    "protocol_by_name",
]
