"""Fuzz identify parsing: only PywasmError subclasses may escape.

Identify answers come from any peer we connect to, so both the protobuf decode and the
check against the authenticated peer (`to_info`) must turn garbage into typed errors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pywasm.errors import PywasmError
from pywasm.identity import PeerId, PublicKey
from pywasm.services.identify import IdentifyPB, to_info
from tests.unit import _key_vectors as V

EXAMPLES = int(os.environ.get("PYWASM_FUZZ_EXAMPLES", "400"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_KEY = PublicKey.from_protobuf(V.ED25519_PUBLIC)
_PEER = PeerId.from_public_key(_KEY)


@dataclass
class _Conn:
    """The two attributes to_info reads from a connection."""

    remote_peer: PeerId = _PEER
    remote_public_key: PublicKey = _KEY


def _parse(data: bytes) -> None:
    try:
        info = to_info(IdentifyPB.decode(data), _Conn())  # type: ignore[arg-type]
    except PywasmError:
        return
    assert info.peer_id == _PEER


@SETTINGS
@given(st.binary(max_size=2048))
def test_identify_bytes(data: bytes) -> None:
    _parse(data)


@SETTINGS
@given(
    public_key=st.one_of(st.none(), st.sampled_from([V.ED25519_PUBLIC, V.RSA_PUBLIC]), st.binary(max_size=80)),
    listen_addrs=st.lists(st.one_of(st.binary(max_size=40), st.just(bytes.fromhex("047f000001060fa1"))), max_size=5),
    protocols=st.lists(st.text(max_size=30), max_size=5),
    observed=st.one_of(st.none(), st.binary(max_size=40)),
    agent=st.one_of(st.none(), st.text(max_size=40)),
)
def test_identify_structured(
    public_key: bytes | None,
    listen_addrs: list[bytes],
    protocols: list[str],
    observed: bytes | None,
    agent: str | None,
) -> None:
    """Well-formed protobuf carrying hostile field values."""
    msg = IdentifyPB(
        public_key=public_key,
        listen_addrs=listen_addrs,
        protocols=protocols,
        observed_addr=observed,
        agent_version=agent,
    )
    try:
        info = to_info(IdentifyPB.decode(msg.encode()), _Conn())  # type: ignore[arg-type]
    except PywasmError:
        return
    # a key that is not the peer's is refused, never accepted
    assert info.public_key is None or _PEER.matches_public_key(info.public_key)
    assert all(a.to_bytes() in listen_addrs for a in info.listen_addrs)
