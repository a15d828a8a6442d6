"""mplex core: message codec vectors and state machine, fed byte by byte."""

from __future__ import annotations

import pytest

from pywasm.errors import LimitExceededError, MuxerError, StreamClosedError
from pywasm.protocols import mplex as m
from pywasm.protocols.mplex import MplexConfig, MplexSession
from tests._helpers import feed_bytewise, pump


def test_message_vectors() -> None:
    assert m.encode_message(3, m.NEW_STREAM, b"3") == bytes([0x18, 0x01, 0x33])
    assert m.encode_message(17, m.MESSAGE_INITIATOR, b"hi") == bytes([0x8A, 0x01, 0x02]) + b"hi"
    assert m.encode_message(0, m.CLOSE_RECEIVER) == bytes([0x03, 0x00])
    assert m.encode_message(0, m.RESET_INITIATOR) == bytes([0x06, 0x00])


def test_open_send_close_bytewise() -> None:
    a, b = MplexSession(), MplexSession()
    key = a.open_stream()
    assert key == (0, True)
    assert a.data_to_send() == bytes([0x00, 0x01]) + b"0"
    # reopen properly through the byte-by-byte path
    a, b = MplexSession(), MplexSession()
    key = a.open_stream()
    a.send_data(key, b"hello")
    a.close_write(key)
    events = feed_bytewise(b, a.data_to_send())
    assert isinstance(events[0], m.StreamOpened) and events[0].key == (0, False)
    assert events[0].name == b"0"
    assert b"".join(e.data for e in events if isinstance(e, m.DataReceived)) == b"hello"
    assert isinstance(events[-1], m.StreamEnded) and events[-1].key == (0, False)
    # the answer uses the Receiver flags and lands on a's own stream
    b.send_data((0, False), b"yo")
    b.close_write((0, False))
    out = b.data_to_send()
    assert out == bytes([0x01, 0x02]) + b"yo" + bytes([0x03, 0x00])
    events = feed_bytewise(a, out)
    assert [type(e) for e in events] == [m.DataReceived, m.DataReceived, m.StreamEnded]
    assert events[0].key == (0, True)
    assert a.stream_count == 0 and b.stream_count == 0


def test_same_id_both_directions_are_distinct_streams() -> None:
    a, b = MplexSession(), MplexSession()
    ka = a.open_stream()
    kb = b.open_stream()
    ea, eb = pump(a, b)
    assert ka == kb == (0, True)
    assert [e.key for e in ea] == [(0, False)]
    assert [e.key for e in eb] == [(0, False)]
    a.send_data((0, True), b"from a's stream")
    a.send_data((0, False), b"on b's stream")
    _, eb = pump(a, b)
    assert [(e.key, e.data) for e in eb] == [((0, False), b"from a's stream"), ((0, True), b"on b's stream")]


def test_reset() -> None:
    a, b = MplexSession(), MplexSession()
    key = a.open_stream()
    pump(a, b)
    a.reset_stream(key)
    assert a.data_to_send() == bytes([0x06, 0x00])
    b.receive_data(bytes([0x06, 0x00]))
    assert [type(e) for e in b.next_events()] == [m.StreamReset]
    assert b.stream_count == 0
    # messages for unknown streams are ignored
    b.receive_data(m.encode_message(0, m.MESSAGE_INITIATOR, b"late"))
    assert b.next_events() == []


def test_write_after_close_write() -> None:
    a = MplexSession()
    key = a.open_stream()
    a.close_write(key)
    with pytest.raises(StreamClosedError):
        a.send_data(key, b"x")


def test_large_writes_split() -> None:
    a = MplexSession(MplexConfig(max_send_size=1000))
    key = a.open_stream()
    a.data_to_send()
    a.send_data(key, bytes(2500))
    b = MplexSession()
    b.receive_data(m.encode_message(0, m.NEW_STREAM, b"0"))
    b.next_events()
    b.receive_data(a.data_to_send())
    assert [len(e.data) for e in b.next_events() if isinstance(e, m.DataReceived)] == [1000, 1000, 500]


def test_slow_reader_stream_is_reset() -> None:
    b = MplexSession(MplexConfig(max_stream_buffer=10))
    b.receive_data(m.encode_message(0, m.NEW_STREAM, b"0"))
    b.receive_data(m.encode_message(0, m.MESSAGE_INITIATOR, b"12345678"))
    b.consume((0, False), 4)
    b.receive_data(m.encode_message(0, m.MESSAGE_INITIATOR, b"abcdef"))  # 10 unread: ok
    assert [type(e) for e in b.next_events()] == [m.StreamOpened, m.DataReceived, m.DataReceived]
    b.receive_data(m.encode_message(0, m.MESSAGE_INITIATOR, b"!"))
    assert [type(e) for e in b.next_events()] == [m.StreamReset]
    assert b.data_to_send() == bytes([0x05, 0x00])  # ResetReceiver for the remote's stream 0


def test_inbound_limit_refuses() -> None:
    b = MplexSession(MplexConfig(max_inbound_streams=1))
    b.receive_data(m.encode_message(0, m.NEW_STREAM) + m.encode_message(1, m.NEW_STREAM))
    assert [type(e) for e in b.next_events()] == [m.StreamOpened]
    assert b.data_to_send() == m.encode_message(1, m.RESET_RECEIVER)


def test_outbound_limit() -> None:
    a = MplexSession(MplexConfig(max_outbound_streams=1))
    a.open_stream()
    with pytest.raises(LimitExceededError):
        a.open_stream()


@pytest.mark.parametrize(
    "data",
    [
        bytes([0x07, 0x00]),  # flag 7
        bytes([0x02, 0x81, 0x80, 0x40]),  # length 1 MiB + 1
        bytes([0x80, 0x00]),  # non-minimal varint
        bytes([0xFF] * 10),  # over-long varint
        m.encode_message(0, m.NEW_STREAM) * 2,  # the same stream opened twice
    ],
)
def test_bad_input(data: bytes) -> None:
    with pytest.raises(MuxerError):
        feed_bytewise(MplexSession(), data)


def test_max_size_message_accepted() -> None:
    b = MplexSession(MplexConfig(max_stream_buffer=2 * 1024 * 1024))
    b.receive_data(m.encode_message(0, m.NEW_STREAM))
    b.receive_data(m.encode_message(0, m.MESSAGE_INITIATOR, bytes(m.MAX_MESSAGE_SIZE)))
    events = b.next_events()
    assert sum(len(e.data) for e in events if isinstance(e, m.DataReceived)) == m.MAX_MESSAGE_SIZE


def test_empty_message_is_not_eof() -> None:
    b = MplexSession()
    b.receive_data(m.encode_message(0, m.NEW_STREAM) + m.encode_message(0, m.MESSAGE_INITIATOR))
    assert [type(e) for e in b.next_events()] == [m.StreamOpened]
