"""Sans-IO yamux 1.0 (hashicorp/yamux spec.md, as profiled by libp2p/specs yamux).

Bytes from the connection go into :meth:`YamuxSession.receive_data`; what happened
comes out of :meth:`YamuxSession.next_events`; commands (open, send, consume, close,
reset, ping, go away) queue frames that :meth:`YamuxSession.data_to_send` hands out.
No sockets, no clocks, no tasks: the asyncio driver lives in ``pywasm.muxers.yamux``.

Wire format: a 12-byte big-endian header ``version:u8 type:u8 flags:u16 stream:u32
length:u32``; ``length`` is the payload size for Data, the window delta for
WindowUpdate, the opaque value for Ping and the error code for GoAway.

Flow control: each direction of each stream starts with the spec's 256 KiB window; we
give the remote more at once (``initial_stream_window``, 1 MiB by default) on the SYN or
ACK window update, as go-yamux does. We credit
the sender again once the application consumed half of the current window. The window
grows (doubling, up to ``max_stream_window``) when the reader keeps up, i.e. when almost
nothing is left unread at the moment a window update is due: then the window, not the
reader, limits throughput. Growth is capped for the whole session too
(``max_window_growth``), so memory stays bounded by
``streams * 256 KiB + max_window_growth`` even with many bulk streams. A sender that
exceeds the window it was given breaks the protocol: GoAway(protocol error).

Receive-side frame size is bounded by the window (the spec has no other limit). We send
data frames of at most ``max_frame_size`` bytes: large frames cut per-frame Python work,
while rust-yamux and jvm-libp2p refuse bodies above 1 MiB, so stay below that.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import (
    ConfigError,
    ConnectionClosedError,
    LimitExceededError,
    MuxerError,
    StreamClosedError,
    StreamResetError,
)
from ._muxcore import MuxSessionBase

PROTOCOL_ID = "/yamux/1.0.0"

VERSION = 0
TYPE_DATA = 0
TYPE_WINDOW_UPDATE = 1
TYPE_PING = 2
TYPE_GO_AWAY = 3

FLAG_SYN = 0x1
FLAG_ACK = 0x2
FLAG_FIN = 0x4
FLAG_RST = 0x8

GO_AWAY_NORMAL = 0
GO_AWAY_PROTOCOL_ERROR = 1
GO_AWAY_INTERNAL_ERROR = 2

HEADER = struct.Struct(">BBHII")
HEADER_SIZE = 12
MAX_U32 = 0xFFFFFFFF

# Spec: every stream starts with this much credit in each direction.
INITIAL_WINDOW = 256 * 1024
# Largest a stream's receive window may grow to (go-yamux and rust-yamux use 16 MiB).
DEFAULT_MAX_STREAM_WINDOW = 16 * 1024 * 1024
# Total growth above INITIAL_WINDOW over all streams of one session.
DEFAULT_MAX_WINDOW_GROWTH = 64 * 1024 * 1024
# The receive window a new stream starts with: the spec's 256 KiB plus credit sent on
# the SYN / ACK window update (go-yamux does the same). A bulk stream then skips the
# first round trips of window growth, which cost most where a round trip is slow (a
# browser's receive path: measured 6-7 writer stalls per 16 MiB echo at 256 KiB).
# The extra counts against max_window_growth, so memory stays bounded.
DEFAULT_INITIAL_STREAM_WINDOW = 1024 * 1024
# Largest data frame payload we send (peers may refuse > 1 MiB).
DEFAULT_MAX_FRAME_SIZE = 256 * 1024
# Streams the remote may have open at once; more SYNs are answered with RST.
DEFAULT_MAX_INBOUND_STREAMS = 1024
# Streams we may have open at once.
DEFAULT_MAX_OUTBOUND_STREAMS = 1024
# Unsent control frames (pongs, ACKs, RSTs we owe the peer) beyond this mean the peer
# makes us answer faster than it reads: a protocol violation, not a reason to buffer.
DEFAULT_MAX_PENDING_OUTPUT = 1024 * 1024
# Pings of ours awaiting their answer.
DEFAULT_MAX_PENDING_PINGS = 16


@dataclass(frozen=True)
class YamuxConfig:
    max_stream_window: int = DEFAULT_MAX_STREAM_WINDOW
    max_window_growth: int = DEFAULT_MAX_WINDOW_GROWTH
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    max_inbound_streams: int = DEFAULT_MAX_INBOUND_STREAMS
    max_outbound_streams: int = DEFAULT_MAX_OUTBOUND_STREAMS
    max_pending_output: int = DEFAULT_MAX_PENDING_OUTPUT
    max_pending_pings: int = DEFAULT_MAX_PENDING_PINGS
    initial_stream_window: int = DEFAULT_INITIAL_STREAM_WINDOW

    def __post_init__(self) -> None:
        if self.max_stream_window < INITIAL_WINDOW or self.max_stream_window > MAX_U32:
            raise ConfigError("max_stream_window must be in [256 KiB, 2**32-1]")
        if not INITIAL_WINDOW <= self.initial_stream_window <= self.max_stream_window:
            raise ConfigError("initial_stream_window must be in [256 KiB, max_stream_window]")
        if not 1 <= self.max_frame_size <= MAX_U32:
            raise ConfigError("max_frame_size must be positive")
        if self.max_inbound_streams < 0 or self.max_outbound_streams < 0:
            raise ConfigError("stream limits must not be negative")


# --- events ---------------------------------------------------------------------
class Event:
    __slots__ = ()


class StreamOpened(Event):
    """The remote opened stream ``stream_id`` (we already acknowledged it)."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return f"StreamOpened({self.stream_id})"


