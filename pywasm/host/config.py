"""Host configuration: every timeout and limit of the host in one dataclass.

Each default is a named constant so it shows up in docs, config and metrics; the host
reads nothing from the environment.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

# --- timeouts (seconds) ---------------------------------------------------------------
# multistream-select of the security protocol on a raw connection
DEFAULT_SECURITY_NEGOTIATION_TIMEOUT = 10.0
# the security handshake itself (Noise XX: 1.5 round trips plus signatures)
DEFAULT_SECURITY_TIMEOUT = 10.0
# multistream-select of the muxer (skipped when Noise agreed an early muxer)
DEFAULT_MUXER_TIMEOUT = 10.0
# multistream-select on every new stream, both directions
DEFAULT_STREAM_NEGOTIATION_TIMEOUT = 10.0
# a whole dial: transport connect + every upgrade step, per address tried
DEFAULT_DIAL_TIMEOUT = 30.0
# stop(): how long closing connections and stopping services may take in total
DEFAULT_STOP_TIMEOUT = 5.0

# --- limits -----------------------------------------------------------------------------
# open connections (both directions, including those still upgrading)
DEFAULT_MAX_CONNECTIONS = 256
# inbound streams a single connection may have in flight (negotiating or being handled)
DEFAULT_MAX_INBOUND_STREAMS_PER_CONNECTION = 256
# stream handler tasks running at once over all connections
DEFAULT_MAX_HANDLER_TASKS = 4096
# addresses tried when dialing a peer by id
DEFAULT_MAX_DIAL_ADDRS = 16


@dataclass
class HostConfig:
    """Timeouts (seconds) and limits of a :class:`~pywasm.host.Host`."""

    security_negotiation_timeout: float = DEFAULT_SECURITY_NEGOTIATION_TIMEOUT
    security_timeout: float = DEFAULT_SECURITY_TIMEOUT
    muxer_timeout: float = DEFAULT_MUXER_TIMEOUT
    stream_negotiation_timeout: float = DEFAULT_STREAM_NEGOTIATION_TIMEOUT
    dial_timeout: float = DEFAULT_DIAL_TIMEOUT
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_inbound_streams_per_connection: int = DEFAULT_MAX_INBOUND_STREAMS_PER_CONNECTION
    max_handler_tasks: int = DEFAULT_MAX_HANDLER_TASKS
    max_dial_addrs: int = DEFAULT_MAX_DIAL_ADDRS
    # agent string sent by identify
    agent_version: str = "pywasm/0.1.0"

    def __post_init__(self) -> None:
        for name in (
            "security_negotiation_timeout",
            "security_timeout",
            "muxer_timeout",
            "stream_negotiation_timeout",
            "dial_timeout",
            "stop_timeout",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"HostConfig.{name} must be a positive number of seconds, not {value!r}")
        for name in (
            "max_connections",
            "max_inbound_streams_per_connection",
            "max_handler_tasks",
            "max_dial_addrs",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"HostConfig.{name} must be a positive integer, not {value!r}")


__all__ = [
    "HostConfig",
    "DEFAULT_SECURITY_NEGOTIATION_TIMEOUT",
    "DEFAULT_SECURITY_TIMEOUT",
    "DEFAULT_MUXER_TIMEOUT",
    "DEFAULT_STREAM_NEGOTIATION_TIMEOUT",
    "DEFAULT_DIAL_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_INBOUND_STREAMS_PER_CONNECTION",
    "DEFAULT_MAX_HANDLER_TASKS",
    "DEFAULT_MAX_DIAL_ADDRS",
]
