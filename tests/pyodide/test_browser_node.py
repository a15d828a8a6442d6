"""pywasm.browser_node: the helpers behind createNode(), over the memory transport.

Runs natively and inside Pyodide (tests/pyodide/run.mjs); the WebSocket path in a real JS
event loop is covered by tests/pyodide/create_node.mjs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pywasm.browser_node import BrowserNode, create, js_call, peer_id_of
from pywasm.errors import ConfigError, DialError
from pywasm.host import Host
from pywasm.transports.memory import MemoryTransport


async def _host(listen: list[str]) -> Host:
    return await Host.create(listen=listen, transports=[MemoryTransport()])


async def _pair() -> tuple[Host, BrowserNode]:
    server = await _host(["/memory/0"])
    client = await _host([])
    return server, BrowserNode(client, dial_timeout=5.0, ping_timeout=5.0)


async def _stop(server: Host, node: BrowserNode) -> None:
    await asyncio.wait_for(node.stop(), 10)
    await asyncio.wait_for(server.stop(), 10)


async def test_dial_ping_connections() -> None:
    server, node = await _pair()
    try:
        target = str(server.addrs()[0])
        assert await node.dial(target) == str(server.peer_id)
        ms = await node.ping(target)
        assert isinstance(ms, float) and 0 < ms < 5000
        conns = node.connections()
        assert len(conns) == 1 and conns[0]["peer"] == str(server.peer_id)
        assert conns[0]["direction"] == "outbound" and conns[0]["muxer"] and conns[0]["security"] == "/noise"
        assert node.addrs() == []
        assert node.peer_id == str(node.host.peer_id)
        assert peer_id_of(target) == str(server.peer_id)
    finally:
        await _stop(server, node)


async def test_js_call_envelope() -> None:
    server, node = await _pair()
    try:
        target = str(server.addrs()[0])
        ok = await js_call(node, "dial", target)
        assert ok[0] is True and ok[1] == str(server.peer_id) and ok[2] >= 0
        cases: dict[str, Any] = {
            "not a multiaddr": "invalid multiaddr",
            "/ip4/127.0.0.1/tcp/4001": "unsupported multiaddr",
            "": "empty multiaddr",
        }
        for addr, text in cases.items():
            res = await js_call(node, "dial", addr)
            assert res[0] is False and res[1] == "DialError" and text in res[2], res
            assert "\n" not in res[2]
        res = await js_call(node, "nope")
        assert res[:2] == [False, "ConfigError"]
        res = await js_call(None, "dial", target)
        assert res[:2] == [False, "ConfigError"]
    finally:
        await _stop(server, node)


async def test_wrong_peer_is_a_one_line_dial_error() -> None:
    server, node = await _pair()
    other = await _host([])
    try:
        wrong = f"{server.addrs()[0].without_peer_id()}/p2p/{other.peer_id}"
        with pytest.raises(DialError) as info:
            await node.dial(wrong)
        assert "\n" not in str(info.value)
    finally:
        await other.stop()
        await _stop(server, node)


async def test_create_checks_its_arguments() -> None:
    with pytest.raises(ConfigError):
        await create(dial_timeout=0)
    with pytest.raises(ConfigError):
        await create(ping_timeout=-1.0)
    res = await js_call(None, "create", {"dial_timeout": "soon"})
    assert res[:2] == [False, "ConfigError"]
