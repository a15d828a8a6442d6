"""``pywasm-relay`` flags for the circuit relay v2 hop service (every limit configurable).

Defaults are :class:`pywasm.services.relay_hop.RelayLimits`'s (go-libp2p's relay
resources): 1 h reservations, 128 in total and 8 per IP, circuits of 2 min and 128 KiB
per direction, 16 per peer.
"""

from __future__ import annotations

import argparse
from typing import Any

from pywasm.errors import ConfigError
from pywasm.services.relay_hop import RelayHopService, RelayLimits

_DEFAULTS = RelayLimits()

# flag -> (RelayLimits field, type, help)
_FLAGS: dict[str, tuple[str, Any, str]] = {
    "--relay-reservation-ttl": ("reservation_ttl", float, "seconds a reservation lasts"),
    "--relay-max-reservations": ("max_reservations", int, "reservations held at once"),
    "--relay-max-reservations-per-ip": ("max_reservations_per_ip", int, "reservations from one IP address"),
    "--relay-max-circuits": ("max_circuits", int, "relayed connections open at once"),
    "--relay-max-circuits-per-peer": ("max_circuits_per_peer", int, "relayed connections one peer is part of"),
    "--relay-circuit-duration": ("circuit_duration", float, "seconds a relayed connection may last (0: no limit)"),
    "--relay-circuit-data": ("circuit_data", int, "bytes per direction a relayed connection may move (0: no limit)"),
}


def add_relay_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-relay", dest="relay", action="store_false",
                        help="do not serve circuit relay v2 (hop); served by default")
    for flag, (name, kind, text) in _FLAGS.items():
        default = getattr(_DEFAULTS, name)
        parser.add_argument(flag, dest=f"relay_{name}", type=kind, default=default, metavar="N",
                            help=f"{text} (default {default:g})")


def relay_limits(args: argparse.Namespace) -> RelayLimits:
    """The limits from the flags; :class:`ConfigError` naming the flag when one is bad."""
    values = {name: getattr(args, f"relay_{name}") for name, _, _ in _FLAGS.values()}
    try:
        return RelayLimits(**values)
    except ConfigError as exc:
        raise ConfigError(f"--{exc}".replace("--relay ", "--relay-", 1)) from None


def relay_services(args: argparse.Namespace) -> list[Any]:
    if not getattr(args, "relay", True):
        return []
    return [RelayHopService(relay_limits(args))]


__all__ = ["add_relay_flags", "relay_limits", "relay_services"]
