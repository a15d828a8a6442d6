"""The one stream abstraction.

Everything that carries bytes in pywasm is a :class:`Stream`: a raw TCP or WebSocket
connection, a Noise-secured connection, a yamux or mplex substream, and later QUIC,
WebTransport and WebRTC streams. One conformance suite (tests/conformance) holds every
implementation to the same semantics:

* ``read(n)`` returns 1..n bytes as soon as any are available, ``b""`` once the remote
  has half-closed and the buffer is drained, and raises :class:`StreamResetError` after
  a reset. ``read()`` with no argument returns whatever is buffered (at least 1 byte).
* ``write(data)`` returns once the data is accepted by the layer below; it waits (that is
  the backpressure) while the remote's receive window or the transport buffer is full.
  Writing after ``close_write()`` raises :class:`StreamClosedError`.
* ``close_write()`` half-closes: the remote reads EOF, we may still read.
* ``close()`` half-closes and releases the stream once both directions are done; it never
  waits forever (implementations bound it with a timeout).
* ``reset()`` aborts both directions at once.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .errors import DecodeError, LimitExceededError, StreamClosedError
from .multiformats.varint import MAX_VARINT_LEN, decode_varint_prefix, encode_varint


@runtime_checkable
class Stream(Protocol):
    async def read(self, max_bytes: int = -1) -> bytes: ...

    async def write(self, data: bytes | bytearray | memoryview) -> None: ...

    async def close_write(self) -> None: ...

    async def close(self) -> None: ...

    async def reset(self) -> None: ...


class BufferedReader:
    """Reads exact sizes and varint-prefixed messages from a :class:`Stream`.

    Framing protocols (multistream, noise, identify ...) need "exactly n bytes" and
    "one length-prefixed message"; this keeps leftovers so nothing read is lost, and can
    hand them back with :meth:`take_buffer` when a protocol upgrade moves the stream on.
    """

    __slots__ = ("stream", "_buf")

    def __init__(self, stream: Stream, initial: bytes = b"") -> None:
        self.stream = stream
        self._buf = bytearray(initial)

    def take_buffer(self) -> bytes:
        """Return and forget bytes read from the stream but not yet consumed."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    async def _fill(self) -> bool:
        chunk = await self.stream.read(65536)
        if not chunk:
            return False
        self._buf += chunk
        return True

    async def read(self, max_bytes: int = -1) -> bytes:
        """Like ``Stream.read``: serve buffered bytes first."""
        if self._buf:
            n = len(self._buf) if max_bytes < 0 else min(max_bytes, len(self._buf))
            data = bytes(self._buf[:n])
            del self._buf[:n]
            return data
        return await self.stream.read(max_bytes)

    async def read_exactly(self, n: int) -> bytes:
        """Read exactly ``n`` bytes; :class:`DecodeError` if EOF comes first."""
        while len(self._buf) < n:
            if not await self._fill():
                raise DecodeError(f"stream ended after {len(self._buf)} of {n} expected bytes")
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def read_varint(self) -> int | None:
        """Read one unsigned varint; ``None`` on a clean EOF before its first byte."""
        while True:
            value = decode_varint_prefix(self._buf)
            if value is not None:
                number, used = value
                del self._buf[:used]
                return number
            if len(self._buf) >= MAX_VARINT_LEN:
                # decode_varint_prefix raises on over-long input; this is belt and braces
                raise DecodeError("varint longer than 9 bytes")
            if not await self._fill():
                if self._buf:
                    raise DecodeError("stream ended inside a varint")
                return None

    async def read_lp(self, max_len: int) -> bytes | None:
        """Read one varint-length-prefixed message of at most ``max_len`` bytes.

        Returns ``None`` on a clean EOF before the message starts.
        """
        length = await self.read_varint()
        if length is None:
            return None
        if length > max_len:
            raise LimitExceededError(f"message of {length} bytes exceeds the limit of {max_len}")
        return await self.read_exactly(length)


def encode_lp(data: bytes) -> bytes:
    """Prefix ``data`` with its unsigned-varint length."""
    return encode_varint(len(data)) + data


async def write_lp(stream: Stream, data: bytes) -> None:
    await stream.write(encode_lp(data))


async def read_to_eof(stream: Stream, limit: int) -> bytes:
    """Read until EOF; :class:`LimitExceededError` past ``limit`` bytes."""
    out = bytearray()
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return bytes(out)
        out += chunk
        if len(out) > limit:
            raise LimitExceededError(f"more than {limit} bytes before EOF")


__all__ = [
    "Stream",
    "BufferedReader",
    "encode_lp",
    "write_lp",
    "read_to_eof",
    "StreamClosedError",
]
