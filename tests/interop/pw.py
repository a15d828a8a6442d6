"""The pywasm side of interop tests: an in-process Host (docs/architecture.md, Host API)
and small checks shared by test_js.py, test_go.py and test_py.py."""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

T = TypeVar("T")

MIB = 1024 * 1024
ECHO = "/echo/1.0.0"
KUBO_ECHO = "/x/echo"  # the only id kubo's stream mounting opens (it forces the /x/ prefix)
MUXER_IDS = {"yamux": "/yamux/1.0.0", "mplex": "/mplex/6.7.0"}
NOISE = "/noise"
TEST_TIMEOUT = 120.0

LISTEN = {"tcp": "/ip4/127.0.0.1/tcp/0", "ws": "/ip4/127.0.0.1/tcp/0/ws"}


async def bounded(aw: Awaitable[T], timeout: float = TEST_TIMEOUT) -> T:
    return await asyncio.wait_for(aw, timeout)


@asynccontextmanager
async def pywasm_host(listen: list[str] | None = None, **kwargs: Any) -> AsyncIterator[Any]:
    from pywasm.host import Host  # imported here: a missing host fails the test, not collection

    host = await Host.create(listen=listen if listen is not None else [LISTEN["tcp"]], **kwargs)
    try:
        yield host
    finally:
        await asyncio.wait_for(host.stop(), 30)


def host_addr(host: Any, transport: str) -> str:
    for ma in host.addrs():
        parts = str(ma).split("/")
        if transport == "ws" and "ws" in parts:
            return str(ma)
        if transport == "tcp" and "tcp" in parts and "ws" not in parts:
            return str(ma)
    raise AssertionError(f"pywasm host has no {transport} address: {[str(a) for a in host.addrs()]}")


def field(obj: Any, *names: str) -> Any:
    """IdentifyInfo attribute by any of its plausible names (dataclass or dict)."""
    for n in names:
        if isinstance(obj, dict) and n in obj:
            return obj[n]
        if hasattr(obj, n):
            return getattr(obj, n)
    raise AssertionError(f"identify result has none of {names}: {obj!r}")


def key_type_name(public_key: Any) -> str:
    from pywasm.identity import KeyType, PublicKey

    if isinstance(public_key, (bytes, bytearray, memoryview)):
        public_key = PublicKey.from_protobuf(bytes(public_key))
    kt = public_key.key_type
    return KeyType(kt).name if not isinstance(kt, KeyType) else kt.name


async def identify_remote(host: Any, conn: Any) -> dict[str, Any]:
    # The host identifies every new connection by itself; a second, concurrent request is
    # reset by js-libp2p (it allows one inbound /ipfs/id/1.0.0 stream per connection), so
    # take the automatic answer (identified() waits for it, or runs one if none ran).
    svc = host.services["identify"]
    getter = getattr(svc, "identified", None) or svc.identify
    info = await bounded(getter(conn), 30)
    protocols = [str(p) for p in field(info, "protocols")]
    return {
        "agent": str(field(info, "agent_version", "agent")),
        "protocols": protocols,
        "key_type": key_type_name(field(info, "public_key", "publicKey")),
        # a signed peer record that verified (identify drops one that does not)
        "signed_record": bool(host.peerstore.signed_record(conn.remote_peer)),
        "raw": info,
    }


def check_identify(info: dict[str, Any], agent_prefix: str) -> None:
    """An Ed25519 libp2p peer serving identify, ping and echo (js, py), per identify_remote."""
    assert info["agent"].startswith(agent_prefix), info
    assert {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO} <= set(info["protocols"]), info
    assert info["key_type"] == "Ed25519"


def check_dial_report(res: dict[str, Any], host: Any, muxer: str) -> dict[str, Any]:
    """A js/py peer's report (``peers.dial``) of dialing ``host``: it reached our peer id
    over ``muxer``, identified us, pinged us and echoed 1 MiB. Returns its identify part."""
    assert res["remote_peer"] == str(host.peer_id)
    assert res["muxer"] == MUXER_IDS[muxer]
    ident = res["identify"]
    assert {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", ECHO} <= set(ident["protocols"]), ident
    assert ident["key_type"] == "Ed25519"
    assert res["ping_ms"] >= 0
    assert res["echo"]["bytes"] == MIB and res["echo"]["ok"]
    return ident  # type: ignore[no-any-return]


async def ping_remote(host: Any, target: Any) -> float:
    rtt = await bounded(host.services["ping"].ping(target), 30)
    assert 0 <= rtt < 10, f"implausible ping RTT {rtt!r} s"
    return rtt


async def echo_remote(
    host: Any, target: Any, size: int = MIB, protocol: str = ECHO, half_close: bool = True
) -> float:
    """Byte-exact echo of ``size`` random bytes; returns seconds.

    half_close=True: write everything, half-close, read to EOF (the echo server closes
    after EOF). half_close=False (kubo): read all ``size`` bytes back before closing,
    because kubo's forwarder drops the stream at the first EOF.
    """
    data = os.urandom(size)
    loop = asyncio.get_running_loop()
    start = loop.time()
    stream = await bounded(host.new_stream(target, [protocol]), 30)
    assert stream.protocol == protocol, f"negotiated {stream.protocol!r}, wanted {protocol!r}"
    received = bytearray()

    async def reader() -> None:
        while half_close or len(received) < size:
            chunk = await stream.read(65536)
            if not chunk:
                return
            received.extend(chunk)
            assert len(received) <= size, f"echo overread: {len(received)} > {size}"

    async def writer() -> None:
        view = memoryview(data)
        for off in range(0, size, 65536):
            await stream.write(view[off : off + 65536])
        if half_close:
            await stream.close_write()

    try:
        await bounded(asyncio.gather(reader(), writer()), 60)
    finally:
        await stream.close()
    elapsed = loop.time() - start
    assert len(received) == size, f"echo returned {len(received)} of {size} bytes"
    assert bytes(received) == data, "echoed bytes differ"
    return elapsed


async def echo_handler(stream: Any, conn: Any) -> None:
    """Plain echo for extra protocol ids (e.g. /x/echo for kubo)."""
    try:
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                break
            await stream.write(chunk)
        await stream.close()
    except Exception:
        await stream.reset()
        raise
