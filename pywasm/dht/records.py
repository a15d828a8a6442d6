"""DHT records: namespaced validators and a bounded local record store.

A record key is ``/<namespace>/<rest>`` (bytes). Each namespace has a validator that
checks a value (``validate``) and picks the best of several valid ones (``select``), as
go-libp2p-record and js-libp2p's kad-dht do. We refuse a record whose namespace has no
validator: storing what we cannot check would make us a free relay for garbage.

Built in: ``/pk/<peer id multihash>`` -> the protobuf public key of that peer. ``/ipns/``
records are refused unless an IPNS validator is registered (see :class:`Validators`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from ..errors import PywasmError
from ..identity import PeerId, PublicKey
from .errors import RecordValidationError

# go-libp2p-kad-dht keeps a received record for 36 h (MaxRecordAge)
DEFAULT_RECORD_TTL = 36 * 3600.0
DEFAULT_MAX_RECORDS = 1024
# a /pk record is < 1 KiB (RSA-4096 ~550 B); IPNS records are limited to 10 KiB by spec
DEFAULT_MAX_VALUE_SIZE = 16 * 1024
MAX_KEY_SIZE = 1024


class Validator(Protocol):
    def validate(self, key: bytes, value: bytes) -> None:
        """Raise :class:`RecordValidationError` when ``value`` is not valid for ``key``."""

    def select(self, key: bytes, values: list[bytes]) -> int:
        """Index of the best of several valid ``values``."""


def split_key(key: bytes) -> tuple[str, bytes]:
    """``/ns/rest`` -> (``ns``, ``rest``); :class:`RecordValidationError` otherwise."""
    if len(key) > MAX_KEY_SIZE:
        raise RecordValidationError(f"record key of {len(key)} bytes is too long")
    parts = key.split(b"/", 2)
    if len(parts) != 3 or parts[0] != b"" or not parts[1] or not parts[2]:
        raise RecordValidationError("record key is not of the form /<namespace>/<key>")
    try:
        ns = parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise RecordValidationError("record namespace is not ASCII") from None
    return ns, parts[2]


class PublicKeyValidator:
    """``/pk/<multihash>``: the value is a public key whose peer id is that multihash."""

    def validate(self, key: bytes, value: bytes) -> None:
        ns, rest = split_key(key)
        if ns != "pk":
            raise RecordValidationError("not a /pk/ key")
        try:
            expected = PeerId.from_bytes(rest)
            public_key = PublicKey.from_protobuf(value)
        except PywasmError as exc:
            raise RecordValidationError(f"invalid /pk/ record: {exc}") from None
        if not expected.matches_public_key(public_key):
            raise RecordValidationError("/pk/ record: the public key does not match the key's peer id")

    def select(self, key: bytes, values: list[bytes]) -> int:
        return 0  # every valid value for one key is the same key


class Validators:
    """A registry of validators by namespace."""

    def __init__(self, validators: dict[str, Validator] | None = None) -> None:
        self._by_ns: dict[str, Validator] = {"pk": PublicKeyValidator()}
        if validators:
            self._by_ns.update(validators)

    def register(self, namespace: str, validator: Validator) -> None:
        self._by_ns[namespace] = validator

    def _for(self, key: bytes) -> Validator:
        ns, _ = split_key(key)
        validator = self._by_ns.get(ns)
        if validator is None:
            raise RecordValidationError(f"no validator for the /{ns[:32]}/ namespace")
        return validator

    def validate(self, key: bytes, value: bytes) -> None:
        self._for(key).validate(key, value)

    def select(self, key: bytes, values: list[bytes]) -> int:
        if not values:
            raise RecordValidationError("no values to select from")
        if len(values) == 1:
            return 0
        idx = self._for(key).select(key, values)
        if not 0 <= idx < len(values):
            raise RecordValidationError("selector returned an invalid index")
        return idx


@dataclass(slots=True)
class StoredRecord:
    key: bytes
    value: bytes
    received: float  # wall-clock seconds (for timeReceived)
    expires: float  # monotonic-style clock of the store


class RecordStore:
    """Records we hold for others: bounded in count and value size, expiring after
    ``ttl``. When full, the record closest to expiry goes (insertion order = expiry
    order, since every record gets the same TTL)."""

    def __init__(self, max_records: int = DEFAULT_MAX_RECORDS, max_value_size: int = DEFAULT_MAX_VALUE_SIZE, ttl: float = DEFAULT_RECORD_TTL) -> None:
        self.max_records = max_records
        self.max_value_size = max_value_size
        self.ttl = ttl
        self._records: OrderedDict[bytes, StoredRecord] = OrderedDict()

    def put(self, key: bytes, value: bytes, now: float) -> None:
        if len(value) > self.max_value_size:
            raise RecordValidationError(f"record value of {len(value)} bytes exceeds {self.max_value_size}")
        self._records.pop(key, None)
        self._records[key] = StoredRecord(key, bytes(value), time.time(), now + self.ttl)
        while len(self._records) > self.max_records:
            self._records.popitem(last=False)

    def get(self, key: bytes, now: float) -> StoredRecord | None:
        rec = self._records.get(key)
        if rec is None:
            return None
        if rec.expires <= now:
            del self._records[key]
            return None
        return rec

    def expire(self, now: float) -> int:
        dead = [k for k, r in self._records.items() if r.expires <= now]
        for k in dead:
            del self._records[k]
        return len(dead)

    def __len__(self) -> int:
        return len(self._records)


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


__all__ = [
    "Validator",
    "Validators",
    "PublicKeyValidator",
    "RecordStore",
    "StoredRecord",
    "split_key",
    "rfc3339",
    "DEFAULT_RECORD_TTL",
    "DEFAULT_MAX_RECORDS",
    "DEFAULT_MAX_VALUE_SIZE",
]
