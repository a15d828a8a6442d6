"""Persisting a node's identity key.

The file holds the libp2p ``PrivateKey`` protobuf (the format go-libp2p and kubo use),
written atomically (temporary file in the same directory, fsync, ``os.replace``) with mode
0600, so a crash never leaves a half-written key and other users cannot read it.
"""

from __future__ import annotations

import os

from ..errors import ConfigError, PywasmError
from ..fileio import write_private_atomic
from .keys import KeyType, PrivateKey

#: Key files are small (an 8192-bit RSA key is under 5 KiB); refuse anything huge.
MAX_KEY_FILE_SIZE = 64 * 1024
KEY_FILE_MODE = 0o600



def save(path: str | os.PathLike[str], key: PrivateKey) -> None:
    """Write ``key`` to ``path`` atomically with mode 0600."""
    path = os.fspath(path)
    try:
        write_private_atomic(path, key.to_protobuf(), KEY_FILE_MODE)
    except OSError as e:
        raise ConfigError(f"cannot write key file {path}: {e.strerror or e}; check the path and permissions") from None


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_FILE_SIZE + 1)
    except FileNotFoundError:
        raise ConfigError(f"key file {path} does not exist; create one with load_or_create or pass another path") from None
    except OSError as e:
        raise ConfigError(f"cannot read key file {path}: {e.strerror or e}; check the path and permissions") from None
    if len(data) > MAX_KEY_FILE_SIZE:
        raise ConfigError(
            f"key file {path} is larger than {MAX_KEY_FILE_SIZE} bytes and is not a libp2p key; "
            "move it away to generate a new identity"
        )
    return data


async def load(path: str | os.PathLike[str]) -> PrivateKey:
    """Read a private key file; :class:`ConfigError` if missing, unreadable or corrupt."""
    path = os.fspath(path)
    data = _read(path)
    try:
        return await PrivateKey.from_protobuf(data)
    except PywasmError as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(
            f"key file {path} is not a valid libp2p private key ({reason}); "
            "restore it from a backup, or delete it to generate a new identity"
        ) from None


async def load_or_create(path: str | os.PathLike[str], key_type: KeyType | int = KeyType.Ed25519) -> PrivateKey:
    """Load the key at ``path``, or generate a ``key_type`` key and save it there."""
    path = os.fspath(path)
    if os.path.exists(path):
        return await load(path)
    key = await PrivateKey.generate(key_type)
    save(path, key)
    return key


__all__ = ["KEY_FILE_MODE", "MAX_KEY_FILE_SIZE", "load", "load_or_create", "save"]
