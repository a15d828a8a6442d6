"""WebRTC data-channel framing (webrtc.pb.Message) and the stream state machine."""

from __future__ import annotations

import asyncio

import pytest

from pywasm.errors import LimitExceededError, StreamClosedError, StreamResetError
from pywasm.protocols.webrtc_pb import (
    MAX_MESSAGE_SIZE,
    MAX_PAYLOAD,
    Flag,
    FrameDecoder,
    Message,
    WebRTCFramingError,
    decode_body,
    encode_message,
)
from pywasm.streams import encode_lp

from ._webrtc_memory import channel_pair, memory_connection_pair, stream_pair

T = 10.0


def _decode_all(messages: list[bytes]) -> list[Message]:
    dec = FrameDecoder()
    out: list[Message] = []
    for m in messages:
        out += dec.feed(m)
    assert not dec.has_partial
    return out


# --- framing ------------------------------------------------------------------------------
def test_encoding_matches_protobuf_layout() -> None:
    # varint(len) || field 1 (flag, varint) || field 2 (bytes)
    assert encode_message(b"hi") == b"\x04\x12\x02hi"
    assert encode_message(flag=Flag.FIN) == b"\x02\x08\x00"
    assert encode_message(flag=Flag.FIN_ACK) == b"\x02\x08\x03"
    assert encode_message(b"", flag=Flag.RESET_STREAM) == b"\x04\x08\x02\x12\x00"


def test_largest_payload_fits_16_kib_even_with_a_flag() -> None:
    assert len(encode_message(b"x" * MAX_PAYLOAD, flag=Flag.FIN)) <= MAX_MESSAGE_SIZE
    with pytest.raises(LimitExceededError):
        encode_message(b"x" * (MAX_MESSAGE_SIZE - 3))


def test_decoder_reassembles_across_message_boundaries() -> None:
    # js-libp2p sends the length prefix and the body as separate channel messages
    wire = encode_message(b"a" * 300) + encode_message(flag=Flag.FIN) + encode_message(b"z")
    one_by_one = _decode_all([wire[i : i + 1] for i in range(len(wire))])
    assert one_by_one == [Message(None, b"a" * 300), Message(Flag.FIN, None), Message(None, b"z")]
    assert _decode_all([wire]) == one_by_one


def test_unknown_fields_are_skipped() -> None:
    body = b"\x18\x05" + b"\x22\x01q" + b"\x12\x01k"  # field 3 varint, field 4 bytes, message
    assert decode_body(body) == Message(None, b"k")


@pytest.mark.parametrize(
    "body",
    [
        b"\x08\x09",  # unknown flag value
        b"\x12\x05ab",  # bytes field longer than the message
        b"\x08",  # truncated varint
        b"\x0a\x01x",  # flag with the bytes wire type
        b"\x00\x01",  # field number 0
        b"\x0f",  # wire type 7
    ],
)
def test_bad_bodies_are_framing_errors(body: bytes) -> None:
    with pytest.raises(WebRTCFramingError):
        decode_body(body)


def test_oversized_length_prefix_fails_before_buffering() -> None:
    dec = FrameDecoder()
    with pytest.raises(LimitExceededError):
        dec.feed(b"\xff\xff\x01")  # 32767 bytes announced
    with pytest.raises(LimitExceededError):
        dec.feed(b"\x02\x08\x00")  # the decoder stays failed


