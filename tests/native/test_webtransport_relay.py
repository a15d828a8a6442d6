"""``pywasm-relay`` with its WebTransport listener, as a subprocess: the printed address,
/relay.json, a native dial to it, and certificate state kept across a restart."""

from __future__ import annotations

import asyncio
import json
import signal
import stat
from pathlib import Path

from pywasm.identity import KeyType, PrivateKey
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.transports.webtransport_addr import parse_webtransport
from pywasm.transports.webtransport_native import NativeWebTransportTransport
from tests.native.test_relay import PORTS_0, StartRelay, _get, relay, site  # noqa: F401 (fixtures)

WT = ["--listen", "/ip4/127.0.0.1/udp/0/quic-v1/webtransport"]


def _wt(addrs: list[str]) -> str:
    found = [a for a in addrs if "/webtransport/" in a]
    assert len(found) == 1, addrs
    return found[0]


async def _ping_over_wt(addr: str) -> str:
    from pywasm.host import Host

    host = await Host.create(key=await PrivateKey.generate(KeyType.Ed25519), listen=[],
                             transports=[NativeWebTransportTransport()])
    try:
        conn = await asyncio.wait_for(host.dial(addr), 20)
        await asyncio.wait_for(host.services["ping"].ping(conn), 20)
        return str(conn.remote_peer)
    finally:
        await host.stop()


def test_relay_serves_webtransport_and_keeps_certificates(relay: StartRelay, site: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = relay(*PORTS_0, *WT, "--site", str(site), "--data-dir", str(data))
    url, addrs = first.startup(3)
    addr = _wt(addrs)
    wa = parse_webtransport(Multiaddr(addr))
    assert wa is not None and len(wa.certhashes) == 2 and wa.peer_id
    assert addr in json.loads(_get(url, "/relay.json")[2])["multiaddrs"]
    assert asyncio.run(_ping_over_wt(addr)) == wa.peer_id
    assert first.signal(signal.SIGTERM) == 0, "".join(first.stderr)

    state = data / "webtransport-certs.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    second = relay(*PORTS_0, *WT, "--site", str(site), "--data-dir", str(data))
    _, addrs2 = second.startup(3)
    addr2 = _wt(addrs2)
    # same certificates after the restart: an address handed out before it still names them
    assert addr2.split("/quic-v1/")[1] == addr.split("/quic-v1/")[1]
    assert asyncio.run(_ping_over_wt(addr2)) == wa.peer_id
    assert second.signal(signal.SIGTERM) == 0, "".join(second.stderr)
