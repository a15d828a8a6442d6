"""The universal-connectivity chat (web/chat.html + web/chat.py): three pages, a native
pywasm node and a js-libp2p Node peer chat in topic ``universal-connectivity`` through
pywasm-relay's gossipsub. Every message reaches every member (checked by text and
sender); a reloaded page rejoins and receives new messages; a DM between two pages; the
network view lists peers and connection transports.

test_chat_pages_upgrade_to_direct_webrtc: two pages learn each other's
``/p2p-circuit/webrtc`` address from discovery records carried by the relay's gossipsub,
upgrade to one direct WebRTC connection (not the relayed one), and DM and chat over it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any

import pytest

from e2e.harness import must, must_py
from tests.interop.harness import PeerProcess, node_command

from pywasm.apps.chat import CHAT_TOPIC, ChatNode
from pywasm.host import Host

JS_CHAT_PEER = "e2e/peers/js_chat_peer.mjs"
JOIN_TIMEOUT = 120.0  # Pyodide boot in a loaded browser + dial + reservation
DELIVERY_TIMEOUT = 30.0
MESH_TIMEOUT = 30.0


class NativeChat:
    """A pywasm Host + ChatNode on its own event loop thread (the test itself is sync)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="native-chat", daemon=True)
        self.thread.start()
        self.host: Host | None = None
        self.chat: ChatNode | None = None

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, relay_tcp: str) -> str:
        async def go() -> str:
            self.host = await Host.create(listen=["/ip4/127.0.0.1/tcp/0"])
            self.chat = await ChatNode(self.host, upgrade=False).start()
            await self.chat.connect_relay(relay_tcp, reserve=False)
            return str(self.host.peer_id)

        return self.call(go(), 60)

    def mesh(self) -> list[str]:
        async def go() -> list[str]:
            assert self.chat is not None and self.chat.pubsub is not None
            return [str(p) for p in self.chat.pubsub.mesh(CHAT_TOPIC)]

        return self.call(go())

    def send(self, text: str) -> None:
        assert self.chat is not None
        self.call(self.chat.send(text))

    def send_dm(self, peer: str, text: str, addr: str) -> None:
        assert self.chat is not None
        self.call(self.chat.send_dm(peer, text, addr=addr))

    def dms(self) -> list[tuple[str, str]]:
        async def go() -> list[tuple[str, str]]:
            assert self.chat is not None
            return [(m.sender, m.text) for m in self.chat.history if m.kind == "dm-in"]

        return self.call(go())

    def addr(self) -> str:
        assert self.host is not None
        return str(self.host.addrs()[0])

    def received(self) -> list[tuple[str, str]]:
        async def go() -> list[tuple[str, str]]:
            assert self.chat is not None
            return [(m.sender, m.text) for m in self.chat.history if m.kind == "chat" and not m.mine]

        return self.call(go())

    def stop(self) -> None:
        async def go() -> None:
            if self.chat is not None:
                await self.chat.stop()
            if self.host is not None:
                await self.host.stop()

        try:
            self.call(go(), 20)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


# ------------------------------------------------------------------ page helpers

JOINED = "return await new Promise((ok) => { const t = setInterval(() => { " \
         "const s = document.body.dataset.state; if (s === 'joined' || s === 'error') { clearInterval(t); " \
         "ok({ state: s, error: window.pywasmChat?.error ?? '', peer: document.getElementById('peer-id').textContent }) } }, 100) })"

MESSAGES = """
return [...document.querySelectorAll('#messages li.msg')].map((li) => ({
  kind: li.dataset.kind, sender: li.dataset.sender, peer: li.dataset.peer, via: li.dataset.via,
  text: li.querySelector('.text').textContent }))
"""

SEND = """
document.getElementById('text').value = arg
document.getElementById('send').requestSubmit()
return true
"""

DM = """
document.getElementById('dm-peer').value = arg[0]
document.getElementById('dm-text').value = arg[1]
document.getElementById('dm').requestSubmit()
return true
"""

NETWORK = """
return {
  connections: [...document.querySelectorAll('#connections tr[data-peer]')].map((tr) => ({
    peer: tr.dataset.peer, transport: tr.dataset.transport, limited: tr.dataset.limited,
    rtt: tr.cells[4].textContent })),
  topicPeers: [...document.querySelectorAll('#topic-peers li[data-peer]')].map((li) => li.dataset.peer),
  discovered: [...document.querySelectorAll('#discovered li[data-peer]')].map((li) => li.dataset.peer),
  error: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent,
}
"""

