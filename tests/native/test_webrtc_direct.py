"""webrtc-direct natively: the aiortc listener pywasm-relay runs, dialed by the native
aiortc dialer (relay-server/pywasm_relay/webrtc_direct.py), in process and through the
real ``pywasm-relay`` binary. The browser side is in e2e/test_webrtc_direct.py."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import stat
import time

from aioice import stun

from pywasm.host import Host
from pywasm.identity import KeyType, PrivateKey
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.transports.webrtc_direct_addr import random_ufrag
from pywasm_relay.webrtc_direct import CERT_FILE_NAME, DtlsCertificate, WebRTCDirectTransport
from tests.native.test_relay import StartRelay, relay, site  # noqa: F401  (fixtures)

T = 30.0


async def _host(transport: WebRTCDirectTransport, listen: list[str]) -> Host:
    return await Host.create(key=await PrivateKey.generate(KeyType.Ed25519), listen=listen, transports=[transport])


async def test_dial_ping_identify_echo() -> None:
    lt = WebRTCDirectTransport()
    server = await _host(lt, ["/ip4/127.0.0.1/udp/0/webrtc-direct"])
    client = await _host(WebRTCDirectTransport(), [])
    try:
        addr = server.addrs()[0]
        assert re.fullmatch(r"/ip4/127\.0\.0\.1/udp/\d+/webrtc-direct/certhash/u[\w-]+/p2p/\w+", str(addr)), addr
        conn = await asyncio.wait_for(client.dial(addr), T)
        assert conn.remote_peer == server.peer_id
        assert (conn.security_protocol, conn.muxer_protocol) == ("/noise", "/webrtc")
        assert await asyncio.wait_for(client.services["ping"].ping(conn), T) >= 0
        info = await asyncio.wait_for(client.services["identify"].identified(conn), T)
        assert info.peer_id == server.peer_id and "/ipfs/ping/1.0.0" in info.protocols
        data = os.urandom(1024 * 1024)
        assert await asyncio.wait_for(client.services["echo"].echo(conn, data), 60) == data
        # the listener's side of it: one session, the remote addressed by its own certhash
        inbound = server.connections_to(client.peer_id)
        assert inbound and "/webrtc-direct/certhash/" in str(inbound[0].remote_addr)
        assert lt.listeners[0].session_count == 1
        await conn.close()
        for _ in range(200):
            if lt.listeners[0].session_count == 0:
                break
            await asyncio.sleep(0.02)
        assert lt.listeners[0].session_count == 0, "closing the connection frees the session"
    finally:
        await client.stop()
        await server.stop()


async def test_wrong_certhash_or_peer_id_is_refused() -> None:
    server = await _host(WebRTCDirectTransport(), ["/ip4/127.0.0.1/udp/0/webrtc-direct"])
    client = await _host(WebRTCDirectTransport(handshake_timeout=8), [])
    try:
        addr = str(server.addrs()[0])
        other = DtlsCertificate.generate()
        from pywasm.transports.webrtc_direct_addr import certhash_text

        forged = re.sub(r"/certhash/[^/]+", "/certhash/" + certhash_text(other.der), addr)
        try:
            await asyncio.wait_for(client.dial(Multiaddr(forged)), T)
        except Exception as exc:  # noqa: BLE001 - the type depends on where it failed
            assert "DTLS" in str(exc) or "failed" in str(exc), exc
        else:
            raise AssertionError("a dial with the wrong certhash must fail")
        stranger = (await PrivateKey.generate(KeyType.Ed25519)).public_key
        from pywasm.identity import PeerId

        wrong_id = addr.rsplit("/p2p/", 1)[0] + f"/p2p/{PeerId.from_public_key(stranger)}"
        try:
            await asyncio.wait_for(client.dial(Multiaddr(wrong_id)), T)
        except Exception as exc:  # noqa: BLE001
            assert "authenticated" in str(exc) or "expected" in str(exc), exc
        else:
            raise AssertionError("a dial with the wrong peer id must fail")
        assert not client.connections_to(server.peer_id)
    finally:
        await client.stop()
        await server.stop()


def _binding(username: str | None, key: bytes | None) -> bytes:
    msg = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    if username is not None:
        msg.attributes["USERNAME"] = username
    msg.attributes["PRIORITY"] = 1
    msg.attributes["ICE-CONTROLLING"] = 1
    if key is not None:
        msg.add_message_integrity(key)
    msg.add_fingerprint()
    return bytes(msg)


async def test_stun_routing_allocates_only_for_valid_libp2p_requests() -> None:
    lt = WebRTCDirectTransport(handshake_timeout=1.5)
    server = await _host(lt, ["/ip4/127.0.0.1/udp/0/webrtc-direct"])
    listener = lt.listeners[0]
    port = int(server.addrs()[0].value_for("udp") or 0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(1.0)
    try:
        u = random_ufrag()
        junk = [
            b"\x00" * 40,  # not STUN
            _binding(None, u.encode()),  # no USERNAME
            _binding("abcd:abcd", b"abcd"),  # not a libp2p ufrag
            _binding(f"{u}:{random_ufrag()}", u.encode()),  # the two halves differ
            _binding(f"{u}:{u}", b"wrong password"),  # integrity fails
        ]
        for d in junk:
            sock.sendto(d, ("127.0.0.1", port))
        await asyncio.sleep(0.3)
        assert listener.session_count == 0 and listener.stats["accepted"] == 0
        assert listener.stats["dropped"] == 4  # the non-STUN datagram is not even counted

        # a valid request: answered (authenticated with the ufrag as password), one session
        sock.sendto(_binding(f"{u}:{u}", u.encode()), ("127.0.0.1", port))
        reply = await asyncio.get_running_loop().run_in_executor(None, sock.recv, 2048)
        msg = stun.parse_message(reply)
        assert msg.message_class == stun.Class.RESPONSE
        assert msg.check_message_integrity(u.encode())
        assert msg.attributes["XOR-MAPPED-ADDRESS"] == sock.getsockname()
        assert listener.session_count == 1 and listener.stats["accepted"] == 1
        # a client that never completes ICE is dropped after the handshake timeout
        for _ in range(150):
            if listener.session_count == 0:
                break
            await asyncio.sleep(0.02)
        assert listener.session_count == 0 and listener.stats["failed"] == 1
        assert listener.handshaking == 0
    finally:
        sock.close()
        await server.stop()


async def test_many_concurrent_handshakes_within_the_bound() -> None:
    lt = WebRTCDirectTransport(max_handshakes=3)
    server = await _host(lt, ["/ip4/127.0.0.1/udp/0/webrtc-direct"])
    clients = [await _host(WebRTCDirectTransport(), []) for _ in range(8)]
    listener = lt.listeners[0]
    peak = [0]

    async def watch() -> None:
        while True:
            peak[0] = max(peak[0], listener.handshaking)
            await asyncio.sleep(0.001)

    watcher = asyncio.ensure_future(watch())
    try:
        addr = server.addrs()[0]
        t0 = time.perf_counter()
        conns = await asyncio.wait_for(asyncio.gather(*(c.dial(addr) for c in clients)), 60)
        setup = time.perf_counter() - t0
        assert all(c.remote_peer == server.peer_id for c in conns)
        rtts = await asyncio.wait_for(
            asyncio.gather(*(c.services["ping"].ping(conn) for c, conn in zip(clients, conns))), T
        )
        assert all(r >= 0 for r in rtts)
        assert peak[0] <= 3, f"{peak[0]} handshakes at once, bound is 3"
        assert listener.session_count == 8
        print(f"8 concurrent webrtc-direct dials in {setup * 1000:.0f} ms, peak handshaking {peak[0]}")
    finally:
        watcher.cancel()
        for c in clients:
            await c.stop()
        await server.stop()


def test_relay_listens_by_certhash_stable_across_restarts(relay: StartRelay, site: object, tmp_path: object) -> None:
    """The real binary: a webrtc-direct listen address with its certhash, the certificate
    persisted 0600, the same certhash after a restart, and a native dial + ping."""
    data = os.path.join(str(tmp_path), "data")
    args = ["--http", "127.0.0.1:0", "--site", str(site), "--data-dir", data,
            "--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/udp/0/webrtc-direct"]
    hashes = []
    for _ in range(2):
        r = relay(*args)
        _, addrs = r.startup(2)
        rtc = [a for a in addrs if "/webrtc-direct/" in a]
        assert len(rtc) == 1, addrs
        hashes.append(rtc[0].split("/certhash/")[1].split("/")[0])
        assert stat.S_IMODE(os.stat(os.path.join(data, CERT_FILE_NAME)).st_mode) == 0o600

        async def dial(target: str) -> float:
            client = await _host(WebRTCDirectTransport(), [])
            try:
                conn = await asyncio.wait_for(client.dial(Multiaddr(target)), T)
                return await asyncio.wait_for(client.services["ping"].ping(conn), T)
            finally:
                await client.stop()

        assert asyncio.run(dial(rtc[0])) >= 0
        assert r.signal(signal.SIGTERM) == 0
    assert hashes[0] == hashes[1], "the certhash must survive a restart"
