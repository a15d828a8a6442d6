"""Pacing for keeping a relay reservation alive: exponential backoff with jitter, and a
bounded record of the attempts made.

Sans-IO: nothing here sleeps or reads a clock by itself (the caller passes the time), so
the same code runs natively and in Pyodide and tests drive it deterministically.

* :class:`Backoff`: the n-th delay after consecutive failures is drawn from
  ``[base_n * (1 - jitter), base_n]`` with ``base_n = min(initial * factor**n, maximum)``.
  With ``jitter <= 1 - 1/factor`` (0.5 for doubling) the ranges of consecutive delays
  touch but do not overlap, so delays never shrink until the cap; the jitter spreads the
  clients of a relay that restarted, instead of all of them retrying in the same instant.
* :class:`AttemptLog`: the last :data:`MAX_ATTEMPTS_KEPT` attempts (when, how long, the
  outcome, the delay chosen after a failure), for metrics and for tests that check a
  client backed off instead of hot-looping while its relay was down.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError

DEFAULT_FACTOR = 2.0
DEFAULT_JITTER = 0.5
# attempts remembered per relay: enough to see a whole outage at the default bounds
MAX_ATTEMPTS_KEPT = 64
# error text kept per attempt
MAX_ERROR_CHARS = 300


class Backoff:
    """Delays between retries; :meth:`next_delay` after a failure, :meth:`reset` after a
    success."""

    def __init__(
        self,
        initial: float,
        maximum: float,
        *,
        factor: float = DEFAULT_FACTOR,
        jitter: float = DEFAULT_JITTER,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not initial > 0:
            raise ConfigError("backoff initial delay must be positive")
        if maximum < initial:
            raise ConfigError("backoff maximum must be at least the initial delay")
        if not factor > 1:
            raise ConfigError("backoff factor must be greater than 1")
        if not 0 <= jitter < 1:
            raise ConfigError("backoff jitter must be in [0, 1)")
        self.initial = float(initial)
        self.maximum = float(maximum)
        self.factor = float(factor)
        self.jitter = float(jitter)
        self._rng = rng
        self._base = self.initial
        # failures since the last success
        self.failures = 0

    @property
    def base(self) -> float:
        """The upper bound of the next delay."""
        return self._base

    def next_delay(self) -> float:
        """The delay before the next attempt, after one more failure."""
        r = min(max(self._rng(), 0.0), 1.0)
        delay = self._base * (1.0 - self.jitter * r)
        self._base = min(self._base * self.factor, self.maximum)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self._base = self.initial
        self.failures = 0


@dataclass(frozen=True)
class Attempt:
    """One reservation attempt; times in seconds of the caller's monotonic clock."""

    started: float
    duration: float
    ok: bool
    error: str = ""
    # the pause chosen after this attempt failed (0 after a success)
    delay: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"started": self.started, "duration": self.duration, "ok": self.ok,
                "error": self.error, "delay": self.delay}


class AttemptLog:
    """The last ``maxlen`` attempts plus totals over all of them."""

    def __init__(self, maxlen: int = MAX_ATTEMPTS_KEPT) -> None:
        if maxlen < 1:
            raise ConfigError("attempt log length must be at least 1")
        self._items: deque[Attempt] = deque(maxlen=maxlen)
        self.total = 0
        self.total_failed = 0

    def record(self, started: float, ended: float, *, ok: bool, error: str = "", delay: float = 0.0) -> Attempt:
        a = Attempt(started, max(ended - started, 0.0), ok, error[:MAX_ERROR_CHARS], delay)
        self._items.append(a)
        self.total += 1
        if not ok:
            self.total_failed += 1
        return a

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Any:
        return iter(self._items)

    def since(self, t: float) -> list[Attempt]:
        """Attempts started at or after ``t``."""
        return [a for a in self._items if a.started >= t]

    def to_list(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self._items]


__all__ = ["Attempt", "AttemptLog", "Backoff", "DEFAULT_FACTOR", "DEFAULT_JITTER", "MAX_ATTEMPTS_KEPT"]
