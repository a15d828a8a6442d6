"""The WebRTC data-channel message (libp2p/specs webrtc/README.md, "Multiplexing").

Every message on a libp2p WebRTC data channel is ``varint(len) || webrtc.pb.Message``::

    message Message {
      enum Flag { FIN = 0; STOP_SENDING = 1; RESET_STREAM = 2; FIN_ACK = 3; }
      optional Flag flag = 1;
      optional bytes message = 2;
    }

and one encoded message, prefix included, is at most 16 KiB (:data:`MAX_MESSAGE_SIZE`).
Senders put one framed message in each data-channel message, but a receiver must not
rely on that: js-libp2p sends the length prefix and the body as two data-channel
messages. So :class:`FrameDecoder` treats what arrives as one byte stream.

Pure Python, no I/O: shared by webrtc-direct and private-to-private WebRTC, natively
and in Pyodide.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import DecodeError, LimitExceededError, ProtocolError
from ..multiformats.varint import decode_varint_prefix, encode_varint

#: Largest encoded message, length prefix included (the spec's 16 KiB).
MAX_MESSAGE_SIZE = 16 * 1024
# Worst-case bytes around a payload in a MAX_MESSAGE_SIZE message: outer length prefix
# (2), flag key + value (2), message key (1), payload length prefix (2).
_OVERHEAD = 2 + 2 + 1 + 2
#: Largest payload one message carries.
MAX_PAYLOAD = MAX_MESSAGE_SIZE - _OVERHEAD


class WebRTCFramingError(ProtocolError, DecodeError):
    """A data-channel message that is not a valid ``webrtc.pb.Message``."""


class Flag(enum.IntEnum):
    FIN = 0
    STOP_SENDING = 1
    RESET_STREAM = 2
    FIN_ACK = 3


@dataclass(frozen=True, slots=True)
class Message:
    flag: Flag | None = None
    # None when the field is absent (a pure flag message); b"" is a present, empty payload
    message: bytes | None = None


def encode_message(payload: bytes | bytearray | memoryview | None = None, flag: Flag | None = None) -> bytes:
    """One framed message (length prefix included); at most :data:`MAX_MESSAGE_SIZE`."""
    body = bytearray()
    if flag is not None:
        body += b"\x08" + encode_varint(int(flag))
    if payload is not None:
        body += b"\x12" + encode_varint(len(payload))
        body += payload
    out = encode_varint(len(body)) + bytes(body)
    if len(out) > MAX_MESSAGE_SIZE:
        raise LimitExceededError(f"WebRTC message of {len(out)} bytes exceeds {MAX_MESSAGE_SIZE}")
    return out


def _read_varint(body: bytes, pos: int) -> tuple[int, int]:
    try:
        got = decode_varint_prefix(body, pos)
    except DecodeError as exc:
        raise WebRTCFramingError(f"bad varint in WebRTC message: {exc}") from None
    if got is None:
        raise WebRTCFramingError("WebRTC message ends inside a varint")
    value, used = got
    return value, pos + used


def decode_body(body: bytes) -> Message:
    """Decode a ``webrtc.pb.Message`` body (no length prefix). Unknown fields are skipped."""
    flag: Flag | None = None
    payload: bytes | None = None
    pos, end = 0, len(body)
    while pos < end:
        key, pos = _read_varint(body, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WebRTCFramingError("field number 0 in WebRTC message")
        if wire == 0:
            value, pos = _read_varint(body, pos)
            if number == 1:
                try:
                    flag = Flag(value)
                except ValueError:
                    raise WebRTCFramingError(f"unknown WebRTC flag {value}") from None
        elif wire == 2:
            length, pos = _read_varint(body, pos)
            if pos + length > end:
                raise WebRTCFramingError("WebRTC message field runs past its end")
            if number == 2:
                payload = body[pos : pos + length]
            elif number == 1:
                raise WebRTCFramingError("WebRTC flag field has the wrong wire type")
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise WebRTCFramingError(f"unsupported wire type {wire} in WebRTC message")
        if pos > end:
            raise WebRTCFramingError("WebRTC message field runs past its end")
    return Message(flag, payload)


class FrameDecoder:
    """Bytes from a data channel in, :class:`Message` objects out.

    Holds at most one partial message (< :data:`MAX_MESSAGE_SIZE` bytes); a length
    prefix announcing more raises :class:`LimitExceededError`. After an error the
    decoder stays failed: the channel is to be reset.
    """

    __slots__ = ("_buf", "error")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.error: Exception | None = None

    @property
    def has_partial(self) -> bool:
        return bool(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message]:
        if self.error is not None:
            raise self.error
        self._buf += data
        out: list[Message] = []
        buf = self._buf
        pos = 0
        try:
            while pos < len(buf):
                got = decode_varint_prefix(buf, pos)
                if got is None:
                    if len(buf) - pos > 3:
                        raise WebRTCFramingError("over-long length prefix in WebRTC message")
                    break
                length, used = got
                if length + used > MAX_MESSAGE_SIZE:
                    raise LimitExceededError(
                        f"WebRTC message of {length + used} bytes exceeds {MAX_MESSAGE_SIZE}"
                    )
                if len(buf) - pos - used < length:
                    break
                start = pos + used
                out.append(decode_body(bytes(buf[start : start + length])))
                pos = start + length
        except DecodeError as exc:
            self.error = exc if isinstance(exc, WebRTCFramingError) else WebRTCFramingError(str(exc))
            self._buf.clear()
            raise self.error from None
        except LimitExceededError as exc:
            self.error = exc
            self._buf.clear()
            raise
        del buf[:pos]
        return out


__all__ = [
    "MAX_MESSAGE_SIZE",
    "MAX_PAYLOAD",
    "Flag",
    "Message",
    "FrameDecoder",
    "WebRTCFramingError",
    "encode_message",
    "decode_body",
]
