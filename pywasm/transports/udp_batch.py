"""UDP I/O for aioquic with batching (native only): read many datagrams per wake-up,
send runs of datagrams with Linux UDP GSO.

Why: aioquic's asyncio integration reads one datagram per event-loop iteration and
transmits after each, so acknowledgements trickle in one by one and every transmit sends
one or two packets; profiling the relay showed a third of its CPU in ``sendto``.
:class:`BatchedUDPTransport` reads up to :data:`RECV_BATCH` datagrams, then lets each
connection that received one transmit once (protocols opt in by checking the transport's
``batching`` flag and adding themselves to ``dirty``, see
``webtransport_native.WebTransportProtocol.datagram_received``); :func:`send_datagrams`
hands runs of equal-sized datagrams to the kernel in one GSO ``sendmsg``; the server side
(:func:`serve_batched`) routes 1-RTT datagrams to their connection without aioquic's
second header parse.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from typing import Any, Callable

log = logging.getLogger("pywasm.udp")

# Linux UDP generic segmentation offload (linux/udp.h); absent elsewhere
_UDP_SEGMENT = 103
GSO_MAX_SEGMENTS = 64
_GSO_MAX_BYTES = 65000
_gso_ok: dict[int, bool] = {}


def send_datagrams(transport: Any, datagrams: list[tuple[bytes, Any]]) -> None:
    """Send ``(data, addr)`` pairs; consecutive ones to one address with equal sizes (the
    last may be shorter) leave as one GSO ``sendmsg``."""
    sock = transport.get_extra_info("socket")
    raw = getattr(sock, "_sock", sock)
    fd = raw.fileno() if raw is not None else -1
    use_gso = _gso_ok.get(fd, True) and hasattr(raw, "sendmsg") and socket.SOL_UDP is not None
    i, n = 0, len(datagrams)
    while i < n:
        data, addr = datagrams[i]
        seg = len(data)
        j = i + 1
        total = seg
        if use_gso:
            while (j < n and j - i < GSO_MAX_SEGMENTS and datagrams[j][1] == addr
                   and total + len(datagrams[j][0]) <= _GSO_MAX_BYTES):
                size = len(datagrams[j][0])
                if size > seg:
                    break
                total += size
                j += 1
                if size < seg:
                    break  # a shorter datagram can only end a GSO batch
        if j - i > 1:
            try:
                raw.sendmsg([b"".join(d for d, _ in datagrams[i:j])],
                            [(socket.SOL_UDP, _UDP_SEGMENT, seg.to_bytes(2, sys.byteorder))], 0, addr)
                i = j
                continue
            except BlockingIOError:
                pass  # socket buffer full: let asyncio queue them one by one
            except OSError as exc:
                log.debug("UDP GSO unavailable (%s): sending datagrams one by one", exc)
                _gso_ok[fd] = False
                use_gso = False
        for k in range(i, j):
            transport.sendto(datagrams[k][0], datagrams[k][1])
        i = j


#: Datagrams read per socket wake-up before the protocols transmit (see BatchedUDPTransport).
RECV_BATCH = 64
#: Datagrams queued when the socket's send buffer is full; past it they are dropped (QUIC
#: treats that as loss and slows down, which is what a full buffer asks for).
MAX_SEND_QUEUE = 4096
#: Protocol exceptions logged with their stack per transport; later ones are only counted.
MAX_ERROR_LOGS = 20


class BatchedUDPTransport(asyncio.DatagramTransport):
    """A UDP transport that reads every waiting datagram per wake-up (up to
    :data:`RECV_BATCH`), then lets each protocol that received one transmit once.

    asyncio's own datagram transport reads one datagram per event-loop iteration and
    aioquic transmits after each, so acknowledgements trickle in one by one and every
    transmit sends one or two packets: measured, a third of the relay's CPU went into
    ``sendto``. Batching the reads makes transmits send runs of packets, which
    :func:`send_datagrams` hands to the kernel with GSO.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol: Any) -> None:
        super().__init__()
        self._loop = loop
        self._sock = sock
        self._protocol = protocol
        self._closing = False
        self._send_queue: list[tuple[bytes, Any]] = []
        self.dirty: set[Any] = set()
        self.batching = False
        #: exceptions raised by the protocol (or a dirty connection) and survived
        self.errors = 0
        loop.add_reader(sock.fileno(), self._read_ready)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self._sock
        if name == "sockname":
            return self._sock.getsockname()
        return default

    def _read_ready(self) -> None:
        self.batching = True
        try:
            for _ in range(RECV_BATCH):
                try:
                    data, addr = self._sock.recvfrom(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:  # e.g. ICMP port unreachable surfaced as ECONNREFUSED
                    self._protocol.error_received(exc)
                    break
                try:
                    self._protocol.datagram_received(data, addr)
                except Exception:  # noqa: BLE001 - one bad datagram must not drop the batch
                    self._report("datagram_received")
        finally:
            self.batching = False
            dirty, self.dirty = self.dirty, set()
            for proto in dirty:
                # every connection gets its transmit: one that raises must not leave the
                # others' acknowledgements and data waiting for their next timer
                try:
                    proto.transmit()
                except Exception:  # noqa: BLE001
                    self._report("transmit")

    def _report(self, where: str) -> None:
        """Log a protocol's exception, at most :data:`MAX_ERROR_LOGS` times with the stack
        (a peer that can trigger one could otherwise flood the log), then only count."""
        self.errors += 1
        if self.errors <= MAX_ERROR_LOGS:
            log.exception("UDP %s raised (%d so far); the socket keeps serving", where, self.errors)

    def sendto(self, data: Any, addr: Any = None) -> None:
        if self._closing:
            return
        if self._send_queue:
            if len(self._send_queue) < MAX_SEND_QUEUE:
                self._send_queue.append((bytes(data), addr))
            return
        try:
            self._sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self._send_queue.append((bytes(data), addr))
            self._loop.add_writer(self._sock.fileno(), self._write_ready)
        except OSError as exc:
            self._protocol.error_received(exc)

    def _write_ready(self) -> None:
        while self._send_queue:
            data, addr = self._send_queue[0]
            try:
                self._sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
            self._send_queue.pop(0)
        self._loop.remove_writer(self._sock.fileno())

    @property
    def has_backlog(self) -> bool:
        return bool(self._send_queue)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._sock.fileno())
        if self._send_queue:
            self._loop.remove_writer(self._sock.fileno())
            self._send_queue.clear()
        self._sock.close()
        self._loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()


