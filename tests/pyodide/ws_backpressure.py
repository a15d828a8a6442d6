"""Run by tests/pyodide/ws_backpressure.mjs inside Pyodide (real WebLoop): a write held up
by WebSocket send backpressure must wait, not spin the event loop.

Not a pytest module (no ``test_`` prefix): it needs a live native node and JS WebSocket.
``CFG`` (set by the runner): target (full /ws/p2p/ multiaddr), size (bytes per echo),
rounds. ``main()`` returns a dict: checks {name: "ok" | error line} and the numbers.

Why: Pyodide's WebLoop runs a delay of <= 2 ms as an immediate callback (setImmediate in
Node, a MessageChannel message in browsers), so polling ``bufferedAmount`` with
``asyncio.sleep(0.002)`` ran hundreds of thousands of loop callbacks per 16 MiB echo
while the socket drained; in Chromium that busy loop went with rare echo stalls. The
transport now awaits one shim promise per wait (``drained``, checked on a JS timer).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pywasm.host import Host
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.transports.browser_websocket import BrowserWebSocketTransport

# Tiny high-water mark: almost every 64 KiB message must wait for the socket to drain.
HIGH_WATER = 16 * 1024
MAX_MESSAGE = 64 * 1024
ECHO_DEADLINE = 120.0
# Loop callbacks allowed per MiB echoed, all work included (reads, muxer, Noise, waits).
# A promise-based wait costs a handful (the JS promise settles a Future, which wakes the
# task): measured ~40 per MiB. The polling loop this guards against cost one per spin,
# ~2,000 per wait, i.e. thousands per MiB. Normalised by the data, not by the number of
# waits: sealed batches (sendLater) and yamux's 1 MiB initial window make waits fewer and
# longer, so each wait legitimately overlaps more of the echo's own work.
MAX_CALLBACKS_PER_MIB = 100


def _pattern(n: int) -> bytes:
    block = bytes(range(256)) * 4096  # 1 MiB
    return (block * (n // len(block) + 1))[:n]


class _CallbackCounter:
    """Counts every callback scheduled on the running WebLoop (call_soon goes through
    call_later there) while installed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.n = 0
        self._cls = type(loop)
        self._orig = self._cls.call_later

    def __enter__(self) -> "_CallbackCounter":
        orig = self._orig

        def counting(loop: Any, delay: float, callback: Any, *args: Any, context: Any = None) -> Any:
            self.n += 1
            return orig(loop, delay, callback, *args, context=context)

        self._cls.call_later = counting  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self._cls.call_later = self._orig  # type: ignore[method-assign]


class _WaitCounter:
    """Wraps the JS side of a BrowserWebSocketConnection: counts the sends after which the
    socket holds more than the high-water mark, i.e. the next write has to wait. Counted
    at the shim boundary, so it does not depend on how the transport waits."""

    def __init__(self, raw: Any, high_water: int) -> None:
        self.waits = 0
        js = raw._js
        counter = self

        class Proxy:
            def send(self, u8: Any) -> Any:
                res = js.send(u8)
                if js.bufferedAmount > high_water:
                    counter.waits += 1
                return res

            # Noise frames arrive here (sealed in JS, sent when ready: write_sealed)
            def sendLater(self, data: Any, nbytes: int, max_msg: int = 0) -> Any:
                res = js.sendLater(data, nbytes, max_msg)
                if js.bufferedAmount > high_water:
                    counter.waits += 1
                return res

            def __getattr__(self, name: str) -> Any:
                return getattr(js, name)

        raw._js = Proxy()


# The fake socket's buffer drains this long after a send; callbacks allowed meanwhile.
FAKE_DRAIN_MS = 300
MAX_CALLBACKS_WHILE_BLOCKED = 25


async def _blocked_write(checks: dict[str, str], out: dict[str, Any]) -> None:
    """A write that must wait FAKE_DRAIN_MS for the socket to drain, on the real shim over
    a stand-in WebSocket: count the loop callbacks it costs meanwhile."""
    import pywasm_ws_fake  # type: ignore[import-not-found]  # registered by the runner

    from pywasm.transports.browser_websocket import BrowserWebSocketConnection

    conn = BrowserWebSocketConnection(pywasm_ws_fake.open(FAKE_DRAIN_MS), Multiaddr("/ip4/127.0.0.1/tcp/1/ws"),
                                      max_send_message=MAX_MESSAGE, send_high_water=HIGH_WATER)
    await conn.write(b"x" * MAX_MESSAGE)  # fills the buffer past the high-water mark
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    with _CallbackCounter(loop) as cb:
        await asyncio.wait_for(conn.write(b"y" * MAX_MESSAGE), FAKE_DRAIN_MS / 1000 * 20)
    waited = time.perf_counter() - t0
    out["blocked_write_ms"] = round(waited * 1000, 1)
    out["blocked_write_callbacks"] = cb.n
    await conn.reset()
    if waited < FAKE_DRAIN_MS / 1000 * 0.9:
        checks["blocked_write_waits"] = f"the write returned after {waited * 1000:.0f} ms, before the drain"
    else:
        checks["blocked_write_waits"] = "ok"
    checks["blocked_write_no_spin"] = "ok" if cb.n <= MAX_CALLBACKS_WHILE_BLOCKED else (
        f"{cb.n} loop callbacks while one write waited {FAKE_DRAIN_MS} ms for the socket to drain "
        f"(bound {MAX_CALLBACKS_WHILE_BLOCKED}): the write polls the event loop")


