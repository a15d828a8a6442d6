"""BatchedUDPTransport on real loopback sockets: a protocol that raises loses nothing else."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from pywasm.transports.udp_batch import MAX_ERROR_LOGS, BatchedUDPTransport, udp_socket


class _Conn:
    """Stands in for one QUIC connection of the server: marks itself dirty on a datagram."""

    def __init__(self, name: str, transport_ref: list[Any], fail_transmit: bool = False) -> None:
        self.name = name
        self.transport_ref = transport_ref
        self.fail_transmit = fail_transmit
        self.transmits = 0

    def transmit(self) -> None:
        self.transmits += 1
        if self.fail_transmit:
            raise RuntimeError(f"{self.name}: transmit failed")


class _Proto(asyncio.DatagramProtocol):
    """Routes datagrams by their first byte to a connection; b"!" raises."""

    def __init__(self) -> None:
        self.transport: BatchedUDPTransport | None = None
        self.conns: dict[bytes, _Conn] = {}
        self.received: list[bytes] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if data.startswith(b"!"):
            raise ValueError("malformed datagram")
        self.received.append(data)
        assert self.transport is not None
        self.transport.dirty.add(self.conns[data[:1]])


async def _until(cond: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_raising_datagram_and_transmit_do_not_drop_the_rest() -> None:
    loop = asyncio.get_running_loop()
    proto = _Proto()
    ref: list[Any] = []
    proto.conns = {b"a": _Conn("a", ref, fail_transmit=True), b"b": _Conn("b", ref)}
    transport = BatchedUDPTransport(loop, udp_socket("127.0.0.1", 0), proto)
    proto.transport = transport
    port = transport.get_extra_info("sockname")[1]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # queued before the loop reads, so they arrive in one batch
        for data in (b"a1", b"!bad", b"b1", b"a2", b"!bad", b"b2"):
            sender.sendto(data, ("127.0.0.1", port))
        await _until(lambda: len(proto.received) == 4)
        assert proto.received == [b"a1", b"b1", b"a2", b"b2"]
        await _until(lambda: proto.conns[b"b"].transmits >= 1)
        # a's transmit raised, b still transmitted; the socket keeps serving afterwards
        assert proto.conns[b"a"].transmits >= 1
        assert transport.errors >= 3  # two bad datagrams + at least one failed transmit
        sender.sendto(b"b3", ("127.0.0.1", port))
        await _until(lambda: proto.received[-1:] == [b"b3"])
        assert not transport.is_closing()
    finally:
        sender.close()
        transport.close()


async def test_error_log_is_bounded(caplog: Any) -> None:
    loop = asyncio.get_running_loop()
    proto = _Proto()
    transport = BatchedUDPTransport(loop, udp_socket("127.0.0.1", 0), proto)
    proto.transport = transport
    port = transport.get_extra_info("sockname")[1]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with caplog.at_level("ERROR", logger="pywasm.udp"):
            for _ in range(MAX_ERROR_LOGS + 30):
                sender.sendto(b"!", ("127.0.0.1", port))
            await _until(lambda: transport.errors == MAX_ERROR_LOGS + 30)
        logged = [r for r in caplog.records if r.name == "pywasm.udp"]
        assert len(logged) == MAX_ERROR_LOGS
    finally:
        sender.close()
        transport.close()
