"""Scenarios for tests/native/test_webtransport_pquic.py, run *inside* a private network
namespace (``unshare -n``, only ``lo`` up) because aiopquic binds its UDP port on every
address. Not collected by pytest (no ``test_`` prefix): the test starts

    unshare -n -- PYTHON -m tests.native.pquic_scenarios NAME WORKDIR

and checks the JSON object this prints last on stdout.

* ``relay`` (any Python): ``pywasm-relay --webtransport-backend aiopquic`` from
  .cache/venv-relay-pquic as a subprocess; our native aioquic WebTransport client dials it:
  Noise + certhash check, ping, byte-exact echo, a wrong certhash refused, garbage on the
  handshake stream closes that session while the relay keeps serving.
* ``rotation`` (Python >= 3.12 with aiopquic): the listener in process with a fake clock;
  a certificate rotation restarts it on the same port with the new certificate.
* ``limits`` (Python >= 3.12): ``max_half_open`` evicts the oldest session stuck in the
  handshake.
* ``unread`` (Python >= 3.12): a stream nobody reads is reset past ``max_stream_buffer``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PQUIC_PYTHON = ROOT / ".cache" / "venv-relay-pquic" / "bin" / "python"
TIMEOUT = 20.0
ECHO_BYTES = 4 * 1024 * 1024 + 12345


def lo_up() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


class Relay:
    """The relay subprocess (aiopquic backend by default); its stdout lines on a queue.
    Also used by e2e/pquic_browser.py and benchmarks/webtransport_run.py --netns."""

    def __init__(self, work: Path, *, site: Path | None = None, python: Path = PQUIC_PYTHON,
                 backend: str = "aiopquic", listen: tuple[str, ...] = (
                     "/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1/webtransport"),
                 env: dict[str, str] | None = None, name: str = "relay") -> None:
        if site is None:
            site = work / "site"
            site.mkdir(parents=True, exist_ok=True)
            (site / "index.html").write_text("<!doctype html><title>pywasm</title>\n")
        work.mkdir(parents=True, exist_ok=True)
        self.n_listen = len(listen)
        self.log_path = work / f"{name}.log"
        self.proc = subprocess.Popen(
            [str(python), "-m", "pywasm_relay", "--webtransport-backend", backend, "--http", "127.0.0.1:0",
             *(arg for a in listen for arg in ("--listen", a)),
             "--site", str(site), "--data-dir", str(work / f"{name}-data")],
            stdout=subprocess.PIPE, stderr=open(self.log_path, "wb"), text=True, cwd=ROOT,
            env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})))
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.url = ""
        self.addrs: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def startup(self) -> tuple[str, list[str]]:
        """The http URL and every listen address it printed."""
        deadline = time.monotonic() + TIMEOUT
        while not self.url or len(self.addrs) < self.n_listen:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the relay printed {self.url!r} {self.addrs} within {TIMEOUT:g} s")
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError("the relay exited during startup: " + self.log_path.read_text(errors="replace")[-2000:])
            if line.startswith("http://"):
                self.url = line
            elif line.startswith("/"):
                self.addrs.append(line)
        return self.url, self.addrs

    def webtransport_addr(self) -> str:
        return next(a for a in self.startup()[1] if "/webtransport/" in a)

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


async def _client() -> Any:
    from pywasm.host import Host
    from pywasm.identity import KeyType, PrivateKey
    from pywasm.transports.webtransport_native import NativeWebTransportTransport

    return await Host.create(key=await PrivateKey.generate(KeyType.Ed25519), listen=[],
                             transports=[NativeWebTransportTransport()])


def _payload(n: int) -> bytes:
    block = hashlib.sha256(b"pquic").digest() * 2048
    return (block * (n // len(block) + 1))[:n]


async def _dial_ping_echo(addr: str) -> dict[str, Any]:
    host = await _client()
    try:
        conn = await asyncio.wait_for(host.dial(addr), TIMEOUT)
        rtt = await asyncio.wait_for(host.services["ping"].ping(conn), TIMEOUT)
        data = _payload(ECHO_BYTES)
        t0 = time.monotonic()
        got = await asyncio.wait_for(host.services["echo"].echo(conn, data), 60)
        secs = time.monotonic() - t0
        # several streams at once, each byte-exact
        parts = [_payload(300_000 + i) for i in range(4)]
        many = await asyncio.wait_for(asyncio.gather(*(host.services["echo"].echo(conn, p) for p in parts)), 60)
        return {"peer": str(conn.remote_peer), "security": conn.security_protocol if hasattr(conn, "security_protocol") else "",
                "rtt": rtt, "echo_ok": got == data, "echo_len": len(got), "echo_mib_s": len(data) / secs / 2**20,
                "many_ok": [a == b for a, b in zip(many, parts)]}
    finally:
        await host.stop()


def _wrong_certhash(addr: str) -> str:
    from pywasm.multiformats import multibase, multihash

    bogus = multibase.encode("base64url", multihash.encode(multihash.SHA2_256, b"\x01" * 32))
    head, _, tail = addr.partition("/certhash/")
    rest = tail.split("/", 1)[1]  # drop the first certhash value
    # keep only the bogus hash: no certificate of the relay matches it
    rest_parts = rest.split("/")
    kept = []
    i = 0
    while i < len(rest_parts):
        if rest_parts[i] == "certhash":
            i += 2
            continue
        kept.append(rest_parts[i])
        i += 1
    return f"{head}/certhash/{bogus}/" + "/".join(kept)


async def _dial_fails(addr: str) -> str:
    host = await _client()
    try:
        try:
            await asyncio.wait_for(host.dial(addr), TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - the test checks the type name
            return f"{type(exc).__name__}: {exc}"
        return ""
    finally:
        await host.stop()


async def _garbage_session(addr: str) -> dict[str, Any]:
    """A real WebTransport session whose handshake stream carries garbage, not Noise."""
    from aioquic.quic.connection import QuicConnection

    from pywasm.multiformats.multiaddr import Multiaddr
    from pywasm.transports.udp_batch import BatchedUDPTransport, udp_socket
    from pywasm.transports.webtransport_addr import parse_webtransport
    from pywasm.transports.webtransport_native import WebTransportProtocol, quic_configuration

    wa = parse_webtransport(Multiaddr(addr))
    assert wa is not None
    loop = asyncio.get_running_loop()
    cfg = quic_configuration(is_client=True)
    cfg.server_name = wa.host
    proto = WebTransportProtocol(QuicConnection(configuration=cfg))
    transport = BatchedUDPTransport(loop, udp_socket("0.0.0.0", 0), proto)
    proto.connection_made(transport)
    try:
        proto.connect((wa.host, wa.port))
        await asyncio.wait_for(proto.wait_connected(), TIMEOUT)
        session = await asyncio.wait_for(proto.request_session(wa.authority), TIMEOUT)
        stream = await session.open_stream()
        # a Noise frame of 9 bytes where message 1 must carry a 32-byte ephemeral key
        await stream.write(b"\x00\x09GET / 1.1")
        t0 = time.monotonic()
        try:
            # the relay answers garbage by closing the session: our read ends
            data = await asyncio.wait_for(stream.read(), TIMEOUT)
            outcome = f"read {len(data)} bytes"
            while data:
                data = await asyncio.wait_for(stream.read(), TIMEOUT)
        except asyncio.TimeoutError:
            return {"closed": False, "outcome": "no reaction within the timeout"}
        except Exception as exc:  # noqa: BLE001
            outcome = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(0.2)
        return {"closed": session.is_closed or bool(proto.terminated), "outcome": outcome,
                "secs": time.monotonic() - t0}
    finally:
        proto.close_connection()
        transport.close()


async def relay_scenario(work: Path) -> dict[str, Any]:
    relay = Relay(work)
    try:
        addr = relay.webtransport_addr()
        out: dict[str, Any] = {"addr": addr}
        out["first"] = await _dial_ping_echo(addr)
        out["wrong_certhash"] = await _dial_fails(_wrong_certhash(addr))
        out["garbage"] = await _garbage_session(addr)
        out["after_garbage"] = await _dial_ping_echo(addr)
        out["relay_alive"] = relay.proc.poll() is None
    finally:
        out_rc = relay.stop()
    out["relay_rc"] = out_rc
    out["relay_log_tail"] = relay.log_path.read_text(errors="replace")[-2000:]
    return out


async def rotation_scenario(work: Path) -> dict[str, Any]:
    from pywasm.host import Host
    from pywasm.identity import KeyType, PrivateKey
    from pywasm.transports.webtransport_addr import certhash_of, webtransport_multiaddr
    from pywasm_relay.certs import CertStore
    from pywasm_relay.webtransport_pquic import PquicWebTransportListenTransport

    now = [time.time()]
    store = CertStore(work / "data", clock=lambda: now[0])
    wt = PquicWebTransportListenTransport(str(work / "data"), store=store, clock=lambda: now[0])
    server = await Host.create(key=await PrivateKey.generate(KeyType.Ed25519),
                               listen=["/ip4/127.0.0.1/udp/0/quic-v1/webtransport"], transports=[wt])
    out: dict[str, Any] = {}
    try:
        listener = wt.listeners[0]
        addr1 = f"{listener.addrs[0]}/p2p/{server.peer_id}"
        out["addr1"] = addr1
        client = await _client()
        try:
            conn = await asyncio.wait_for(client.dial(addr1), TIMEOUT)
            await asyncio.wait_for(client.services["ping"].ping(conn), TIMEOUT)
            serving1 = store.serving.der
            # past the serving window: the schedule moves to the next certificate
            now[0] += store.seconds_to_next_change() + 5
            changed = await asyncio.wait_for(listener.rotate(), TIMEOUT)  # type: ignore[attr-defined]
            out["changed"] = changed
            out["new_cert"] = store.serving.der != serving1
            out["restarts"] = listener.restarts  # type: ignore[attr-defined]
            out["port_kept"] = listener.port
            # the old session is gone with the old listener: a ping on that very connection
            # fails (closed, or no answer). Not host.ping(conn): a closed connection makes the
            # host redial the peer, and addr1 lists the new certificate's hash too.
            from pywasm.services.ping import PING, PingSession

            try:
                stream = await asyncio.wait_for(conn.new_stream([PING]), 5)
                await PingSession(stream, 5).ping()
                out["old_session"] = "still alive"
            except Exception as exc:  # noqa: BLE001
                out["old_session"] = type(exc).__name__
        finally:
            await client.stop()
        addr2 = f"{listener.addrs[0]}/p2p/{server.peer_id}"
        out["addr2"] = addr2
        out["after"] = await _dial_ping_echo(addr2)
        # the restarted listener presents the new certificate, no longer the old one
        base = f"/ip4/127.0.0.1/udp/{listener.port}/quic-v1/webtransport"
        only = lambda der: f"{webtransport_multiaddr(base, [certhash_of(der)])}/p2p/{server.peer_id}"  # noqa: E731
        out["new_only"] = await _dial_fails(only(store.serving.der))
        out["old_only"] = await _dial_fails(only(serving1))
    finally:
        await server.stop()
    return out


async def _raw_session(addr: str) -> Any:
    """A WebTransport session (QUIC + CONNECT) that never starts Noise; (proto, transport)."""
    from aioquic.quic.connection import QuicConnection

    from pywasm.multiformats.multiaddr import Multiaddr
    from pywasm.transports.udp_batch import BatchedUDPTransport, udp_socket
    from pywasm.transports.webtransport_addr import parse_webtransport
    from pywasm.transports.webtransport_native import WebTransportProtocol, quic_configuration

    wa = parse_webtransport(Multiaddr(addr))
    assert wa is not None
    cfg = quic_configuration(is_client=True)
    cfg.server_name = wa.host
    proto = WebTransportProtocol(QuicConnection(configuration=cfg))
    transport = BatchedUDPTransport(asyncio.get_running_loop(), udp_socket("0.0.0.0", 0), proto)
    proto.connection_made(transport)
    proto.connect((wa.host, wa.port))
    await asyncio.wait_for(proto.wait_connected(), TIMEOUT)
    await asyncio.wait_for(proto.request_session(wa.authority), TIMEOUT)
    return proto, transport


async def limits_scenario(work: Path) -> dict[str, Any]:
    """max_half_open=2: a third session waiting in the handshake evicts the oldest; the
    relay still completes an honest handshake afterwards."""
    from pywasm.host import Host
    from pywasm.identity import KeyType, PrivateKey
    from pywasm_relay.webtransport_pquic import PquicWebTransportListenTransport

    wt = PquicWebTransportListenTransport(str(work / "data"), max_half_open=2, handshake_timeout=30)
    server = await Host.create(key=await PrivateKey.generate(KeyType.Ed25519),
                               listen=["/ip4/127.0.0.1/udp/0/quic-v1/webtransport"], transports=[wt])
    out: dict[str, Any] = {}
    raws = []
    try:
        listener = wt.listeners[0]
        addr = f"{listener.addrs[0]}/p2p/{server.peer_id}"
        for _ in range(3):
            raws.append(await _raw_session(addr))
            await asyncio.sleep(0.2)  # the relay sees them in this order
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not raws[0][0].session.is_closed:
            await asyncio.sleep(0.05)
        out["closed"] = [p.session.is_closed for p, _ in raws]
        out["stats"] = dict(listener.stats)
        out["honest"] = await _dial_ping_echo(addr)
        out["stats_after"] = dict(listener.stats)
        # a second CONNECT on one QUIC connection: refused (one session per connection)
        proto, transport = await _raw_session(addr)
        raws.append((proto, transport))
        second = await asyncio.wait_for(proto.request_session(addr.split("/")[2]), TIMEOUT)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not second.is_closed:
            await asyncio.sleep(0.05)
        out["second_session_closed"] = second.is_closed
        out["refused_sessions"] = listener.stats["refused_sessions"]
    finally:
        for proto, transport in raws:
            proto.close_connection()
            transport.close()
        await server.stop()
    return out


async def unread_scenario(work: Path) -> dict[str, Any]:
    """A handler that never reads: past max_stream_buffer the relay resets that stream (the
    sender's writes fail) and the session keeps serving other streams."""
    from pywasm.host import Host
    from pywasm.identity import KeyType, PrivateKey
    from pywasm_relay.webtransport_pquic import PquicWebTransportListenTransport

    wt = PquicWebTransportListenTransport(str(work / "data"))
    server = await Host.create(key=await PrivateKey.generate(KeyType.Ed25519),
                               listen=["/ip4/127.0.0.1/udp/0/quic-v1/webtransport"], transports=[wt])
    parked, release = asyncio.Event(), asyncio.Event()

    async def never_read(stream: Any, conn: Any) -> None:
        parked.set()
        await release.wait()

    server.set_stream_handler("/test/never-read/1", never_read)
    out: dict[str, Any] = {}
    try:
        addr = f"{wt.listeners[0].addrs[0]}/p2p/{server.peer_id}"
        client = await _client()
        try:
            conn = await asyncio.wait_for(client.dial(addr), TIMEOUT)
            stream = await client.new_stream(conn, ["/test/never-read/1"])
            sent = 0
            chunk = b"\x5a" * (256 * 1024)
            try:
                while sent < 64 * 1024 * 1024:
                    await asyncio.wait_for(stream.write(chunk), TIMEOUT)
                    sent += len(chunk)
                out["write_end"] = "all written"
            except Exception as exc:  # noqa: BLE001
                out["write_end"] = type(exc).__name__
            out["sent_mib"] = sent / 2**20
            out["parked"] = parked.is_set()
            out["ping_after"] = await asyncio.wait_for(client.services["ping"].ping(conn), TIMEOUT)
        finally:
            await client.stop()
    finally:
        release.set()
        await server.stop()
    return out


SCENARIOS = {"relay": relay_scenario, "rotation": rotation_scenario, "limits": limits_scenario,
             "unread": unread_scenario}


def main() -> None:
    name, work = sys.argv[1], Path(sys.argv[2])
    work.mkdir(parents=True, exist_ok=True)
    lo_up()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    result = asyncio.run(SCENARIOS[name](work))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
