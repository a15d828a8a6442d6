"""multistream-select 1.0: sans-IO codec and the asyncio negotiation helpers."""

from __future__ import annotations

import asyncio

import pytest

from pywasm.errors import (
    HandshakeTimeoutError,
    LimitExceededError,
    NegotiationError,
    PywasmError,
)
from pywasm.multiformats.varint import encode_varint
from pywasm.protocols import multistream as ms
from pywasm.streams import BufferedReader
from pywasm.transports.memory import memory_pipe

HEADER = ms.encode_message(ms.PROTOCOL_ID)


class Trickle:
    """Wraps a stream so every read returns at most one byte (worst-case chunking)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    async def read(self, max_bytes: int = -1) -> bytes:
        return await self.inner.read(1)  # type: ignore[attr-defined]

    async def write(self, data: bytes) -> None:
        await self.inner.write(data)  # type: ignore[attr-defined]

    async def close_write(self) -> None:
        await self.inner.close_write()  # type: ignore[attr-defined]

    async def close(self) -> None:
        await self.inner.close()  # type: ignore[attr-defined]

    async def reset(self) -> None:
        await self.inner.reset()  # type: ignore[attr-defined]


# --- sans-IO -------------------------------------------------------------------------
def test_encode_known_bytes() -> None:
    assert ms.encode_message("na") == bytes.fromhex("036e610a")
    assert ms.encode_message("ls") == bytes.fromhex("036c730a")
    assert HEADER == b"\x13/multistream/1.0.0\n"


def test_decode_roundtrip() -> None:
    for text in ["/noise", "/yamux/1.0.0", "ü/ünïcode", "x" * ms.MAX_PROTOCOL_LEN]:
        raw = ms.encode_message(text)
        assert ms.decode_frame(raw) == (text, len(raw))
        assert ms.decode_frame(raw + b"tail") == (text, len(raw))


@pytest.mark.parametrize(
    "body",
    [b"", b"\n", b"/noise", b"/noi\nse\n", b"\xff\xfe\n", b"x" * (ms.MAX_MESSAGE_LEN + 1)],
)
def test_decode_message_rejects(body: bytes) -> None:
    with pytest.raises(NegotiationError):
        ms.decode_message(body)


def test_decode_frame_incomplete_and_limits() -> None:
    raw = ms.encode_message("/noise")
    for cut in range(len(raw)):
        assert ms.decode_frame(raw[:cut]) is None
    with pytest.raises(NegotiationError):
        ms.decode_frame(encode_varint(ms.MAX_MESSAGE_LEN + 1))
    with pytest.raises(NegotiationError):
        ms.decode_frame(b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80")  # over-long varint


@pytest.mark.parametrize("name", ["", "a\nb", "x" * (ms.MAX_PROTOCOL_LEN + 1)])
def test_encode_rejects_bad_names(name: str) -> None:
    with pytest.raises(PywasmError):
        ms.encode_message(name)


def test_ls_roundtrip() -> None:
    protos = ["/ipfs/ping/1.0.0", "/ipfs/id/1.0.0", "/echo/1.0.0"]
    raw = ms.encode_ls_response(protos)
    from pywasm.multiformats.varint import decode_varint

    length, used = decode_varint(raw)
    assert ms.decode_ls_response(raw[used : used + length]) == protos
    # without the trailing newline (older go-multistream)
    assert ms.decode_ls_response(raw[used : used + length - 1]) == protos
    with pytest.raises(NegotiationError):
        ms.decode_ls_response(b"\x10/short\n")


# --- negotiation ---------------------------------------------------------------------
async def test_first_choice_agreed() -> None:
    a, b = memory_pipe()
    out, inn = await asyncio.gather(
        ms.negotiate_outbound(a, ["/noise", "/tls/1.0.0"]),
        ms.negotiate_inbound(b, {"/noise"}),
    )
    assert out[0] == inn[0] == "/noise"
    assert isinstance(out[1], BufferedReader)


async def test_fallback_after_na() -> None:
    a, b = memory_pipe()
    out, inn = await asyncio.gather(
        ms.negotiate_outbound(a, ["/mplex/6.7.0", "/yamux/1.0.0"]),
        ms.negotiate_inbound(b, lambda p: p.startswith("/yamux/")),
    )
    assert out[0] == inn[0] == "/yamux/1.0.0"


async def test_no_common_protocol() -> None:
    a, b = memory_pipe()

    async def dial() -> None:
        try:
            await ms.negotiate_outbound(a, ["/a", "/b"])
        finally:
            await a.close_write()

    results = await asyncio.gather(
        dial(), ms.negotiate_inbound(b, ["/c"]), return_exceptions=True
    )
    assert all(isinstance(r, NegotiationError) for r in results), results


async def test_data_after_negotiation_is_kept_inbound() -> None:
    # A dialer that sends header, proposal and first application bytes in one write.
    a, b = memory_pipe()
    await a.write(HEADER + ms.encode_message("/echo/1.0.0") + b"hello")
    proto, reader = await ms.negotiate_inbound(b, ["/echo/1.0.0"])
    assert proto == "/echo/1.0.0"
    assert await reader.read_exactly(5) == b"hello"
    # and the listener answered header + echo
    r = BufferedReader(a)
    assert await r.read_exactly(len(HEADER)) == HEADER
    echo = ms.encode_message("/echo/1.0.0")
    assert await r.read_exactly(len(echo)) == echo


async def test_data_after_negotiation_is_kept_outbound() -> None:
    a, b = memory_pipe()
    # listener answers header + echo + data in one packet before we even asked
    await b.write(HEADER + ms.encode_message("/echo/1.0.0") + b"world")
    proto, reader = await ms.negotiate_outbound(a, ["/echo/1.0.0"])
    assert proto == "/echo/1.0.0"
    assert await reader.read_exactly(5) == b"world"


async def test_byte_by_byte_delivery() -> None:
    a, b = memory_pipe()
    out, inn = await asyncio.gather(
        ms.negotiate_outbound(Trickle(a), ["/x", "/y"]),  # type: ignore[arg-type]
        ms.negotiate_inbound(Trickle(b), ["/y"]),  # type: ignore[arg-type]
    )
    assert out[0] == inn[0] == "/y"


async def test_lazy_select_success() -> None:
    a, b = memory_pipe()
    proto, reader = await ms.negotiate_outbound(a, ["/echo/1.0.0"], lazy=True)
    assert proto == "/echo/1.0.0"
    await a.write(b"ping")  # 0-RTT: data goes right after the proposal

    async def listener() -> None:
        p, r = await ms.negotiate_inbound(b, ["/echo/1.0.0"])
        assert await r.read_exactly(4) == b"ping"
        await b.write(b"pong")

    await listener()
    assert await reader.read_exactly(4) == b"pong"


async def test_lazy_select_refused_raises_on_read() -> None:
    a, b = memory_pipe()
    _, reader = await ms.negotiate_outbound(a, ["/nope"], lazy=True)
    listener = asyncio.ensure_future(ms.negotiate_inbound(b, ["/other"], timeout=1))
    with pytest.raises(NegotiationError):
        await reader.read(10)
    await a.close_write()
    with pytest.raises(NegotiationError):
        await listener


async def test_bad_header_rejected() -> None:
    a, b = memory_pipe()
    await b.write(ms.encode_message("/multistream/2.0.0") + ms.encode_message("/x"))
    with pytest.raises(NegotiationError):
        await ms.negotiate_outbound(a, ["/x"])


async def test_unexpected_answer_rejected() -> None:
    a, b = memory_pipe()
    await b.write(HEADER + ms.encode_message("/something-else"))
    with pytest.raises(NegotiationError):
        await ms.negotiate_outbound(a, ["/x"])


async def test_oversized_message_rejected() -> None:
    a, b = memory_pipe()
    await a.write(HEADER + encode_varint(5000) + b"x" * 5000)
    with pytest.raises(NegotiationError):
        await ms.negotiate_inbound(b, ["/x"])


async def test_timeout() -> None:
    a, _b = memory_pipe()
    with pytest.raises(HandshakeTimeoutError):
        await ms.negotiate_outbound(a, ["/x"], timeout=0.05)
    _c, d = memory_pipe()
    with pytest.raises(TimeoutError):  # also a plain TimeoutError for generic callers
        await ms.negotiate_inbound(d, ["/x"], timeout=0.05)


async def test_ls() -> None:
    a, b = memory_pipe()
    listener = asyncio.ensure_future(ms.negotiate_inbound(b, ["/a/1", "/b/2"]))
    await a.write(HEADER + ms.encode_message("ls"))
    reader = BufferedReader(a)
    assert await reader.read_exactly(len(HEADER)) == HEADER
    body = await reader.read_lp(ms.MAX_LS_RESPONSE_LEN)
    assert body is not None and ms.decode_ls_response(body) == ["/a/1", "/b/2"]
    await a.write(ms.encode_message("/b/2"))
    assert (await listener)[0] == "/b/2"


async def test_too_many_rounds() -> None:
    a, b = memory_pipe()
    await a.write(HEADER + ms.encode_message("/nope") * (ms.MAX_NEGOTIATION_ROUNDS + 1))
    with pytest.raises(LimitExceededError):
        await ms.negotiate_inbound(b, ["/x"])


async def test_stream_closed_mid_negotiation() -> None:
    a, b = memory_pipe()
    await a.write(HEADER + ms.encode_message("/x")[:3])
    await a.close_write()
    with pytest.raises(NegotiationError):
        await ms.negotiate_inbound(b, ["/x"])


async def test_reuses_given_reader() -> None:
    # Nested negotiation on one stream: leftovers of the first reader feed the second.
    a, b = memory_pipe()
    await a.write(HEADER + ms.encode_message("/outer") + HEADER + ms.encode_message("/inner"))
    proto, reader = await ms.negotiate_inbound(b, ["/outer"])
    proto2, _ = await ms.negotiate_inbound(b, ["/inner"], reader=reader)
    assert (proto, proto2) == ("/outer", "/inner")