PAGE_MESH = """
import chat_app
result = [str(p) for p in chat_app._app['chat'].pubsub.mesh(arg)]
"""


def join(page: Any, url: str) -> str:
    page.goto(url)
    res = must(page, JOINED, timeout=JOIN_TIMEOUT)
    assert res["state"] == "joined", f"chat page failed: {res['error']}"
    return res["peer"]


def wait_for(what: str, fn: Any, timeout: float, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.0f} s (last: {last!r})")
        time.sleep(interval)


def page_chats(page: Any) -> set[tuple[str, str]]:
    return {(m["sender"], m["text"]) for m in must(page, MESSAGES) if m["kind"] == "chat"}


@pytest.mark.browser_feature(
    "chat (universal-connectivity): 3 pages + native pywasm + js-libp2p in one gossipsub topic via the relay; "
    "reload rejoins; DMs page->page (relayed) and pywasm<->js; network view",
    needs=("WebAssembly", "WebSocket"),
)
def test_chat_pages_native_and_js(new_page, live_relay, peers) -> None:
    relay = live_relay
    relay_tcp = next(a for a in relay.addrs if "/tcp/" in a and "/ws" not in a)
    url = relay.url + "chat.html"
    nonce = uuid.uuid4().hex[:6]

    js = PeerProcess("js-chat", [*node_command(), JS_CHAT_PEER, "listen", "--stdin-lifeline"])
    peers.peers.append(js)
    js.wait_ready()

    def js_cmd(cmd: dict[str, Any]) -> None:
        assert js.proc.stdin is not None
        js.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        js.proc.stdin.flush()

    js_cmd({"cmd": "dial", "addr": relay_tcp})
    js.wait_event(lambda e: e.get("event") == "dialed" and e.get("peer") == relay.peer_id, 30)

    native = NativeChat()
    try:
        native_id = native.start(relay_tcp)
        pages = [new_page(f"chat{i}") for i in range(3)]
        t0 = time.monotonic()
        ids = [join(p, url) for p in pages]
        join_s = time.monotonic() - t0
        assert len(set(ids)) == 3 and all(i.startswith("12D3Koo") for i in ids)

        def js_mesh() -> list[str]:
            js_cmd({"cmd": "mesh", "topic": CHAT_TOPIC})
            ev = js.wait_event(lambda e: e.get("event") == "mesh" and e.get("_seen") is None, 10)
            ev["_seen"] = True
            return ev["peers"]

        # every member has the relay in its chat mesh: the relay meshes with each of them
        for i, p in enumerate(pages):
            wait_for(f"page {i} meshed with the relay",
                     lambda p=p: relay.peer_id in must_py(p, PAGE_MESH, CHAT_TOPIC, node_var="pywasmChat"), MESH_TIMEOUT)
        wait_for("native node meshed with the relay", lambda: relay.peer_id in native.mesh(), MESH_TIMEOUT)
        wait_for("js peer meshed with the relay", lambda: relay.peer_id in js_mesh(), MESH_TIMEOUT)

        # one message from each of the five members
        sent: dict[str, tuple[str, str]] = {}
        for i, p in enumerate(pages):
            text = f"hello from page {i} {nonce}"
            must(p, SEND, text)
            sent[f"page{i}"] = (ids[i], text)
        native.send(f"hello from native pywasm {nonce}")
        sent["native"] = (native_id, f"hello from native pywasm {nonce}")
        js_cmd({"cmd": "publish", "text": f"hello from js-libp2p {nonce}"})
        js_peer_id = js.peer_id
        sent["js"] = (js_peer_id, f"hello from js-libp2p {nonce}")
        t_sent = time.monotonic()

        everyone = set(sent.values())
        for i, p in enumerate(pages):
            want = everyone - {sent[f"page{i}"]}
            wait_for(f"page {i} got every message", lambda p=p, want=want: want <= page_chats(p), DELIVERY_TIMEOUT)
        wait_for("native got every message", lambda: everyone - {sent["native"]} <= set(native.received()),
                 DELIVERY_TIMEOUT)

        def js_got() -> bool:
            got = {(e["from"], e["text"]) for e in js.events() if e.get("event") == "message"}
            return everyone - {sent["js"]} <= got

        wait_for("js peer got every message", js_got, DELIVERY_TIMEOUT)
        delivery_s = time.monotonic() - t_sent
        # nothing arrived twice on a page (gossipsub dedup with UC message ids)
        for p in pages:
            msgs = [(m["sender"], m["text"]) for m in must(p, MESSAGES) if m["kind"] == "chat"]
            assert len(msgs) == len(set(msgs)), msgs

        # the network view: the relay over ws with an RTT, and the topic peers
        def view_ok() -> Any:
            v = must(pages[0], NETWORK)
            conn = [c for c in v["connections"] if c["peer"] == relay.peer_id]
            return v if conn and conn[0]["transport"] == "ws" and conn[0]["rtt"].endswith("ms") \
                and relay.peer_id in v["topicPeers"] else None

        view = wait_for("page 0 network view", view_ok, 20)
        assert not view["error"], view["error"]

        # discovery records through the relay: page 0 learns the other pages
        wait_for("page 0 discovered pages 1 and 2",
                 lambda: {ids[1], ids[2]} <= set(must(pages[0], NETWORK)["discovered"]), 30)

        # a DM from page 0 to page 1 (over their direct WebRTC connection once the chat
        # upgraded, else relayed through the relay's circuit)
        dm_text = f"psst page 1 {nonce}"
        must(pages[0], DM, [ids[1], dm_text])
        wait_for("page 1 got the DM", lambda: any(
            m["kind"] == "dm-in" and m["sender"] == ids[0] and m["text"] == dm_text for m in must(pages[1], MESSAGES)), 30)
        assert any(m["kind"] == "dm-out" and m["peer"] == ids[1] for m in must(pages[0], MESSAGES))
        # a DM is not broadcast
        assert all(m["text"] != dm_text for m in must(pages[2], MESSAGES))

        # DMs with real js-libp2p, both ways, over a direct tcp connection
        native.send_dm(js_peer_id, f"dm to js {nonce}", addr=js.addr(transport="tcp"))
        js.wait_event(lambda e: e.get("event") == "dm" and e.get("text") == f"dm to js {nonce}"
                      and e.get("from") == native_id, 15)
        js_cmd({"cmd": "dm", "addr": native.addr(), "text": f"dm from js {nonce}"})
        assert js.wait_event(lambda e: e.get("event") == "dm-sent", 15)["status"] == 200
        wait_for("native got the js DM", lambda: (js_peer_id, f"dm from js {nonce}") in native.dms(), 15)

        # page 2 reloads: a new node rejoins and receives what is said afterwards
        old = ids[2]
        ids[2] = join(pages[2], url)
        assert ids[2] != old
        wait_for("reloaded page meshed with the relay",
                 lambda: relay.peer_id in must_py(pages[2], PAGE_MESH, CHAT_TOPIC, node_var="pywasmChat"), MESH_TIMEOUT)
        after = {
            (native_id, f"after reload from native {nonce}"),
            (ids[0], f"after reload from page 0 {nonce}"),
            (js_peer_id, f"after reload from js {nonce}"),
        }
        native.send(f"after reload from native {nonce}")
        must(pages[0], SEND, f"after reload from page 0 {nonce}")
        js_cmd({"cmd": "publish", "text": f"after reload from js {nonce}"})
        wait_for("reloaded page got the new messages", lambda: after <= page_chats(pages[2]), DELIVERY_TIMEOUT)
        assert not any(t.startswith("hello") for _, t in page_chats(pages[2])), "a new page has no old history"
        must(pages[2], SEND, f"back again {nonce}")
        wait_for("page 1 got the reloaded page's message",
                 lambda: (ids[2], f"back again {nonce}") in page_chats(pages[1]), DELIVERY_TIMEOUT)
        wait_for("native got the reloaded page's message",
                 lambda: (ids[2], f"back again {nonce}") in set(native.received()), DELIVERY_TIMEOUT)

        print("E2E-TIMING " + json.dumps({"test": "chat", "join_3_pages_s": round(join_s, 2),
                                          "deliver_5x4_s": round(delivery_s, 2)}))
    finally:
        native.stop()