class DataReceived(Event):
    """Payload bytes for a stream; call :meth:`YamuxSession.consume` once read."""

    __slots__ = ("stream_id", "data")

    def __init__(self, stream_id: int, data: bytes) -> None:
        self.stream_id = stream_id
        self.data = data

    def __repr__(self) -> str:
        return f"DataReceived({self.stream_id}, {len(self.data)} bytes)"


class StreamEnded(Event):
    """The remote half-closed the stream (FIN): no more data will come."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return f"StreamEnded({self.stream_id})"


class StreamReset(Event):
    """The remote reset the stream (RST), or we did because it broke a stream rule."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return f"StreamReset({self.stream_id})"


class WindowOpened(Event):
    """Our send window on the stream grew: blocked writers may continue."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id

    def __repr__(self) -> str:
        return f"WindowOpened({self.stream_id})"


class PingAcked(Event):
    """The answer to our ping with this opaque value arrived."""

    __slots__ = ("opaque",)

    def __init__(self, opaque: int) -> None:
        self.opaque = opaque

    def __repr__(self) -> str:
        return f"PingAcked({self.opaque})"


class GoAwayReceived(Event):
    """The remote will open no more streams; ``code`` says why (0 = normal)."""

    __slots__ = ("code",)

    def __init__(self, code: int) -> None:
        self.code = code

    def __repr__(self) -> str:
        return f"GoAwayReceived({self.code})"


# --- state ------------------------------------------------------------------------
class _Stream:
    __slots__ = (
        "id",
        "inbound",
        "send_window",
        "recv_window",
        "target",
        "pending_credit",
        "buffered",
        "local_fin",
        "remote_fin",
        "removed",
    )

    def __init__(self, stream_id: int, inbound: bool) -> None:
        self.id = stream_id
        self.inbound = inbound
        self.send_window = INITIAL_WINDOW  # what the remote lets us send
        self.recv_window = INITIAL_WINDOW  # what we still let the remote send
        self.target = INITIAL_WINDOW  # current size of our receive window
        self.pending_credit = 0  # consumed bytes not yet credited back
        self.buffered = 0  # delivered to the application, not consumed yet
        self.local_fin = False
        self.remote_fin = False
        self.removed = False


def encode_frame(typ: int, flags: int, stream_id: int, length: int, payload: bytes = b"") -> bytes:
    """One frame as bytes (tests and tools; the session builds frames itself)."""
    return HEADER.pack(VERSION, typ, flags, stream_id, length) + payload


class YamuxSession(MuxSessionBase[Event]):
    """One side of a yamux session. ``is_client``: the dialer (odd stream ids)."""

    def __init__(self, is_client: bool, config: YamuxConfig | None = None) -> None:
        super().__init__()
        self.config = config or YamuxConfig()
        self.is_client = is_client
        self._next_id = 1 if is_client else 2
        self._streams: dict[int, _Stream] = {}
        self._inbound = 0
        self._outbound = 0
        self._growth = 0
        # receive state: a partial header, or the payload left of a data frame
        self._hdr = bytearray()
        self._rx_remaining = 0
        self._rx_stream: _Stream | None = None
        self._rx_flags = 0
        self._pings: set[int] = set()
        self._next_ping = 1
        self.local_go_away = False
        self.remote_go_away: int | None = None
        self.failed = False

    # --- output (data_to_send, has_output, next_events: see MuxSessionBase) ----------
    def data_to_send_parts(self) -> list[bytes | memoryview]:
        """Queued frames as pieces (headers and payload views); clears the queue.

        For gather writes: payloads stay views of the caller's buffer, uncopied.
        """
        out = self._out
        if not out:
            return []
        parts = list(out)
        out.clear()
        self._out_size = 0
        return parts

    def _frame(self, typ: int, flags: int, stream_id: int, length: int) -> None:
        self._out.append(HEADER.pack(VERSION, typ, flags, stream_id, length))
        self._out_size += HEADER_SIZE

    def _control(self, typ: int, flags: int, stream_id: int, length: int) -> None:
        """Queue a frame the *remote* made us owe it (bounded, see module docs)."""
        if self._out_size >= self.config.max_pending_output:
            self._fail("peer does not read the control frames it provokes", limit=True)
        self._frame(typ, flags, stream_id, length)

    # --- commands ---------------------------------------------------------------
    def open_stream(self) -> int:
        """Open an outbound stream (queues its SYN); returns the stream id."""
        if self.failed or self.local_go_away or self.remote_go_away is not None:
            raise ConnectionClosedError("yamux session is going away")
        if self._outbound >= self.config.max_outbound_streams:
            raise LimitExceededError(
                f"{self._outbound} outbound streams open (limit {self.config.max_outbound_streams})"
            )
        sid = self._next_id
        if sid > MAX_U32:
            raise LimitExceededError("yamux stream ids exhausted")
        self._next_id = sid + 2
        st = _Stream(sid, inbound=False)
        self._streams[sid] = st
        self._outbound += 1
        self._frame(TYPE_WINDOW_UPDATE, FLAG_SYN, sid, self._open_credit(st))
        return sid

    def _open_credit(self, st: "_Stream") -> int:
        """Credit beyond the spec's initial window for a new stream (config
        ``initial_stream_window``), taken from the session's growth budget."""
        extra = max(0, min(self.config.initial_stream_window - INITIAL_WINDOW,
                           self.config.max_window_growth - self._growth))
        st.target += extra
        st.recv_window += extra
        self._growth += extra
        return extra

    def send_window(self, stream_id: int) -> int:
        st = self._streams.get(stream_id)
        return st.send_window if st is not None else 0

    def send_data(self, stream_id: int, data: bytes | memoryview) -> int:
        """Queue as much of ``data`` as the remote's window allows; returns that count.

        The queued frames reference ``data`` (no copy) until :meth:`data_to_send`.
        """
        st = self._live_stream(stream_id)
        if st.local_fin:
            raise StreamClosedError("write side of the stream is closed")
        n = min(len(data), st.send_window)
        if n <= 0:
            return 0
        max_frame = self.config.max_frame_size
        out = self._out
        pos = 0
        while pos < n:
            k = min(max_frame, n - pos)
            out.append(HEADER.pack(VERSION, TYPE_DATA, 0, stream_id, k))
            out.append(data if k == len(data) else data[pos : pos + k])
            pos += k
        self._out_size += n + HEADER_SIZE * ((n + max_frame - 1) // max_frame)
        st.send_window -= n
        return n

    def consume(self, stream_id: int, n: int) -> None:
        """The application read ``n`` bytes of the stream: credit the sender when due."""
        st = self._streams.get(stream_id)
        if st is None or n <= 0:
            return
        st.buffered -= n
        if st.buffered < 0:
            st.buffered = 0
        if st.remote_fin:
            return  # the remote sends nothing more: no credit needed
        st.pending_credit += n
        target = st.target
        if st.pending_credit < target // 2:
            return
        grow = 0
        cfg = self.config
        # the reader keeps up, so the window is what limits the sender: grow it
        if target < cfg.max_stream_window and st.buffered <= target // 8:
            room = cfg.max_window_growth - self._growth
            grow = max(0, min(target, cfg.max_stream_window - target, room))
            st.target = target + grow
            self._growth += grow
        delta = st.pending_credit + grow
        st.pending_credit = 0
        st.recv_window += delta
        self._frame(TYPE_WINDOW_UPDATE, 0, stream_id, delta)

    def close_write(self, stream_id: int) -> None:
        """Half-close: queue FIN. No-op if already half-closed."""
        st = self._live_stream(stream_id)
        if st.local_fin:
            return
        st.local_fin = True
        self._frame(TYPE_WINDOW_UPDATE, FLAG_FIN, stream_id, 0)
        if st.remote_fin:
            self._remove(st)

    def reset_stream(self, stream_id: int) -> None:
        """Abort the stream (queue RST). No-op for unknown or finished streams."""
        st = self._streams.get(stream_id)
        if st is None:
            return
        self._frame(TYPE_WINDOW_UPDATE, FLAG_RST, stream_id, 0)
        self._remove(st)

    def ping(self, opaque: int | None = None) -> int:
        """Queue a ping; :class:`PingAcked` with the returned value reports the answer."""
        if len(self._pings) >= self.config.max_pending_pings:
            raise LimitExceededError("too many pings in flight")
        if opaque is None:
            opaque = self._next_ping
            self._next_ping = (self._next_ping + 1) & MAX_U32
        opaque &= MAX_U32
        self._pings.add(opaque)
        self._frame(TYPE_PING, FLAG_SYN, 0, opaque)
        return opaque

    def cancel_ping(self, opaque: int) -> None:
        self._pings.discard(opaque)

    def go_away(self, code: int = GO_AWAY_NORMAL) -> None:
        """Tell the remote we open and accept no more streams. Sent at most once."""
        if self.local_go_away:
            return
        self.local_go_away = True
        self._frame(TYPE_GO_AWAY, 0, 0, code)

    def _live_stream(self, stream_id: int) -> _Stream:
        st = self._streams.get(stream_id)
        if st is None:
            raise StreamResetError(f"yamux stream {stream_id} is gone")
        return st

    def _remove(self, st: _Stream) -> None:
        if st.removed:
            return
        st.removed = True
        del self._streams[st.id]
        self._growth -= st.target - INITIAL_WINDOW
        if st.inbound:
            self._inbound -= 1
        else:
            self._outbound -= 1

    def _fail(self, message: str, limit: bool = False) -> None:
        if not self.failed:
            self.failed = True
            if not self.local_go_away:
                self.local_go_away = True
                self._frame(TYPE_GO_AWAY, 0, 0, GO_AWAY_PROTOCOL_ERROR)
        raise (LimitExceededError if limit else MuxerError)(message)

    # --- input ------------------------------------------------------------------
    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes read from the connection (any split, even byte by byte).

        Raises :class:`MuxerError` when the remote breaks the protocol; a GoAway with
        the protocol-error code is then queued and the session accepts no more input.
        """
        if self.failed:
            raise MuxerError("yamux session already failed")
        if not isinstance(data, bytes):
            data = bytes(data)
        n = len(data)
        pos = 0
        hdr = self._hdr
        events = self._events
        while pos < n:
            rem = self._rx_remaining
            if rem:
                k = n - pos
                if k > rem:
                    k = rem
                st = self._rx_stream
                if st is not None and not st.removed:
                    st.buffered += k
                    events.append(DataReceived(st.id, data if k == n else data[pos : pos + k]))
                pos += k
                rem -= k
                self._rx_remaining = rem
                if rem == 0:
                    self._end_data_frame()
                continue
            if hdr or n - pos < HEADER_SIZE:
                take = min(HEADER_SIZE - len(hdr), n - pos)
                hdr += data[pos : pos + take]
                pos += take
                if len(hdr) < HEADER_SIZE:
                    break
                fields = HEADER.unpack(hdr)
                hdr.clear()
            else:
                fields = HEADER.unpack_from(data, pos)
                pos += HEADER_SIZE
            self._on_header(*fields)

    def _on_header(self, version: int, typ: int, flags: int, sid: int, length: int) -> None:
        if version != VERSION:
            self._fail(f"unsupported yamux version {version}")
        if typ == TYPE_DATA or typ == TYPE_WINDOW_UPDATE:
            if sid == 0:
                self._fail("data or window update on stream 0")
            st = self._streams.get(sid)
            if flags & FLAG_SYN:
                st = self._incoming(sid)
            if typ == TYPE_DATA:
                if st is not None and length:
                    if st.remote_fin:
                        # the remote broke this stream's rules, not the session's
                        self._reset_by_us(st)
                        st = None
                    elif length > st.recv_window:
                        self._fail(
                            f"stream {sid}: {length} bytes exceed the window of {st.recv_window}"
                        )
                    else:
                        st.recv_window -= length
                self._rx_stream = st
                self._rx_flags = flags
                self._rx_remaining = length
                if length == 0:
                    self._end_data_frame()
                return
            # window update
            if st is not None:
                if length:
                    if st.send_window + length > MAX_U32:
                        self._fail(f"stream {sid}: window update overflows")
                    st.send_window += length
                    self._events.append(WindowOpened(sid))
                self._stream_flags(st, flags)
            return
        if typ == TYPE_PING:
            if sid != 0:
                self._fail("ping on a stream")
            if flags & FLAG_SYN:
                self._control(TYPE_PING, FLAG_ACK, 0, length)
            elif flags & FLAG_ACK and length in self._pings:
                self._pings.discard(length)
                self._events.append(PingAcked(length))
            return
        if typ == TYPE_GO_AWAY:
            if sid != 0:
                self._fail("go away on a stream")
            if self.remote_go_away is None:
                self.remote_go_away = length
                self._events.append(GoAwayReceived(length))
            return
        self._fail(f"unknown yamux frame type {typ}")

    def _incoming(self, sid: int) -> _Stream | None:
        """The remote opens ``sid``; None when we refuse it (RST sent)."""
        # the client (dialer) uses odd ids, the server even ones
        if (sid & 1) == (1 if self.is_client else 0):
            self._fail(f"remote opened stream {sid} with our parity")
        if sid in self._streams:
            self._fail(f"remote opened stream {sid} twice")
        if self.local_go_away or self._inbound >= self.config.max_inbound_streams:
            self._control(TYPE_WINDOW_UPDATE, FLAG_RST, sid, 0)
            return None
        st = _Stream(sid, inbound=True)
        self._streams[sid] = st
        self._inbound += 1
        self._control(TYPE_WINDOW_UPDATE, FLAG_ACK, sid, self._open_credit(st))
        self._events.append(StreamOpened(sid))
        return st

    def _end_data_frame(self) -> None:
        st = self._rx_stream
        self._rx_stream = None
        if st is not None and not st.removed:
            self._stream_flags(st, self._rx_flags)

    def _stream_flags(self, st: _Stream, flags: int) -> None:
        if flags & FLAG_RST:
            self._events.append(StreamReset(st.id))
            self._remove(st)
        elif flags & FLAG_FIN and not st.remote_fin:
            st.remote_fin = True
            self._events.append(StreamEnded(st.id))
            if st.local_fin:
                self._remove(st)

    def _reset_by_us(self, st: _Stream) -> None:
        self._control(TYPE_WINDOW_UPDATE, FLAG_RST, st.id, 0)
        self._events.append(StreamReset(st.id))
        self._remove(st)

    # --- introspection -------------------------------------------------------------
    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def receive_window(self, stream_id: int) -> int:
        """Current size of our receive window for the stream (0 if unknown)."""
        st = self._streams.get(stream_id)
        return st.target if st is not None else 0


__all__ = [
    "PROTOCOL_ID",
    "YamuxConfig",
    "YamuxSession",
    "Event",
    "StreamOpened",
    "DataReceived",
    "StreamEnded",
    "StreamReset",
    "WindowOpened",
    "PingAcked",
    "GoAwayReceived",
    "encode_frame",
    "INITIAL_WINDOW",
    "DEFAULT_MAX_STREAM_WINDOW",
    "DEFAULT_MAX_WINDOW_GROWTH",
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_INBOUND_STREAMS",
    "DEFAULT_MAX_OUTBOUND_STREAMS",
    "TYPE_DATA",
    "TYPE_WINDOW_UPDATE",
    "TYPE_PING",
    "TYPE_GO_AWAY",
    "FLAG_SYN",
    "FLAG_ACK",
    "FLAG_FIN",
    "FLAG_RST",
    "GO_AWAY_NORMAL",
    "GO_AWAY_PROTOCOL_ERROR",
    "GO_AWAY_INTERNAL_ERROR",
]
