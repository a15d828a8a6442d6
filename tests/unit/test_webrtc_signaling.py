"""/webrtc private-to-private: signaling messages and address parsing (no browser needed;
the connection itself is proved between two Chromium pages in e2e/test_webrtc_private.py)."""

from __future__ import annotations

import pytest

from pywasm.errors import HandshakeTimeoutError, PywasmError
from pywasm.identity import KeyType, PeerId, PrivateKey
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.protocols.webrtc_signaling_pb import (
    MAX_MESSAGE_SIZE,
    SignalingError,
    SignalingMessage,
    SignalingType,
    encode_signaling,
    read_signaling,
)
from pywasm.streams import BufferedReader, encode_lp
from pywasm.transports.browser_webrtc import split_webrtc

RELAY = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"


class _Reader:
    """A stream that yields fixed bytes, then EOF (read_lp comes from BufferedReader)."""

    def __init__(self, data: bytes, hang: bool = False) -> None:
        self._data = data
        self._hang = hang

    async def read(self, max_bytes: int = -1) -> bytes:
        if self._data:
            out, self._data = self._data, b""
            return out
        if self._hang:
            import asyncio

            await asyncio.sleep(3600)
        return b""


def _lp_reader(data: bytes, hang: bool = False) -> BufferedReader:
    return BufferedReader(_Reader(data, hang))


async def test_signaling_round_trip_keeps_type_zero_on_the_wire() -> None:
    frame = encode_signaling(SignalingType.SDP_OFFER, "v=0\r\n")
    # js-libp2p needs the type field even for SDP_OFFER (0), which proto3 would omit
    assert b"\x08\x00" in frame
    msg = await read_signaling(_lp_reader(frame), 1.0, "offer")
    assert msg == SignalingMessage(type=0, data="v=0\r\n")
    cand = '{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0"}'
    msg = await read_signaling(_lp_reader(encode_signaling(SignalingType.ICE_CANDIDATE, cand)), 1.0, "candidate")
    assert msg is not None and msg.type == SignalingType.ICE_CANDIDATE and msg.data == cand


async def test_signaling_bad_input_is_typed() -> None:
    assert await read_signaling(_lp_reader(b""), 1.0, "offer") is None  # clean end
    with pytest.raises(SignalingError, match="malformed"):
        await read_signaling(_lp_reader(encode_lp(b"\xff\xff\xff")), 1.0, "offer")
    with pytest.raises(PywasmError):  # over the size bound: refused before reading it all
        await read_signaling(_lp_reader(encode_lp(b"\x12" + b"x" * (MAX_MESSAGE_SIZE + 10))), 1.0, "offer")
    with pytest.raises(SignalingError, match="exceeds"):
        encode_signaling(SignalingType.SDP_ANSWER, "x" * (MAX_MESSAGE_SIZE + 1))
    with pytest.raises(HandshakeTimeoutError, match="answer"):
        await read_signaling(_lp_reader(b"", hang=True), 0.05, "SDP answer")


async def test_split_webrtc_addresses() -> None:
    target = PeerId.from_public_key((await PrivateKey.generate(KeyType.Ed25519)).public_key)
    base = f"/ip4/127.0.0.1/tcp/4002/ws/p2p/{RELAY}/p2p-circuit"
    assert split_webrtc(Multiaddr(f"{base}/webrtc/p2p/{target}")) == (Multiaddr(base), target)
    assert split_webrtc(Multiaddr(f"{base}/webrtc")) == (Multiaddr(base), None)
    for other in (
        base,  # plain relayed address
        f"{base}/p2p/{target}",
        f"/ip4/127.0.0.1/tcp/4002/ws/p2p-circuit/webrtc/p2p/{target}",  # no relay id
        f"/ip4/127.0.0.1/udp/1/webrtc-direct/certhash/uEiCyWDXqj62I-YWrOKykHZUu1uM-FgqqfrLBrDjKVv3LEg",
    ):
        assert split_webrtc(Multiaddr(other)) is None, other
