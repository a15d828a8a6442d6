"""Property tests for every multiformats parser.

Two properties:
* robustness: whatever the input, only a PywasmError subclass may escape a parser;
* round trips: valid values survive text -> bytes -> text and bytes -> text -> bytes.
"""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pywasm.errors import PywasmError  # noqa: E402
from pywasm.multiformats import cid as cidmod  # noqa: E402
from pywasm.multiformats import multibase, multihash  # noqa: E402
from pywasm.multiformats.multiaddr import (  # noqa: E402
    PROTOCOLS_BY_CODE,
    PROTOCOLS_BY_NAME,
    VAR_SIZE,
    Multiaddr,
)
from pywasm.multiformats.varint import (  # noqa: E402
    MAX_VARINT,
    decode_varint,
    decode_varint_prefix,
    encode_varint,
)

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- strategies for valid multiaddr components (raw binary values) ----------------
def _name_text() -> st.SearchStrategy[str]:
    # Any printable-ish text without "/" (surrogates are excluded by default).
    return st.text(st.characters(exclude_characters="/", exclude_categories=("Cs",)), min_size=1, max_size=20)


_peer_mh = st.one_of(
    st.binary(min_size=32, max_size=32).map(lambda d: multihash.encode(multihash.SHA2_256, d)),
    st.binary(min_size=1, max_size=42).map(multihash.identity),
)
_any_mh = st.one_of(
    _peer_mh,
    st.binary(min_size=0, max_size=64).map(lambda d: multihash.encode(multihash.SHA2_512, d)),
    st.tuples(st.integers(0x14, 0xFFFF), st.binary(max_size=40)).map(lambda t: multihash.encode(*t)),
)
_nonzero_port = st.integers(1, 0xFFFF).map(lambda p: p.to_bytes(2, "big"))

_VALUE_STRATEGIES: dict[str, st.SearchStrategy[bytes]] = {
    "ip4": st.binary(min_size=4, max_size=4),
    "ip6": st.binary(min_size=16, max_size=16),
    "tcp": st.binary(min_size=2, max_size=2),
    "udp": st.binary(min_size=2, max_size=2),
    "dccp": st.binary(min_size=2, max_size=2),
    "sctp": st.binary(min_size=2, max_size=2),
    "ipcidr": st.binary(min_size=1, max_size=1),
    "memory": st.binary(min_size=8, max_size=8),
    "dns": _name_text().map(str.encode),
    "dns4": _name_text().map(str.encode),
    "dns6": _name_text().map(str.encode),
    "dnsaddr": _name_text().map(str.encode),
    "sni": _name_text().map(str.encode),
    "ip6zone": _name_text().map(str.encode),
    "p2p": _peer_mh,
    "certhash": _any_mh,
    "http-path": st.binary(min_size=1, max_size=30),
    "onion": st.tuples(st.binary(min_size=10, max_size=10), _nonzero_port).map(lambda t: t[0] + t[1]),
    "onion3": st.tuples(st.binary(min_size=35, max_size=35), _nonzero_port).map(lambda t: t[0] + t[1]),
    "garlic64": st.binary(min_size=386, max_size=400),
    "garlic32": st.one_of(st.binary(min_size=32, max_size=32), st.binary(min_size=35, max_size=60)),
}
_VALUELESS = sorted(p.name for p in PROTOCOLS_BY_CODE.values() if p.size == 0)
_unix_path = st.lists(_name_text(), min_size=1, max_size=4).map(lambda segs: ("/" + "/".join(segs)).encode())


def _component(name: str, raw: bytes) -> bytes:
    proto = PROTOCOLS_BY_NAME[name]
    prefix = encode_varint(len(raw)) if proto.size == VAR_SIZE else b""
    return proto.vcode + prefix + raw


_one_component = st.one_of(
    st.sampled_from(_VALUELESS).map(lambda n: _component(n, b"")),
    *[strat.map(lambda raw, n=name: _component(n, raw)) for name, strat in _VALUE_STRATEGIES.items()],
)


@st.composite
def valid_multiaddr_bytes(draw: st.DrawFn) -> bytes:
    parts = draw(st.lists(_one_component, min_size=1, max_size=6))
    if draw(st.booleans()):  # a unix path may only come last
        parts.append(_component("unix", draw(_unix_path)))
    return b"".join(parts)


# --- multiaddr ---------------------------------------------------------------------
@FUZZ
@given(valid_multiaddr_bytes())
def test_multiaddr_valid_round_trips(data: bytes) -> None:
    ma = Multiaddr(data)
    assert ma.to_bytes() == data
    text = str(ma)
    again = Multiaddr(text)
    assert again.to_bytes() == data  # bytes -> text -> bytes
    assert str(again) == text  # text -> bytes -> text
    assert len(ma.components()) == len(ma.protocols()) == len(ma)
    for name, value in ma.components():
        assert ma.value_for(name) is not None
        assert (value is None) == (PROTOCOLS_BY_NAME[name].size == 0)


