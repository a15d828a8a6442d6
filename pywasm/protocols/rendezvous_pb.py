"""Rendezvous wire messages (libp2p/specs rendezvous/README.md), one varint-length-
prefixed ``Message`` per request and per response on ``/rendezvous/1.0.0``."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .. import pb

RENDEZVOUS = "/rendezvous/1.0.0"
MAX_MESSAGE_SIZE = 64 * 1024  # a DISCOVER_RESPONSE of up to 100 ~500-byte records
MAX_NAMESPACE_LEN = 255
DEFAULT_TTL = 2 * 3600
MAX_TTL = 72 * 3600
MIN_TTL = 120  # go and rust-libp2p refuse shorter registrations
DEFAULT_DISCOVER_LIMIT = 100


class MessageType(enum.IntEnum):
    REGISTER = 0
    REGISTER_RESPONSE = 1
    UNREGISTER = 2
    DISCOVER = 3
    DISCOVER_RESPONSE = 4


class ResponseStatus(enum.IntEnum):
    OK = 0
    E_INVALID_NAMESPACE = 100
    E_INVALID_SIGNED_PEER_RECORD = 101
    E_INVALID_TTL = 102
    E_INVALID_COOKIE = 103
    E_NOT_AUTHORIZED = 200
    E_INTERNAL_ERROR = 300
    E_UNAVAILABLE = 400


@dataclass
class RegisterPB(pb.Message):
    ns: str | None = pb.field(1, "string")
    signed_peer_record: bytes | None = pb.field(2, "bytes")
    ttl: int | None = pb.field(3, "uint64")


@dataclass
class RegisterResponsePB(pb.Message):
    status: int | None = pb.field(1, "enum")
    status_text: str | None = pb.field(2, "string")
    ttl: int | None = pb.field(3, "uint64")


@dataclass
class UnregisterPB(pb.Message):
    ns: str | None = pb.field(1, "string")


@dataclass
class DiscoverPB(pb.Message):
    ns: str | None = pb.field(1, "string")
    limit: int | None = pb.field(2, "uint64")
    cookie: bytes | None = pb.field(3, "bytes")


@dataclass
class DiscoverResponsePB(pb.Message):
    registrations: list[RegisterPB] = pb.field(1, "message", repeated=True, message=RegisterPB)
    cookie: bytes | None = pb.field(2, "bytes")
    status: int | None = pb.field(3, "enum")
    status_text: str | None = pb.field(4, "string")


@dataclass
class RendezvousPB(pb.Message):
    type: int | None = pb.field(1, "enum")
    register: RegisterPB | None = pb.field(2, "message", message=RegisterPB)
    register_response: RegisterResponsePB | None = pb.field(3, "message", message=RegisterResponsePB)
    unregister: UnregisterPB | None = pb.field(4, "message", message=UnregisterPB)
    discover: DiscoverPB | None = pb.field(5, "message", message=DiscoverPB)
    discover_response: DiscoverResponsePB | None = pb.field(6, "message", message=DiscoverResponsePB)


__all__ = [
    "RENDEZVOUS",
    "MAX_MESSAGE_SIZE",
    "MAX_NAMESPACE_LEN",
    "DEFAULT_TTL",
    "MAX_TTL",
    "MIN_TTL",
    "DEFAULT_DISCOVER_LIMIT",
    "MessageType",
    "ResponseStatus",
    "RegisterPB",
    "RegisterResponsePB",
    "UnregisterPB",
    "DiscoverPB",
    "DiscoverResponsePB",
    "RendezvousPB",
]
