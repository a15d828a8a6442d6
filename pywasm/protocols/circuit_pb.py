"""Circuit relay v2 messages (libp2p/specs relay/circuit-v2.md, "Protobuf").

``/libp2p/circuit/relay/0.2.0/hop`` (client <-> relay) and ``/stop`` (relay -> target)
exchange one varint-length-prefixed message each way; after a ``STATUS OK`` the same
stream carries the relayed connection's bytes. Reservation vouchers are signed envelopes
(domain ``libp2p-relay-rsvp``, payload type ``0x03 0x02``) around :class:`VoucherPB`.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import Any, TypeVar

from .. import pb
from ..errors import DecodeError, HandshakeTimeoutError, ProtocolError
from ..streams import encode_lp

HOP = "/libp2p/circuit/relay/0.2.0/hop"
STOP = "/libp2p/circuit/relay/0.2.0/stop"
VOUCHER_DOMAIN = "libp2p-relay-rsvp"
VOUCHER_PAYLOAD_TYPE = bytes([0x03, 0x02])
# Hop and stop messages hold a peer id, a few addresses and a voucher: go-libp2p caps
# them at 4 KiB; addresses listed by a busy relay can be longer, so allow a little more.
MAX_MESSAGE_SIZE = 16 * 1024
# Relay addresses taken from one reservation.
MAX_RESERVATION_ADDRS = 32


class HopType(enum.IntEnum):
    RESERVE = 0
    CONNECT = 1
    STATUS = 2


class StopType(enum.IntEnum):
    CONNECT = 0
    STATUS = 1


class Status(enum.IntEnum):
    UNUSED = 0
    OK = 100
    RESERVATION_REFUSED = 200
    RESOURCE_LIMIT_EXCEEDED = 201
    PERMISSION_DENIED = 202
    CONNECTION_FAILED = 203
    NO_RESERVATION = 204
    MALFORMED_MESSAGE = 400
    UNEXPECTED_MESSAGE = 401


def status_name(value: int | None) -> str:
    try:
        return Status(value).name if value is not None else "none"
    except ValueError:
        return str(value)


class RelayStatusError(ProtocolError):
    """The relay (or the target, over stop) answered with a status other than OK."""

    def __init__(self, status: int | None, what: str) -> None:
        self.status = status
        super().__init__(f"{what}: {status_name(status)}")


@dataclass
class PeerPB(pb.Message):
    id: bytes | None = pb.field(1, "bytes")
    addrs: list[bytes] = pb.field(2, "bytes", repeated=True)


@dataclass
class ReservationPB(pb.Message):
    expire: int | None = pb.field(1, "uint64")
    addrs: list[bytes] = pb.field(2, "bytes", repeated=True)
    voucher: bytes | None = pb.field(3, "bytes")


@dataclass
class LimitPB(pb.Message):
    duration: int | None = pb.field(1, "uint32")
    data: int | None = pb.field(2, "uint64")


# Status is an open enum on the wire (a newer peer may send a code we do not know): kept
# as a plain integer and compared against :class:`Status`.
@dataclass
class HopMessage(pb.Message):
    type: int | None = pb.field(1, "enum")
    peer: PeerPB | None = pb.field(2, "message", message=PeerPB)
    reservation: ReservationPB | None = pb.field(3, "message", message=ReservationPB)
    limit: LimitPB | None = pb.field(4, "message", message=LimitPB)
    status: int | None = pb.field(5, "enum")


@dataclass
class StopMessage(pb.Message):
    type: int | None = pb.field(1, "enum")
    peer: PeerPB | None = pb.field(2, "message", message=PeerPB)
    limit: LimitPB | None = pb.field(3, "message", message=LimitPB)
    status: int | None = pb.field(4, "enum")


@dataclass
class VoucherPB(pb.Message):
    relay: bytes | None = pb.field(1, "bytes")
    peer: bytes | None = pb.field(2, "bytes")
    expiration: int | None = pb.field(3, "uint64")


M = TypeVar("M", HopMessage, StopMessage)


async def read_message(stream: Any, cls: type[M], timeout: float, what: str) -> M:
    """One length-prefixed hop/stop message, within ``timeout``; typed errors for EOF,
    oversize and garbage. The stream's reader keeps whatever follows (relayed bytes)."""
    try:
        data = await asyncio.wait_for(stream.read_lp(MAX_MESSAGE_SIZE), timeout)
    except asyncio.TimeoutError:
        raise HandshakeTimeoutError(f"no {what} within {timeout:g} s") from None
    if data is None:
        raise ProtocolError(f"stream ended before the {what}")
    try:
        return cls.decode(data)
    except DecodeError as exc:
        raise ProtocolError(f"malformed {what}: {exc}") from None


async def write_message(stream: Any, msg: HopMessage | StopMessage, timeout: float) -> None:
    try:
        await asyncio.wait_for(stream.write(encode_lp(msg.encode())), timeout)
    except asyncio.TimeoutError:
        raise HandshakeTimeoutError(f"writing a relay message took longer than {timeout:g} s") from None


__all__ = [
    "read_message",
    "write_message",
    "HOP",
    "STOP",
    "VOUCHER_DOMAIN",
    "VOUCHER_PAYLOAD_TYPE",
    "MAX_MESSAGE_SIZE",
    "MAX_RESERVATION_ADDRS",
    "HopType",
    "StopType",
    "Status",
    "status_name",
    "RelayStatusError",
    "PeerPB",
    "ReservationPB",
    "LimitPB",
    "HopMessage",
    "StopMessage",
    "VoucherPB",
]
