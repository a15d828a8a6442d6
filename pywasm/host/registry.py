"""Protocol-handler registry: which protocol ids this node answers on inbound streams."""

from __future__ import annotations

from typing import TYPE_CHECKING, Awaitable, Callable

from ..errors import ConfigError
from ..protocols.multistream import MAX_PROTOCOL_LEN

if TYPE_CHECKING:
    from .connection import Connection, HostStream

StreamHandler = Callable[["HostStream", "Connection"], Awaitable[None]]

# More handlers than this is a bug in the caller (identify would announce them all).
DEFAULT_MAX_HANDLERS = 512


class HandlerRegistry:
    """Maps protocol ids to handlers, in registration order, and reports changes."""

    def __init__(self, max_handlers: int = DEFAULT_MAX_HANDLERS) -> None:
        self._handlers: dict[str, StreamHandler] = {}
        # protocols that also run on limited (relayed) connections
        self._limited_ok: set[str] = set()
        self._max = max_handlers
        # called after every change (identify-push subscribes through the host)
        self.on_change: Callable[[], None] | None = None

    def set(self, protocol: str, handler: StreamHandler, *, allow_limited: bool = False) -> None:
        """Register ``handler``; ``allow_limited`` lets it run on limited (relayed)
        connections too, whose data and time budget a relay caps."""
        if not isinstance(protocol, str) or not protocol or "\n" in protocol:
            raise ConfigError(f"invalid protocol id {protocol!r}: a non-empty line of text is required")
        if len(protocol.encode("utf-8")) > MAX_PROTOCOL_LEN:
            raise ConfigError(f"protocol id longer than {MAX_PROTOCOL_LEN} bytes: {protocol[:60]!r}...")
        if not callable(handler):
            raise ConfigError(f"handler for {protocol!r} is not callable")
        if protocol not in self._handlers and len(self._handlers) >= self._max:
            raise ConfigError(f"too many protocol handlers (limit {self._max})")
        changed = protocol not in self._handlers
        self._handlers[protocol] = handler
        if allow_limited:
            self._limited_ok.add(protocol)
        else:
            self._limited_ok.discard(protocol)
        if changed:
            self._changed()

    def remove(self, protocol: str) -> bool:
        if self._handlers.pop(protocol, None) is None:
            return False
        self._limited_ok.discard(protocol)
        self._changed()
        return True

    def get(self, protocol: str) -> StreamHandler | None:
        return self._handlers.get(protocol)

    def protocols(self, *, limited: bool = False) -> list[str]:
        """Registered protocol ids; with ``limited``, only those allowed on limited connections."""
        if limited:
            return [p for p in self._handlers if p in self._limited_ok]
        return list(self._handlers)

    def __contains__(self, protocol: object) -> bool:
        return protocol in self._handlers

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


__all__ = ["HandlerRegistry", "StreamHandler", "DEFAULT_MAX_HANDLERS"]
