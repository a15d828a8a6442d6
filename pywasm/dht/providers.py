"""Provider records: who said they can serve a key, until when. Bounded three ways:
keys, providers per key (newest kept), and time (each ADD_PROVIDER lasts ``ttl``)."""

from __future__ import annotations

from collections import OrderedDict

from ..identity import PeerId
from ..multiformats.multiaddr import Multiaddr

# go-libp2p-kad-dht: provider records are valid for 48 h, republished every 22 h
DEFAULT_PROVIDER_TTL = 48 * 3600.0
DEFAULT_MAX_KEYS = 4096
DEFAULT_MAX_PROVIDERS_PER_KEY = 64
MAX_ADDRS = 16


class ProviderStore:
    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS, max_per_key: int = DEFAULT_MAX_PROVIDERS_PER_KEY, ttl: float = DEFAULT_PROVIDER_TTL) -> None:
        self.max_keys = max_keys
        self.max_per_key = max_per_key
        self.ttl = ttl
        # key -> provider -> (expiry, addrs); both levels in least-recently-added order
        self._keys: OrderedDict[bytes, OrderedDict[PeerId, tuple[float, tuple[Multiaddr, ...]]]] = OrderedDict()

    def add(self, key: bytes, provider: PeerId, addrs: tuple[Multiaddr, ...] | list[Multiaddr], now: float) -> None:
        provs = self._keys.get(key)
        if provs is None:
            provs = OrderedDict()
            self._keys[key] = provs
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        provs.pop(provider, None)
        provs[provider] = (now + self.ttl, tuple(addrs[:MAX_ADDRS]))
        while len(provs) > self.max_per_key:
            provs.popitem(last=False)

    def get(self, key: bytes, now: float) -> list[tuple[PeerId, tuple[Multiaddr, ...]]]:
        provs = self._keys.get(key)
        if not provs:
            return []
        for peer in [p for p, (exp, _) in provs.items() if exp <= now]:
            del provs[peer]
        if not provs:
            del self._keys[key]
            return []
        # newest first: the most recent announcements are the likeliest to be reachable
        return [(p, addrs) for p, (_, addrs) in reversed(provs.items())]

    def expire(self, now: float) -> int:
        removed = 0
        for key in list(self._keys):
            before = len(self._keys[key])
            removed += before - len(self.get(key, now))
        return removed

    def __len__(self) -> int:
        return sum(len(p) for p in self._keys.values())

    @property
    def key_count(self) -> int:
        return len(self._keys)


__all__ = ["ProviderStore", "DEFAULT_PROVIDER_TTL", "DEFAULT_MAX_KEYS", "DEFAULT_MAX_PROVIDERS_PER_KEY"]
