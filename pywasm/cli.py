"""Command line: ``python -m pywasm listen|ping|perf|id`` (also the ``pywasm`` script).

Contract (scripts and interop checks rely on it):

* ``listen [--listen MADDR]... [--key FILE]``: prints each full listen address (ending in
  ``/p2p/<id>``) on its own stdout line, then serves identify, ping, echo and perf until
  SIGINT/SIGTERM, and exits 0. Logs go to stderr only.
* ``ping MADDR [--count N]``: one RTT line per ping on stdout, exit 0; on failure one
  line on stderr saying why, exit 1.
* ``perf MADDR --upload BYTES --download BYTES``: one JSON object on stdout.
* ``id [--key FILE]``: prints the peer id; creates the key file (atomically, mode 0600)
  when it does not exist.

Bad flags or configuration: one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import signal
import sys
from typing import Any, Coroutine, NoReturn, Sequence

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

log = logging.getLogger("pywasm.cli")

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class UsageError(Exception):
    """Bad flag or configuration: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse prints the usage block too; the contract is one line
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _byte_count(text: str) -> int:
    """``1048576``, ``64k``, ``1MiB``, ``2G`` (binary units)."""
    m = _SIZE_RE.match(text)
    if m is None:
        raise argparse.ArgumentTypeError(f"invalid byte count {text!r} (use e.g. 1048576, 64KiB, 1M)")
    value = int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
    if value >= 1 << 64:
        raise argparse.ArgumentTypeError(f"byte count {text!r} does not fit in 64 bits")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected a positive integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: expected a positive integer")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"invalid timeout {text!r}: expected seconds > 0")
    return value