async def _clean_close_is_eof(checks: dict[str, str]) -> None:
    """A read waiting when the server closes cleanly ends with b"" (EOF). JS resolves it
    with null, which reaches Python as jsnull, not None: mistaking it for data once turned
    every clean close into an AttributeError that only broad excepts hid."""
    import pywasm_ws_fake  # type: ignore[import-not-found]  # registered by the runner

    from pywasm.transports.browser_websocket import BrowserWebSocketConnection

    js = pywasm_ws_fake.open(FAKE_DRAIN_MS)
    conn = BrowserWebSocketConnection(js, Multiaddr("/ip4/127.0.0.1/tcp/1/ws"))
    pending = asyncio.ensure_future(conn.read())
    await asyncio.sleep(0.01)  # the read is now waiting on the shim's promise
    pywasm_ws_fake.closeClean(js)
    got = await asyncio.wait_for(pending, 5)
    checks["clean_close_is_eof"] = "ok" if got == b"" else f"read returned {got!r}, not b'' (EOF)"


async def main(cfg: Any) -> dict[str, Any]:
    checks: dict[str, str] = {}
    out: dict[str, Any] = {"checks": checks, "rounds": []}
    try:
        await _blocked_write(checks, out)
    except Exception as exc:
        checks["blocked_write"] = f"{type(exc).__name__}: {exc}"
    try:
        await _clean_close_is_eof(checks)
    except Exception as exc:
        checks["clean_close_is_eof"] = f"{type(exc).__name__}: {exc}"
    target = Multiaddr(str(cfg["target"]))
    size = int(cfg["size"])
    data = _pattern(size)
    transport = BrowserWebSocketTransport(send_high_water=HIGH_WATER, max_send_message=MAX_MESSAGE)
    host = await Host.create(listen=[], transports=[transport])
    try:
        conn = await host.dial(target)
        raw = conn.secure.raw  # the Noise channel runs over the BrowserWebSocketConnection
        waits = _WaitCounter(raw, HIGH_WATER)
        loop = asyncio.get_running_loop()
        total_cb = total_waits = 0
        for i in range(int(cfg["rounds"])):
            w0 = waits.waits
            t0 = time.perf_counter()
            try:
                with _CallbackCounter(loop) as cb:
                    back = await asyncio.wait_for(host.services["echo"].echo(conn, data), ECHO_DEADLINE)
            except Exception as exc:
                checks[f"echo_{i}"] = f"{type(exc).__name__}: {exc}"
                break
            dt = time.perf_counter() - t0
            nw = waits.waits - w0
            out["rounds"].append({"s": round(dt, 3), "mib_per_s": round(size / (1 << 20) / dt, 2),
                                  "callbacks": cb.n, "waits": nw})
            checks[f"echo_{i}"] = "ok" if back == data else f"echo returned {len(back)} bytes, not {size} exact"
            total_cb += cb.n
            total_waits += nw
        out["callbacks"] = total_cb
        out["waits"] = total_waits
        if total_waits == 0:
            checks["backpressure_engaged"] = "no write ever waited: the test did not exercise backpressure"
        else:
            checks["backpressure_engaged"] = "ok"
            out["callbacks_per_wait"] = round(total_cb / total_waits, 1)
            echoed_mib = size * len(out["rounds"]) / (1 << 20)
            per_mib = total_cb / echoed_mib if echoed_mib else float("inf")
            out["callbacks_per_mib"] = round(per_mib, 1)
            checks["no_spin"] = "ok" if per_mib <= MAX_CALLBACKS_PER_MIB else (
                f"{per_mib:.0f} loop callbacks per MiB echoed (bound {MAX_CALLBACKS_PER_MIB}): "
                "the write is polling the event loop")
    except Exception as exc:
        checks["dial"] = f"{type(exc).__name__}: {exc}"
    finally:
        await host.stop()
    return out
