"""Transports: byte pipes between peers, before any security or multiplexing.

``tcp``, ``websocket`` and ``quic`` are native-only (asyncio sockets, ``websockets``, ``aioquic``);
``memory`` runs everywhere. Nothing native is imported here: importing
``pywasm.transports`` inside Pyodide must stay free of socket servers and ``websockets``,
so the native transports are loaded only when :func:`default_native_transports` (or their
own module) is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..interfaces import Transport


def default_native_transports() -> list["Transport"]:
    """The transports a native node dials and listens with: TCP, WebSocket, QUIC-v1, and
    WebTransport (dial only; pywasm-relay has the listener)."""
    from .quic import QuicTransport  # aioquic: native only
    from .tcp import TCPTransport
    from .webtransport_native import NativeWebTransportTransport
    from .websocket import WebSocketTransport

    # WebTransport before QUIC: its addresses are QUIC addresses with more after them
    return [TCPTransport(), WebSocketTransport(), NativeWebTransportTransport(), QuicTransport()]


__all__ = ["default_native_transports"]
