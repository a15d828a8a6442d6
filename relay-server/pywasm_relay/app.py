"""``pywasm-relay``: the native node browsers reach first (contract: docs/browser-plan.md).

* ``--listen MADDR`` (repeatable; default ``/ip4/127.0.0.1/tcp/4001``,
  ``/ip4/127.0.0.1/tcp/4002/ws`` and ``/ip4/127.0.0.1/udp/4003/quic-v1/webtransport``): a
  pywasm Host serving identify, ping, echo and perf. The WebTransport address is printed
  with its ``/certhash/...`` components (certificates in DIR/webtransport-certs.json).
  ``/ip4/127.0.0.1/udp/4004/webrtc-direct`` (also default) is printed with the
  ``/certhash/`` of its DTLS certificate (DIR/webrtc-direct-cert.pem, long-lived).
* ``--http HOST:PORT`` (default ``127.0.0.1:8080``): the site directory (``--site DIR``,
  default ``.cache/site`` built by ``scripts/build_site.sh``) plus ``GET /relay.json``.
* ``--data-dir DIR`` (default ``.cache/relay``): the identity key, kept across restarts.

stdout: the ``http://HOST:PORT/`` URL, then each listen multiaddr, one per line; logs go
to stderr. SIGINT/SIGTERM -> clean exit 0. Bad flags or a missing site: one line, exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from pywasm.cli import (
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    _multiaddr,
    _parse_args,
    _Parser,
    _run_main,
    _say,
    _setup_logging,
    _StopSignals,
)

from .http import StaticServer
from .relay_flags import add_relay_flags, relay_services

PROG = "pywasm-relay"
DEFAULT_LISTEN = (
    "/ip4/127.0.0.1/tcp/4001",
    "/ip4/127.0.0.1/tcp/4002/ws",
    "/ip4/127.0.0.1/udp/4003/quic-v1/webtransport",
    "/ip4/127.0.0.1/udp/4004/webrtc-direct",
)
DEFAULT_HTTP = "127.0.0.1:8080"
KEY_FILE_NAME = "identity.key"
#: Transports a browser can dial: what /relay.json advertises under "multiaddrs".
BROWSER_PROTOCOLS = frozenset({"ws", "wss", "webtransport", "webrtc-direct"})
#: ``--webtransport-backend`` choices (aiopquic: relay-server/pywasm_relay/webtransport_pquic.py)
WEBTRANSPORT_BACKENDS = ("aioquic", "aiopquic")

log = logging.getLogger("pywasm_relay")


class RelayError(Exception):
    """A runtime failure (e.g. the HTTP port is taken): one line on stderr, exit code 1."""


def repo_root() -> Path:
    """The checkout this package runs from (editable install), else the working directory.

    Defaults are relative to the repository so ``.venv/bin/pywasm-relay`` finds
    ``.cache/site`` wherever it is started from.
    """
    here = Path(__file__).resolve().parents[2]
    if (here / "scripts" / "build_site.sh").is_file():
        return here
    return Path.cwd()


def _http_addr(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise argparse.ArgumentTypeError(f"invalid --http {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid --http host {host!r}: expected an IP address or localhost") from None
    return host, int(port_text)


#: Connections the relay holds at once: browsers reach it first and each holds one, so
#: above a plain host's 256 (memory ~22 KiB per reserved client, benchmarks/relay_capacity.py).
DEFAULT_MAX_CONNECTIONS = 1024


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    root = repo_root()
    p = _Parser(prog=PROG, description="pywasm relay: libp2p node plus the static site for the browser demo")
    p.add_argument("--listen", action="append", type=_multiaddr, metavar="MADDR",
                   help=f"libp2p listen address (repeatable); default {', '.join(DEFAULT_LISTEN)} "
                        "(WebTransport on fixed UDP port 4003; its certificates rotate and live in the data dir)")
    p.add_argument("--http", type=_http_addr, default=_http_addr(DEFAULT_HTTP), metavar="HOST:PORT",
                   help=f"static site and /relay.json (default {DEFAULT_HTTP}; port 0 picks one)")
    p.add_argument("--site", default=str(root / ".cache" / "site"), metavar="DIR",
                   help="site directory (default .cache/site, built by scripts/build_site.sh)")
    p.add_argument("--data-dir", default=str(root / ".cache" / "relay"), metavar="DIR",
                   help=f"state directory; the identity key is DIR/{KEY_FILE_NAME} (default .cache/relay)")
    p.add_argument("--max-connections", type=_positive_int, default=DEFAULT_MAX_CONNECTIONS, metavar="N",
                   help=f"libp2p connections held at once; more are refused (default {DEFAULT_MAX_CONNECTIONS})")
    p.add_argument("--tls-cert", metavar="PEM",
                   help="certificate chain for /tls/ws (wss) listen addresses, e.g. "
                        "--listen /ip4/0.0.0.0/tcp/443/tls/ws (needs --tls-key; pages on https can only dial wss)")
    p.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    p.add_argument("--webtransport-backend", choices=WEBTRANSPORT_BACKENDS, default="aioquic",
                   help="QUIC stack of the WebTransport listener (default aioquic; aiopquic: picoquic, several "
                        "times the throughput, needs Python >= 3.12 and binds every address: docs/webtransport.md)")
    add_relay_flags(p)
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr (-vv: debug)")
    return p


def relay_info(host: Any) -> dict[str, Any]:
    """The body of ``GET /relay.json``."""
    addrs = [str(a) for a in host.addrs()]
    browser = [a for a, ma in zip(addrs, host.addrs()) if BROWSER_PROTOCOLS.intersection(ma.protocols())]
    out: dict[str, Any] = {"peerId": str(host.peer_id), "multiaddrs": browser, "listenAddrs": addrs}
    hop = host.services.get("relay-hop")
    if hop is not None:
        # what the hop holds now, and its counters since start (for operators and tests)
        out["relay"] = {"reservations": len(hop.reservations), "circuits": hop.circuits,
                        **dataclasses.asdict(hop.stats)}
    return out


async def run(args: argparse.Namespace) -> int:
    from pywasm.host.host import default_transports
    from pywasm.identity import load_or_create

    site = os.path.abspath(args.site)
    if not os.path.isdir(site):
        raise UsageError(f"{PROG}: site directory {site} not found; run `bash scripts/build_site.sh` first (or pass --site DIR)")
    listen = list(args.listen) if args.listen else [_multiaddr(a) for a in DEFAULT_LISTEN]
    # the certificate store is opened lazily, at listen time, inside the data dir made below
    transports = [*_with_tls(default_transports(), args.tls_cert, args.tls_key),
                  _webtransport_transport(args.webtransport_backend, os.path.abspath(args.data_dir))]
    transports += _webrtc_direct_transports(os.path.abspath(args.data_dir))
    for ma in listen:
        if not any(t.can_listen(ma) for t in transports):
            if ({"wss", "tls"} & set(ma.protocols())) and not args.tls_cert:
                raise UsageError(f"{PROG}: listening on {ma} needs --tls-cert and --tls-key")
            raise UsageError(f"{PROG}: no transport can listen on {ma}")
    data_dir = os.path.abspath(args.data_dir)
    try:
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{PROG}: cannot create data directory {data_dir}: {exc.strerror or exc}") from None
    key = await load_or_create(os.path.join(data_dir, KEY_FILE_NAME))

    with _StopSignals() as stop:
        await _serve(args, site, key, listen, transports, stop)
    return EXIT_OK


def _with_tls(transports: list[Any], cert: str | None, key: str | None) -> list[Any]:
    """``transports`` with the WebSocket one able to listen on /tls/ws when a certificate
    and key are given (both or neither)."""
    if cert is None and key is None:
        return transports
    if cert is None or key is None:
        raise UsageError(f"{PROG}: --tls-cert and --tls-key go together")
    from pywasm.errors import ConfigError
    from pywasm.transports.websocket import WebSocketTransport, server_tls_context

    try:
        ctx = server_tls_context(cert, key)
    except ConfigError as exc:
        raise UsageError(f"{PROG}: {exc}") from None
    return [WebSocketTransport(server_ssl_context=ctx) if isinstance(t, WebSocketTransport) else t
            for t in transports]


def _webtransport_transport(backend: str, data_dir: str) -> Any:
    if backend == "aiopquic":
        try:
            from .webtransport_pquic import PquicWebTransportListenTransport
        except ImportError as exc:
            raise UsageError(
                f"{PROG}: --webtransport-backend aiopquic needs Python >= 3.12 with aiopquic==0.6.1 "
                f"(this is Python {sys.version_info[0]}.{sys.version_info[1]}: {exc}); run `bash scripts/setup_pquic.sh` "
                "and start .cache/venv-relay-pquic/bin/pywasm-relay") from None
        return PquicWebTransportListenTransport(data_dir)
    from .webtransport import WebTransportListenTransport

    return WebTransportListenTransport(data_dir)


def _webrtc_direct_transports(data_dir: str) -> list[Any]:
    """The webrtc-direct listener (aiortc); its DTLS certificate is created at listen time
    in the data dir, so the advertised certhash survives restarts."""
    from .webrtc_direct import CERT_FILE_NAME, WebRTCDirectTransport

    return [WebRTCDirectTransport(cert_path=os.path.join(data_dir, CERT_FILE_NAME))]


def _relay_services(listen: list[Any]) -> list[Any]:
    """Default services plus the AutoNAT v2 server (browsers and nodes ask it whether
    their addresses are reachable), a Kademlia DHT server and a rendezvous server. A relay listening only on private/loopback addresses
    is a test or LAN deployment: it may then dial private addresses back."""
    from pywasm.protocols.autonat_v2_pb import ip_of, is_public_ip
    from pywasm.services import default_services
    from pywasm.services.autonat_v2 import AutoNATv2Service

    public = any((ip := ip_of(ma)) is not None and is_public_ip(ip) for ma in listen)
    # the relay answers AutoNAT requests instead of asking them
    base = [svc for svc in default_services() if svc.name != AutoNATv2Service.name]
    from pywasm.dht import KadDHT
    from pywasm.services.rendezvous import RendezvousService

    # a private/loopback relay is a LAN deployment: it serves kubo's LAN DHT protocol
    dht = KadDHT(mode="server", protocol_prefix="/ipfs" if public else "/ipfs/lan")
    from pywasm.apps.chat import TopicRelayGossipsub

    # gossipsub joined to the universal-connectivity topics (UC message ids): pages that
    # know only the relay still share one chat mesh through it
    chat = TopicRelayGossipsub()
    return [*base, AutoNATv2Service(client=False, allow_private=not public), dht, RendezvousService(server=True), chat]


async def _serve(args: argparse.Namespace, site: str, key: Any, listen: list[Any], transports: list[Any],
                 stop: _StopSignals) -> None:
    from pywasm.host import Host
    from pywasm.host.config import HostConfig

    host = await Host.create(key=key, listen=listen, transports=transports,
                             services=[*_relay_services(listen), *relay_services(args)],
                             config=HostConfig(max_connections=args.max_connections))
    http = StaticServer(site, {"/relay.json": lambda: relay_info(host)})
    try:
        http_host, http_port = args.http
        try:
            bound_host, bound_port = await http.start(http_host, http_port)
        except OSError as exc:
            raise RelayError(f"{PROG}: cannot serve HTTP on {http_host}:{http_port}: {exc.strerror or exc}") from None
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        _say(f"http://{shown}:{bound_port}/")
        for addr in host.addrs():
            _say(str(addr))
        log.info("serving %s as %s", site, host.peer_id)
        await stop.event.wait()
        log.info("signal received: stopping")
    finally:
        await http.stop()
        await host.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(build_parser(), argv)
    if args is None:
        return EXIT_USAGE
    _setup_logging(args.verbose, logging.WARNING)
    return _run_main(PROG, run(args), plain_failures=(RelayError,))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