def udp_socket(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``host:port`` with large kernel buffers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
            except OSError:
                pass  # the kernel caps it; the default still works
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _short_header_server(base: type) -> type:
    """aioquic's ``QuicServer`` with a shortcut for 1-RTT packets of known connections.

    ``QuicServer.datagram_received`` parses every datagram's header in Python to find the
    connection, and the connection then parses it again. After the handshake nearly every
    datagram has a short header, whose destination connection id is simply the
    ``connection_id_length`` bytes after the first byte: look that up in the server's own
    id -> protocol map and hand the datagram over; anything else (long headers, unknown
    ids, runts) takes aioquic's path. Relies on ``QuicServer._protocols`` (aioquic 1.7.2,
    checked by tests/native/test_webtransport.py).
    """

    class ShortHeaderQuicServer(base):  # type: ignore[misc, valid-type]
        def __init__(self, *, configuration: Any, **kwargs: Any) -> None:
            super().__init__(configuration=configuration, **kwargs)
            self._cid_length: int = configuration.connection_id_length

        def datagram_received(self, data: bytes | str, addr: Any) -> None:
            if data and not data[0] & 0x80:  # type: ignore[operator]
                proto = self._protocols.get(data[1 : 1 + self._cid_length])
                if proto is not None:
                    proto.datagram_received(data, addr)
                    return
            super().datagram_received(data, addr)

    return ShortHeaderQuicServer


async def serve_batched(host: str, port: int, *, configuration: Any,
                        create_protocol: Callable[..., Any]) -> Any:
    """aioquic's ``serve`` on a :class:`BatchedUDPTransport` (QuicServer inside, with the
    short-header shortcut of :func:`_short_header_server`)."""
    from aioquic.asyncio.server import QuicServer

    loop = asyncio.get_running_loop()
    server = _short_header_server(QuicServer)(configuration=configuration, create_protocol=create_protocol)
    sock = udp_socket(host, port)
    server.connection_made(BatchedUDPTransport(loop, sock, server))
    return server


__all__ = ["BatchedUDPTransport", "GSO_MAX_SEGMENTS", "RECV_BATCH", "send_datagrams", "serve_batched", "udp_socket"]
