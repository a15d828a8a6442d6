"""What the host knows about other peers: addresses, keys, protocols, agent.

Bounded in every direction (peers, addresses per peer, protocols per peer) because
identify fills it from network input. Peers are kept in least-recently-used order; when
full, the least recently touched peer that is not protected (the host protects peers it
is connected to) is forgotten.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable

from ..identity import PeerId, PublicKey
from ..multiformats.multiaddr import Multiaddr

DEFAULT_MAX_PEERS = 1024
DEFAULT_MAX_ADDRS_PER_PEER = 32
DEFAULT_MAX_PROTOCOLS_PER_PEER = 256
# agent/protocol version strings longer than this are cut (they are only informative)
MAX_VERSION_LEN = 256


@dataclass
class PeerRecord:
    """Everything known about one peer."""

    peer_id: PeerId
    # insertion-ordered set: the first addresses learnt are tried first
    addrs: dict[Multiaddr, None] = field(default_factory=dict)
    public_key: PublicKey | None = None
    protocols: list[str] = field(default_factory=list)
    agent_version: str | None = None
    protocol_version: str | None = None
    # what the peer told us it sees as our address
    observed_addr: Multiaddr | None = None
    # the newest verified signed peer record (RFC 0003 envelope bytes), its sequence
    # number and addresses: the certified source other protocols (PX, DHT) pass on
    signed_record: bytes | None = None
    signed_record_seq: int = -1
    certified_addrs: list[Multiaddr] = field(default_factory=list)


class Peerstore:
    def __init__(
        self,
        max_peers: int = DEFAULT_MAX_PEERS,
        max_addrs_per_peer: int = DEFAULT_MAX_ADDRS_PER_PEER,
        max_protocols_per_peer: int = DEFAULT_MAX_PROTOCOLS_PER_PEER,
    ) -> None:
        self.max_peers = max_peers
        self.max_addrs_per_peer = max_addrs_per_peer
        self.max_protocols_per_peer = max_protocols_per_peer
        self._peers: OrderedDict[PeerId, PeerRecord] = OrderedDict()
        self._protected: dict[PeerId, int] = {}

    # --- records -----------------------------------------------------------------------
    def get(self, peer: PeerId) -> PeerRecord | None:
        return self._peers.get(peer)

    def _record(self, peer: PeerId) -> PeerRecord:
        rec = self._peers.get(peer)
        if rec is None:
            rec = PeerRecord(peer)
            self._peers[peer] = rec
            self._evict()
        else:
            self._peers.move_to_end(peer)
        return rec

    def _evict(self) -> None:
        if len(self._peers) <= self.max_peers:
            return
        for pid in list(self._peers):
            if len(self._peers) <= self.max_peers:
                return
            if pid not in self._protected:
                del self._peers[pid]

    def peers(self) -> list[PeerId]:
        return list(self._peers)

    def remove(self, peer: PeerId) -> None:
        self._peers.pop(peer, None)

    def __contains__(self, peer: object) -> bool:
        return peer in self._peers

    def __len__(self) -> int:
        return len(self._peers)

    # --- protection (connected peers are not evicted) -------------------------------------
    def protect(self, peer: PeerId) -> None:
        self._protected[peer] = self._protected.get(peer, 0) + 1

    def unprotect(self, peer: PeerId) -> None:
        count = self._protected.get(peer, 0) - 1
        if count <= 0:
            self._protected.pop(peer, None)
        else:
            self._protected[peer] = count

    # --- signed peer records -------------------------------------------------------------
    def set_signed_record(self, peer: PeerId, envelope: bytes, seq: int, addrs: Iterable[Multiaddr]) -> bool:
        """Keep a peer record the caller verified (signature and signer == ``peer``).

        Only a newer sequence number replaces the stored one (RFC 0003); its addresses
        are added to the address book first. Returns whether it was stored.
        """
        rec = self._record(peer)
        if seq <= rec.signed_record_seq:
            return False
        certified = list(addrs)[: self.max_addrs_per_peer]
        rec.signed_record = bytes(envelope)
        rec.signed_record_seq = seq
        rec.certified_addrs = certified
        # certified addresses go first: they are the ones the peer vouches for
        rest = [a for a in rec.addrs if a not in certified]
        rec.addrs = {}
        self.add_addrs(peer, [*certified, *rest])
        return True

    def signed_record(self, peer: PeerId) -> bytes | None:
        """The newest verified signed peer record of ``peer`` (envelope bytes), if any."""
        rec = self._peers.get(peer)
        return rec.signed_record if rec is not None else None

    def certified_addrs(self, peer: PeerId) -> list[Multiaddr]:
        rec = self._peers.get(peer)
        return list(rec.certified_addrs) if rec is not None else []

    # --- addresses -------------------------------------------------------------------------
    def add_addrs(self, peer: PeerId, addrs: Iterable[Multiaddr | str]) -> None:
        rec = self._record(peer)
        for addr in addrs:
            ma = addr if isinstance(addr, Multiaddr) else Multiaddr(addr)
            # store transport addresses only: the peer id is the key already. Only a
            # trailing /p2p/<id> goes: in .../p2p/<relay>/p2p-circuit the id is the relay's
            if ma.protocols()[-1:] == ["p2p"]:
                ma = ma.without_peer_id()
            if not ma or ma in rec.addrs:
                continue
            if len(rec.addrs) >= self.max_addrs_per_peer:
                # drop the oldest: newer information (identify) is more likely current
                del rec.addrs[next(iter(rec.addrs))]
            rec.addrs[ma] = None

    def set_addrs(self, peer: PeerId, addrs: Iterable[Multiaddr | str]) -> None:
        self._record(peer).addrs.clear()
        self.add_addrs(peer, addrs)

    def addrs(self, peer: PeerId) -> list[Multiaddr]:
        rec = self._peers.get(peer)
        return list(rec.addrs) if rec is not None else []

    # --- keys, protocols, versions -----------------------------------------------------------
    def set_public_key(self, peer: PeerId, key: PublicKey) -> None:
        self._record(peer).public_key = key

    def public_key(self, peer: PeerId) -> PublicKey | None:
        rec = self._peers.get(peer)
        if rec is not None and rec.public_key is not None:
            return rec.public_key
        # identity-multihash peer ids carry their key
        return peer.public_key()

    def set_protocols(self, peer: PeerId, protocols: Iterable[str]) -> None:
        unique = list(dict.fromkeys(protocols))[: self.max_protocols_per_peer]
        self._record(peer).protocols = unique

    def protocols(self, peer: PeerId) -> list[str]:
        rec = self._peers.get(peer)
        return list(rec.protocols) if rec is not None else []

    def supports(self, peer: PeerId, protocol: str) -> bool:
        rec = self._peers.get(peer)
        return rec is not None and protocol in rec.protocols

    def set_versions(
        self, peer: PeerId, agent_version: str | None, protocol_version: str | None
    ) -> None:
        rec = self._record(peer)
        if agent_version is not None:
            rec.agent_version = agent_version[:MAX_VERSION_LEN]
        if protocol_version is not None:
            rec.protocol_version = protocol_version[:MAX_VERSION_LEN]

    def set_observed_addr(self, peer: PeerId, addr: Multiaddr | None) -> None:
        self._record(peer).observed_addr = addr


__all__ = [
    "Peerstore",
    "PeerRecord",
    "DEFAULT_MAX_PEERS",
    "DEFAULT_MAX_ADDRS_PER_PEER",
    "DEFAULT_MAX_PROTOCOLS_PER_PEER",
]
