"""Signed envelopes (RFC 0002) and peer records (RFC 0003).

The vector below was made by js-libp2p 3.3 (@libp2p/peer-record ``RecordEnvelope.seal``)
with the Ed25519 key whose seed is bytes 1..32, seq 1700000000000 and two addresses.
Ed25519 signatures are deterministic, so sealing the same record must give the same
bytes; tests/interop/test_js_relay.py re-checks this against a live js process.
"""

from __future__ import annotations

import pytest

from pywasm.identity import KeyType, PeerId, PrivateKey
from pywasm.identity.envelope import (
    EnvelopeError,
    decode_envelope,
    open_envelope,
    seal,
    signing_bytes,
)
from pywasm.identity.peer_record import (
    PEER_RECORD_DOMAIN,
    PEER_RECORD_PAYLOAD_TYPE,
    PeerRecord,
    open_peer_record,
    seal_peer_record,
)
from pywasm.multiformats.multiaddr import Multiaddr

JS_PEER = "12D3KooWJ1TsijH7H5F74hfAD5XishQz3sxrmAtVY37GtNd9CqYf"
JS_ENVELOPE = bytes.fromhex(
    "0a240801122079b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664120203011a"
    "490a2600240801122079b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad0496641080"
    "d095ffbc311a0a0a08047f000001060fa11a0c0a0a047f000001060fa2dd032a40b3f492a3e707cd92c5ce"
    "230687ec5b0744547cce2a1a9533f2d6c0b0786ea11c9f416be9b03dcbbf0921bab26c615507e4219791f0"
    "50c4c3b3bd6747cd29180a"
)
ADDRS = [Multiaddr("/ip4/127.0.0.1/tcp/4001"), Multiaddr("/ip4/127.0.0.1/tcp/4002/ws")]


async def _seed_key() -> PrivateKey:
    seed = bytes(range(1, 33))
    # from_data wants seed || public key: the public half of this seed, as js computed it
    public = PeerId.from_string(JS_PEER).to_bytes()[-32:]
    return await PrivateKey.from_data(KeyType.Ed25519, seed + public)


def test_signing_bytes_layout() -> None:
    got = signing_bytes("dom", b"\x03\x01", b"abc")
    assert got == b"\x03dom" + b"\x02\x03\x01" + b"\x03abc"
    # lengths are varints: a 200-byte payload takes two length bytes
    assert signing_bytes("d", b"", b"x" * 200)[:4] == b"\x01d\x00\xc8"


async def test_js_made_peer_record_opens() -> None:
    env, record = await open_peer_record(JS_ENVELOPE)
    assert str(env.signer) == JS_PEER
    assert record.peer_id == PeerId.from_string(JS_PEER)
    assert record.seq == 1700000000000
    assert record.addrs == ADDRS


async def test_we_seal_byte_identical_to_js() -> None:
    key = await _seed_key()
    assert str(key.to_peer_id()) == JS_PEER
    env = await seal_peer_record(key, ADDRS, seq=1700000000000)
    assert env.payload_type == PEER_RECORD_PAYLOAD_TYPE == b"\x03\x01"
    assert env.encode() == JS_ENVELOPE


async def test_round_trip_all_key_types() -> None:
    for kt in (KeyType.Ed25519, KeyType.Secp256k1, KeyType.ECDSA):
        key = await PrivateKey.generate(kt)
        env = await seal_peer_record(key, ADDRS)
        _, record = await open_peer_record(env.encode())
        assert record.peer_id == key.to_peer_id() and record.addrs == ADDRS


async def test_domain_separation_and_tampering_rejected() -> None:
    key = await PrivateKey.generate(KeyType.Ed25519)
    env = await seal(key, "libp2p-relay-rsvp", b"\x03\x02", b"payload")
    raw = env.encode()
    assert (await open_envelope(raw, "libp2p-relay-rsvp", b"\x03\x02")).payload == b"payload"
    # the same signature is worthless in another domain
    with pytest.raises(EnvelopeError, match="does not verify"):
        await open_envelope(raw, PEER_RECORD_DOMAIN)
    with pytest.raises(EnvelopeError, match="payload type"):
        await open_envelope(raw, "libp2p-relay-rsvp", b"\x03\x01")
    # one flipped payload bit
    bad = raw.replace(b"payload", b"paylobd")
    with pytest.raises(EnvelopeError, match="does not verify"):
        await open_envelope(bad, "libp2p-relay-rsvp")


async def test_record_signed_by_someone_else_rejected() -> None:
    mallory = await PrivateKey.generate(KeyType.Ed25519)
    victim = await PrivateKey.generate(KeyType.Ed25519)
    record = PeerRecord(victim.to_peer_id(), 5, ADDRS)
    env = await seal(mallory, PEER_RECORD_DOMAIN, PEER_RECORD_PAYLOAD_TYPE, record.encode())
    with pytest.raises(EnvelopeError, match="signed by"):
        await open_peer_record(env.encode())


@pytest.mark.parametrize(
    "data",
    [b"", b"\x0a\x05abc", b"\xff" * 10, JS_ENVELOPE[:40], b"\x0a\x02\x08\x01\x2a\x00", bytes(70000)],
)
async def test_garbage_is_a_typed_error(data: bytes) -> None:
    with pytest.raises(EnvelopeError):
        decode_envelope(data)
        await open_peer_record(data)
