"""Subprocess plumbing shared by the native CLI and relay tests (and
benchmarks/relay_capacity.py's relays and workers).

Every process started here is tracked by its PID and only those are signalled.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import IO, Callable, Iterator, TypeVar

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0
STDERR_LINES = 2000  # the tail of a child's stderr kept for failure messages


def child_env(*paths: Path) -> dict[str, str]:
    """This environment with ``paths`` first on PYTHONPATH and unbuffered output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(p) for p in paths] + [env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ProcError(AssertionError):
    """A child printed no line in time or exited early (a failed check in a test)."""


class Proc:
    """A child process; its stdout lines arrive through a queue (``None`` at EOF)."""

    name = "process"

    def __init__(self, argv: list[str], env: dict[str, str], *, stdin: int | IO[str] | None = None,
                 preexec_fn: Callable[[], None] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            cwd=ROOT,
            env=env,
            preexec_fn=preexec_fn,
        )
        self.pid = self.proc.pid
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: deque[str] = deque(maxlen=STDERR_LINES)
        threading.Thread(target=self._pump_out, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def next_line(self, printed: str = "", timeout: float = STARTUP_TIMEOUT) -> str:
        """The next stdout line within ``timeout``; ``printed`` describes what came so far."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            so_far = f" (printed so far: {printed})" if printed else ""
            raise ProcError(f"{self.name}: no line within {timeout:.0f} s{so_far}; "
                            f"stderr: {self.stderr_text()}") from None
        if line is None:
            raise ProcError(f"{self.name} exited early ({self.proc.wait()}); stderr: {self.stderr_text()}")
        return line

    def stderr_text(self) -> str:
        return "".join(self.stderr)

    def signal(self, sig: int) -> int:
        if self.proc.poll() is None:
            os.kill(self.pid, sig)  # our own child, by its PID
        return self.proc.wait(timeout=STARTUP_TIMEOUT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=STARTUP_TIMEOUT)


P = TypeVar("P", bound=Proc)


def tracked(factory: Callable[..., P]) -> Iterator[Callable[..., P]]:
    """Fixture body: yields ``start(*args)``; afterwards SIGKILLs what it started, by PID."""
    procs: list[P] = []

    def start(*args: str) -> P:
        p = factory(*args)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