def _multiaddr(text: str) -> Any:
    from .errors import PywasmError
    from .multiformats.multiaddr import Multiaddr

    try:
        return Multiaddr(text)
    except PywasmError as exc:
        raise argparse.ArgumentTypeError(f"invalid multiaddr {text!r}: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pywasm", description="pywasm: libp2p in pure Python")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr (-vv: debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{listen,ping,perf,id}")

    p = sub.add_parser("listen", help="listen and serve identify, ping, echo and perf")
    p.add_argument(
        "--listen",
        action="append",
        type=_multiaddr,
        metavar="MADDR",
        help="address to listen on (repeatable); default /ip4/127.0.0.1/tcp/0, /ip4/127.0.0.1/tcp/0/ws and /ip4/127.0.0.1/udp/0/quic-v1",
    )
    p.add_argument("--key", metavar="FILE", help="identity key file (created when missing); default: a fresh key")
    p.add_argument("-v", "--verbose", action="count", default=0, dest="sub_verbose", help=argparse.SUPPRESS)

    p = sub.add_parser("ping", help="ping a peer")
    p.add_argument("addr", type=_multiaddr, metavar="MADDR")
    p.add_argument("--count", "-c", type=_positive_int, default=3, help="number of pings (default 3)")
    p.add_argument("--timeout", type=_positive_float, default=10.0, help="seconds per ping (default 10)")
    p.add_argument("-v", "--verbose", action="count", default=0, dest="sub_verbose", help=argparse.SUPPRESS)

    p = sub.add_parser("perf", help="measure throughput with /perf/1.0.0")
    p.add_argument("addr", type=_multiaddr, metavar="MADDR")
    p.add_argument("--upload", type=_byte_count, required=True, metavar="BYTES")
    p.add_argument("--download", type=_byte_count, required=True, metavar="BYTES")
    p.add_argument("-v", "--verbose", action="count", default=0, dest="sub_verbose", help=argparse.SUPPRESS)

    p = sub.add_parser("id", help="print the peer id of a key file")
    p.add_argument("--key", metavar="FILE", help="key file (created when missing); default: a fresh key")
    p.add_argument("-v", "--verbose", action="count", default=0, dest="sub_verbose", help=argparse.SUPPRESS)
    return parser


def _setup_logging(verbosity: int, quiet_default: int) -> None:
    level = {0: quiet_default, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if verbosity < 2:
        # the websockets library logs every connection at INFO
        logging.getLogger("websockets").setLevel(max(level, logging.WARNING))


def _say(line: str) -> None:
    print(line, flush=True)


def _fail(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _StopSignals:
    """SIGINT/SIGTERM set an event. Installed before anything is printed, so a signal
    sent as soon as the addresses appear (a supervisor reading them) is a clean exit 0,
    not the default-action kill."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self._installed: list[int] = []

    def __enter__(self) -> "_StopSignals":
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.event.set)
                self._installed.append(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)


def _parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | None:
    """The parsed flags, or None after reporting a usage error in one line."""
    try:
        return parser.parse_args(argv)
    except UsageError as exc:
        _fail(str(exc))
        return None


def _run_main(prefix: str, coro: Coroutine[Any, Any, int],
              plain_failures: tuple[type[BaseException], ...] = ()) -> int:
    """Run ``coro``; map errors to one stderr line and the exit code of the contract.

    ``plain_failures``: exception types reported as their own message with exit code 1.
    """
    from .errors import ConfigError, PywasmError

    try:
        return asyncio.run(coro)
    except UsageError as exc:
        _fail(str(exc))
        return EXIT_USAGE
    except plain_failures as exc:
        _fail(str(exc))
        return EXIT_FAILURE
    except ConfigError as exc:
        _fail(f"{prefix}: {_one_line(exc)}")
        return EXIT_USAGE
    except PywasmError as exc:
        _fail(f"{prefix}: {_one_line(exc)}")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout went away (e.g. piped into head): nothing more to say
        return EXIT_FAILURE


async def _key(path: str | None) -> Any:
    from .identity import KeyType, PrivateKey, load_or_create

    if path is None:
        return await PrivateKey.generate(KeyType.Ed25519)
    return await load_or_create(path)


# ------------------------------------------------------------------ commands
async def cmd_listen(args: argparse.Namespace) -> int:
    from .host import DEFAULT_NATIVE_LISTEN, Host
    from .host.host import default_transports

    listen = list(args.listen) if args.listen else [_multiaddr(a) for a in DEFAULT_NATIVE_LISTEN]
    transports = default_transports()
    for ma in listen:
        if not any(t.can_listen(ma) for t in transports):
            raise UsageError(f"pywasm listen: no transport can listen on {ma}")
    key = await _key(args.key)
    host = await Host.create(key=key, listen=listen, transports=transports)
    try:
        with _StopSignals() as stop:
            for addr in host.addrs():
                _say(str(addr))
            await stop.event.wait()
        log.info("signal received: stopping")
    finally:
        await host.stop()
    return EXIT_OK


async def cmd_ping(args: argparse.Namespace) -> int:
    from .host import Host

    async with await Host.create(listen=[]) as host:
        conn = await host.dial(args.addr)
        ping = host.services["ping"]
        ping.timeout = args.timeout
        async with await ping.session(conn) as session:
            for seq in range(1, args.count + 1):
                rtt = await session.ping()
                _say(f"seq={seq} rtt={rtt * 1000:.3f} ms peer={conn.remote_peer}")
    return EXIT_OK


async def cmd_perf(args: argparse.Namespace) -> int:
    from .host import Host

    async with await Host.create(listen=[]) as host:
        result = await host.services["perf"].run(args.addr, args.upload, args.download)
    _say(json.dumps(result.to_dict()))
    return EXIT_OK


async def cmd_id(args: argparse.Namespace) -> int:
    from .identity import PeerId

    key = await _key(args.key)
    _say(str(PeerId.from_public_key(key.public_key)))
    return EXIT_OK


COMMANDS = {"listen": cmd_listen, "ping": cmd_ping, "perf": cmd_perf, "id": cmd_id}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(build_parser(), argv)
    if args is None:
        return EXIT_USAGE
    verbosity = args.verbose + getattr(args, "sub_verbose", 0)
    _setup_logging(verbosity, logging.WARNING if args.command == "listen" else logging.ERROR)
    return _run_main(f"pywasm {args.command}", COMMANDS[args.command](args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
