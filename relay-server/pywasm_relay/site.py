"""Mapping request paths to files of the site directory, and their content types.

Pure functions (no I/O beyond ``os.stat``/``realpath``), so the traversal rules are easy to
test. A path that is not a plain file strictly inside the site root resolves to ``None``:
the server answers 404 and never says why (no probing of what exists outside).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from urllib.parse import quote, unquote

#: Longest request path accepted (after the query is dropped); longer is a 404.
MAX_PATH_LENGTH = 2048
#: Deepest path accepted, in segments.
MAX_PATH_SEGMENTS = 32

#: Content types by file suffix (lower case). Pyodide compiles ``pyodide.asm.wasm`` with
#: ``WebAssembly.instantiateStreaming``, which insists on ``application/wasm``; ES modules
#: need a JavaScript type; wheels and the stdlib zip are fetched as bytes (any type works,
#: ``application/zip`` is the honest one).
CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".cjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".whl": "application/zip",
    ".zip": "application/zip",
    ".tar": "application/x-tar",
    ".gz": "application/gzip",
    ".bz2": "application/x-bzip2",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
    ".py": "text/plain; charset=utf-8",
    ".toml": "text/plain; charset=utf-8",
    ".ts": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".webp": "image/webp",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
INDEX_FILE = "index.html"


def content_type(path: str) -> str:
    name = path.lower()
    if name.endswith(".d.ts"):
        return CONTENT_TYPES[".ts"]
    _, ext = posixpath.splitext(name)
    return CONTENT_TYPES.get(ext, DEFAULT_CONTENT_TYPE)


@dataclass(frozen=True)
class Resolved:
    """What a request path maps to."""

    #: the file to send, or None when ``redirect`` is set
    file: str | None
    #: a directory requested without its trailing slash: redirect here (relative URLs
    #: in its index.html would otherwise resolve against the parent)
    redirect: str | None = None


def split_target(target: str) -> str | None:
    """The decoded path of a request target (query and fragment dropped), or None."""
    if not target.startswith("/") or len(target) > MAX_PATH_LENGTH * 3:
        return None
    raw = target.split("#", 1)[0].split("?", 1)[0]
    try:
        path = unquote(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        return None
    if len(path) > MAX_PATH_LENGTH or "\\" in path or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return None
    return path


def resolve(root: str, target: str) -> Resolved | None:
    """Map a request target to a file under ``root`` (an absolute, real path), or None.

    Rejected: ``..`` and ``.`` segments (also percent-encoded), backslashes, control characters, dot-files
    (``.git``, stamps), and anything whose real path (symlinks followed) leaves ``root``.
    """
    path = split_target(target)
    if path is None:
        return None
    segments = path.split("/")[1:]
    if len(segments) > MAX_PATH_SEGMENTS:
        return None
    parts: list[str] = []
    for i, seg in enumerate(segments):
        if seg == "":
            # "//" inside the path, or the trailing slash of a directory
            if i != len(segments) - 1:
                return None
            continue
        if seg in (".", "..") or seg.startswith("."):
            return None
        parts.append(seg)
    candidate = os.path.join(root, *parts) if parts else root
    real = os.path.realpath(candidate)
    if real != root and not real.startswith(root + os.sep):
        return None
    if os.path.isdir(real):
        if not path.endswith("/"):
            return Resolved(file=None, redirect=quote(path) + "/")
        real = os.path.join(real, INDEX_FILE)
    elif path.endswith("/"):
        return None
    if not os.path.isfile(real):
        return None
    return Resolved(file=real)


__all__ = ["CONTENT_TYPES", "DEFAULT_CONTENT_TYPE", "INDEX_FILE", "Resolved", "content_type", "resolve", "split_target"]
