"""Circuit relay v2 transport: ``/.../p2p/<relay>/p2p-circuit/p2p/<target>``.

* ``dial``: reach the relay (reusing a connection to it), open a ``hop`` stream, send
  ``CONNECT <target>``; after ``STATUS OK`` the hop stream *is* the raw connection. It is
  marked ``limited`` so the host upgrades it (Noise + yamux inside the relayed stream)
  into a limited :class:`~pywasm.host.connection.Connection`.
* ``listen``: ``/.../p2p/<relay>/p2p-circuit`` reserves a slot on that relay and keeps it
  refreshed (through :class:`~pywasm.services.relay_client.RelayClientService`); the
  listener's addresses are the relayed addresses, so identify announces them. A bare
  ``/p2p-circuit`` only accepts inbound relayed connections (and lists reservations made
  directly through the service).

Inbound relayed connections come from the stop handler of the relay client service,
which hands them to the handler of a circuit listener (the host's inbound path).
Pure asyncio, no sockets: the browser node uses this module unchanged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, PywasmError, TransportError
from ..identity import PeerId
from ..multiformats.multiaddr import Multiaddr
from ..protocols.circuit_pb import (
    HOP,
    HopMessage,
    HopType,
    LimitPB,
    PeerPB,
    RelayStatusError,
    Status,
    read_message,
    write_message,
)

if TYPE_CHECKING:
    from ..host.host import Host
    from ..interfaces import ConnectionHandler
    from ..services.relay_client import RelayClientService

log = logging.getLogger("pywasm.transports.circuit")

CIRCUIT = "p2p-circuit"
# A hop CONNECT answer arrives after the relay reached the target over stop: two round
# trips plus the target's own work. js-libp2p allows 30 s for the whole hop exchange.
DEFAULT_HOP_TIMEOUT = 30.0


class RelayedConnection:
    """A relayed byte stream (a hop or stop stream after ``STATUS OK``) seen as a raw
    transport connection; ``limited`` makes the host mark the upgraded connection."""

    limited = True

    def __init__(
        self,
        stream: Any,
        *,
        local_addr: Multiaddr | None,
        remote_addr: Multiaddr,
        relay: PeerId,
        limit: LimitPB | None,
    ) -> None:
        self._stream = stream
        self.local_addr = local_addr
        self.remote_addr = remote_addr
        self.relay = relay
        # what the relay said it enforces: seconds and bytes per direction, 0/None = none
        self.limit_duration = (limit.duration or 0) if limit is not None else 0
        self.limit_data = (limit.data or 0) if limit is not None else 0

    def __repr__(self) -> str:
        return f"<RelayedConnection {self.remote_addr} via {self.relay}>"

    async def read(self, max_bytes: int = -1) -> bytes:
        return await self._stream.read(max_bytes)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.write(data)

    async def close_write(self) -> None:
        await self._stream.close_write()

    async def close(self) -> None:
        await self._stream.close()

    async def reset(self) -> None:
        await self._stream.reset()


def split_circuit(addr: Multiaddr) -> tuple[Multiaddr, PeerId, PeerId | None]:
    """``.../p2p/R/p2p-circuit[/p2p/T]`` -> (relay part ending in /p2p/R, R, T or None).

    :class:`TransportError` for anything else (no relay id, chained circuits, junk after
    the target)."""
    names = addr.protocols()
    if names.count(CIRCUIT) != 1:
        raise TransportError(f"{addr} is not a single-hop relayed address")
    cut = names.index(CIRCUIT)
    parts = addr.split()
    relay_part = Multiaddr(b"".join(p.to_bytes() for p in parts[:cut])) if cut else None
    if relay_part is None or names[cut - 1] != "p2p":
        raise TransportError(f"{addr}: /p2p-circuit must follow the relay's /p2p/<id>")
    tail = names[cut + 1 :]
    if tail not in ([], ["p2p"]):
        raise TransportError(f"{addr}: only /p2p/<target> may follow /p2p-circuit")
    try:
        relay = PeerId.from_string(relay_part.peer_id() or "")
        target = PeerId.from_string(addr.peer_id() or "") if tail else None
    except PywasmError as exc:
        raise TransportError(f"{addr}: invalid peer id: {exc}") from None
    return relay_part, relay, target


def _is_listen_addr(addr: Multiaddr) -> bool:
    names = addr.protocols()
    if names == [CIRCUIT]:
        return True
    return bool(names) and names[-1] == CIRCUIT and names.count(CIRCUIT) == 1 and len(names) >= 2 and names[-2] == "p2p"


class CircuitListener:
    """One ``listen`` on the circuit transport; see the module docstring."""

    def __init__(self, transport: "CircuitTransport", handler: "ConnectionHandler", relay: Multiaddr | None) -> None:
        self._transport = transport
        self.handler = handler
        # None: the bare /p2p-circuit listener
        self.relay = relay
        self.relay_peer: PeerId | None = None
        self._closed = False

    @property
    def addrs(self) -> list[Multiaddr]:
        client = self._transport.client(required=False)
        if client is None or self._closed:
            return []
        if self.relay_peer is not None:
            return client.relayed_addrs(self.relay_peer)
        # the bare listener lists reservations no relay-specific listener owns
        owned = {lst.relay_peer for lst in self._transport.listeners if lst.relay_peer is not None}
        return [a for peer in client.reserved_relays() if peer not in owned for a in client.relayed_addrs(peer)]

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._transport._remove(self)
        client = self._transport.client(required=False)
        if client is not None and self.relay_peer is not None:
            if not any(lst.relay_peer == self.relay_peer for lst in self._transport.listeners):
                await client.release(self.relay_peer)


class CircuitTransport:
    """Dials and listens on relayed addresses; needs a
    :class:`~pywasm.services.relay_client.RelayClientService` on the same host."""

    def __init__(self, *, hop_timeout: float = DEFAULT_HOP_TIMEOUT) -> None:
        if hop_timeout <= 0:
            raise ConfigError("hop_timeout must be positive")
        self.hop_timeout = hop_timeout
        self._host: "Host | None" = None
        self.listeners: list[CircuitListener] = []

    def bind(self, host: "Host") -> None:
        self._host = host

    @property
    def host(self) -> "Host":
        if self._host is None:
            raise TransportError("the circuit transport is not bound to a host")
        return self._host

    def client(self, *, required: bool = True) -> "RelayClientService | None":
        from ..services.relay_client import RelayClientService

        host = self._host
        svc = None
        if host is not None:
            svc = next((s for s in host.services.values() if isinstance(s, RelayClientService)), None)
        if svc is None and required:
            raise TransportError("relayed addresses need the relay client service (RelayClientService) on this host")
        return svc

    # --- Transport ----------------------------------------------------------------------
    def can_dial(self, addr: Multiaddr) -> bool:
        try:
            split_circuit(addr)
        except PywasmError:
            return False
        return True

    def can_listen(self, addr: Multiaddr) -> bool:
        return _is_listen_addr(addr)

    async def dial(self, addr: Multiaddr) -> RelayedConnection:
        relay_part, relay, target = split_circuit(addr)
        if target is None:
            raise TransportError(f"cannot dial {addr}: a relayed address needs the target's /p2p/<id> at the end")
        host = self.host
        if target == host.peer_id:
            raise TransportError("cannot dial ourselves through a relay")
        if relay == target:
            raise TransportError(f"{addr}: the relay and the target are the same peer")
        # a bare /p2p/<relay> means: over whatever connection or address we know for it
        relay_conn = await host.dial(relay if relay_part.protocols() == ["p2p"] else relay_part)
        if relay_conn.limited:
            # the spec forbids relaying over a relayed connection; we never chain circuits
            raise TransportError(f"our only connection to relay {relay} is itself relayed")
        stream = await relay_conn.new_stream([HOP], timeout=self.hop_timeout)
        try:
            await write_message(stream, HopMessage(type=HopType.CONNECT, peer=PeerPB(id=target.to_bytes())), self.hop_timeout)
            reply = await read_message(stream, HopMessage, self.hop_timeout, "hop CONNECT answer")
            if reply.type != HopType.STATUS:
                raise RelayStatusError(reply.status, f"relay {relay} answered CONNECT with message type {reply.type}")
            if reply.status != Status.OK:
                raise RelayStatusError(reply.status, f"relay {relay} refused to connect us to {target}")
        except BaseException:
            try:
                await stream.reset()
            except Exception:  # noqa: BLE001 - the dial error is the one to report
                pass
            raise
        return RelayedConnection(
            stream,
            local_addr=relay_part.encapsulate(f"/{CIRCUIT}/p2p/{host.peer_id}"),
            remote_addr=relay_part.encapsulate(f"/{CIRCUIT}/p2p/{target}"),
            relay=relay,
            limit=reply.limit,
        )

    async def listen(self, addr: Multiaddr, handler: "ConnectionHandler") -> CircuitListener:
        if not _is_listen_addr(addr):
            raise TransportError(f"the circuit transport cannot listen on {addr}")
        client = self.client()
        assert client is not None
        if addr.protocols() == [CIRCUIT]:
            listener = CircuitListener(self, handler, None)
            self.listeners.append(listener)
            return listener
        relay_part = addr.decapsulate(f"/{CIRCUIT}")
        listener = CircuitListener(self, handler, relay_part)
        try:
            reservation = await client.reserve(relay_part, keep=True)
        except PywasmError as exc:
            raise TransportError(f"cannot listen on {addr}: {exc}") from None
        listener.relay_peer = reservation.relay
        self.listeners.append(listener)
        return listener

    # --- for the relay client's stop handler ---------------------------------------------
    def inbound_handler(self, relay: PeerId) -> "ConnectionHandler | None":
        """Where an inbound relayed connection via ``relay`` goes: its relay's listener,
        else the bare one, else any; None when we do not listen on circuits at all."""
        for lst in self.listeners:
            if lst.relay_peer == relay:
                return lst.handler
        for lst in self.listeners:
            if lst.relay is None:
                return lst.handler
        return self.listeners[0].handler if self.listeners else None

    def _remove(self, listener: CircuitListener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)


def find_circuit_transport(host: Any) -> CircuitTransport | None:
    return next((t for t in getattr(host, "transports", ()) if isinstance(t, CircuitTransport)), None)


__all__ = [
    "CircuitTransport",
    "CircuitListener",
    "RelayedConnection",
    "DEFAULT_HOP_TIMEOUT",
    "split_circuit",
    "find_circuit_transport",
]
