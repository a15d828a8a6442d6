"""The message cache (recent messages for IWANT and gossip) and the seen cache (dedup).

Both are bounded in entries, not only in time, so a flood cannot grow them without limit:
past the bound the oldest entries go first.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..identity import PeerId
    from ..protocols.pubsub_pb import MessagePB


class SeenCache:
    """Message ids seen in the last ``ttl`` seconds (insertion order = time order)."""

    __slots__ = ("ttl", "max_entries", "_entries")

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, float] = OrderedDict()

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, msg_id: bytes, now: float) -> bool:
        """Remember ``msg_id``; False if it was already there."""
        if msg_id in self._entries:
            return False
        self._entries[msg_id] = now + self.ttl
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return True

    def discard(self, msg_id: bytes) -> None:
        self._entries.pop(msg_id, None)

    def expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            msg_id, deadline = next(iter(entries.items()))
            if deadline > now:
                break
            entries.popitem(last=False)


class MessageCache:
    """``history_len`` windows of message ids, shifted once per heartbeat.

    ``get`` serves IWANT (any window); ``gossip_ids`` lists the ids of the newest
    ``gossip_len`` windows of a topic for IHAVE. Per message we count how often each
    peer asked for it, so a peer cannot make us retransmit it without end.
    """

    __slots__ = ("history_len", "gossip_len", "max_entries", "_msgs", "_windows", "_iwant_counts")

    def __init__(self, history_len: int, gossip_len: int, max_entries: int) -> None:
        self.history_len = history_len
        self.gossip_len = gossip_len
        self.max_entries = max_entries
        self._msgs: dict[bytes, "MessagePB"] = {}
        self._windows: deque[list[tuple[bytes, str]]] = deque([[]])
        self._iwant_counts: dict[bytes, dict["PeerId", int]] = {}

    def __len__(self) -> int:
        return len(self._msgs)

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._msgs

    def put(self, msg_id: bytes, msg: "MessagePB") -> None:
        if msg_id in self._msgs:
            return
        if len(self._msgs) >= self.max_entries:
            self._evict_oldest()
        self._msgs[msg_id] = msg
        self._windows[0].append((msg_id, msg.topic or ""))

    def _evict_oldest(self) -> None:
        for window in reversed(self._windows):
            while window:
                msg_id, _ = window.pop(0)
                if self._msgs.pop(msg_id, None) is not None:
                    self._iwant_counts.pop(msg_id, None)
                    return

    def get(self, msg_id: bytes) -> "MessagePB | None":
        return self._msgs.get(msg_id)

    def get_for_peer(self, msg_id: bytes, peer: "PeerId", limit: int) -> "MessagePB | None":
        """The message, unless ``peer`` asked for it ``limit`` times already."""
        msg = self._msgs.get(msg_id)
        if msg is None:
            return None
        counts = self._iwant_counts.setdefault(msg_id, {})
        n = counts.get(peer, 0) + 1
        counts[peer] = n
        return msg if n <= limit else None

    def gossip_ids(self, topic: str) -> list[bytes]:
        out: list[bytes] = []
        for i, window in enumerate(self._windows):
            if i >= self.gossip_len:
                break
            out.extend(mid for mid, t in window if t == topic and mid in self._msgs)
        return out

    def shift(self) -> None:
        self._windows.appendleft([])
        while len(self._windows) > self.history_len:
            for msg_id, _ in self._windows.pop():
                self._msgs.pop(msg_id, None)
                self._iwant_counts.pop(msg_id, None)


__all__ = ["SeenCache", "MessageCache"]
