"""multistream-select 1.0: agree on the protocol spoken next on a stream.

Wire format (multiformats/multistream-select, libp2p connections spec): every message is
``varint(len) || utf8-text || "\\n"``, where ``len`` counts the newline. Both sides
first send the header ``/multistream/1.0.0``; the dialer then proposes protocols one at a
time, and the listener either echoes a proposal (agreed) or answers ``na``. ``ls`` asks
the listener for its list of protocols.

The module has two layers:

* sans-IO helpers (:func:`encode_message`, :func:`decode_message`, :func:`decode_frame`,
  :func:`encode_ls_response`, :func:`decode_ls_response`) that only transform bytes, and
* thin asyncio drivers (:func:`negotiate_outbound`, :func:`negotiate_inbound`) over any
  :class:`~pywasm.streams.Stream`. They return a :class:`~pywasm.streams.BufferedReader`
  that still holds whatever arrived after the negotiation (a peer may send its first
  application bytes in the same packet as the final multistream message), so the caller
  must read through that reader and not from the raw stream.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Collection, Sequence, TypeVar

from ..errors import (
    DecodeError,
    HandshakeTimeoutError,
    LimitExceededError,
    NegotiationError,
    PywasmError,
)
from ..multiformats.varint import decode_varint_prefix, encode_varint
from ..streams import BufferedReader, Stream

PROTOCOL_ID = "/multistream/1.0.0"
NA = "na"
LS = "ls"

# go-multistream and js-libp2p both refuse messages longer than 1024 bytes (the length
# includes the trailing newline); matching them keeps us interoperable and bounds memory.
MAX_MESSAGE_LEN = 1024
# A protocol name must fit in one message together with its newline.
MAX_PROTOCOL_LEN = MAX_MESSAGE_LEN - 1
# An ``ls`` answer carries many names in one message, so it gets its own, larger bound.
MAX_LS_RESPONSE_LEN = 64 * 1024
MAX_LS_ENTRIES = 1024
# A listener answers at most this many proposals/``ls`` requests before giving up, so a
# peer cannot keep a stream busy forever with an endless stream of unknown protocols.
MAX_NEGOTIATION_ROUNDS = 64
# Default bound on a whole negotiation, in seconds.
DEFAULT_TIMEOUT = 10.0

_T = TypeVar("_T")


# --------------------------------------------------------------------------- sans-IO
def _check_protocol_name(name: str) -> bytes:
    """Validate a protocol name we are about to send (a local argument, not network input)."""
    if not isinstance(name, str) or not name:
        raise NegotiationError(f"invalid protocol name {name!r}")
    if "\n" in name:
        raise NegotiationError(f"protocol name contains a newline: {name!r}")
    raw = name.encode("utf-8")
    if len(raw) > MAX_PROTOCOL_LEN:
        raise LimitExceededError(
            f"protocol name of {len(raw)} bytes exceeds the limit of {MAX_PROTOCOL_LEN}"
        )
    return raw


def encode_message(text: str) -> bytes:
    """One multistream message: varint length, UTF-8 text, newline."""
    raw = _check_protocol_name(text) + b"\n"
    return encode_varint(len(raw)) + raw


def decode_message(payload: bytes | bytearray | memoryview) -> str:
    """Turn the body of one message (after its length prefix) into its text.

    Raises :class:`NegotiationError` if the newline is missing, the text is not UTF-8,
    contains a further newline, or is empty.
    """
    if len(payload) > MAX_MESSAGE_LEN:
        raise NegotiationError(
            f"multistream message of {len(payload)} bytes exceeds {MAX_MESSAGE_LEN}"
        )
    if len(payload) < 2 or payload[-1] != 0x0A:
        raise NegotiationError("multistream message is empty or lacks its trailing newline")
    try:
        text = bytes(payload[:-1]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NegotiationError("multistream message is not valid UTF-8") from exc
    if "\n" in text:
        raise NegotiationError("multistream message contains an embedded newline")
    return text


def decode_frame(
    buf: bytes | bytearray | memoryview, offset: int = 0, max_len: int = MAX_MESSAGE_LEN
) -> tuple[str, int] | None:
    """Decode one complete message at ``offset``: ``(text, bytes_used)``.

    Returns ``None`` when ``buf`` does not yet hold the whole message (wait for more).
    """
    try:
        prefix = decode_varint_prefix(buf, offset)
    except DecodeError as exc:
        raise NegotiationError(f"bad multistream length prefix: {exc}") from exc
    if prefix is None:
        return None
    length, used = prefix
    if length > max_len:
        raise NegotiationError(f"multistream message of {length} bytes exceeds {max_len}")
    start = offset + used
    if len(buf) - start < length:
        return None
    return decode_message(memoryview(buf)[start : start + length]), used + length


def encode_ls_response(protocols: Sequence[str]) -> bytes:
    """The listener's answer to ``ls``: one message whose body is the list.

    The body is each protocol as its own length-prefixed, newline-terminated message,
    followed by a final newline (the layout go-multistream and rust-libp2p use).
    """
    body = b"".join(encode_message(p) for p in protocols) + b"\n"
    if len(body) > MAX_LS_RESPONSE_LEN:
        raise LimitExceededError(f"ls response of {len(body)} bytes exceeds {MAX_LS_RESPONSE_LEN}")
    return encode_varint(len(body)) + body


def decode_ls_response(body: bytes | bytearray | memoryview) -> list[str]:
    """Parse the body of an ``ls`` answer (after its outer length prefix)."""
    view = memoryview(body)
    out: list[str] = []
    pos = 0
    end = len(view)
    while pos < end:
        # The closing newline is optional in practice (older go-multistream omits it).
        if end - pos == 1 and view[pos] == 0x0A:
            break
        frame = decode_frame(view, pos)
        if frame is None:
            raise NegotiationError("truncated entry in ls response")
        name, used = frame
        out.append(name)
        pos += used
        if len(out) > MAX_LS_ENTRIES:
            raise LimitExceededError("too many entries in ls response")
    return out


# --------------------------------------------------------------------------- asyncio
async def _with_timeout(coro: Awaitable[_T], timeout: float | None, what: str) -> _T:
    if timeout is None:
        return await coro
    # asyncio.timeout, not wait_for: on CPython 3.11 wait_for runs ``coro`` in a task of its
    # own, whose error goes unread ("Task exception was never retrieved") when the caller
    # is cancelled just as it fails
    try:
        async with asyncio.timeout(timeout):
            return await coro
    except asyncio.TimeoutError as exc:
        raise HandshakeTimeoutError(f"{what} did not finish within {timeout} s") from exc


async def _read_message(reader: BufferedReader, max_len: int = MAX_MESSAGE_LEN) -> str:
    try:
        payload = await reader.read_lp(max_len)
    except LimitExceededError as exc:
        raise NegotiationError(f"multistream message too long: {exc}") from exc
    except NegotiationError:
        raise
    except DecodeError as exc:
        raise NegotiationError(f"stream ended during multistream-select: {exc}") from exc
    if payload is None:
        raise NegotiationError("stream closed during multistream-select")
    return decode_message(payload)


async def _expect_header(reader: BufferedReader) -> None:
    header = await _read_message(reader)
    if header != PROTOCOL_ID:
        raise NegotiationError(f"remote does not speak {PROTOCOL_ID} (sent {header[:80]!r})")


async def _outbound(
    stream: Stream, protocols: Sequence[str], reader: BufferedReader
) -> tuple[str, BufferedReader]:
    # Header and first proposal go out in one write (as go-multistream does): it saves a
    # round trip, and a compliant listener reads the header before the proposal anyway.
    pending = encode_message(PROTOCOL_ID)
    header_seen = False
    for proto in protocols:
        await stream.write(pending + encode_message(proto))
        pending = b""
        if not header_seen:
            await _expect_header(reader)
            header_seen = True
        answer = await _read_message(reader)
        if answer == proto:
            return proto, reader
        if answer != NA:
            raise NegotiationError(f"unexpected multistream answer {answer[:80]!r} to {proto!r}")
    raise NegotiationError(f"remote supports none of {list(protocols)!r}")


async def negotiate_outbound(
    stream: Stream,
    protocols: Sequence[str],
    reader: BufferedReader | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    *,
    lazy: bool = False,
) -> tuple[str, BufferedReader]:
    """Dialer side: propose ``protocols`` in order of preference.

    Returns the agreed protocol and the reader to use from now on. With ``lazy=True``
    and exactly one protocol, the header and proposal are written and the function
    returns at once (0-RTT, like js-libp2p's lazy select); the listener's answer is
    checked on the first read through the returned reader, which raises
    :class:`NegotiationError` if the listener refused. Only use it where the caller's
    first bytes are harmless should the protocol be refused.
    """
    if not protocols:
        raise NegotiationError("no protocols to propose")
    for proto in protocols:
        _check_protocol_name(proto)
    if reader is None:
        reader = BufferedReader(stream)
    if lazy and len(protocols) == 1:
        proto = protocols[0]
        await _with_timeout(
            stream.write(encode_message(PROTOCOL_ID) + encode_message(proto)),
            timeout,
            "multistream-select",
        )
        return proto, _LazyReader(reader, proto, timeout)
    return await _with_timeout(_outbound(stream, protocols, reader), timeout, "multistream-select")


class _LazyReader(BufferedReader):
    """A reader that checks the listener's header and echo before the first read."""

    __slots__ = ("_pending", "_timeout")

    def __init__(self, inner: BufferedReader, protocol: str, timeout: float | None) -> None:
        super().__init__(inner.stream, inner.take_buffer())
        self._pending: str | None = protocol
        self._timeout = timeout

    async def _settle(self) -> None:
        proto = self._pending
        if proto is None:
            return
        # Clear first: a failure is final, and the error must not repeat a half check.
        self._pending = None

        async def check() -> None:
            await _expect_header(self)
            answer = await _read_message(self)
            if answer != proto:
                if answer == NA:
                    raise NegotiationError(f"remote does not support {proto!r}")
                raise NegotiationError(f"unexpected multistream answer {answer[:80]!r}")

        await _with_timeout(check(), self._timeout, "multistream-select")

    async def read(self, max_bytes: int = -1) -> bytes:
        await self._settle()
        return await super().read(max_bytes)

    async def read_exactly(self, n: int) -> bytes:
        await self._settle()
        return await super().read_exactly(n)

    async def read_varint(self) -> int | None:
        await self._settle()
        return await super().read_varint()

    async def read_lp(self, max_len: int) -> bytes | None:
        if self._pending is not None:
            await self._settle()
        return await super().read_lp(max_len)

    def take_buffer(self) -> bytes:
        if self._pending is not None:
            # Handing raw bytes on before the answer was checked would pass the
            # listener's multistream messages up as application data.
            raise NegotiationError("lazy multistream answer not yet read")
        return super().take_buffer()


async def _inbound(
    stream: Stream,
    accept: Callable[[str], bool],
    listing: Sequence[str] | None,
    reader: BufferedReader,
) -> tuple[str, BufferedReader]:
    # Send our header right away instead of after the dialer's: a dialer that waits
    # for our header before proposing would otherwise deadlock.
    await stream.write(encode_message(PROTOCOL_ID))
    await _expect_header(reader)
    for _ in range(MAX_NEGOTIATION_ROUNDS):
        proposal = await _read_message(reader)
        if proposal == LS:
            if listing is not None:
                await stream.write(encode_ls_response(listing))
            else:
                # a predicate cannot enumerate its protocols
                await stream.write(encode_message(NA))
            continue
        try:
            ok = proposal != NA and accept(proposal)
        except PywasmError:
            raise
        except Exception as exc:  # a buggy predicate must not look like a peer error
            raise NegotiationError(f"protocol predicate failed for {proposal[:80]!r}") from exc
        if ok:
            await stream.write(encode_message(proposal))
            return proposal, reader
        await stream.write(encode_message(NA))
    raise LimitExceededError(f"no agreement after {MAX_NEGOTIATION_ROUNDS} proposals")


async def negotiate_inbound(
    stream: Stream,
    supported: Collection[str] | Callable[[str], bool],
    reader: BufferedReader | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> tuple[str, BufferedReader]:
    """Listener side: answer proposals until one is in ``supported``.

    ``supported`` is a collection of protocol ids (which also answers ``ls``) or a
    predicate. Returns the agreed protocol and the reader to use from now on.
    """
    listing: Sequence[str] | None
    if callable(supported) and not isinstance(supported, Collection):
        accept: Callable[[str], bool] = supported
        listing = None
    else:
        names = frozenset(supported)
        accept = names.__contains__
        listing = list(supported)
    if reader is None:
        reader = BufferedReader(stream)
    return await _with_timeout(
        _inbound(stream, accept, listing, reader), timeout, "multistream-select"
    )


__all__ = [
    "PROTOCOL_ID",
    "NA",
    "LS",
    "MAX_MESSAGE_LEN",
    "MAX_PROTOCOL_LEN",
    "MAX_LS_RESPONSE_LEN",
    "MAX_LS_ENTRIES",
    "MAX_NEGOTIATION_ROUNDS",
    "DEFAULT_TIMEOUT",
    "encode_message",
    "decode_message",
    "decode_frame",
    "encode_ls_response",
    "decode_ls_response",
    "negotiate_outbound",
    "negotiate_inbound",
]
