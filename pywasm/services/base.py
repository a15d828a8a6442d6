"""The service plug-in contract.

A service is what the host runs on top of connections: identify, ping, echo, perf and
later relay, kad, pubsub ... The host knows no service by name; it only

1. calls :meth:`Service.attach` once, which registers a handler for each id in
   :attr:`Service.protocols` (wrapped so at most :attr:`Service.max_inbound_streams`
   inbound streams are handled at once: more are reset);
2. awaits :meth:`Service.start` after it listens, and :meth:`Service.stop` when it stops;
3. reports events: :meth:`on_connection`, :meth:`on_disconnect` (called synchronously:
   a service that needs to do I/O spawns a task with :meth:`spawn`), and
   :meth:`on_local_change` when our protocols or listen addresses changed.

Background tasks started with :meth:`spawn` are bounded (:attr:`max_background_tasks`)
and cancelled by :meth:`stop`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, ClassVar, Coroutine

from ..errors import PywasmError

if TYPE_CHECKING:
    from ..host.connection import Connection, HostStream
    from ..host.host import Host

log = logging.getLogger("pywasm.services")

# inbound streams one service handles at once (over all connections)
DEFAULT_MAX_INBOUND_STREAMS = 1024
# background tasks one service may have running (identify per connection, pushes ...)
DEFAULT_MAX_BACKGROUND_TASKS = 1024


class Service:
    """Base class of every service; see the module docstring for the contract."""

    #: key in ``host.services``
    name: ClassVar[str] = "service"
    #: protocol ids answered on inbound streams
    protocols: tuple[str, ...] = ()
    #: answer on limited (relayed) connections too (identify, DCUtR: yes; bulk data: no)
    allow_limited: ClassVar[bool] = False
    max_inbound_streams: int = DEFAULT_MAX_INBOUND_STREAMS
    max_background_tasks: int = DEFAULT_MAX_BACKGROUND_TASKS

    def __init__(self) -> None:
        self._host: "Host | None" = None
        self._active_streams = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def host(self) -> "Host":
        if self._host is None:
            from ..errors import ConfigError

            raise ConfigError(f"service {self.name!r} is not attached to a host")
        return self._host

    # --- lifecycle (called by the host) ---------------------------------------------------
    def attach(self, host: "Host") -> None:
        self._host = host
        for proto in self.protocols:
            host.set_stream_handler(proto, self._dispatch, allow_limited=self.allow_limited)

    async def start(self) -> None:
        """Called once the host listens; override to start timers etc."""

    async def stop(self) -> None:
        """Cancel background tasks; overrides must call ``super().stop()``."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    # --- events (synchronous; spawn for I/O) -------------------------------------------------
    def on_connection(self, conn: "Connection") -> None:
        """A new connection is up (either direction)."""

    def on_disconnect(self, conn: "Connection") -> None:
        """A connection ended."""

    def on_local_change(self) -> None:
        """Our protocols or listen addresses changed."""

    # --- inbound streams ---------------------------------------------------------------------
    async def handle(self, stream: "HostStream", conn: "Connection") -> None:
        """Serve one inbound stream of one of :attr:`protocols`."""
        await stream.reset()

    async def _dispatch(self, stream: "HostStream", conn: "Connection") -> None:
        if self._active_streams >= self.max_inbound_streams:
            log.debug("%s: %d streams in flight, refusing one from %s", self.name, self._active_streams, conn.remote_peer)
            await stream.reset()
            return
        self._active_streams += 1
        try:
            await self.handle(stream, conn)
        finally:
            self._active_streams -= 1

    # --- helpers -------------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any], what: str = "") -> asyncio.Task[Any] | None:
        """Run ``coro`` in the background; it is cancelled by :meth:`stop`.

        Returns None (and closes ``coro``) when the service is at its task limit.
        """
        if len(self._tasks) >= self.max_background_tasks:
            log.debug("%s: at %d background tasks, dropping %s", self.name, len(self._tasks), what)
            coro.close()
            return None
        task = asyncio.get_running_loop().create_task(self._guarded(coro, what))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # a task cancelled before its first step never awaits ``coro``: close it, or
        # Python warns "coroutine ... was never awaited" (closing a finished one is a no-op)
        task.add_done_callback(lambda t: coro.close() if t.cancelled() else None)
        return task

    async def _guarded(self, coro: Coroutine[Any, Any, Any], what: str) -> Any:
        try:
            return await coro
        except asyncio.CancelledError:
            raise
        except PywasmError as exc:
            log.debug("%s: %s failed: %s", self.name, what or "task", exc)
        except Exception:
            log.exception("%s: %s failed unexpectedly", self.name, what or "task")
        return None


async def run_together(*coros: Coroutine[Any, Any, Any]) -> None:
    """Run coroutines concurrently; the first failure cancels the others and is raised.

    (``asyncio.gather`` would leave the others running, with errors nobody retrieves.)
    """
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task in done and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["Service", "run_together", "DEFAULT_MAX_INBOUND_STREAMS", "DEFAULT_MAX_BACKGROUND_TASKS"]
