"""Fuzz the identity parsers: only PywasmError subclasses may escape."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pywasm import pb
from pywasm.errors import PywasmError
from pywasm.identity import KeyType, PeerId, PrivateKey, PublicKey, der
from pywasm.identity.keys import _KeyPB
from tests.conftest import _run
from tests.unit import _key_vectors as V

# PYWASM_FUZZ_EXAMPLES raises the budget for a long local run.
EXAMPLES = int(os.environ.get("PYWASM_FUZZ_EXAMPLES", "500"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PUBLIC_SEEDS = [V.ED25519_PUBLIC, V.SECP256K1_PUBLIC, V.ECDSA_PUBLIC, V.RSA_PUBLIC, V.GO_RSA_PUBLIC]
PRIVATE_SEEDS = [V.ED25519_PRIVATE, V.SECP256K1_PRIVATE, V.ECDSA_PRIVATE, V.GO_ED25519_LEGACY_PRIVATE, V.RSA_PRIVATE]
ID_SEEDS = [
    "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
    "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY",
    "QmVMT29id3TUASyfZZ6k9hmNyc2nYabCo4uMSpDw4zrgDk",
    "bafzbeidigywdclqvl5hxfefwp5onbffcfife7pza57mmfb4tiqmtkdjw64",
    "bafzaajaiaejcahwr5d5ofrfbis4l5d6uwr57hu5tjodrypfm6yaq6dsc2r2pzyt6",
]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    raw = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.integers(0, 2))
        i = draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == 0 and raw:
            raw[i] = draw(st.integers(0, 255))
        elif op == 1:
            raw.insert(i, draw(st.integers(0, 255)))
        elif raw:
            del raw[i]
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    return bytes(raw)


@st.composite
def key_messages(draw: st.DrawFn) -> bytes:
    kt = draw(st.integers(0, 4))
    data = draw(
        st.one_of(
            st.binary(max_size=100),
            st.builds(lambda b: b"\x02" + b, st.binary(min_size=32, max_size=32)),
            st.builds(lambda b: b"\x04" + b, st.binary(min_size=64, max_size=64)),
            mutated([_KeyPB.decode(s).data for s in PUBLIC_SEEDS + PRIVATE_SEEDS]),
        )
    )
    return _KeyPB(kt, data).encode()


def _public(raw: bytes) -> None:
    try:
        pk = PublicKey.from_protobuf(raw)
    except PywasmError:
        return
    assert PublicKey.from_protobuf(pk.to_protobuf()) == pk
    pid = PeerId.from_public_key(pk)
    assert PeerId.from_string(str(pid)) == pid
    assert pid.matches_public_key(pk)
    try:
        _run(pk.verify(b"m", raw[:72]))
    except PywasmError:
        pass


def _private(raw: bytes) -> None:
    try:
        key = _run(PrivateKey.from_protobuf(raw))
    except PywasmError:
        return
    assert _run(PrivateKey.from_protobuf(key.to_protobuf())) == key


@given(st.one_of(st.binary(max_size=300), mutated(PUBLIC_SEEDS), key_messages()))
@SETTINGS
def test_fuzz_public_key(raw: bytes) -> None:
    _public(raw)


@given(st.one_of(st.binary(max_size=300), mutated(PRIVATE_SEEDS), key_messages()))
@SETTINGS
def test_fuzz_private_key(raw: bytes) -> None:
    _private(raw)


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    s = list(draw(st.sampled_from(ID_SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(s) - 1))
        op = draw(st.integers(0, 2))
        if op == 0:
            s[i] = draw(st.characters())
        elif op == 1:
            del s[i]
        else:
            s.insert(i, draw(st.sampled_from("123456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ0ilo")))
    return "".join(s)


@given(st.one_of(st.text(max_size=120), mutated_text()))
@SETTINGS
def test_fuzz_peer_id_string(text: str) -> None:
    try:
        pid = PeerId.from_string(text)
    except PywasmError:
        return
    assert PeerId.from_string(str(pid)) == pid
    assert PeerId.from_string(pid.to_cid_string()) == pid
    try:
        pid.public_key()
    except PywasmError:
        pass


@given(st.one_of(st.binary(max_size=100), mutated([PeerId.from_string(s).to_bytes() for s in ID_SEEDS])))
@SETTINGS
def test_fuzz_peer_id_bytes(raw: bytes) -> None:
    try:
        pid = PeerId.from_bytes(raw)
    except PywasmError:
        return
    assert pid.to_bytes() == raw
    pid.public_key()  # valid identity ids always hold a parseable key


@given(st.one_of(st.binary(max_size=300), mutated([_KeyPB.decode(s).data for s in PUBLIC_SEEDS + PRIVATE_SEEDS])))
@SETTINGS
def test_fuzz_der(raw: bytes) -> None:
    for parse in (der.parse_rsa_public, der.parse_rsa_private, der.parse_ec_public, der.parse_ec_private,
                  der.parse_ecdsa_signature):
        try:
            parse(raw)
        except PywasmError:
            pass


@given(st.binary(max_size=300))
@SETTINGS
def test_fuzz_pb_decode(raw: bytes) -> None:
    try:
        _KeyPB.decode(raw)
    except PywasmError:
        pass
    try:
        pb.decode(_KeyPB, raw, max_size=100)
    except PywasmError:
        pass


def test_key_types_enum() -> None:
    assert [int(k) for k in KeyType] == [0, 1, 2, 3]
