"""Run by tests/pyodide/ws_dial.mjs inside Pyodide (real WebLoop): dial a native pywasm node
over the browser WebSocket transport and check identify, ping and echo.

Not a pytest module (no ``test_`` prefix): it needs a live native node and JS WebSocket.
``CFG`` (set by the runner): target (full /ws/p2p/ multiaddr), closed_port, echo_big (bytes,
0 to skip). ``main()`` returns a dict: checks {name: "ok" | error line}, timings, numbers.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pywasm.errors import DialError
from pywasm.host import Host
from pywasm.identity import KeyType, PeerId, PrivateKey
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.transports.addrs import parse_ws
from pywasm.transports.browser_websocket import BrowserWebSocketTransport, ws_url

ECHO_SMALL = 1024 * 1024
# Negative dials must fail well within this (no hang).
NEGATIVE_DEADLINE = 5.0
# Open deadline for the dial to a server that never answers the upgrade.
SILENT_DIAL_TIMEOUT = 1.0


def _pattern(n: int) -> bytes:
    # byte-exact check without a CSPRNG round trip per MiB
    block = bytes(range(256)) * 4096  # 1 MiB
    return (block * (n // len(block) + 1))[:n]


async def main(cfg: Any) -> dict[str, Any]:
    checks: dict[str, str] = {}
    out: dict[str, Any] = {"checks": checks}
    target = Multiaddr(str(cfg["target"]))
    expected = PeerId.from_string(target.peer_id() or "")

    # 0. address handling (no network)
    try:
        t = BrowserWebSocketTransport()
        cases = {
            "/ip4/1.2.3.4/tcp/80/ws": "ws://1.2.3.4:80/",
            "/ip6/::1/tcp/4001/wss": "wss://[::1]:4001/",
            "/dns4/relay.example/tcp/443/tls/ws": "wss://relay.example:443/",
            "/ip4/1.2.3.4/tcp/443/tls/sni/relay.example/ws/p2p/" + str(expected): "wss://relay.example:443/",
        }
        for text, url in cases.items():
            wa = parse_ws(Multiaddr(text))
            assert wa is not None and ws_url(wa) == url, f"{text} -> {wa and ws_url(wa)}"
            assert t.can_dial(Multiaddr(text)), text
        assert not t.can_dial(Multiaddr("/ip4/1.2.3.4/tcp/80")), "plain tcp is not dialable"
        assert not t.can_listen(Multiaddr("/ip4/127.0.0.1/tcp/0/ws")), "browsers cannot listen"
        from pywasm.host.host import default_transports

        defaults = [type(t).__name__ for t in default_transports()]
        assert "BrowserWebSocketTransport" in defaults, f"Pyodide default transports: {defaults}"
        checks["addresses"] = "ok"
    except Exception as exc:
        checks["addresses"] = f"{type(exc).__name__}: {exc}"

    host = await Host.create(listen=[], transports=[BrowserWebSocketTransport()])
    try:
        t0 = time.perf_counter()
        try:
            conn = await host.dial(target)
            out["dial_ms"] = round((time.perf_counter() - t0) * 1000, 1)
            assert conn.remote_peer == expected, f"remote peer {conn.remote_peer} != {expected}"
            out["muxer"] = conn.muxer_protocol
            checks["dial"] = "ok"
        except Exception as exc:
            checks["dial"] = f"{type(exc).__name__}: {exc}"
            return out

        try:
            rtt = await host.services["ping"].ping(conn)
            out["dial_to_first_ping_ms"] = round((time.perf_counter() - t0) * 1000, 1)
            out["ping_rtt_ms"] = round(rtt * 1000, 2)
            assert rtt > 0, f"rtt {rtt}"
            checks["ping"] = "ok"
        except Exception as exc:
            checks["ping"] = f"{type(exc).__name__}: {exc}"

        try:
            info = await host.services["identify"].identify(conn)
            out["agent"] = info.agent_version
            assert (info.agent_version or "").startswith("pywasm/"), f"agent {info.agent_version!r}"
            assert info.peer_id == expected, f"identify peer {info.peer_id}"
            checks["identify"] = "ok"
        except Exception as exc:
            checks["identify"] = f"{type(exc).__name__}: {exc}"

        try:
            data = _pattern(ECHO_SMALL)
            back = await host.services["echo"].echo(conn, data)
            assert back == data, f"echo returned {len(back)} bytes, not the {len(data)} sent"
            checks["echo_1mib"] = "ok"
        except Exception as exc:
            checks["echo_1mib"] = f"{type(exc).__name__}: {exc}"

        big = int(cfg["echo_big"])
        if big:
            try:
                data = _pattern(big)
                t1 = time.perf_counter()
                back = await host.services["echo"].echo(conn, data)
                dt = time.perf_counter() - t1
                assert back == data, f"echo returned {len(back)} bytes, not the {len(data)} sent"
                out["echo_big_mib"] = big / (1 << 20)
                out["echo_big_s"] = round(dt, 3)
                # bytes each way / time: the payload crossed the socket twice
                out["echo_mib_per_s"] = round(big / (1 << 20) / dt, 2)
                checks["echo_big"] = "ok"
            except Exception as exc:
                checks["echo_big"] = f"{type(exc).__name__}: {exc}"

        # a peer we are not connected to (a dial to `expected` would reuse `conn`)
        other = PeerId.from_public_key((await PrivateKey.generate(KeyType.Ed25519)).public_key)

        # negative: nothing listens on the port -> DialError, quickly
        closed = f"/ip4/127.0.0.1/tcp/{int(cfg['closed_port'])}/ws/p2p/{other}"
        t2 = time.perf_counter()
        try:
            await asyncio.wait_for(host.dial(closed), NEGATIVE_DEADLINE)
            checks["closed_port"] = "dial to a closed port succeeded"
        except DialError as exc:
            out["closed_port_error"] = str(exc)
            out["closed_port_ms"] = round((time.perf_counter() - t2) * 1000, 1)
            checks["closed_port"] = "ok" if "\n" not in str(exc) else "multi-line error"
        except Exception as exc:
            checks["closed_port"] = f"{type(exc).__name__} (not DialError): {exc}"

        # negative: the TCP connect succeeds but the HTTP upgrade is never answered -> the
        # transport's open deadline fires (DialError, no hang)
        silent = Multiaddr(f"/ip4/127.0.0.1/tcp/{int(cfg['silent_port'])}/ws")
        t3 = time.perf_counter()
        try:
            raw = await asyncio.wait_for(
                BrowserWebSocketTransport(dial_timeout=SILENT_DIAL_TIMEOUT).dial(silent), NEGATIVE_DEADLINE
            )
            await raw.reset()
            checks["open_timeout"] = "dial to a silent server succeeded"
        except DialError as exc:
            out["open_timeout_error"] = str(exc)
            out["open_timeout_ms"] = round((time.perf_counter() - t3) * 1000, 1)
            checks["open_timeout"] = "ok"
        except Exception as exc:
            checks["open_timeout"] = f"{type(exc).__name__} (not DialError): {exc}"

        # negative: right address, wrong peer id -> DialError naming the mismatch
        wrong = f"{target.without_peer_id()}/p2p/{other}"
        try:
            await asyncio.wait_for(host.dial(wrong), NEGATIVE_DEADLINE)
            checks["wrong_peer"] = "dial with a wrong /p2p/ id succeeded"
        except DialError as exc:
            out["wrong_peer_error"] = str(exc)
            checks["wrong_peer"] = "ok"
        except Exception as exc:
            checks["wrong_peer"] = f"{type(exc).__name__} (not DialError): {exc}"
    finally:
        await host.stop()
    return out
