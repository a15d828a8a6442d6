"""Sans-IO mplex 6.7.0 (libp2p/specs mplex/README.md).

Every message is ``varint(stream_id << 3 | flag) varint(length) payload``. Flags:
NewStream 0, MessageReceiver 1, MessageInitiator 2, CloseReceiver 3, CloseInitiator 4,
ResetReceiver 5, ResetInitiator 6. Each side numbers the streams it opens itself, so a
stream is identified by ``(id, who opened it)``: a *Receiver flag comes from the side
that accepted the stream, an *Initiator flag from the side that opened it. We key
streams by ``(id, opened_locally)``.

mplex has no flow control. To keep memory bounded anyway, each stream may hold at
most ``max_stream_buffer`` unread bytes (bytes delivered by :class:`DataReceived` and
not yet reported through :meth:`MplexSession.consume`); a stream whose reader falls
further behind is reset, as js-libp2p does (go-mplex instead stalls the whole
connection for a while, which turns one slow reader into head-of-line blocking for all).
Writers get backpressure only from the connection below.

Messages larger than ``max_message_size`` (1 MiB, the spec's limit) break the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import (
    ConfigError,
    ConnectionClosedError,
    LimitExceededError,
    MuxerError,
    StreamClosedError,
    StreamResetError,
    VarintError,
)
from ..multiformats.varint import decode_varint_prefix, encode_varint
from ._muxcore import MuxSessionBase

PROTOCOL_ID = "/mplex/6.7.0"

NEW_STREAM = 0
MESSAGE_RECEIVER = 1
MESSAGE_INITIATOR = 2
CLOSE_RECEIVER = 3
CLOSE_INITIATOR = 4
RESET_RECEIVER = 5
RESET_INITIATOR = 6

# Spec: implementations may refuse messages above 1 MiB; we do.
MAX_MESSAGE_SIZE = 1024 * 1024
# Largest stream id whose header (id << 3 | flag) still fits a 63-bit varint.
MAX_STREAM_ID = (1 << 60) - 1
# Unread bytes one stream may hold before we reset it (js-libp2p uses 4 MB).
DEFAULT_MAX_STREAM_BUFFER = 4 * 1024 * 1024
# Largest data message we send (the receiver's limit is 1 MiB).
DEFAULT_MAX_SEND_SIZE = MAX_MESSAGE_SIZE
DEFAULT_MAX_INBOUND_STREAMS = 1024
DEFAULT_MAX_OUTBOUND_STREAMS = 1024
# Unsent frames the remote made us owe it (resets of refused streams) beyond this mean
# it does not read what it provokes.
DEFAULT_MAX_PENDING_OUTPUT = 1024 * 1024
# A header is two varints of at most 9 bytes each.
_MAX_HEADER_LEN = 18

StreamKey = tuple[int, bool]


@dataclass(frozen=True)
class MplexConfig:
    max_message_size: int = MAX_MESSAGE_SIZE
    max_send_size: int = DEFAULT_MAX_SEND_SIZE
    max_stream_buffer: int = DEFAULT_MAX_STREAM_BUFFER
    max_inbound_streams: int = DEFAULT_MAX_INBOUND_STREAMS
    max_outbound_streams: int = DEFAULT_MAX_OUTBOUND_STREAMS
    max_pending_output: int = DEFAULT_MAX_PENDING_OUTPUT

    def __post_init__(self) -> None:
        if not 1 <= self.max_send_size <= self.max_message_size:
            raise ConfigError("max_send_size must be in [1, max_message_size]")
        if self.max_stream_buffer < 1:
            raise ConfigError("max_stream_buffer must be positive")


class Event:
    __slots__ = ()


class StreamOpened(Event):
    """The remote opened a stream."""

    __slots__ = ("key", "name")

    def __init__(self, key: StreamKey, name: bytes) -> None:
        self.key = key
        self.name = name

    def __repr__(self) -> str:
        return f"StreamOpened({self.key})"


class DataReceived(Event):
    __slots__ = ("key", "data")

    def __init__(self, key: StreamKey, data: bytes) -> None:
        self.key = key
        self.data = data

    def __repr__(self) -> str:
        return f"DataReceived({self.key}, {len(self.data)} bytes)"


class StreamEnded(Event):
    __slots__ = ("key",)

    def __init__(self, key: StreamKey) -> None:
        self.key = key

    def __repr__(self) -> str:
        return f"StreamEnded({self.key})"


class StreamReset(Event):
    """The remote reset the stream, or we did (its reader fell too far behind)."""

    __slots__ = ("key",)

    def __init__(self, key: StreamKey) -> None:
        self.key = key

    def __repr__(self) -> str:
        return f"StreamReset({self.key})"


class _Stream:
    __slots__ = ("key", "buffered", "local_fin", "remote_fin", "removed")

    def __init__(self, key: StreamKey) -> None:
        self.key = key
        self.buffered = 0
        self.local_fin = False
        self.remote_fin = False
        self.removed = False


def encode_message(stream_id: int, flag: int, payload: bytes = b"") -> bytes:
    return encode_varint(stream_id << 3 | flag) + encode_varint(len(payload)) + payload


# Bytes a NewStream name may have before we stop keeping it (it is informational).
_MAX_NAME = 256


class MplexSession(MuxSessionBase[Event]):
    def __init__(self, config: MplexConfig | None = None) -> None:
        super().__init__()
        self.config = config or MplexConfig()
        self._next_id = 0
        self._streams: dict[StreamKey, _Stream] = {}
        self._inbound = 0
        self._outbound = 0
        self._hbuf = bytearray()
        # current message: flag, stream (None: discard), bytes left, name being collected
        self._rx_remaining = 0
        self._rx_flag = 0
        self._rx_stream: _Stream | None = None
        self._rx_name: bytearray | None = None
        self._rx_key: StreamKey = (0, False)
        self.failed = False
        self.closed = False

    # --- output (data_to_send, has_output, next_events: see MuxSessionBase) ------------
    def _frame(self, stream_id: int, flag: int, payload: bytes = b"") -> None:
        frame = encode_message(stream_id, flag, payload)
        self._out.append(frame)
        self._out_size += len(frame)

    def _control(self, stream_id: int, flag: int) -> None:
        if self._out_size >= self.config.max_pending_output:
            self._fail("peer does not read the frames it provokes", limit=True)
        self._frame(stream_id, flag)

    # --- commands ----------------------------------------------------------------------
    def open_stream(self, name: bytes | None = None) -> StreamKey:
        if self.failed or self.closed:
            raise ConnectionClosedError("mplex session is closed")
        if self._outbound >= self.config.max_outbound_streams:
            raise LimitExceededError(
                f"{self._outbound} outbound streams open (limit {self.config.max_outbound_streams})"
            )
        sid = self._next_id
        if sid > MAX_STREAM_ID:
            raise LimitExceededError("mplex stream ids exhausted")
        self._next_id = sid + 1
        key = (sid, True)
        self._streams[key] = _Stream(key)
        self._outbound += 1
        # names are informational; implementations send the id as text
        self._frame(sid, NEW_STREAM, name if name is not None else str(sid).encode())
        return key

    def send_data(self, key: StreamKey, data: bytes | memoryview) -> int:
        """Queue all of ``data`` (mplex has no window); frames reference ``data``."""
        st = self._streams.get(key)
        if st is None:
            raise StreamResetError(f"mplex stream {key[0]} is gone")
        if st.local_fin:
            raise StreamClosedError("write side of the stream is closed")
        n = len(data)
        if n == 0:
            return 0
        sid = key[0]
        flag = MESSAGE_INITIATOR if key[1] else MESSAGE_RECEIVER
        head = encode_varint(sid << 3 | flag)
        step = self.config.max_send_size
        out = self._out
        pos = 0
        while pos < n:
            k = min(step, n - pos)
            out.append(head + encode_varint(k))
            out.append(data if k == n else data[pos : pos + k])
            pos += k
        self._out_size += n
        return n

    def consume(self, key: StreamKey, n: int) -> None:
        st = self._streams.get(key)
        if st is not None:
            st.buffered = max(0, st.buffered - n)

    def close_write(self, key: StreamKey) -> None:
        st = self._streams.get(key)
        if st is None:
            raise StreamResetError(f"mplex stream {key[0]} is gone")
        if st.local_fin:
            return
        st.local_fin = True
        self._frame(key[0], CLOSE_INITIATOR if key[1] else CLOSE_RECEIVER)
        if st.remote_fin:
            self._remove(st)

    def reset_stream(self, key: StreamKey) -> None:
        st = self._streams.get(key)
        if st is None:
            return
        self._frame(key[0], RESET_INITIATOR if key[1] else RESET_RECEIVER)
        self._remove(st)

    def close(self) -> None:
        """No more streams (mplex has no GoAway: the connection just closes)."""
        self.closed = True

    def _remove(self, st: _Stream) -> None:
        if st.removed:
            return
        st.removed = True
        del self._streams[st.key]
        if st.key[1]:
            self._outbound -= 1
        else:
            self._inbound -= 1

    def _fail(self, message: str, limit: bool = False) -> None:
        self.failed = True
        raise (LimitExceededError if limit else MuxerError)(message)

    # --- input -------------------------------------------------------------------------
    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if self.failed:
            raise MuxerError("mplex session already failed")
        if not isinstance(data, bytes):
            data = bytes(data)
        n = len(data)
        pos = 0
        hbuf = self._hbuf
        while pos < n:
            rem = self._rx_remaining
            if rem:
                k = n - pos
                if k > rem:
                    k = rem
                self._payload(data if k == n else data[pos : pos + k])
                pos += k
                rem -= k
                self._rx_remaining = rem
                if rem == 0:
                    self._end_message()
                continue
            # header: two varints; parse straight from ``data`` when it holds them whole
            if not hbuf:
                parsed = self._parse_header(data, pos)
                if parsed is not None:
                    pos += parsed
                    continue
            take = min(_MAX_HEADER_LEN - len(hbuf), n - pos)
            hbuf += data[pos : pos + take]
            parsed = self._parse_header(hbuf, 0)
            if parsed is None:
                if len(hbuf) >= _MAX_HEADER_LEN:
                    self._fail("mplex header too long")
                pos += take
                continue
            # only the header's bytes were consumed from the ones just added
            pos += take - (len(hbuf) - parsed)
            hbuf.clear()

    def _parse_header(self, buf: bytes | bytearray, pos: int) -> int | None:
        """Parse a complete header at ``pos``; returns its length, None if incomplete."""
        try:
            first = decode_varint_prefix(buf, pos)
            if first is None:
                return None
            second = decode_varint_prefix(buf, pos + first[1])
        except VarintError as exc:
            self._fail(f"bad mplex header: {exc}")
            raise  # unreachable: _fail raises
        if second is None:
            return None
        self._on_header(first[0], second[0])
        return first[1] + second[1]

    def _on_header(self, header: int, length: int) -> None:
        flag = header & 7
        sid = header >> 3
        if flag > RESET_INITIATOR:
            self._fail(f"unknown mplex flag {flag}")
        if length > self.config.max_message_size:
            self._fail(f"mplex message of {length} bytes exceeds {self.config.max_message_size}")
        self._rx_flag = flag
        self._rx_stream = None
        self._rx_name = None
        if flag == NEW_STREAM:
            key = (sid, False)
            self._rx_key = key
            if key in self._streams:
                self._fail(f"remote opened stream {sid} twice")
            if self.closed or self._inbound >= self.config.max_inbound_streams:
                self._control(sid, RESET_RECEIVER)
                self._rx_key = (-1, False)  # refused: ignore the name
            else:
                self._rx_name = bytearray()
        else:
            # odd flags come from the side that accepted the stream: ours
            key = (sid, bool(flag & 1))
            self._rx_key = key
            st = self._streams.get(key)
            if flag <= MESSAGE_INITIATOR:
                if st is not None and not st.remote_fin:
                    self._rx_stream = st
            elif st is not None:
                if flag >= RESET_RECEIVER:
                    self._events.append(StreamReset(key))
                    self._remove(st)
                elif not st.remote_fin:
                    st.remote_fin = True
                    self._events.append(StreamEnded(key))
                    if st.local_fin:
                        self._remove(st)
        self._rx_remaining = length
        if length == 0:
            self._end_message()

    def _payload(self, chunk: bytes) -> None:
        st = self._rx_stream
        if st is not None:
            if st.removed:
                return
            st.buffered += len(chunk)
            if st.buffered > self.config.max_stream_buffer:
                # the reader does not keep up: reset rather than buffer without bound
                self._control(st.key[0], RESET_INITIATOR if st.key[1] else RESET_RECEIVER)
                self._events.append(StreamReset(st.key))
                self._remove(st)
                return
            self._events.append(DataReceived(st.key, chunk))
        elif self._rx_name is not None:
            room = _MAX_NAME - len(self._rx_name)
            if room > 0:
                self._rx_name += chunk[:room]

    def _end_message(self) -> None:
        if self._rx_flag == NEW_STREAM and self._rx_name is not None:
            key = self._rx_key
            self._streams[key] = _Stream(key)
            self._inbound += 1
            self._events.append(StreamOpened(key, bytes(self._rx_name)))
        self._rx_name = None
        self._rx_stream = None

    @property
    def stream_count(self) -> int:
        return len(self._streams)


__all__ = [
    "PROTOCOL_ID",
    "MplexConfig",
    "MplexSession",
    "Event",
    "StreamOpened",
    "DataReceived",
    "StreamEnded",
    "StreamReset",
    "encode_message",
    "NEW_STREAM",
    "MESSAGE_RECEIVER",
    "MESSAGE_INITIATOR",
    "CLOSE_RECEIVER",
    "CLOSE_INITIATOR",
    "RESET_RECEIVER",
    "RESET_INITIATOR",
    "MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_STREAM_BUFFER",
    "DEFAULT_MAX_INBOUND_STREAMS",
    "DEFAULT_MAX_OUTBOUND_STREAMS",
]
