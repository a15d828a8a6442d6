"""Two real NATs built from network namespaces, veth pairs and nftables, for hole punching.

Layout (every box is its own network namespace; ``inet`` is the "internet")::

      host a 10.0.1.2 ── lan 10.0.1.1 [router a] wan 5.5.5.5 ──┐
                                                              br0 (inet) 7.7.7.7 (relay)
      host b 10.0.2.2 ── lan 10.0.2.1 [router b] wan 6.6.6.6 ──┘

Each router masquerades what leaves its ``wan`` (nftables ``masquerade``: Linux conntrack
keeps the source port when it is free on the router, so the mapping is port preserving and
endpoint independent) and drops what arrives on ``wan`` unless conntrack relates it to a
flow from inside (address-and-port-dependent filtering, the common home-router setup). It
drops rather than rejects, as real NATs do: a SYN reaching a router before the inside host
punched its hole is simply lost, and TCP retransmits it.

The public addresses look globally routable on purpose: js-libp2p's DCUtR ignores private
ones. Nothing leaves the namespaces.

Namespaces are held by one ``cat`` process each (started with ``unshare -n``), whose stdin
is a pipe from this process: :meth:`NatTopology.stop` closes the pipes, and so does our
death, so the namespaces (and every veth in them) vanish with their last process. Commands
run inside with ``nsenter -t <holder pid> -n``. Only processes started here are signalled,
by PID. Needs root, ``unshare``/``nsenter`` (util-linux), ``ip`` (iproute2) and ``nft``
(``bash scripts/setup_netns.sh`` installs them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

RELAY_IP = "7.7.7.7"
ROUTER_IP = {"a": "5.5.5.5", "b": "6.6.6.6"}
HOST_IP = {"a": "10.0.1.2", "b": "10.0.2.2"}
LAN_GW = {"a": "10.0.1.1", "b": "10.0.2.1"}
NAMESPACES = ("inet", "ra", "rb", "ha", "hb")
CMD_TIMEOUT = 15.0
SETUP_HINT = "run `bash scripts/setup_netns.sh` as root (installs nftables and iproute2)"


class NatUnavailable(RuntimeError):
    """This machine cannot build the topology: tests fail with this (never skip)."""


def check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise NatUnavailable("the NAT topology needs root (network namespaces, nftables)")
    missing = [t for t in ("unshare", "nsenter", "ip", "nft") if shutil.which(t) is None]
    if missing:
        raise NatUnavailable(f"missing {', '.join(missing)}: {SETUP_HINT}")


def _nft_router_rules() -> str:
    return """
table ip nat {
  chain postrouting { type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade
  }
}
table inet fw {
  chain forwarding { type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "lan" oifname "wan" accept
  }
  chain inbound { type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }
}
"""


@dataclass
class NatTopology:
    holders: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "NatTopology":
        check_prerequisites()
        try:
            for ns in NAMESPACES:
                self.holders[ns] = subprocess.Popen(
                    ["unshare", "-n", "--", "cat"],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                )
            for ns in NAMESPACES:
                self.sh(ns, "ip link set lo up")
            self._build()
        except BaseException:
            self.stop()
            raise
        return self

    def _build(self) -> None:
        inet = self.pid("inet")
        self.sh("inet", f"ip link add br0 type bridge && ip link set br0 up && ip addr add {RELAY_IP}/32 dev br0")
        for side in ("a", "b"):
            r, h = f"r{side}", f"h{side}"
            # router wan <-> bridge port in inet
            self.sh(r, f"ip link add wan type veth peer name up{side} netns {inet}")
            self.sh("inet", f"ip link set up{side} master br0 && ip link set up{side} up"
                            f" && ip route add {ROUTER_IP[side]}/32 dev br0")
            self.sh(r, f"ip addr add {ROUTER_IP[side]}/32 dev wan && ip link set wan up && ip route add default dev wan")
            # router lan <-> host eth0
            self.sh(r, f"ip link add lan type veth peer name eth0 netns {self.pid(h)}")
            self.sh(r, f"ip addr add {LAN_GW[side]}/24 dev lan && ip link set lan up")
            self.sh(h, f"ip addr add {HOST_IP[side]}/24 dev eth0 && ip link set eth0 up"
                       f" && ip route add default via {LAN_GW[side]}")
            self.sh(r, "sysctl -qw net.ipv4.ip_forward=1")
            self.run(r, ["nft", "-f", "-"], input=_nft_router_rules())

    def stop(self) -> None:
        for proc in self.holders.values():
            if proc.poll() is None and proc.stdin is not None:
                try:
                    proc.stdin.close()  # cat exits on EOF: the namespace goes with it
                except OSError:
                    pass
        for proc in self.holders.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.holders.clear()

    def __enter__(self) -> "NatTopology":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ running things inside
    def pid(self, ns: str) -> int:
        proc = self.holders[ns]
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise NatUnavailable(f"namespace holder {ns} exited ({proc.returncode}): {err[-500:]}")
        return proc.pid

    def wrap(self, ns: str, argv: list[str]) -> list[str]:
        """``argv`` as a command line that runs inside namespace ``ns``."""
        return ["nsenter", "-t", str(self.pid(ns)), "-n", "--", *argv]

    def run(self, ns: str, argv: list[str], input: str | None = None, check: bool = True,
            timeout: float = CMD_TIMEOUT) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.wrap(ns, argv), input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise NatUnavailable(
                f"in namespace {ns}: {' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()[-800:]}"
            )
        return proc

    def sh(self, ns: str, script: str) -> str:
        return self.run(ns, ["sh", "-ec", script]).stdout

    def popen(self, ns: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(self.wrap(ns, argv), **kwargs)

    def conntrack_entries(self, router: str) -> list[str] | None:
        """The router's conntrack entries, or None when the kernel does not expose them
        (no /proc/net/nf_conntrack)."""
        out = self.run(router, ["sh", "-c", "cat /proc/net/nf_conntrack 2>/dev/null || echo NO-PROCFS"], check=False)
        if out.stdout.strip() == "NO-PROCFS":
            return None
        return out.stdout.splitlines()

    def conntrack(self, router: str) -> str:
        """The router's ruleset and conntrack entries, for failure messages."""
        text = self.run(router, ["nft", "list", "ruleset"], check=False).stdout
        entries = self.conntrack_entries(router)
        return text + "\n" + ("\n".join(entries) if entries is not None else "(no /proc/net/nf_conntrack)")

    def tcp_sockets(self, ns: str) -> list[str]:
        """``ss -tan`` inside ``ns`` (every TCP socket, any state)."""
        return self.run(ns, ["ss", "-tanH"], check=False).stdout.splitlines()


__all__ = [
    "NatTopology", "NatUnavailable", "check_prerequisites",
    "RELAY_IP", "ROUTER_IP", "HOST_IP", "NAMESPACES",
]
