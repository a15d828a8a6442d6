"""WebRTC-direct pieces that need no network: addresses, ufrags, the Noise prologue
(spec test vector) and Noise run over a data-channel stream as the spec does it."""

from __future__ import annotations

import asyncio

import pytest

from pywasm.errors import NoiseError
from pywasm.identity import KeyType, PrivateKey
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.security.noise import NoiseSecurity
from pywasm.transports.webrtc_direct_addr import (
    fingerprint_to_multihash,
    multihash_to_fingerprint,
    noise_prologue,
    parse_webrtc_direct,
    random_ufrag,
    ufrag_from_stun_username,
)

from ._webrtc_memory import stream_pair

CLIENT_FP = "3e79af40d6059617a0d83b83a52ce73b0c1f37a72c6043ad2969e2351bdca870"
SERVER_FP = "30fc9f469c207419dfdd0aab5f27a86c973c94e40548db9375cca2e915973b99"
PROLOGUE = (
    "6c69627032702d7765627274632d6e6f6973653a12203e79af40d6059617a0d83b83a52ce73b0c1f37a72c6043ad2969e2351bdca870"
    "122030fc9f469c207419dfdd0aab5f27a86c973c94e40548db9375cca2e915973b99"
)


def _fp(hexstr: str) -> str:
    return ":".join(hexstr[i : i + 2] for i in range(0, len(hexstr), 2)).upper()


def test_noise_prologue_spec_vector() -> None:
    client = fingerprint_to_multihash(_fp(CLIENT_FP))
    server = fingerprint_to_multihash("sha-256 " + _fp(SERVER_FP))
    assert noise_prologue(client, server).hex() == PROLOGUE
    assert multihash_to_fingerprint(server) == _fp(SERVER_FP)


def test_parse_address() -> None:
    text = "/ip4/127.0.0.1/udp/4004/webrtc-direct/certhash/uEiAw_J9GnCB0Gd_dCqtfJ6hslzyU5AVI25N1zKLpFZc7mQ"
    pid = "12D3KooWGzSbmr1EUBTpeZQJHm3JC7HdQSGSKjSTY4N9TLBrTafr"
    a = parse_webrtc_direct(Multiaddr(f"{text}/p2p/{pid}"))
    assert a is not None and (a.family, a.host, a.port, a.peer_id) == ("ip4", "127.0.0.1", 4004, pid)
    assert multihash_to_fingerprint(a.server_fingerprint) == _fp(SERVER_FP)
    assert parse_webrtc_direct(Multiaddr("/ip4/127.0.0.1/udp/4004/webrtc-direct")) is None  # no certhash
    assert parse_webrtc_direct(Multiaddr("/ip4/127.0.0.1/tcp/4004/ws")) is None


def test_ufrag_rules() -> None:
    u = random_ufrag()
    assert u.startswith("libp2p+webrtc+v1/") and len(u) == 49
    assert ufrag_from_stun_username(f"{u}:{u}") == u
    assert ufrag_from_stun_username(f"{u}:{random_ufrag()}") is None  # the two must match
    assert ufrag_from_stun_username("abcd:abcd") is None  # not a libp2p ufrag
    assert ufrag_from_stun_username("libp2p+webrtc+v1/x:libp2p+webrtc+v1/x") is None  # too short
    assert ufrag_from_stun_username(u) is None


async def _handshake(prologue_server: bytes, prologue_client: bytes) -> tuple[object, object]:
    server_key = await PrivateKey.generate(KeyType.Ed25519)
    client_key = await PrivateKey.generate(KeyType.Ed25519)
    s, c = stream_pair()
    # the server initiates; the client checks the server's id afterwards
    return await asyncio.wait_for(
        asyncio.gather(
            NoiseSecurity(server_key, handshake_timeout=5).secure_outbound(s, None, prologue=prologue_server),
            NoiseSecurity(client_key, handshake_timeout=5).secure_inbound(c, prologue=prologue_client),
        ),
        10,
    )


async def test_noise_over_a_data_channel_stream_with_prologue() -> None:
    p = noise_prologue(fingerprint_to_multihash(_fp(CLIENT_FP)), fingerprint_to_multihash(_fp(SERVER_FP)))
    server, client = await _handshake(p, p)
    assert server.remote_peer == client.local_peer  # type: ignore[attr-defined]
    assert client.remote_peer == server.local_peer  # type: ignore[attr-defined]


async def test_prologue_mismatch_fails_the_handshake() -> None:
    good = noise_prologue(fingerprint_to_multihash(_fp(CLIENT_FP)), fingerprint_to_multihash(_fp(SERVER_FP)))
    bad = noise_prologue(fingerprint_to_multihash(_fp(SERVER_FP)), fingerprint_to_multihash(_fp(SERVER_FP)))
    with pytest.raises(NoiseError):
        await _handshake(good, bad)
