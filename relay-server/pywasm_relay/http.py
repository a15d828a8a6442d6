"""A small asyncio HTTP/1.1 server: static files of the site directory plus JSON routes.

Only what serving the browser demo needs: GET and HEAD, keep-alive, ``ETag`` /
``If-None-Match`` revalidation. Everything is bounded: request head size, header count,
connections, requests per connection, and every read and write has a timeout, so a slow
or hostile client costs one bounded task and nothing else.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .site import content_type, resolve

log = logging.getLogger("pywasm_relay.http")

#: Request line plus headers, in bytes; larger gets 431 and the connection closes.
MAX_HEAD_BYTES = 16 * 1024
#: Header lines per request.
MAX_HEADERS = 64
#: Concurrent client connections; more are closed on arrival.
MAX_CONNECTIONS = 256
#: Requests served on one keep-alive connection before it is closed.
MAX_REQUESTS_PER_CONNECTION = 1000
#: Seconds to receive a complete request head (also the keep-alive idle timeout).
HEAD_TIMEOUT = 15.0
#: Seconds one write may wait for the client to drain its socket.
WRITE_TIMEOUT = 30.0
#: Bytes read from a file per write.
CHUNK_SIZE = 256 * 1024
SERVER_NAME = "pywasm-relay"

REASONS = {
    200: "OK",
    301: "Moved Permanently",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    505: "HTTP Version Not Supported",
}

#: A JSON route: called per request, returns the object to serialise.
JsonRoute = Callable[[], Any]


class HttpError(Exception):
    """A request that gets an error status; ``close`` ends the connection afterwards."""

    def __init__(self, status: int, message: str, close: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn


def parse_head(head: bytes) -> Request:
    """Parse a request head (up to and including the blank line); raises :class:`HttpError`."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
        raise HttpError(400, "undecodable request head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(505, f"unsupported version {version[:16]!r}")
    headers: dict[str, str] = {}
    count = 0
    for line in lines[1:]:
        if not line:
            continue
        count += 1
        if count > MAX_HEADERS:
            raise HttpError(431, "too many header fields")
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or " " in name:
            raise HttpError(400, "malformed header field")
        key = name.lower()
        value = value.strip()
        # repeated fields are joined, as RFC 9110 allows for list-valued ones
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if "transfer-encoding" in headers:
        raise HttpError(400, "request bodies are not accepted")
    length = headers.get("content-length", "0").strip()
    if not length.isdigit():
        raise HttpError(400, "bad Content-Length")
    if int(length) != 0:
        raise HttpError(413, "request bodies are not accepted")
    if version == "HTTP/1.1" and "host" not in headers:
        raise HttpError(400, "missing Host header")
    return Request(method=method, target=target, version=version, headers=headers)


class StaticServer:
    """Serves ``root`` and ``json_routes`` (exact paths) over HTTP/1.1."""

    def __init__(self, root: str, json_routes: Mapping[str, JsonRoute] | None = None) -> None:
        self.root = os.path.realpath(root)
        self.json_routes = dict(json_routes or {})
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Bind and start serving; returns the bound (host, port)."""
        self._server = await asyncio.start_server(
            self._on_client, host, port, limit=MAX_HEAD_BYTES, reuse_address=True
        )
        sock = self._server.sockets[0].getsockname()
        return str(sock[0]), int(sock[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
            except asyncio.TimeoutError:  # pragma: no cover - defensive
                pass
            self._server = None

    # ------------------------------------------------------------------ connections
    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._clients) >= MAX_CONNECTIONS or task is None:
            writer.close()
            return
        self._clients.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug in a handler must not take the server down
            log.exception("http connection failed")
        finally:
            self._clients.discard(task)
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 1.0)
            except (Exception, asyncio.CancelledError):
                pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(MAX_REQUESTS_PER_CONNECTION):
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
            except asyncio.IncompleteReadError:
                return  # client closed between requests
            except asyncio.LimitOverrunError:
                await self._send_error(writer, HttpError(431, "request head too large"), head_only=False)
                return
            except asyncio.TimeoutError:
                return  # idle keep-alive or slow client: just close
            try:
                request = parse_head(head)
            except HttpError as exc:
                await self._send_error(writer, exc, head_only=False)
                return
            keep = await self._handle(request, writer)
            if not keep:
                return

    # ------------------------------------------------------------------ requests
    async def _handle(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        head_only = request.method == "HEAD"
        keep = request.keep_alive
        if request.method not in ("GET", "HEAD"):
            await self._send(writer, 405, b"method not allowed\n", "text/plain; charset=utf-8",
                             keep, head_only, extra={"Allow": "GET, HEAD"})
            return keep
        path = request.target.split("?", 1)[0]
        route = self.json_routes.get(path)
        if route is not None:
            body = (json.dumps(route(), indent=2) + "\n").encode()
            await self._send(writer, 200, body, "application/json", keep, head_only,
                             extra={"Cache-Control": "no-store"})
            return keep
        resolved = resolve(self.root, request.target)
        if resolved is None:
            await self._send(writer, 404, b"not found\n", "text/plain; charset=utf-8", keep, head_only)
            return keep
        if resolved.redirect is not None:
            await self._send(writer, 301, b"", "text/plain; charset=utf-8", keep, head_only,
                             extra={"Location": resolved.redirect})
            return keep
        assert resolved.file is not None
        await self._send_file(writer, request, resolved.file, keep, head_only)
        return keep

    async def _send_file(self, writer: asyncio.StreamWriter, request: Request, path: str,
                         keep: bool, head_only: bool) -> None:
        try:
            f = open(path, "rb")
        except OSError:
            await self._send(writer, 404, b"not found\n", "text/plain; charset=utf-8", keep, head_only)
            return
        with f:
            st = os.fstat(f.fileno())
            etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
            headers = {
                # revalidate every time (cheap: 304), so a rebuilt site is never stale
                "Cache-Control": "no-cache",
                "ETag": etag,
                "Last-Modified": email.utils.formatdate(st.st_mtime, usegmt=True),
            }
            if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
                await self._write_head(writer, 304, None, None, keep, headers)
                return
            await self._write_head(writer, 200, content_type(path), st.st_size, keep, headers)
            if head_only:
                return
            remaining = st.st_size
            while remaining > 0:
                chunk = f.read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    raise ConnectionError("file shrank while being sent")
                remaining -= len(chunk)
                writer.write(chunk)
                await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)

    async def _send_error(self, writer: asyncio.StreamWriter, exc: HttpError, head_only: bool) -> None:
        log.debug("http error %d: %s", exc.status, exc)
        body = f"{exc}\n".encode()
        await self._send(writer, exc.status, body, "text/plain; charset=utf-8", False, head_only)

    async def _send(self, writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str,
                    keep: bool, head_only: bool, extra: Mapping[str, str] | None = None) -> None:
        await self._write_head(writer, status, ctype, len(body), keep, extra or {})
        if body and not head_only:
            writer.write(body)
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)

    async def _write_head(self, writer: asyncio.StreamWriter, status: int, ctype: str | None,
                          length: int | None, keep: bool, extra: Mapping[str, str]) -> None:
        lines = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}",
            f"Date: {email.utils.formatdate(usegmt=True)}",
            f"Server: {SERVER_NAME}",
            "X-Content-Type-Options: nosniff",
            f"Connection: {'keep-alive' if keep else 'close'}",
        ]
        if ctype is not None:
            lines.append(f"Content-Type: {ctype}")
        if length is not None:
            lines.append(f"Content-Length: {length}")
        lines.extend(f"{k}: {v}" for k, v in extra.items())
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)


__all__ = [
    "CHUNK_SIZE",
    "HEAD_TIMEOUT",
    "HttpError",
    "MAX_CONNECTIONS",
    "MAX_HEADERS",
    "MAX_HEAD_BYTES",
    "MAX_REQUESTS_PER_CONNECTION",
    "Request",
    "StaticServer",
    "WRITE_TIMEOUT",
    "parse_head",
]
