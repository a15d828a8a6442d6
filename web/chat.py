"""The chat page's logic, in Python on Pyodide (loaded by chat.js into the page's node).

chat.js boots the pywasm node, then calls :func:`start` with the node's Host and the
relay's WebSocket address. Everything else happens here: the universal-connectivity chat
(pywasm.apps.chat.ChatNode: gossipsub topic ``universal-connectivity``, DMs, peer
discovery, direct upgrades when possible), the form handlers and the rendering of the
messages and of the live network view into the DOM.

For tests: <body data-state> goes "joining" -> "joined" (or "error"); every message is an
``li.msg`` with data-kind/data-sender/data-via (a DM's transport); every connection a ``tr``
with data-peer/data-transport/data-limited; topic peers ``li`` with data-peer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from js import document, window  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy  # type: ignore[import-not-found]

from pywasm.apps.chat import CHAT_TOPIC, ChatError, ChatNode

log = logging.getLogger("pywasm.web.chat")

RENDER_WAIT = 1.0  # seconds between renders when nothing changes (RTTs age)
_proxies: list[Any] = []  # keep the event-handler proxies alive
_app: dict[str, Any] = {}


def _el(tag: str, text: str = "", cls: str = "", **data: str) -> Any:
    e = document.createElement(tag)
    if text:
        e.textContent = text
    if cls:
        e.className = cls
    for k, v in data.items():
        e.setAttribute(f"data-{k}", v)
    return e


def short(peer: str) -> str:
    return f"{peer[:8]}…{peer[-6:]}" if len(peer) > 20 else peer


def _by_id(name: str) -> Any:
    return document.getElementById(name)


def _set_error(msg: str) -> None:
    box = _by_id("error")
    box.textContent = msg
    box.hidden = not msg


def render_messages(chat: ChatNode) -> None:
    box = _by_id("messages")
    me = str(chat.host.peer_id)
    msgs = chat.messages()
    # append only what is new (the history is bounded: rebuild once it wrapped)
    first = str(msgs[0]["ts"]) + msgs[0]["text"][:8] if msgs else ""
    shown = int(box.getAttribute("data-count") or 0)
    if shown > len(msgs) or (box.getAttribute("data-first") or "") != first:
        box.replaceChildren()
        shown = 0
    for m in msgs[shown:]:
        li = _el("li", "", f"msg {m['kind']}{' mine' if m['mine'] else ''}", kind=m["kind"], sender=m["sender"],
                 peer=m["peer"], via=m["via"])
        who = "me" if m["sender"] == me else short(m["sender"])
        if m["kind"] == "dm-out":
            who = f"me → {short(m['peer'])}"
        elif m["kind"] == "dm-in":
            who = f"{short(m['sender'])} → me"
        label = _el("span", who, "sender")
        label.title = m["sender"]
        li.append(label)
        li.append(_el("span", m["text"], "text"))
        box.append(li)
    box.setAttribute("data-count", str(len(msgs)))
    box.setAttribute("data-first", first)
    if len(msgs) > shown:
        box.scrollTop = box.scrollHeight


def render_network(chat: ChatNode) -> None:
    net = chat.network()
    body = _by_id("connections")
    body.replaceChildren()
    for c in net["connections"]:
        tr = _el("tr", "", "", peer=c["peer"], transport=c["transport"], limited=str(c["limited"]).lower())
        rtt = f"{c['rtt_ms']:.1f} ms" if c["rtt_ms"] is not None else ("relayed" if c["limited"] else "–")
        for text, title in ((short(c["peer"]), c["peer"]), (c["transport"], ""), (c["addr"], c["addr"]),
                            (c["direction"], ""), (rtt, "")):
            td = _el("td", text)
            if title:
                td.title = title
            tr.append(td)
        body.append(tr)
    if not net["connections"]:
        body.append(_el("tr", "none", "muted"))
    peers = _by_id("topic-peers")
    peers.replaceChildren()
    mesh = set(net["mesh"].get(CHAT_TOPIC, []))
    for p in net["topic_peers"].get(CHAT_TOPIC, []):
        li = _el("li", "", "peer", peer=p)
        b = _el("button", short(p), "dm-pick")
        b.type = "button"
        b.title = f"direct message {p}"
        li.append(b)
        if p in mesh:
            li.append(_el("span", "mesh", "badge"))
        peers.append(li)
    disc = _by_id("discovered")
    disc.replaceChildren()
    for p, info in net["discovered"].items():
        li = _el("li", "", "peer", peer=p)
        b = _el("button", short(p), "dm-pick")
        b.type = "button"
        b.title = "\n".join(info["addrs"]) or p
        li.append(b)
        disc.append(li)
    _by_id("addrs").textContent = "\n".join(net["addrs"]) or "(none: browsers cannot listen)"


async def _render_loop(chat: ChatNode) -> None:
    seen = -1
    while True:
        try:
            render_messages(chat)
            render_network(chat)
        except Exception:  # noqa: BLE001 - a render bug must not stop the chat
            log.exception("render failed")
        seen = await chat.wait_change(chat.version if seen == chat.version else seen, RENDER_WAIT)


def _on_send(event: Any) -> None:
    event.preventDefault()
    chat: ChatNode = _app["chat"]
    box = _by_id("text")
    text = str(box.value)
    if not text.strip():
        return
    box.value = ""

    async def go() -> None:
        try:
            await chat.send(text)
            _set_error("")
        except (ChatError, Exception) as exc:  # noqa: BLE001 - shown to the user
            _set_error(f"send failed: {exc}")

    asyncio.ensure_future(go())


def _on_dm(event: Any) -> None:
    event.preventDefault()
    chat: ChatNode = _app["chat"]
    peer = str(_by_id("dm-peer").value).strip()
    box = _by_id("dm-text")
    text = str(box.value)
    if not peer or not text.strip():
        _set_error("a DM needs a peer id and a message")
        return
    box.value = ""

    async def go() -> None:
        try:
            await chat.send_dm(peer, text)
            _set_error("")
        except Exception as exc:  # noqa: BLE001 - shown to the user
            _set_error(f"DM failed: {exc}")

    asyncio.ensure_future(go())


def _on_pick(event: Any) -> None:
    li = event.target.closest("li[data-peer]")
    if li:
        _by_id("dm-peer").value = li.getAttribute("data-peer")
        _by_id("dm-text").focus()


def _listen(el_id: str, event: str, fn: Any) -> None:
    proxy = create_proxy(fn)
    _proxies.append(proxy)
    _by_id(el_id).addEventListener(event, proxy)


async def start(host: Any, relay_addr: str) -> ChatNode:
    """Start the chat on ``host``, join through the relay, wire the UI."""
    chat = await ChatNode(host).start()
    _app["chat"] = chat
    window.pywasmChat.chat = chat  # for tests and the console
    _by_id("peer-id").textContent = str(host.peer_id)
    document.body.dataset.state = "joining"
    relay = await chat.connect_relay(relay_addr)
    _by_id("relay").textContent = f"{relay_addr}"
    _listen("send", "submit", _on_send)
    _listen("dm", "submit", _on_dm)
    _listen("topic-peers", "click", _on_pick)
    _listen("discovered", "click", _on_pick)
    for el_id in ("text", "send-button", "dm-peer", "dm-text", "dm-button"):
        _by_id(el_id).disabled = False
    asyncio.ensure_future(_render_loop(chat))
    document.body.dataset.state = "joined"
    log.info("chat joined through %s", relay)
    return chat
