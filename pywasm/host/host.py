"""The Host: transports, the upgrade pipeline, connections, streams and services.

See docs/architecture.md ("Host API"). Structure:

* every listener hands raw connections to :meth:`Host._on_inbound`, which upgrades them
  (:class:`~pywasm.host.upgrader.Upgrader`) and registers the result;
* every connection has one accept-loop task that takes inbound streams, applies the
  limits, and runs one handler task per stream (multistream-select, then the handler);
* ``dial`` reuses a live connection to the peer, deduplicates concurrent dials to the
  same target, and turns every failure into a one-line :class:`DialError`;
* ``stop`` closes listeners, stops services, closes connections (GoAway) and cancels
  what is left, all bounded by ``HostConfig.stop_timeout``.

A peer that sends garbage only ever loses its own connection or stream: every error from
the network is caught at the connection or stream boundary, logged on the
``pywasm.host`` logger with the reason, and the node goes on serving others.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Any, Coroutine, Iterable, Mapping, Sequence

from ..errors import (
    ConfigError,
    ConnectionClosedError,
    DialError,
    PeerIdMismatchError,
    PywasmError,
    TransportError,
)
from ..identity import KeyType, PeerId, PrivateKey
from ..multiformats.multiaddr import Multiaddr
from ..interfaces import is_upgraded
from ..protocols.multistream import negotiate_inbound
from .config import HostConfig
from .connection import Connection, Direction, HostStream
from .peerstore import Peerstore
from .registry import HandlerRegistry, StreamHandler
from .upgrader import Upgrader

if TYPE_CHECKING:
    from ..interfaces import Listener, MuxedStream, MuxerFactory, RawConnection, SecurityProtocol, Transport
    from ..services.base import Service

log = logging.getLogger("pywasm.host")

DEFAULT_NATIVE_LISTEN = ("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws", "/ip4/127.0.0.1/udp/0/quic-v1")




def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _is_browser() -> bool:
    return sys.platform == "emscripten"


def default_transports() -> list["Transport"]:
    """TCP + WebSocket natively (imported only here, lazily), the JS-shim WebSocket
    (dial only) in Pyodide, memory everywhere."""
    from ..transports.memory import MemoryTransport

    transports: list[Any] = []
    if not _is_browser():
        from ..transports import default_native_transports

        transports.extend(default_native_transports())
    else:
        from ..transports.browser_websocket import BrowserWebSocketTransport

        transports.append(BrowserWebSocketTransport())
    transports.append(MemoryTransport())
    return transports


def default_muxers() -> list["MuxerFactory"]:
    from ..muxers import MplexMuxer, YamuxMuxer

    return [YamuxMuxer(), MplexMuxer()]


def default_services() -> list["Service"]:
    from ..services import default_services as make

    return make()


class Host:
    """A libp2p node. Create it with :meth:`Host.create`."""

    def __init__(
        self,
        key: PrivateKey,
        *,
        security: Sequence["SecurityProtocol"] | None = None,
        muxers: Sequence["MuxerFactory"] | None = None,
        transports: Sequence["Transport"] | None = None,
        services: Sequence["Service"] | Mapping[str, "Service"] | None = None,
        config: HostConfig | None = None,
        peerstore: Peerstore | None = None,
    ) -> None:
        if not isinstance(key, PrivateKey):
            raise ConfigError(f"key must be a pywasm.identity.PrivateKey, not {type(key).__name__}")
        self.config = config or HostConfig()
        self.private_key = key
        self.peer_id = PeerId.from_public_key(key.public_key)
        self.peerstore = peerstore or Peerstore()
        self.muxers: list[MuxerFactory] = list(muxers) if muxers is not None else default_muxers()
        if security is None:
            from ..security.noise import NoiseSecurity

            ids = [m.protocol_id for m in self.muxers]
            # offering our muxers in the Noise handshake / TLS ALPN saves a round trip when
            # the remote does the same (go-libp2p, rust-libp2p, js over TLS)
            security = [NoiseSecurity(key, ids, handshake_timeout=self.config.security_timeout)]
            if not _is_browser():
                from ..security.tls import TLSSecurity  # pyOpenSSL: native only

                security.append(TLSSecurity(key, ids, handshake_timeout=self.config.security_timeout))
        self.security = list(security)
        self.transports: list[Transport] = list(transports) if transports is not None else default_transports()
        self.upgrader = Upgrader(self.security, self.muxers, self.config)
        self.registry = HandlerRegistry()
        self.registry.on_change = self._local_changed
        # transports that secure their own connections (QUIC, WebTransport) need our key;
        # some (WebRTC signaling) also register handlers, so the registry exists first
        for transport in self.transports:
            bind = getattr(transport, "bind", None)
            if callable(bind):
                bind(self)

        if services is None:
            services = default_services()
        if isinstance(services, Mapping):
            self.services: dict[str, Service] = dict(services)
        else:
            self.services = {}
            for svc in services:
                if svc.name in self.services:
                    raise ConfigError(f"two services are named {svc.name!r}")
                self.services[svc.name] = svc

        self._listeners: list[Listener] = []
        self._conns: dict[PeerId, list[Connection]] = {}
        self._pending_upgrades = 0
        self._pending_dials: dict[Any, asyncio.Task[Connection]] = {}
        self._inbound_tasks: set[asyncio.Task[Any]] = set()  # upgrades running in listener tasks
        self._accept_tasks: set[asyncio.Task[Any]] = set()
        self._handler_tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self._stopping = False
        self._stopped = asyncio.Event()

    # ------------------------------------------------------------------ creation
    @classmethod
    async def create(
        cls,
        key: PrivateKey | None = None,
        listen: Iterable[Multiaddr | str] | None = None,
        security: Sequence["SecurityProtocol"] | None = None,
        muxers: Sequence["MuxerFactory"] | None = None,
        transports: Sequence["Transport"] | None = None,
        services: Sequence["Service"] | Mapping[str, "Service"] | None = None,
        *,
        config: HostConfig | None = None,
        peerstore: Peerstore | None = None,
    ) -> "Host":
        """Make a host, attach its services, listen on ``listen`` and start the services.

        ``listen=None`` means the platform default (loopback TCP and WebSocket natively,
        nothing in the browser); pass ``[]`` to listen nowhere.
        """
        if key is None:
            key = await PrivateKey.generate(KeyType.Ed25519)
        host = cls(
            key,
            security=security,
            muxers=muxers,
            transports=transports,
            services=services,
            config=config,
            peerstore=peerstore,
        )
        if listen is None:
            listen = [] if _is_browser() else list(DEFAULT_NATIVE_LISTEN)
        try:
            await host.start(listen)
        except BaseException:
            await host.stop()
            raise
        return host

    async def start(self, listen: Iterable[Multiaddr | str] = ()) -> None:
        if self._started:
            raise ConfigError("host already started")
        for svc in self.services.values():
            svc.attach(self)
        await self.listen(*listen)
        for svc in self.services.values():
            await svc.start()
        self._started = True

    async def __aenter__(self) -> "Host":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return f"<Host {self.peer_id} conns={len(self.connections)}>"

    # ------------------------------------------------------------------ addresses
    async def listen(self, *addrs: Multiaddr | str) -> list[Multiaddr]:
        """Listen on more addresses; returns the bound addresses (with /p2p/)."""
        if self._stopping:
            raise ConfigError("host is stopped")
        bound: list[Multiaddr] = []
        for addr in addrs:
            try:
                ma = addr if isinstance(addr, Multiaddr) else Multiaddr(addr)
            except PywasmError as exc:
                raise ConfigError(f"invalid listen address {addr!r}: {_one_line(exc)}") from None
            except TypeError:
                raise ConfigError(f"invalid listen address {addr!r}: expected a multiaddr string") from None
            transport = next((t for t in self.transports if t.can_listen(ma)), None)
            if transport is None:
                raise TransportError(f"no transport can listen on {ma}")
            listener = await transport.listen(ma, self._on_inbound)
            self._listeners.append(listener)
            bound.extend(self._with_id(a) for a in listener.addrs)
        if addrs and self._started:
            self._local_changed()
        return bound

    def _with_id(self, addr: Multiaddr) -> Multiaddr:
        return addr.encapsulate(f"/p2p/{self.peer_id}")

    def listen_addrs(self) -> list[Multiaddr]:
        """Bound addresses without /p2p/ (what identify announces)."""
        out: list[Multiaddr] = []
        for listener in self._listeners:
            out.extend(listener.addrs)
        return out

    def addrs(self) -> list[Multiaddr]:
        """Bound addresses, each ending with ``/p2p/<our id>``."""
        return [self._with_id(a) for a in self.listen_addrs()]

    # ------------------------------------------------------------------ handlers
    def set_stream_handler(self, protocol: str, handler: StreamHandler, *, allow_limited: bool = False) -> None:
        """Answer inbound streams for ``protocol`` with ``async handler(stream, conn)``;
        ``allow_limited`` also answers them on limited (relayed) connections."""
        self.registry.set(protocol, handler, allow_limited=allow_limited)

    def remove_stream_handler(self, protocol: str) -> None:
        self.registry.remove(protocol)

    def protocols(self) -> list[str]:
        return self.registry.protocols()

    def notify_local_change(self) -> None:
        """Tell the services our listen addresses or protocols changed (for transports
        whose addresses come and go, like circuit relay reservations)."""
        self._local_changed()

    def _local_changed(self) -> None:
        if not self._started or self._stopping:
            return
        for svc in list(self.services.values()):
            try:
                svc.on_local_change()
            except Exception:
                log.exception("service %s failed in on_local_change", svc.name)

    # ------------------------------------------------------------------ connections
    @property
    def connections(self) -> list[Connection]:
        return [c for conns in self._conns.values() for c in conns]

    def connections_to(self, peer: PeerId) -> list[Connection]:
        return [c for c in self._conns.get(peer, ()) if not c.is_closed]

    def is_connected(self, peer: PeerId) -> bool:
        return bool(self.connections_to(peer))

    def _connection_count(self) -> int:
        return sum(len(v) for v in self._conns.values()) + self._pending_upgrades

    async def disconnect(self, peer: PeerId) -> None:
        """Close every connection to ``peer``."""
        await asyncio.gather(*(c.close() for c in list(self._conns.get(peer, ()))), return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, Any], bucket: set[asyncio.Task[Any]]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        bucket.add(task)
        task.add_done_callback(bucket.discard)
        return task

    def _add_connection(self, conn: Connection) -> None:
        peer = conn.remote_peer
        self._conns.setdefault(peer, []).append(conn)
        self.peerstore.protect(peer)
        self.peerstore.set_public_key(peer, conn.remote_public_key)
        log.debug("connected %s %s via %s (%s, %s)", conn.direction, peer, conn.remote_addr,
                  conn.security_protocol, conn.muxer_protocol)
        self._spawn(self._accept_loop(conn), self._accept_tasks)
        for svc in list(self.services.values()):
            try:
                svc.on_connection(conn)
            except Exception:
                log.exception("service %s failed in on_connection", svc.name)

    def _remove_connection(self, conn: Connection, reason: str | None) -> None:
        conns = self._conns.get(conn.remote_peer)
        if conns is None or conn not in conns:
            return
        conns.remove(conn)
        if not conns:
            del self._conns[conn.remote_peer]
        self.peerstore.unprotect(conn.remote_peer)
        conn._mark_closed(reason)
        for svc in list(self.services.values()):
            try:
                svc.on_disconnect(conn)
            except Exception:
                log.exception("service %s failed in on_disconnect", svc.name)

    # ------------------------------------------------------------------ inbound
    async def _on_inbound(self, raw: "RawConnection") -> None:
        """Listener callback: upgrade one raw connection and register it."""
        remote = getattr(raw, "remote_addr", None)
        if self._stopping:
            await _reset_quietly(raw)
            return
        if self._connection_count() >= self.config.max_connections:
            log.warning("refusing inbound connection from %s: connection limit of %d reached",
                        remote, self.config.max_connections)
            await _reset_quietly(raw)
            return
        task = asyncio.current_task()
        if task is not None:
            self._inbound_tasks.add(task)
        self._pending_upgrades += 1
        try:
            try:
                conn = await self.upgrader.upgrade_inbound(raw)
            except PywasmError as exc:
                # the upgrader reset the raw connection already
                log.info("closed inbound connection from %s: %s", remote, _one_line(exc))
                return
        finally:
            self._pending_upgrades -= 1
            if task is not None:
                self._inbound_tasks.discard(task)
        if self._stopping:
            await conn.close()
            return
        self._add_connection(conn)

    async def _accept_loop(self, conn: Connection) -> None:
        muxed = conn.muxed
        cfg = self.config
        reason: str | None = None
        try:
            while True:
                ms = await muxed.accept_stream()
                if conn._inbound_active >= cfg.max_inbound_streams_per_connection:
                    log.debug("resetting inbound stream from %s: %d streams in flight on this connection",
                              conn.remote_peer, conn._inbound_active)
                    await _reset_quietly(ms)
                    continue
                if len(self._handler_tasks) >= cfg.max_handler_tasks:
                    log.warning("resetting inbound stream from %s: %d handler tasks running",
                                conn.remote_peer, len(self._handler_tasks))
                    await _reset_quietly(ms)
                    continue
                conn._inbound_active += 1
                self._spawn(self._handle_stream(conn, ms), self._handler_tasks)
        except ConnectionClosedError:
            pass
        except asyncio.CancelledError:
            reason = "host stopped"
            raise
        except Exception as exc:  # a muxer bug must not take the node down
            reason = _one_line(exc)
            log.exception("accept loop for %s failed", conn.remote_peer)
        finally:
            error = getattr(muxed, "error", None)
            if reason is None and error is not None:
                reason = _one_line(error)
            if reason is not None and not self._stopping:
                log.info("connection to %s (%s) closed: %s", conn.remote_peer, conn.remote_addr, reason)
            else:
                log.debug("connection to %s closed", conn.remote_peer)
            if not muxed.is_closed:
                try:
                    await asyncio.wait_for(muxed.close(), cfg.stop_timeout)
                except BaseException:
                    pass
            self._remove_connection(conn, reason)

    async def _handle_stream(self, conn: Connection, ms: "MuxedStream") -> None:
        stream: HostStream | None = None
        try:
            try:
                proto, reader = await negotiate_inbound(
                    ms, self.registry.protocols(limited=conn.limited),
                    timeout=self.config.stream_negotiation_timeout,
                )
            except PywasmError as exc:
                log.debug("inbound stream from %s: negotiation failed: %s", conn.remote_peer, _one_line(exc))
                await _reset_quietly(ms)
                return
            handler = self.registry.get(proto)
            if handler is None:  # removed while we negotiated
                await _reset_quietly(ms)
                return
            stream = HostStream(ms, proto, reader, conn, Direction.INBOUND)
            conn._streams.add(stream)
            try:
                await handler(stream, conn)
            except asyncio.CancelledError:
                await _reset_quietly(stream)
                raise
            except PywasmError as exc:
                log.debug("handler for %s (peer %s) ended: %s", proto, conn.remote_peer, _one_line(exc))
                await _reset_quietly(stream)
            except Exception:
                log.exception("handler for %s (peer %s) raised; resetting the stream", proto, conn.remote_peer)
                await _reset_quietly(stream)
        finally:
            conn._inbound_active -= 1

    # ------------------------------------------------------------------ dialing
    async def dial(self, target: Any, *, timeout: float | None = None) -> Connection:
        """Connect to ``target`` (Multiaddr, str, PeerId or Connection), reusing a live
        connection to the same peer. Failures raise :class:`DialError` with a one-line
        reason."""
        if isinstance(target, Connection):
            if not target.is_closed:
                return target
            target = target.remote_peer
        if isinstance(target, PeerId):
            return await self._dedup(target, lambda: self._dial_peer(target, timeout))
        if isinstance(target, (str, Multiaddr)):
            try:
                ma = target if isinstance(target, Multiaddr) else Multiaddr(target)
            except PywasmError as exc:
                raise DialError(f"invalid multiaddr {str(target)[:200]!r}: {_one_line(exc)}") from None
            peer: PeerId | None = None
            text = ma.peer_id()
            if text is not None:
                try:
                    peer = PeerId.from_string(text)
                except PywasmError as exc:
                    raise DialError(f"invalid peer id in {ma}: {_one_line(exc)}") from None
                existing = self._best_connection(peer)
                # a limited (relayed) connection does not answer a dial to a direct
                # address: that dial is how DCUtR and apps get off the relay
                relayed_addr = ma.has_protocol("p2p-circuit") and not ma.has_protocol("webrtc")
                if existing is not None and (not existing.limited or relayed_addr):
                    return existing
            key = peer if peer is not None else ma
            return await self._dedup(key, lambda: self._dial_addr(ma, peer, timeout))
        raise DialError(f"cannot dial a {type(target).__name__}: pass a Multiaddr, str, PeerId or Connection")

    async def dial_address(
        self, addr: Multiaddr | str, *, timeout: float | None = None, simultaneous_open: float | None = None
    ) -> Connection:
        """Dial exactly ``addr`` now: no reuse of a live connection and no joining a dial
        in progress to the same peer. For transports that build a connection on top of
        another one (WebRTC signals over a relayed connection while the host's dial to
        that peer is still running) and for hole punching; applications want :meth:`dial`.

        ``simultaneous_open``: a hole-punching dial that may meet the peer's own dial as
        one connection; the upgrade first listens this many seconds for the peer to act
        as the dialer and takes the listener's roles if it does (see
        :mod:`pywasm.host.upgrader`). The connection stays ``outbound`` either way."""
        ma = addr if isinstance(addr, Multiaddr) else Multiaddr(addr)
        text = ma.peer_id()
        peer = PeerId.from_string(text) if text is not None and ma.protocols()[-1:] == ["p2p"] else None
        return await self._dial_addr(ma, peer, timeout, simultaneous_open)

    def _best_connection(self, peer: PeerId) -> Connection | None:
        conns = self.connections_to(peer)
        # a direct connection beats a relayed (limited) one
        for conn in conns:
            if not conn.limited:
                return conn
        return conns[0] if conns else None

    async def _dedup(self, key: Any, make: Any) -> Connection:
        """Concurrent dials to one peer (or address) share one attempt."""
        task = self._pending_dials.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(make())
            self._pending_dials[key] = task

            def done(t: asyncio.Task[Connection], key: Any = key) -> None:
                if self._pending_dials.get(key) is t:
                    del self._pending_dials[key]
                if not t.cancelled():
                    t.exception()  # mark retrieved: a waiter may have been cancelled

            task.add_done_callback(done)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled() and not self._stopping:
                raise DialError("dial was cancelled") from None
            raise

    async def _dial_peer(self, peer: PeerId, timeout: float | None) -> Connection:
        if peer == self.peer_id:
            raise DialError("cannot dial ourselves")
        existing = self._best_connection(peer)
        if existing is not None:
            return existing
        addrs = [a for a in self.peerstore.addrs(peer) if any(t.can_dial(a) for t in self.transports)]
        addrs = addrs[: self.config.max_dial_addrs]
        if not addrs:
            raise DialError(f"no dialable addresses known for peer {peer}")
        errors: list[str] = []
        for addr in addrs:
            try:
                return await self._dial_addr(addr, peer, timeout)
            except DialError as exc:
                errors.append(_one_line(exc))
        raise DialError(f"cannot dial peer {peer}: " + "; ".join(errors))

    async def _dial_addr(
        self, ma: Multiaddr, peer: PeerId | None, timeout: float | None, simultaneous_open: float | None = None
    ) -> Connection:
        if self._stopping:
            raise DialError("host is stopped")
        if peer is not None and peer == self.peer_id:
            raise DialError("cannot dial ourselves")
        if self._connection_count() >= self.config.max_connections:
            raise DialError(f"cannot dial {ma}: connection limit of {self.config.max_connections} reached")
        # only a trailing /p2p/<id> is the peer's: in .../p2p/<relay>/p2p-circuit it is the relay's
        transport_addr = ma.without_peer_id() if peer is not None and ma.protocols()[-1:] == ["p2p"] else ma
        transport = next((t for t in self.transports if t.can_dial(transport_addr)), None)
        if transport is None:
            raise DialError(f"cannot dial {ma}: no transport for this address")
        # a self-securing transport (QUIC, WebTransport, circuit) gets the whole address
        # so its handshake can reject a wrong /p2p id itself, as go does
        dial_target = ma if callable(getattr(transport, "bind", None)) else transport_addr
        # a relayed address (from the peerstore) lacks its target: the circuit transport needs it
        if peer is not None and dial_target.protocols()[-1:] == ["p2p-circuit"]:
            dial_target = dial_target.encapsulate(f"/p2p/{peer}")
        limit = timeout if timeout is not None else self.config.dial_timeout
        self._pending_upgrades += 1
        try:
            try:
                conn = await asyncio.wait_for(self._connect(transport, dial_target, peer, simultaneous_open), limit)
            except PeerIdMismatchError as exc:
                raise DialError(f"cannot dial {ma}: wrong peer: {_one_line(exc)}") from None
            except PywasmError as exc:
                raise DialError(f"cannot dial {ma}: {_one_line(exc)}") from None
            except asyncio.TimeoutError:
                raise DialError(f"cannot dial {ma}: timed out after {limit:g} s") from None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise DialError(f"cannot dial {ma}: {type(exc).__name__}: {_one_line(exc)}") from None
        finally:
            self._pending_upgrades -= 1
        if self._stopping:
            await conn.close()
            raise DialError("host is stopped")
        # remember where this peer was reachable, for dial-by-id later
        self.peerstore.add_addrs(conn.remote_peer, [transport_addr])
        self._add_connection(conn)
        return conn

    async def _connect(
        self, transport: "Transport", addr: Multiaddr, peer: PeerId | None, simultaneous_open: float | None = None
    ) -> Connection:
        raw = await transport.dial(addr)
        if simultaneous_open is None:
            return await self.upgrader.upgrade_outbound(raw, peer)
        return await self.upgrader.upgrade_outbound(raw, peer, simultaneous_open=simultaneous_open)

    # ------------------------------------------------------------------ streams
    async def new_stream(
        self,
        target: Any,
        protocols: Sequence[str] | str,
        *,
        timeout: float | None = None,
        allow_limited: bool = False,
    ) -> HostStream:
        """Open a stream to ``target`` and agree on one of ``protocols``;
        ``stream.protocol`` says which. Limited (relayed) connections are used only with
        ``allow_limited``."""
        if isinstance(protocols, str):
            protocols = [protocols]
        conn = await self.dial(target)
        return await conn.new_stream(protocols, timeout, allow_limited=allow_limited)

    # ------------------------------------------------------------------ shutdown
    @property
    def is_stopped(self) -> bool:
        return self._stopping

    async def stop(self) -> None:
        """Close listeners and connections, stop services, cancel tasks; bounded by
        ``HostConfig.stop_timeout`` (then whatever is left is cancelled)."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        try:
            try:
                await asyncio.wait_for(self._stop_gracefully(), self.config.stop_timeout)
            except asyncio.TimeoutError:
                log.warning("graceful stop took longer than %g s; cancelling the rest", self.config.stop_timeout)
            except Exception:
                log.exception("error while stopping the host")
            leftovers = [
                *self._pending_dials.values(),
                *self._inbound_tasks,
                *self._accept_tasks,
                *self._handler_tasks,
            ]
            current = asyncio.current_task()
            leftovers = [t for t in leftovers if t is not current and not t.done()]
            for t in leftovers:
                t.cancel()
            if leftovers:
                await asyncio.wait(leftovers, timeout=self.config.stop_timeout)
        finally:
            self._stopped.set()

    async def _stop_gracefully(self) -> None:
        listeners, self._listeners = self._listeners, []
        await asyncio.gather(*(_close_quietly(lst) for lst in listeners))
        for svc in reversed(list(self.services.values())):
            try:
                await svc.stop()
            except Exception:
                log.exception("service %s failed to stop", svc.name)
        # upgrades in flight would only produce connections we close at once
        for t in list(self._inbound_tasks) + list(self._pending_dials.values()):
            t.cancel()
        await asyncio.gather(*(c.close() for c in self.connections), return_exceptions=True)
        # the accept loops end by themselves once their muxer is closed
        tasks = [t for t in self._accept_tasks | self._handler_tasks if not t.done()]
        if tasks:
            await asyncio.wait(tasks)


async def _reset_quietly(stream: Any) -> None:
    try:
        if is_upgraded(stream):
            # an already-upgraded connection (QUIC, WebTransport) closes as a whole
            await stream.muxed.close()
        else:
            await stream.reset()
    except Exception:  # noqa: BLE001 - resetting is the last thing we do with it
        pass


async def _close_quietly(obj: Any) -> None:
    try:
        await obj.close()
    except Exception:  # noqa: BLE001
        log.debug("closing %r failed", obj, exc_info=True)


__all__ = ["Host", "DEFAULT_NATIVE_LISTEN", "default_transports", "default_muxers", "default_services"]
