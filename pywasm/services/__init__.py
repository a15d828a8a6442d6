"""Services: plug-ins running on a host (see :mod:`pywasm.services.base` for the contract)."""

from __future__ import annotations

from .autonat_v2 import AutoNATv2Service, CheckResult, Reachability
from .base import Service, run_together
from .dcutr import DCUtRError, DCUtRService
from .echo import ECHO, EchoService
from .identify import IDENTIFY, IDENTIFY_PUSH, IdentifyInfo, IdentifyService
from .perf import PERF, PerfResult, PerfService
from .ping import PING, PingService, PingSession


def default_services() -> list[Service]:
    """identify, ping, echo, perf, DCUtR (upgrades relayed connections to direct ones)
    and the AutoNAT v2 client: what ``python -m pywasm listen`` serves."""
    return [
        IdentifyService(),
        PingService(),
        EchoService(),
        PerfService(),
        DCUtRService(),
        AutoNATv2Service(server=False),
    ]


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
    "DCUtRService",
    "DCUtRError",
    "AutoNATv2Service",
    "CheckResult",
    "Reachability",
    "IDENTIFY",
    "IDENTIFY_PUSH",
    "PING",
    "ECHO",
    "PERF",
]
