"""yamux core: frame codec vectors and state machine, fed byte by byte."""

from __future__ import annotations

import pytest

from pywasm.errors import (
    ConnectionClosedError,
    LimitExceededError,
    MuxerError,
    PywasmError,
    StreamClosedError,
)
from pywasm.protocols import yamux as y
from pywasm.protocols.yamux import YamuxConfig, YamuxSession
from tests._helpers import feed_bytewise, pump


def frames(data: bytes) -> list[tuple[int, int, int, int, int]]:
    """Split output into headers (payload skipped for data frames)."""
    out = []
    pos = 0
    while pos < len(data):
        hdr = y.HEADER.unpack_from(data, pos)
        out.append(hdr)
        pos += 12 + (hdr[4] if hdr[1] == y.TYPE_DATA else 0)
    return out


# the spec's plain start (no extra credit on SYN/ACK), for tests about the 256 KiB window
SPEC = YamuxConfig(initial_stream_window=y.INITIAL_WINDOW)


def pair(config: YamuxConfig | None = None) -> tuple[YamuxSession, YamuxSession]:
    return YamuxSession(True, config), YamuxSession(False, config)


def test_header_vectors() -> None:
    # version 0, type Data, flags SYN, stream 1, length 5
    assert y.encode_frame(y.TYPE_DATA, y.FLAG_SYN, 1, 5, b"hello") == bytes.fromhex(
        "00 00 0001 00000001 00000005"
    ) + b"hello"
    assert y.encode_frame(y.TYPE_WINDOW_UPDATE, y.FLAG_ACK, 2, 0x40000) == bytes.fromhex(
        "00 01 0002 00000002 00040000"
    )
    assert y.encode_frame(y.TYPE_PING, y.FLAG_SYN, 0, 7) == bytes.fromhex("00 02 0001 00000000 00000007")
    assert y.encode_frame(y.TYPE_GO_AWAY, 0, 0, y.GO_AWAY_PROTOCOL_ERROR) == bytes.fromhex(
        "00 03 0000 00000000 00000001"
    )


def test_open_ack_data_fin_bytewise() -> None:
    # the spec's plain 256 KiB start: SYN and ACK carry no credit
    client, server = pair(SPEC)
    sid = client.open_stream()
    assert sid == 1
    syn = client.data_to_send()
    assert syn == bytes.fromhex("00 01 0001 00000001 00000000")
    events = feed_bytewise(server, syn)
    assert [type(e) for e in events] == [y.StreamOpened] and events[0].stream_id == 1
    assert server.data_to_send() == bytes.fromhex("00 01 0002 00000001 00000000")  # ACK

    assert client.send_data(1, b"hello world") == 11
    client.close_write(1)
    events = feed_bytewise(server, client.data_to_send())
    data = b"".join(e.data for e in events if isinstance(e, y.DataReceived))
    assert data == b"hello world"
    assert isinstance(events[-1], y.StreamEnded)
    # server answers and closes: both FINs exchanged, the stream is gone on both sides
    server.send_data(1, b"ok")
    server.close_write(1)
    assert server.stream_count == 0
    events = feed_bytewise(client, server.data_to_send())
    assert [type(e) for e in events] == [y.DataReceived, y.DataReceived, y.StreamEnded]
    assert client.stream_count == 0


def test_initial_stream_window_rides_on_syn_and_ack() -> None:
    client, server = pair()  # default: 1 MiB per stream
    extra = y.DEFAULT_INITIAL_STREAM_WINDOW - y.INITIAL_WINDOW
    sid = client.open_stream()
    syn = client.data_to_send()
    assert frames(syn) == [(0, y.TYPE_WINDOW_UPDATE, y.FLAG_SYN, sid, extra)]
    feed_bytewise(server, syn)
    ack = server.data_to_send()
    assert frames(ack) == [(0, y.TYPE_WINDOW_UPDATE, y.FLAG_ACK, sid, extra)]
    feed_bytewise(client, ack)
    # each side may now send the full 1 MiB before any further credit
    assert server.send_window(sid) == client.send_window(sid) == y.DEFAULT_INITIAL_STREAM_WINDOW
    blob = bytes(y.DEFAULT_INITIAL_STREAM_WINDOW)
    assert client.send_data(sid, blob) == len(blob)
    assert client.send_data(sid, b"x") == 0
    _, events = pump(client, server)
    assert sum(len(e.data) for e in events if isinstance(e, y.DataReceived)) == len(blob)
    assert not server.failed