# ------------------------------------------------------------------ direct WebRTC upgrade

RTC_NEEDS = ("WebAssembly", "WebSocket", "RTCPeerConnection")

# The page's own view of its connections to ``arg`` (a peer id): what the host holds,
# and for a direct WebRTC one the browser's selected ICE candidate pair.
PAGE_CONNS = """
out = []
for c in host.connections:
    if str(c.remote_peer) != arg:
        continue
    item = {"limited": c.limited, "addr": str(c.remote_addr), "security": c.security_protocol,
            "muxer": c.muxer_protocol, "closed": c.is_closed, "pair": None}
    if not c.limited and c.muxer_protocol == "/webrtc":
        pair = await c.secure.js.selectedPair()
        item["pair"] = pair.to_py() if pair is not None else None
    out.append(item)
result = out
"""


# what a page holds, for failure messages
DIAG = """
result = {"listen": [str(a) for a in host.listen_addrs()], "transports": [type(t).__name__ for t in host.transports],
          "conns": [(str(c.remote_peer), str(c.remote_addr), c.limited) for c in host.connections]}
"""


def _direct_rtc(page: Any, peer: str) -> list[dict[str, Any]]:
    return [c for c in must_py(page, PAGE_CONNS, peer, node_var="pywasmChat")
            if not c["limited"] and not c["closed"] and c["muxer"] == "/webrtc"]


