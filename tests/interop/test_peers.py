"""The harness itself: every third-party peer against every other, no pywasm involved.

If these fail, the peer programs or their installs are broken (run scripts/setup.sh);
pywasm's own interop results are meaningless until they pass.
"""

from __future__ import annotations

import pytest

from tests.interop.harness import PeerSet, check_installed
from tests.interop.pw import KUBO_ECHO, MIB, MUXER_IDS

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("impl", ["js", "py", "go"])
def test_peer_installed(impl: str) -> None:
    check_installed(impl)


@pytest.mark.parametrize(
    "listener,dialer,muxer",
    [("js", "py", "yamux"), ("py", "js", "mplex"), ("js", "js", "yamux")],
)
def test_js_py_pairs(peers: PeerSet, listener: str, dialer: str, muxer: str) -> None:
    lp = peers.listen(listener, "--muxer", muxer)
    res = peers.dial(dialer, lp.addr(), "--muxer", muxer)
    assert res["muxer"] == MUXER_IDS[muxer]
    assert res["echo"] == {**res["echo"], "bytes": MIB, "ok": True}
    assert "/ipfs/ping/1.0.0" in res["identify"]["protocols"]


def test_js_dials_js_over_ws_with_perf(peers: PeerSet) -> None:
    lp = peers.listen("js", "--listen", "/ip4/127.0.0.1/tcp/0/ws")
    res = peers.dial("js", lp.addr(transport="ws"), "--perf-up", str(MIB), "--perf-down", str(MIB))
    assert res["perf"]["download_bytes"] == MIB


@pytest.mark.parametrize("other", ["js", "py"])
def test_go_listens(peers: PeerSet, other: str) -> None:
    go = peers.listen("go", "--muxer", "yamux")
    res = peers.dial(other, go.addr(), "--echo-protocol", KUBO_ECHO, "--echo-read-before-close")
    assert res["identify"]["agent"].startswith("kubo/")
    assert res["identify"]["key_type"] == "RSA"
    assert res["echo"]["ok"]
    go.wait_event(lambda e: e.get("event") == "echo" and e.get("bytes") == MIB)


@pytest.mark.parametrize("other", ["js", "py"])
def test_go_dials(peers: PeerSet, other: str) -> None:
    lp = peers.listen(other, "--echo-protocol", KUBO_ECHO)
    res = peers.dial("go", lp.addr())
    assert res["key_type"] == "RSA" and res["connected"]
    assert res["echo"]["bytes"] == MIB and res["echo"]["ok"]
    lp.wait_event(lambda e: e.get("event") == "echo" and e.get("bytes") == MIB)