def test_initial_stream_window_comes_out_of_the_growth_budget() -> None:
    # budget for two streams' extra credit only: the third starts at the spec's 256 KiB
    extra = 512 * 1024
    cfg = YamuxConfig(initial_stream_window=y.INITIAL_WINDOW + extra, max_window_growth=2 * extra)
    client, server = pair(cfg)
    deltas = []
    for _ in range(3):
        client.open_stream()
        deltas.append(frames(client.data_to_send())[0][4])
    assert deltas == [extra, extra, 0]
    with pytest.raises(PywasmError):
        YamuxConfig(initial_stream_window=y.INITIAL_WINDOW - 1)
    with pytest.raises(PywasmError):
        YamuxConfig(initial_stream_window=2 * 1024 * 1024, max_stream_window=1024 * 1024)


def test_stream_ids_and_parity() -> None:
    client, server = pair()
    assert [client.open_stream() for _ in range(3)] == [1, 3, 5]
    assert [server.open_stream() for _ in range(2)] == [2, 4]
    # a client receiving a SYN for an odd id: the server used the client's parity
    c2 = YamuxSession(True)
    with pytest.raises(MuxerError):
        c2.receive_data(y.encode_frame(y.TYPE_WINDOW_UPDATE, y.FLAG_SYN, 3, 0))
    assert c2.data_to_send() == y.encode_frame(y.TYPE_GO_AWAY, 0, 0, y.GO_AWAY_PROTOCOL_ERROR)
    with pytest.raises(MuxerError):
        c2.receive_data(b"\x00")  # failed sessions accept nothing more


def test_duplicate_syn_is_protocol_error() -> None:
    server = YamuxSession(False)
    server.receive_data(y.encode_frame(y.TYPE_WINDOW_UPDATE, y.FLAG_SYN, 1, 0))
    with pytest.raises(MuxerError):
        server.receive_data(y.encode_frame(y.TYPE_WINDOW_UPDATE, y.FLAG_SYN, 1, 0))


@pytest.mark.parametrize(
    "frame",
    [
        bytes.fromhex("01 00 0000 00000001 00000000"),  # version 1
        bytes.fromhex("00 04 0000 00000001 00000000"),  # type 4
        y.encode_frame(y.TYPE_DATA, 0, 0, 0),  # data on stream 0
        y.encode_frame(y.TYPE_WINDOW_UPDATE, 0, 0, 5),  # window update on stream 0
        y.encode_frame(y.TYPE_PING, y.FLAG_SYN, 1, 0),  # ping on a stream
        y.encode_frame(y.TYPE_GO_AWAY, 0, 3, 0),  # go away on a stream
    ],
)
def test_bad_frames(frame: bytes) -> None:
    server = YamuxSession(False)
    with pytest.raises(MuxerError):
        feed_bytewise(server, frame)
    assert frames(server.data_to_send()) == [(0, y.TYPE_GO_AWAY, 0, 0, y.GO_AWAY_PROTOCOL_ERROR)]


