"""Services: plug-ins running on a host (see :mod:`pywasm.services.base` for the contract)."""

from __future__ import annotations

from .base import Service, run_together
from .echo import ECHO, EchoService
from .identify import IDENTIFY, IDENTIFY_PUSH, IdentifyInfo, IdentifyService
from .perf import PERF, PerfResult, PerfService
from .ping import PING, PingService, PingSession


def default_services() -> list[Service]:
    """identify, ping, echo and perf: what ``python -m pywasm listen`` serves."""
    return [IdentifyService(), PingService(), EchoService(), PerfService()]


__all__ = [
    "Service",
    "run_together",
    "default_services",
    "IdentifyService",
    "IdentifyInfo",
    "PingService",
    "PingSession",
    "EchoService",
    "PerfService",
    "PerfResult",
    "IDENTIFY",
    "IDENTIFY_PUSH",
    "PING",
    "ECHO",
    "PERF",
]