@pytest.mark.browser_feature(
    "chat: two pages discover each other through the relay and upgrade to direct WebRTC; DM + chat over it",
    needs=RTC_NEEDS,
)
def test_chat_pages_upgrade_to_direct_webrtc(new_page, live_relay) -> None:
    relay = live_relay
    url = relay.url + "chat.html"
    nonce = uuid.uuid4().hex[:6]
    pages = [new_page(f"rtc-chat{i}") for i in range(2)]
    t0 = time.monotonic()
    ids = [join(p, url) for p in pages]
    join_s = time.monotonic() - t0

    # each page listens through the relay with /webrtc and says so in its discovery record
    for i, p in enumerate(pages):
        addrs = must_py(p, "result = [str(a) for a in host.addrs()]", node_var="pywasmChat")
        assert any(a.endswith(f"/p2p-circuit/webrtc/p2p/{ids[i]}") for a in addrs), (addrs, must_py(p, DIAG, node_var="pywasmChat"))

    # both network views show the other page over a direct (not limited) webrtc
    # connection, which the chat made by itself from the discovery record
    def upgraded() -> bool:
        for i, j in ((0, 1), (1, 0)):
            rows = [c for c in must(pages[i], NETWORK)["connections"] if c["peer"] == ids[j]]
            if not any(r["transport"] == "webrtc" and r["limited"] == "false" for r in rows):
                return False
        return True

    t1 = time.monotonic()
    wait_for("both pages upgraded to direct WebRTC", upgraded, 60)
    upgrade_s = time.monotonic() - t1
    n_direct = []
    for i, j in ((0, 1), (1, 0)):
        direct = _direct_rtc(pages[i], ids[j])
        n_direct.append(len(direct))
        # one connection: the larger peer id leaves the dial to the smaller one (no
        # crossing dials that would leave two)
        assert len(direct) == 1, must_py(pages[i], PAGE_CONNS, ids[j], node_var="pywasmChat")
        for c in direct:
            assert c["security"] == "/webrtc", c
            # the peer's /webrtc address, not the relay's circuit
            assert c["addr"].endswith(f"/p2p-circuit/webrtc/p2p/{ids[j]}"), c
            pair = c["pair"]
            assert pair and pair["local"] and pair["remote"], c
            # the media path is host-to-host: no TURN relay candidate at either end
            assert "relay" not in (pair["local"]["type"], pair["remote"]["type"]), pair

    # a DM page 0 -> page 1 arrives, and page 1 saw it come in over the direct connection
    dm_text = f"direct dm {nonce}"
    must(pages[0], DM, [ids[1], dm_text])
    got = wait_for("page 1 got the DM", lambda: [
        m for m in must(pages[1], MESSAGES) if m["kind"] == "dm-in" and m["sender"] == ids[0] and m["text"] == dm_text
    ], 30)
    assert got[0]["via"] == "webrtc", got
    dm_back = f"direct dm back {nonce}"
    must(pages[1], DM, [ids[0], dm_back])
    got = wait_for("page 0 got the DM back", lambda: [
        m for m in must(pages[0], MESSAGES) if m["kind"] == "dm-in" and m["sender"] == ids[1] and m["text"] == dm_back
    ], 30)
    assert got[0]["via"] == "webrtc", got

    # gossipsub runs over the direct connection too: each page is the other's topic peer
    # (limited connections carry no pubsub), and chat still arrives
    for i, j in ((0, 1), (1, 0)):
        wait_for(f"page {j} is page {i}'s topic peer", lambda i=i, j=j: ids[j] in must(pages[i], NETWORK)["topicPeers"], 30)
    text = f"over webrtc {nonce}"
    must(pages[0], SEND, text)
    wait_for("page 1 got the chat message", lambda: (ids[0], text) in page_chats(pages[1]), DELIVERY_TIMEOUT)
    print("E2E-TIMING " + json.dumps({"test": "chat-webrtc-upgrade", "join_2_pages_s": round(join_s, 2),
                                      "upgrade_s": round(upgrade_s, 2), "direct_conns": n_direct}))
