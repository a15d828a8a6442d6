"""Property tests: arbitrary bytes into multistream-select and Noise.

Whatever a peer sends, only :class:`~pywasm.errors.PywasmError` subclasses may escape
(or the call succeeds). Async code runs on a private loop per example.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pywasm.crypto import get_backend
from pywasm.errors import PywasmError
from pywasm.identity import KeyType, PrivateKey
from pywasm.multiformats.varint import encode_varint
from pywasm.protocols import multistream as ms
from pywasm.protocols.noise.handshake import HandshakeState
from pywasm.protocols.noise.payload import decode_payload, verify_payload
from pywasm.protocols.noise.transport import FrameDecoder, NoiseTransport
from pywasm.security.noise import NoiseSecurity
from pywasm.transports.memory import memory_pipe

from tests.conftest import _run as run_coroutine

SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

_IDENTITY: dict[str, PrivateKey] = {}


def _run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    # the shared runner also works inside Pyodide, where asyncio.run cannot block
    return run_coroutine(coro_fn())


def _identity() -> PrivateKey:
    if "k" not in _IDENTITY:
        _IDENTITY["k"] = run_coroutine(PrivateKey.generate(KeyType.Ed25519))
    return _IDENTITY["k"]


async def _only_pywasm_errors(coro: Awaitable[Any]) -> None:
    try:
        await coro
    except PywasmError:
        pass


# multistream lines: mostly well-formed frames with arbitrary bodies, plus raw noise
_ms_body = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"/multistream/1.0.0\n", b"na\n", b"ls\n", b"/x\n", b"\n", b"\xff\n"]),
)
_ms_frame = st.one_of(_ms_body.map(lambda b: encode_varint(len(b)) + b), st.binary(max_size=12))
_ms_stream = st.lists(_ms_frame, max_size=8).map(b"".join)


@SETTINGS
@given(st.binary(max_size=64))
def test_multistream_sans_io(data: bytes) -> None:
    for fn in (ms.decode_message, ms.decode_ls_response, lambda d: ms.decode_frame(d)):
        try:
            fn(data)
        except PywasmError:
            pass


@SETTINGS
@given(_ms_stream, st.booleans())
def test_multistream_negotiation_with_garbage(data: bytes, as_listener: bool) -> None:
    async def main() -> None:
        a, b = memory_pipe()
        await a.write(data)
        await a.close_write()
        if as_listener:
            await _only_pywasm_errors(ms.negotiate_inbound(b, ["/x", "/y"], timeout=5))
        else:
            await _only_pywasm_errors(ms.negotiate_outbound(b, ["/x", "/y"], timeout=5))
            c, d = memory_pipe()
            await d.write(data)
            await d.close_write()
            _, reader = await ms.negotiate_outbound(c, ["/x"], lazy=True)
            # the lazy reader checks answers only on read
            await _only_pywasm_errors(reader.read(10))

    _run(main)


@SETTINGS
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=1))
def test_noise_handshake_messages(data: bytes, which: int) -> None:
    async def main() -> None:
        backend = get_backend()
        priv = bytes(range(1, 33))
        pub = await backend.x25519_public(priv)
        if which == 0:
            # arbitrary message 1 into a responder
            resp = HandshakeState(False, priv, pub)
            await _only_pywasm_errors(resp.read_message(data))
        else:
            # arbitrary message 2 into an initiator that sent message 1
            init = HandshakeState(True, priv, pub)
            await init.write_message(b"")
            await _only_pywasm_errors(init.read_message(data))

    _run(main)


@SETTINGS
@given(st.binary(max_size=200))
def test_noise_payloads(data: bytes) -> None:
    try:
        decode_payload(data)
    except PywasmError:
        pass
    _run(lambda: _only_pywasm_errors(verify_payload(data, bytes(32))))


@SETTINGS
@given(st.lists(st.binary(max_size=100), max_size=6))
def test_noise_transport_reader(chunks: list[bytes]) -> None:
    async def main() -> None:
        from pywasm.protocols.noise.handshake import CipherState

        t = NoiseTransport(CipherState(get_backend(), bytes(32)), CipherState(get_backend(), bytes(32)))
        d = FrameDecoder()
        for chunk in chunks:
            try:
                d.feed(chunk)
            except PywasmError:
                break
        for chunk in chunks:
            try:
                await t.feed(chunk)
            except PywasmError:
                break

    _run(main)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=120), max_size=4), st.booleans())
def test_noise_security_with_garbage(chunks: list[bytes], inbound: bool) -> None:
    key = _identity()

    async def main() -> None:
        a, b = memory_pipe()
        # frame some chunks as handshake messages, leave others raw
        for i, c in enumerate(chunks):
            await a.write(len(c).to_bytes(2, "big") + c if i % 2 == 0 else c)
        await a.close_write()
        sec = NoiseSecurity(key, ("/yamux/1.0.0",), handshake_timeout=5)
        if inbound:
            await _only_pywasm_errors(sec.secure_inbound(b))
        else:
            await _only_pywasm_errors(sec.secure_outbound(b, None))

    _run(main)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=80), max_size=4))
def test_noise_connection_reader_with_garbage(chunks: list[bytes]) -> None:
    key = _identity()

    async def main() -> None:
        a, b = memory_pipe()
        ci, cr = await asyncio.gather(
            NoiseSecurity(key).secure_outbound(a, None), NoiseSecurity(key).secure_inbound(b)
        )
        await ci.write(b"ok")
        for c in chunks:
            await a.write(c)
        await a.close_write()
        assert await cr.read(2) == b"ok"
        for _ in range(len(chunks) + 2):
            try:
                if not await cr.read(100):
                    break
            except PywasmError:
                break

    _run(main)