def _check_multiaddr(value: str | bytes) -> None:
    try:
        ma = Multiaddr(value)
    except PywasmError:
        return
    # Whatever parsed must survive both round trips and every accessor.
    assert Multiaddr(ma.to_bytes()) == ma
    assert Multiaddr(str(ma)) == ma
    ma.components()
    ma.peer_id()
    ma.without_peer_id()
    repr(ma)


@FUZZ
@given(st.binary(max_size=80))
def test_multiaddr_arbitrary_bytes(data: bytes) -> None:
    _check_multiaddr(data)


@FUZZ
@given(valid_multiaddr_bytes(), st.data())
def test_multiaddr_mutated_bytes(data: bytes, draw: st.DataObject) -> None:
    buf = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 3))):
        action = draw.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw.draw(st.integers(0, max(0, len(buf) - 1)))
        if action == "flip" and buf:
            buf[pos] ^= draw.draw(st.integers(1, 255))
        elif action == "cut":
            del buf[pos:]
        else:
            buf[pos:pos] = draw.draw(st.binary(min_size=1, max_size=3))
    _check_multiaddr(bytes(buf))


@FUZZ
@given(st.text(max_size=80))
def test_multiaddr_arbitrary_text(text: str) -> None:
    _check_multiaddr(text)


_segment = st.one_of(
    st.sampled_from(sorted(PROTOCOLS_BY_NAME)),
    st.text(max_size=12),
    st.sampled_from(["1.2.3.4", "::1", "65535", "65536", "0", "-1", "%2F", "%", "Qm", "uEiA", "z", "k51"]),
)


@FUZZ
@given(st.lists(_segment, max_size=8), st.booleans())
def test_multiaddr_structured_text(segments: list[str], trailing: bool) -> None:
    text = "/" + "/".join(segments) + ("/" if trailing else "")
    _check_multiaddr(text)


@FUZZ
@given(valid_multiaddr_bytes(), valid_multiaddr_bytes())
def test_multiaddr_encapsulate_decapsulate(a: bytes, b: bytes) -> None:
    left, right = Multiaddr(a), Multiaddr(b)
    assume(left.protocols()[-1] != "unix")
    joined = left.encapsulate(right)
    assert joined.to_bytes() == a + b
    assert Multiaddr(str(joined)) == joined
    # Removing the right part (its last occurrence) leaves at most the left part.
    rest = joined.decapsulate(right)
    assert rest.to_bytes() == (a + b)[: len(rest.to_bytes())]
    assert len(rest.to_bytes()) <= len(a)


# --- multibase ---------------------------------------------------------------------
_ALL_PREFIXES = [multibase.prefix_of(n) for n in multibase.BASE_NAMES]
_base_chars = st.sampled_from(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/-_=~ \u0131\u212a\u0661\x00"
)


_prefixed_text = st.tuples(st.sampled_from(_ALL_PREFIXES), st.text(_base_chars, max_size=40)).map("".join)


@FUZZ
@given(st.one_of(st.text(max_size=40), _prefixed_text))
def test_multibase_decode_arbitrary(text: str) -> None:
    try:
        data = multibase.decode(text)
    except PywasmError:
        return
    assert isinstance(data, bytes)


@FUZZ
@given(st.sampled_from([n for n in multibase.BASE_NAMES if n != "identity"]), st.binary(max_size=64))
def test_multibase_round_trip(name: str, data: bytes) -> None:
    text = multibase.encode(name, data)
    assert multibase.decode_with_base(text) == (name, data)


# --- multihash, varint, cid ----------------------------------------------------------
@FUZZ
@given(st.binary(max_size=80))
def test_multihash_decode_arbitrary(data: bytes) -> None:
    try:
        code, digest = multihash.decode(data)
    except PywasmError:
        return
    assert multihash.encode(code, digest) == data


@FUZZ
@given(st.integers(0, MAX_VARINT), st.binary(max_size=70))
def test_multihash_round_trip(code: int, digest: bytes) -> None:
    try:
        mh = multihash.encode(code, digest)
    except PywasmError:
        return  # digest longer than the named function allows
    assert multihash.decode(mh) == (code, digest)


@FUZZ
@given(st.binary(max_size=16), st.integers(0, 20))
def test_varint_decode_arbitrary(data: bytes, offset: int) -> None:
    try:
        res = decode_varint_prefix(data, offset)
        if res is not None:
            value, used = res
            assert encode_varint(value) == data[offset : offset + used]
        decode_varint(data, offset)
    except PywasmError:
        return


_cidish_text = st.tuples(st.sampled_from(["Qm", "b", "k", "z", "f01"]), st.text(_base_chars, max_size=60)).map("".join)


@FUZZ
@given(st.one_of(st.text(max_size=70), _cidish_text))
def test_cid_decode_text_arbitrary(text: str) -> None:
    try:
        c = cidmod.decode(text)
    except PywasmError:
        return
    assert cidmod.decode(str(c)) == c


@FUZZ
@given(st.one_of(st.binary(max_size=60), _peer_mh.map(lambda mh: b"\x01\x72" + mh)))
def test_cid_from_bytes_arbitrary(data: bytes) -> None:
    try:
        c = cidmod.from_bytes(data)
    except PywasmError:
        return
    assert c.to_bytes() == data
    assert cidmod.decode(c.encode()) == c
