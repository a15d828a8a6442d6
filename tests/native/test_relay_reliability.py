"""Circuit relay v2 reliability against a real ``pywasm-relay`` process, with native pywasm
clients over TCP (issue 5, "Reliability"):

* the relay restarts (SIGTERM, then the same ports and data dir, so the same identity and
  addresses): both clients reserve again by themselves, backing off while it is down, and
  one reaches the other through the new relay process;
* a short ``--relay-reservation-ttl``: the client refreshes before expiry, the expiry moves
  forward and the relayed address never disappears across several TTLs;
* ``--relay-circuit-data`` / ``--relay-circuit-duration``: a circuit going over the limit
  is cut (the client sees a typed error) while the relay keeps serving: a new circuit
  and a direct ping to the relay work afterwards.

Every process started here is tracked by its PID and only those are signalled.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Callable

import pytest

from pywasm.errors import PywasmError
from pywasm.host import Host
from pywasm.host.host import default_transports
from pywasm.identity import PeerId
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.services import default_services
from pywasm.services.relay_client import RelayClientService
from pywasm.transports.circuit import CircuitTransport
from tests._helpers import wait_until
from tests.native._proc import ROOT, Proc, child_env, tracked

T = 20.0
ECHO = "/test/relayed-echo/1.0.0"
RELAY_SCRIPT = Path(sys.executable).parent / "pywasm-relay"
# short bounds so a restart test takes seconds (defaults: 1 s .. 60 s)
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 1.0


def free_port() -> int:
    """A loopback TCP port nothing listens on now (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RelayProc(Proc):
    name = "pywasm-relay"

    def __init__(self, *args: str) -> None:
        cmd = [str(RELAY_SCRIPT)] if RELAY_SCRIPT.exists() else [sys.executable, "-m", "pywasm_relay"]
        super().__init__([*cmd, *args], child_env(ROOT, ROOT / "relay-server"))
        self.url = ""
        self.addrs: list[str] = []

    def startup(self) -> "RelayProc":
        while not self.url or not self.addrs:
            line = self.next_line(f"{self.url!r} {self.addrs}")
            if line.startswith("http://"):
                self.url = line
            else:
                self.addrs.append(line)
        return self

    @property
    def addr(self) -> Multiaddr:
        return Multiaddr(self.addrs[0])

    @property
    def peer_id(self) -> PeerId:
        return PeerId.from_string(self.addr.peer_id() or "")


class FixedRelay:
    """``pywasm-relay`` on fixed loopback ports with its own data dir: stop and start again
    give the same identity and addresses."""

    def __init__(self, start: Callable[..., RelayProc], tmp: Path, *flags: str) -> None:
        self._start = start
        site = tmp / "site"
        site.mkdir(exist_ok=True)
        (site / "index.html").write_text("<!doctype html><title>relay</title>\n")
        self.argv = ["--listen", f"/ip4/127.0.0.1/tcp/{free_port()}", "--http", f"127.0.0.1:{free_port()}",
                     "--site", str(site), "--data-dir", str(tmp / "relay-data"), *flags]
        self.proc: RelayProc | None = None
        self.starts = 0

    def start(self) -> RelayProc:
        assert self.proc is None or self.proc.proc.poll() is not None, "relay already running"
        self.proc = self._start(*self.argv).startup()
        self.starts += 1
        return self.proc

    def stop(self) -> int:
        """SIGTERM (a clean shutdown, as an operator's restart); the exit code."""
        assert self.proc is not None
        return self.proc.signal(signal.SIGTERM)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.proc.poll() is None


@pytest.fixture
def relay_procs() -> Iterator[Callable[..., RelayProc]]:
    yield from tracked(RelayProc)


async def _client(**kw: Any) -> Host:
    opts: dict[str, Any] = {"backoff_initial": BACKOFF_INITIAL, "backoff_max": BACKOFF_MAX, "hop_timeout": 10.0}
    opts.update(kw)
    host = await Host.create(
        listen=[],
        transports=[*default_transports(), CircuitTransport(hop_timeout=10.0)],
        # no DCUtR: it would move the pair off the relay, and the relay is what is tested
        services=[*(s for s in default_services() if s.name != "dcutr"), RelayClientService(**opts)],
    )

    async def echo(stream: Any, conn: Any) -> None:
        while chunk := await stream.read(65536):
            await stream.write(chunk)
        await stream.close()

    host.set_stream_handler(ECHO, echo, allow_limited=True)
    return host


@asynccontextmanager
async def _clients(n: int, **kw: Any) -> AsyncIterator[list[Host]]:
    hosts = [await _client(**kw) for _ in range(n)]
    try:
        yield hosts
    finally:
        for h in hosts:
            await asyncio.wait_for(h.stop(), T)


def _rc(host: Host) -> RelayClientService:
    svc = host.services["relay-client"]
    assert isinstance(svc, RelayClientService)
    return svc


async def _echo(conn: Any, data: bytes) -> bytes:
    s = await conn.new_stream([ECHO], timeout=T, allow_limited=True)

    async def send() -> None:
        for off in range(0, len(data), 16384):
            await s.write(data[off : off + 16384])
        await s.close_write()

    out = bytearray()

    async def recv() -> None:
        while chunk := await s.read(65536):
            out.extend(chunk)

    await asyncio.wait_for(asyncio.gather(send(), recv()), T)
    await s.close()
    return bytes(out)


async def _relayed_echo(src: Host, relay_addr: Multiaddr, dst: Host, data: bytes) -> Any:
    conn = await asyncio.wait_for(src.dial(relay_addr.encapsulate(f"/p2p-circuit/p2p/{dst.peer_id}")), T)
    assert conn.limited and conn.remote_peer == dst.peer_id
    assert await _echo(conn, data) == data
    return conn


# --- restart ---------------------------------------------------------------------------------
async def test_clients_reserve_again_after_relay_restart(relay_procs: Any, tmp_path: Path) -> None:
    relay = FixedRelay(relay_procs, tmp_path)
    first = relay.start()
    addr, rid = first.addr, first.peer_id
    relayed = addr.encapsulate("/p2p-circuit")
    async with _clients(2) as (a, b):
        for h in (a, b):
            await asyncio.wait_for(h.listen(relayed), T)
        await _relayed_echo(b, addr, a, b"before the restart")
        before = {h.peer_id: _rc(h).reservation(rid).expire for h in (a, b)}  # type: ignore[union-attr]

        assert relay.stop() == 0
        down = time.monotonic()
        # both lose the reservation (the connection to the relay closed) and its address
        await wait_until(lambda: all(_rc(h).reservation(rid) is None and relayed not in h.listen_addrs()
                                     for h in (a, b)), T)
        await asyncio.sleep(3.0)
        downtime = time.monotonic() - down
        for h in (a, b):
            state = _rc(h).keeper_state(rid)
            assert state is not None and not state["reserved"]
            failed = [x for x in state["attempts"] if not x["ok"] and x["started"] >= down]
            # paced: 0.1, 0.2, 0.4, 0.8, 1, 1 ... s (jitter shortens each by at most half)
            # is at most ~10 tries in 3 s; a client without backoff makes hundreds
            assert 3 <= len(failed) <= 12, (downtime, failed)
            delays = [x["delay"] for x in failed]
            assert max(delays) <= BACKOFF_MAX
            below_cap = [d for d in delays if d < BACKOFF_MAX / 2]
            assert below_cap == sorted(below_cap), delays
            gaps = [y["started"] - x["started"] for x, y in zip(failed, failed[1:])]
            assert all(g >= d * 0.9 for g, d in zip(gaps, delays)), (gaps, delays)
            assert "ECONNREFUSED" in failed[-1]["error"] or "refused" in failed[-1]["error"].lower(), failed[-1]

        second = relay.start()
        assert second.pid != first.pid
        # the same data dir and ports: the same identity and addresses
        assert second.peer_id == rid and second.addr == addr
        up = time.monotonic()
        await wait_until(lambda: all(relayed in h.listen_addrs() for h in (a, b)), T)
        back_ms = (time.monotonic() - up) * 1000
        for h in (a, b):
            state = _rc(h).keeper_state(rid)
            assert state is not None and state["reserved"] and state["failures"] == 0
            assert state["attempts"][-1]["ok"]
            assert state["expire"] >= before[h.peer_id]
        # B reaches A through the new process: it only connects to a peer holding a
        # reservation there, so this also proves the relay took A's fresh reservation
        conn = await _relayed_echo(b, addr, a, os.urandom(32 * 1024))
        assert conn.remote_addr == relayed.encapsulate(f"/p2p/{a.peer_id}")
        assert await asyncio.wait_for(b.services["ping"].ping(rid), T) >= 0  # type: ignore[attr-defined]
        print(f"NATIVE-RELAY-RESTART downtime_s={downtime:.2f} reserved_again_ms={back_ms:.0f}")
    relay.stop()


# --- refresh before expiry -------------------------------------------------------------------
async def test_reservation_refreshed_before_expiry(relay_procs: Any, tmp_path: Path) -> None:
    ttl = 2
    relay = FixedRelay(relay_procs, tmp_path, "--relay-reservation-ttl", str(ttl))
    proc = relay.start()
    addr, rid = proc.addr, proc.peer_id
    relayed = addr.encapsulate("/p2p-circuit")
    async with _clients(2, min_refresh_interval=0.2) as (a, b):
        await asyncio.wait_for(a.listen(relayed), T)
        client = _rc(a)
        expiries: list[int] = []
        gaps = 0
        loop = asyncio.get_running_loop()
        end = loop.time() + 3 * ttl + 0.5
        while loop.time() < end:
            res = client.reservation(rid)
            if res is None or relayed not in a.listen_addrs():
                gaps += 1
            elif not expiries or res.expire != expiries[-1]:
                expiries.append(res.expire)
            await asyncio.sleep(0.05)
        assert gaps == 0
        # refreshed at 3/4 of each ~2 s lifetime: the expiry moved forward several times
        assert len(expiries) >= 3 and expiries == sorted(expiries), expiries
        assert expiries[-1] - expiries[0] >= ttl
        state = client.keeper_state(rid)
        assert state is not None and state["failures"] == 0 and state["attempts_failed"] == 0
        # the relay still holds it after three TTLs: B connects to A through it
        await _relayed_echo(b, addr, a, b"still reserved")
    relay.stop()


# --- limits ----------------------------------------------------------------------------------
async def test_data_limit_cuts_circuit_and_relay_stays_healthy(relay_procs: Any, tmp_path: Path) -> None:
    limit = 64 * 1024
    relay = FixedRelay(relay_procs, tmp_path, "--relay-circuit-data", str(limit))
    proc = relay.start()
    addr, rid = proc.addr, proc.peer_id
    async with _clients(2) as (a, b):
        await asyncio.wait_for(a.listen(addr.encapsulate("/p2p-circuit")), T)
        conn = await _relayed_echo(b, addr, a, b"small")
        res = _rc(a).reservation(rid)
        assert res is not None and res.limit_data == limit
        with pytest.raises(PywasmError) as err:
            await _echo(conn, os.urandom(4 * limit))
        # typed: the relay reset the circuit under the muxer
        assert type(err.value).__name__ in ("StreamResetError", "ConnectionClosedError", "StreamClosedError"), err.value
        await asyncio.wait_for(conn.wait_closed(), T)
        assert relay.alive()
        # the relay still serves: a new circuit, and B's direct connection to it
        fresh = await _relayed_echo(b, addr, a, os.urandom(16 * 1024))
        assert fresh is not conn
        assert await asyncio.wait_for(b.services["ping"].ping(rid), T) >= 0  # type: ignore[attr-defined]
        assert _rc(a).reservation(rid) is not None
        # and says so on /relay.json: A's reservation held, the cut counted
        status = (await _relay_json(proc.url))["relay"]
        assert status["reservations"] == 1 and status["circuits_cut_data"] >= 1, status
        assert status["reservations_accepted"] >= 1 and status["circuits_opened"] >= 2, status
    relay.stop()


async def _relay_json(url: str) -> dict[str, Any]:
    def get() -> dict[str, Any]:
        with urllib.request.urlopen(url + "relay.json", timeout=T) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]

    return await asyncio.to_thread(get)


async def test_duration_limit_cuts_circuit_and_relay_stays_healthy(relay_procs: Any, tmp_path: Path) -> None:
    relay = FixedRelay(relay_procs, tmp_path, "--relay-circuit-duration", "1")
    proc = relay.start()
    addr, rid = proc.addr, proc.peer_id
    async with _clients(2) as (a, b):
        await asyncio.wait_for(a.listen(addr.encapsulate("/p2p-circuit")), T)
        t0 = time.monotonic()
        conn = await _relayed_echo(b, addr, a, b"hi")
        await asyncio.wait_for(conn.wait_closed(), T)
        assert 0.9 <= time.monotonic() - t0 < 5
        with pytest.raises(PywasmError):
            await conn.new_stream([ECHO], timeout=T, allow_limited=True)
        assert relay.alive()
        await _relayed_echo(b, addr, a, b"again")
        assert await asyncio.wait_for(b.services["ping"].ping(rid), T) >= 0  # type: ignore[attr-defined]
    relay.stop()