def test_garbage_length_prefix_is_rejected() -> None:
    with pytest.raises(WebRTCFramingError):
        FrameDecoder().feed(b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80")


# --- the stream state machine ------------------------------------------------------------
async def test_roundtrip_and_every_message_under_16_kib() -> None:
    a, b = stream_pair()
    data = bytes(range(256)) * 1000  # 256000 bytes: 16 messages
    await a.write(data)
    got = bytearray()
    while len(got) < len(data):
        got += await asyncio.wait_for(b.read(), T)
    assert bytes(got) == data
    assert all(len(m) <= MAX_MESSAGE_SIZE for m in a.channel.sent)  # type: ignore[attr-defined]
    assert len(a.channel.sent) == -(-len(data) // MAX_PAYLOAD)  # type: ignore[attr-defined]


async def test_close_sequence_fin_fin_ack_then_channel_closes() -> None:
    a, b = stream_pair()
    await a.write(b"DATA")
    # close_write returns once b acknowledged the FIN
    await asyncio.wait_for(a.close_write(), T)
    assert _decode_all(b.channel.sent) == [Message(Flag.FIN_ACK, None)]  # type: ignore[attr-defined]
    assert await b.read() == b"DATA"
    assert await b.read() == b""  # EOF after FIN
    await b.write(b"REPLY")
    assert not a.channel.closed  # type: ignore[attr-defined]
    await asyncio.wait_for(b.close_write(), T)
    assert await a.read() == b"REPLY"
    assert await a.read() == b""
    # FIN and FIN_ACK seen both ways: the channel is closed, by both sides' rules
    for _ in range(10):
        await asyncio.sleep(0)
    assert a.channel.closed and b.channel.closed  # type: ignore[attr-defined]
    assert _decode_all(a.channel.sent)[-2:] == [Message(Flag.FIN, None), Message(Flag.FIN_ACK, None)]  # type: ignore[attr-defined]


async def test_close_write_is_bounded_without_fin_ack() -> None:
    a, b = stream_pair(fin_ack_timeout=0.2)
    b.channel.send = lambda m: None  # type: ignore[method-assign]  # a peer that never answers
    t0 = asyncio.get_running_loop().time()
    await asyncio.wait_for(a.close_write(), T)
    assert 0.15 <= asyncio.get_running_loop().time() - t0 < 2.0
    with pytest.raises(StreamClosedError):
        await a.write(b"x")


async def test_reset_reaches_the_remote_both_ways() -> None:
    a, b = stream_pair()
    reader = asyncio.ensure_future(b.read())
    await asyncio.sleep(0)
    await a.reset()
    with pytest.raises(StreamResetError):
        await asyncio.wait_for(reader, T)
    with pytest.raises(StreamResetError):
        await b.write(b"x")
    with pytest.raises(StreamResetError):
        await a.read()
    assert _decode_all(a.channel.sent) == [Message(Flag.RESET_STREAM, None)]  # type: ignore[attr-defined]


async def test_stop_sending_stops_the_remote_writer_and_drops_data() -> None:
    a, b = stream_pair(close_timeout=0.3)
    closing = asyncio.ensure_future(b.close())  # b stops reading before a finished
    for _ in range(5):
        await asyncio.sleep(0)
    assert Message(Flag.STOP_SENDING, None) in _decode_all(b.channel.sent)  # type: ignore[attr-defined]
    with pytest.raises(StreamClosedError):
        await a.write(b"more")
    with pytest.raises(StreamClosedError):
        await b.read()
    assert await a.read() == b""  # b's FIN
    await asyncio.wait_for(a.close(), T)
    await asyncio.wait_for(closing, T)


async def test_garbage_resets_the_stream_and_tells_the_remote() -> None:
    a, b = stream_pair()
    a.channel.send(b"\x03\x08\x09\x00")  # type: ignore[attr-defined]  # unknown flag 9
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    with pytest.raises(StreamResetError, match="bad data"):
        await b.read()
    assert _decode_all(b.channel.sent) == [Message(Flag.RESET_STREAM, None)]  # type: ignore[attr-defined]


async def test_unread_bytes_are_bounded() -> None:
    a, b = stream_pair(max_buffered=64 * 1024)
    with pytest.raises(StreamResetError):
        for _ in range(100):
            await a.write(b"\x00" * 16 * 1024)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
    with pytest.raises(StreamResetError, match="unread bytes"):
        await b.read()


async def test_channel_closed_without_fin_is_a_reset_but_after_fin_is_eof() -> None:
    a, b = stream_pair()
    a.channel.close()  # type: ignore[attr-defined]  # abrupt: no FIN
    with pytest.raises(StreamResetError):
        await asyncio.wait_for(b.read(), T)
    # bytes that arrived before an abrupt close stay readable (the spec's server closes
    # the Noise channel right after its last message), then the reset shows
    e, f = stream_pair()
    await e.write(b"msg3")
    e.channel.close()  # type: ignore[attr-defined]
    for _ in range(5):
        await asyncio.sleep(0)
    assert await f.read() == b"msg3"
    with pytest.raises(StreamResetError):
        await f.read()
    with pytest.raises(StreamResetError):
        await f.write(b"x")
    c, d = stream_pair()
    await c.write(b"last")
    c.channel.send(encode_message(flag=Flag.FIN))  # type: ignore[attr-defined]
    c.channel.close()  # type: ignore[attr-defined]
    assert await asyncio.wait_for(d.read(), T) == b"last"
    assert await d.read() == b""


async def test_connection_streams_and_limits() -> None:
    async with memory_connection_pair() as (ca, cb):
        s = await ca.open_stream()
        await s.write(encode_lp(b"/echo/1.0.0\n"))
        r = await asyncio.wait_for(cb.accept_stream(), T)
        assert r.stream_id == s.stream_id
        assert await r.read() == encode_lp(b"/echo/1.0.0\n")
        pending = asyncio.ensure_future(cb.accept_stream())
        await ca.close()
        from pywasm.errors import ConnectionClosedError

        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(pending, T)
        with pytest.raises(StreamResetError):
            await r.read()


def test_channel_pair_ids_match() -> None:
    a, b = channel_pair()
    assert a.id == b.id



async def test_write_fails_when_the_channel_stops_sending() -> None:
    # a path that died: the channel takes messages but never passes them on
    a, b = stream_pair(send_high_water=32 * 1024, send_stall_timeout=0.2)
    a.channel.send = lambda m: setattr(a.channel, "buffered", a.channel.buffered + len(m))  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(StreamResetError, match="sent nothing for 0.2 s"):
        await asyncio.wait_for(a.write(bytes(256 * 1024)), 5)
    assert 0.2 <= loop.time() - t0 < 5
    with pytest.raises(StreamResetError):
        await a.write(b"more")  # the stream is done for
