"""Writing small private files (keys, certificates, rotation state) so a crash never
leaves a half-written one: a temporary file in the same directory, fsync, ``os.replace``,
then fsync of the directory; mode 0600 from the start so no other user can read it."""

from __future__ import annotations

import os
import secrets

PRIVATE_FILE_MODE = 0o600


def write_private_atomic(path: str | os.PathLike[str], data: bytes, mode: int = PRIVATE_FILE_MODE) -> None:
    """Replace ``path`` with ``data`` atomically; raises ``OSError`` (callers say what failed)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    # makes the rename durable; not possible on every platform/filesystem (best effort)
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["PRIVATE_FILE_MODE", "write_private_atomic"]
