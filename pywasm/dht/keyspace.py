"""The Kademlia keyspace: XOR distance over SHA-256 of the key bytes.

kad-dht/README.md: a peer's position is sha256(its peer id multihash bytes); a record's
or provider key's position is sha256 of the key bytes. Positions are 256-bit integers,
so distances are plain ``int`` XORs (fast in CPython, no allocations per comparison).
"""

from __future__ import annotations

import hashlib
import os

from ..identity import PeerId
from .errors import DHTError

KEY_BITS = 256


def key_position(key: bytes) -> int:
    """The keyspace position of raw key bytes (records, provider multihashes)."""
    return int.from_bytes(hashlib.sha256(key).digest(), "big")


def peer_position(peer: PeerId) -> int:
    return key_position(peer.to_bytes())


def common_prefix_len(a: int, b: int) -> int:
    """Leading bits two positions share (256 when equal)."""
    return KEY_BITS - (a ^ b).bit_length()


def random_key_with_cpl(local: int, cpl: int, max_tries: int = 1 << 20) -> bytes:
    """Random key bytes whose position shares exactly ``cpl`` leading bits with ``local``.

    SHA-256 cannot be inverted, so this draws keys until one lands in the bucket: about
    2**(cpl+1) hashes, which is why callers refresh only the first buckets (go-libp2p
    caps refresh at a CPL of 15 for the same reason).
    """
    for _ in range(max_tries):
        key = os.urandom(32)
        if common_prefix_len(local, key_position(key)) == cpl:
            return key
    raise DHTError(f"no key with a common prefix of {cpl} bits after {max_tries} tries")


__all__ = ["KEY_BITS", "key_position", "peer_position", "common_prefix_len", "random_key_with_cpl"]
