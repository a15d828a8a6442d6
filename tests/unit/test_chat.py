"""The universal-connectivity chat (pywasm/apps/chat.py) over the memory transport: two
chat nodes that only know a relay hub meet in its mesh, DMs, discovery records, and the
wire formats against protobuf encodings worked out by hand from UC's .proto files."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from pywasm.apps.chat import (
    CHAT_TOPIC,
    DM_PROTOCOL,
    ChatError,
    ChatNode,
    DiscoveryPeer,
    DMMetadata,
    DMRequest,
    DMResponse,
    DMStatus,
    TopicRelayGossipsub,
    transport_of,
    uc_msg_id,
)
from pywasm.host import Host
from pywasm.identity import KeyType, PrivateKey
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.pubsub import PubsubMessage
from pywasm.services import default_services
from pywasm.transports.memory import MemoryTransport
from tests._helpers import wait_until

TIMEOUT = 15.0


def test_uc_msg_id_is_sha256_of_decimal_seqno() -> None:
    seqno = (1_700_000_000_123_456_789).to_bytes(8, "big")
    msg = PubsubMessage(topic=CHAT_TOPIC, data=b"x", seqno=seqno)
    assert uc_msg_id(msg) == hashlib.sha256(b"1700000000123456789").digest()
    # same seqno, other data and author: same id (UC's function looks at the seqno only)
    assert uc_msg_id(PubsubMessage(topic=CHAT_TOPIC, data=b"y", seqno=seqno, from_peer=b"\x00")) == uc_msg_id(msg)
    assert uc_msg_id(PubsubMessage(topic=CHAT_TOPIC, data=b"z")) == hashlib.sha256(b"z").digest()


def test_dm_wire_format() -> None:
    req = DMRequest(DMMetadata("0.0.1", 1), "hi", "text/plain")
    # field 1 (metadata: 1 "0.0.1", 2 varint 1), field 2 "hi", field 3 "text/plain"
    want = bytes.fromhex("0a09" "0a05302e302e31" "1001") + bytes.fromhex("12026869") + b"\x1a\x0atext/plain"
    assert req.encode() == want
    assert DMRequest.decode(want) == req
    res = DMResponse.decode(bytes.fromhex("0a00") + bytes.fromhex("10c801"))  # status 200
    assert res.status == DMStatus.OK
    rec = DiscoveryPeer(b"\x08\x01", [bytes(Multiaddr("/ip4/127.0.0.1/tcp/1"))])
    assert rec.encode() == b"\x0a\x02\x08\x01" + b"\x12\x08" + bytes(Multiaddr("/ip4/127.0.0.1/tcp/1"))


def test_transport_names() -> None:
    assert transport_of(Multiaddr("/ip4/127.0.0.1/tcp/1/ws")) == "ws"
    assert transport_of(Multiaddr("/ip4/127.0.0.1/tcp/1/tls/ws")) == "wss"
    assert transport_of(Multiaddr("/ip4/127.0.0.1/tcp/1")) == "tcp"
    relay = "/ip4/127.0.0.1/tcp/1/ws/p2p/12D3KooWFhXabKDwALpzqMbto94sB7rvmZ6M28hs9Y9xSopDKwQr/p2p-circuit"
    assert transport_of(Multiaddr(relay)) == "relay"
    assert transport_of(Multiaddr(relay + "/webrtc")) == "webrtc"


async def _host(services: list[Any]) -> Host:
    key = await PrivateKey.generate(KeyType.Ed25519)
    return await Host.create(key=key, listen=["/memory/0"], transports=[MemoryTransport()], services=services)


async def test_two_chats_meet_through_a_relay_hub() -> None:
    hub = await _host([*default_services(), TopicRelayGossipsub()])
    a = await _host(default_services())
    b = await _host(default_services())
    chats: list[ChatNode] = []
    try:
        # the services arrive after the hosts started, as in a page
        for h in (a, b):
            # upgrade=False: memory addresses are direct, the chat would dial them at once
            chat = await ChatNode(h, discovery_interval=0.3, ping_interval=0.3, upgrade=False).start()
            chats.append(chat)
            await chat.connect_relay(str(hub.addrs()[0]), reserve=False)
        ca, cb = chats
        assert not a.is_connected(b.peer_id)
        await wait_until(lambda: hub.peer_id in ca.pubsub.mesh(CHAT_TOPIC) and hub.peer_id in cb.pubsub.mesh(CHAT_TOPIC),
                         TIMEOUT)
        await ca.send("hello from a")
        await wait_until(lambda: any(m.text == "hello from a" for m in cb.history), TIMEOUT)
        got = next(m for m in cb.history if m.text == "hello from a")
        assert got.sender == str(a.peer_id) and got.via == str(hub.peer_id) and not got.mine
        assert [m.text for m in ca.history if m.kind == "chat"] == ["hello from a"]
        # discovery: b learns a's record through the hub
        await wait_until(lambda: a.peer_id in cb.discovered, TIMEOUT)
        # the network view: one ws-less memory connection to the hub, with an RTT
        await wait_until(lambda: any(c["rtt_ms"] for c in ca.network()["connections"]), TIMEOUT)
        view = ca.network()
        assert [c["peer"] for c in view["connections"]] == [str(hub.peer_id)]
        assert view["connections"][0]["transport"] == "memory"
        assert str(hub.peer_id) in view["topic_peers"][CHAT_TOPIC]
        # a DM (b dials a directly: memory addresses)
        assert not a.is_connected(b.peer_id)
        await cb.send_dm(str(a.peer_id), "psst", addr=str(a.addrs()[0]))
        await wait_until(lambda: any(m.kind == "dm-in" and m.text == "psst" for m in ca.history), TIMEOUT)
        dm = next(m for m in ca.history if m.kind == "dm-in")
        assert dm.sender == str(b.peer_id)
        assert any(m.kind == "dm-out" and m.peer == str(a.peer_id) for m in cb.history)
        for bad in ("", "   ", "x" * 20000):
            try:
                await ca.send(bad)
            except ChatError:
                pass
            else:
                raise AssertionError(f"send({bad[:10]!r}) should fail")
    finally:
        for c in chats:
            await c.stop()
        await asyncio.gather(a.stop(), b.stop(), hub.stop())


async def test_dm_refused_when_peer_has_no_handler() -> None:
    a = await _host(default_services())
    # no chat on b: gossipsub but no DM protocol
    b = await _host([*default_services(), TopicRelayGossipsub()])
    chat = await ChatNode(a).start()
    try:
        try:
            await chat.send_dm(str(b.peer_id), "anyone?", addr=str(b.addrs()[0]))
        except ChatError as exc:
            assert "DM to" in str(exc)
        else:
            raise AssertionError("a DM to a peer without the protocol must fail")
        assert DM_PROTOCOL in a.protocols()
    finally:
        await chat.stop()
        await asyncio.gather(a.stop(), b.stop())