def test_send_window_limits_and_window_update() -> None:
    client, server = pair(YamuxConfig(max_stream_window=y.INITIAL_WINDOW, initial_stream_window=y.INITIAL_WINDOW))
    sid = client.open_stream()
    pump(client, server)
    big = bytes(1024 * 1024)
    assert client.send_data(sid, big) == y.INITIAL_WINDOW
    assert client.send_data(sid, big) == 0
    _, events = pump(client, server)
    assert sum(len(e.data) for e in events if isinstance(e, y.DataReceived)) == y.INITIAL_WINDOW
    # consuming less than half the window sends nothing
    server.consume(sid, y.INITIAL_WINDOW // 2 - 1)
    assert not server.has_output
    server.consume(sid, 1)
    update = server.data_to_send()
    assert frames(update) == [(0, y.TYPE_WINDOW_UPDATE, 0, sid, y.INITIAL_WINDOW // 2)]
    client.receive_data(update)
    assert [type(e) for e in client.next_events()] == [y.WindowOpened]
    assert client.send_window(sid) == y.INITIAL_WINDOW // 2


def test_frames_split_at_max_frame_size() -> None:
    client, server = pair(YamuxConfig(max_frame_size=1000))
    sid = client.open_stream()
    client.data_to_send()
    client.send_data(sid, bytes(2500))
    assert [f[4] for f in frames(client.data_to_send())] == [1000, 1000, 500]


def test_window_grows_when_reader_keeps_up() -> None:
    client, server = pair(YamuxConfig(max_stream_window=2 * 1024 * 1024))
    sid = client.open_stream()
    pump(client, server)
    zeros = memoryview(bytes(2 * 1024 * 1024))
    for _ in range(10):
        n = client.send_data(sid, zeros[: client.send_window(sid)])
        _, events = pump(client, server)
        got = sum(len(e.data) for e in events if isinstance(e, y.DataReceived))
        assert got == n
        server.consume(sid, got)  # the reader drains everything at once
        pump(client, server)
    assert server.receive_window(sid) == 2 * 1024 * 1024
    assert client.send_window(sid) == 2 * 1024 * 1024


def test_window_does_not_grow_for_slow_reader() -> None:
    client, server = pair(SPEC)
    sid = client.open_stream()
    pump(client, server)
    client.send_data(sid, bytes(y.INITIAL_WINDOW))
    pump(client, server)
    server.consume(sid, y.INITIAL_WINDOW // 2)  # half is still unread
    pump(client, server)
    assert server.receive_window(sid) == y.INITIAL_WINDOW


def test_exceeding_window_is_protocol_error() -> None:
    server = YamuxSession(False, SPEC)
    server.receive_data(y.encode_frame(y.TYPE_WINDOW_UPDATE, y.FLAG_SYN, 1, 0))
    server.data_to_send()
    with pytest.raises(MuxerError):
        server.receive_data(y.HEADER.pack(0, y.TYPE_DATA, 0, 1, y.INITIAL_WINDOW + 1))
    assert frames(server.data_to_send())[-1][1:] == (y.TYPE_GO_AWAY, 0, 0, y.GO_AWAY_PROTOCOL_ERROR)


def test_window_update_overflow_is_protocol_error() -> None:
    server = YamuxSession(False)
    server.receive_data(y.encode_frame(y.TYPE_WINDOW_UPDATE, y.FLAG_SYN, 1, 0))
    with pytest.raises(MuxerError):
        server.receive_data(y.encode_frame(y.TYPE_WINDOW_UPDATE, 0, 1, y.MAX_U32))


def test_syn_with_data_and_fin_in_one_frame() -> None:
    server = YamuxSession(False)
    events = feed_bytewise(server, y.encode_frame(y.TYPE_DATA, y.FLAG_SYN | y.FLAG_FIN, 1, 3, b"abc"))
    assert [type(e) for e in events] == [y.StreamOpened, y.DataReceived, y.DataReceived, y.DataReceived, y.StreamEnded]


def test_reset_both_ways() -> None:
    client, server = pair()
    sid = client.open_stream()
    pump(client, server)
    client.reset_stream(sid)
    assert client.stream_count == 0
    _, events = pump(client, server)
    assert [type(e) for e in events] == [y.StreamReset]
    assert server.stream_count == 0
    # frames for a forgotten stream are ignored, payload included
    server.receive_data(y.encode_frame(y.TYPE_DATA, 0, sid, 4, b"late"))
    assert server.next_events() == []
    with pytest.raises(PywasmError):
        client.send_data(sid, b"x")


def test_data_after_fin_resets_stream() -> None:
    server = YamuxSession(False)
    server.receive_data(y.encode_frame(y.TYPE_DATA, y.FLAG_SYN | y.FLAG_FIN, 1, 1, b"a"))
    server.next_events()
    server.data_to_send()
    server.receive_data(y.encode_frame(y.TYPE_DATA, 0, 1, 2, b"bc"))
    assert [type(e) for e in server.next_events()] == [y.StreamReset]
    assert frames(server.data_to_send()) == [(0, y.TYPE_WINDOW_UPDATE, y.FLAG_RST, 1, 0)]


def test_write_after_close_write() -> None:
    client = YamuxSession(True)
    sid = client.open_stream()
    client.close_write(sid)
    with pytest.raises(StreamClosedError):
        client.send_data(sid, b"x")


def test_ping_both_ways() -> None:
    client, server = pair()
    opaque = client.ping()
    request = client.data_to_send()
    assert request == y.encode_frame(y.TYPE_PING, y.FLAG_SYN, 0, opaque)
    feed_bytewise(server, request)
    answer = server.data_to_send()
    assert answer == y.encode_frame(y.TYPE_PING, y.FLAG_ACK, 0, opaque)
    events = feed_bytewise(client, answer)
    assert len(events) == 1 and isinstance(events[0], y.PingAcked) and events[0].opaque == opaque
    # an unsolicited answer is ignored
    client.receive_data(answer)
    assert client.next_events() == []


def test_too_many_pings() -> None:
    client = YamuxSession(True, YamuxConfig(max_pending_pings=2))
    client.ping()
    client.ping()
    with pytest.raises(LimitExceededError):
        client.ping()


def test_ping_flood_without_reading_is_bounded() -> None:
    server = YamuxSession(False, YamuxConfig(max_pending_output=120))
    ping = y.encode_frame(y.TYPE_PING, y.FLAG_SYN, 0, 1)
    with pytest.raises(LimitExceededError):
        for _ in range(100):
            server.receive_data(ping)


def test_go_away() -> None:
    client, server = pair()
    server.go_away()
    events, _ = pump(client, server)
    assert [(type(e), e.code) for e in events] == [(y.GoAwayReceived, y.GO_AWAY_NORMAL)]
    with pytest.raises(ConnectionClosedError):
        client.open_stream()
    with pytest.raises(ConnectionClosedError):
        server.open_stream()
    # a SYN after our GoAway is refused with RST
    server.receive_data(y.encode_frame(y.TYPE_WINDOW_UPDATE, y.FLAG_SYN, 1, 0))
    assert frames(server.data_to_send()) == [(0, y.TYPE_WINDOW_UPDATE, y.FLAG_RST, 1, 0)]


def test_inbound_stream_limit_refuses_with_rst() -> None:
    server = YamuxSession(False, YamuxConfig(max_inbound_streams=2))
    for sid in (1, 3, 5):
        server.receive_data(y.encode_frame(y.TYPE_WINDOW_UPDATE, y.FLAG_SYN, sid, 0))
    assert [type(e) for e in server.next_events()] == [y.StreamOpened, y.StreamOpened]
    assert frames(server.data_to_send())[-1] == (0, y.TYPE_WINDOW_UPDATE, y.FLAG_RST, 5, 0)


def test_outbound_stream_limit() -> None:
    client = YamuxSession(True, YamuxConfig(max_outbound_streams=1))
    client.open_stream()
    with pytest.raises(LimitExceededError):
        client.open_stream()


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        YamuxConfig(max_stream_window=1000)


# --- asyncio driver ------------------------------------------------------------------
import asyncio  # noqa: E402

from pywasm.muxers import YamuxMuxer  # noqa: E402
from pywasm.transports.memory import memory_pipe  # noqa: E402




async def test_driver_ping_rtt() -> None:
    a, b = memory_pipe()
    ca, cb = YamuxMuxer().create(a, True), YamuxMuxer().create(b, False)
    assert 0 <= await ca.ping() < 5
    assert 0 <= await cb.ping() < 5
    await ca.close()
    raw = memory_pipe()
    # close() sends GoAway(normal) and closes the transport
    cx = YamuxMuxer().create(raw[0], True)
    await cx.close()
    assert cx.is_closed
    assert await raw[1].read() == y.encode_frame(y.TYPE_GO_AWAY, 0, 0, y.GO_AWAY_NORMAL)
    assert await raw[1].read() == b""
    await cb.close()


async def test_driver_protocol_error_closes_connection() -> None:
    a, b = memory_pipe()
    ca = YamuxMuxer().create(a, True)
    stream = await ca.open_stream()
    stream.protocol = "/echo/1.0.0"
    assert stream.stream_id == 1 and stream.protocol == "/echo/1.0.0"
    await b.write(b"\x07" * 12)  # bad version
    try:
        await asyncio.wait_for(ca.accept_stream(), 2)
    except ConnectionClosedError:
        pass
    assert isinstance(ca.error, MuxerError)
    # the peer received the SYN, then GoAway(protocol error), then EOF
    from pywasm.streams import read_to_eof

    out = await asyncio.wait_for(read_to_eof(b, 1 << 20), 2)
    assert out.endswith(y.encode_frame(y.TYPE_GO_AWAY, 0, 0, y.GO_AWAY_PROTOCOL_ERROR))
    try:
        await stream.read()
    except PywasmError:
        pass
    else:
        raise AssertionError("stream survived the connection")


async def test_driver_cancelled_write_never_corrupts_connection() -> None:
    """Cancelling a write stuck in the transport tears the connection down rather than
    leave half a frame behind (see MuxedConnectionBase._conn_write)."""
    from pywasm.errors import StreamResetError

    a, b = memory_pipe(capacity=1000)  # nobody reads b yet: writes block in the pipe
    ca = YamuxMuxer().create(a, True)
    s1 = await ca.open_stream()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(s1.write(bytes(5000)), 0.05)
    server = YamuxSession(False)
    received = 0
    try:
        while True:
            data = await asyncio.wait_for(b.read(), 0.2)
            if not data:
                break
            server.receive_data(data)  # a torn frame would raise MuxerError here
            received += sum(len(e.data) for e in server.next_events() if isinstance(e, y.DataReceived))
    except StreamResetError:
        assert ca.is_closed  # torn down
    except asyncio.TimeoutError:
        # allowed too: the frame went out whole and the connection lives on
        assert not ca.is_closed and received == 5000
    await ca.close()
