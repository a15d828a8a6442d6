"""Kademlia DHT end to end over the memory transport: real hosts (Noise, yamux,
identify), 30-40 nodes per network, answers compared with the true XOR-closest peers."""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from typing import AsyncIterator

import pytest

from pywasm.dht import KadDHT, NotFoundError, RecordValidationError, key_position, peer_position
from pywasm.errors import StreamResetError
from pywasm.host import Host
from pywasm.identity import KeyType, PeerId, PrivateKey
from pywasm.multiformats import multihash
from pywasm.multiformats.cid import CID, RAW
from pywasm.protocols.kad_pb import MessagePB, MessageType, RecordPB, decode_message, protocol_id
from pywasm.services.identify import IdentifyService
from pywasm.streams import encode_lp
from pywasm.transports.memory import MemoryTransport

T = 60.0


async def _node(mode: str = "server", k: int = 20, prefix: str = "/ipfs") -> Host:
    dht = KadDHT(mode=mode, k=k, protocol_prefix=prefix, refresh_interval=0, request_timeout=10.0)
    return await Host.create(
        key=await PrivateKey.generate(KeyType.Ed25519),
        listen=["/memory/0"],
        transports=[MemoryTransport()],
        services=[IdentifyService(), dht],
    )


def dht(h: Host) -> KadDHT:
    svc = h.services["dht"]
    assert isinstance(svc, KadDHT)
    return svc


@asynccontextmanager
async def network(n: int, k: int = 20, clients: int = 0) -> AsyncIterator[list[Host]]:
    """``n`` servers bootstrapped through the first one, then ``clients`` client nodes."""
    hosts: list[Host] = []
    try:
        hosts = list(await asyncio.gather(*(_node(k=k) for _ in range(n))))
        first = hosts[0].addrs()[0]
        # a few at a time, as nodes would join a real network
        for i in range(1, n, 8):
            await asyncio.wait_for(asyncio.gather(*(dht(h).bootstrap([first]) for h in hosts[i : i + 8])), T)
        for _ in range(clients):
            c = await _node(mode="client", k=k)
            hosts.append(c)
            await asyncio.wait_for(dht(c).bootstrap([first]), T)
        yield hosts
    finally:
        await asyncio.gather(*(h.stop() for h in hosts), return_exceptions=True)


def true_closest(hosts: list[Host], key: bytes, k: int) -> list[PeerId]:
    pos = key_position(key)
    return sorted((h.peer_id for h in hosts), key=lambda p: peer_position(p) ^ pos)[:k]


async def test_bootstrap_fills_tables_and_find_node_converges() -> None:
    async with network(30) as hosts:
        for h in hosts:
            # every server ends up knowing most of a 30-node network
            assert len(dht(h).routing_table) >= 20, (h.peer_id, len(dht(h).routing_table))
        for i in range(6):
            key = os.urandom(32)
            searcher = hosts[(i * 7) % len(hosts)]
            res = await asyncio.wait_for(dht(searcher).find_closest_peers(key), T)
            others = [h for h in hosts if h is not searcher]
            assert res.peers == true_closest(others, key, 20)
            assert res.hops >= 0 and res.queries >= 1
        # find a peer by id: its addresses come back
        target = hosts[17]
        addrs = await asyncio.wait_for(dht(hosts[3]).find_peer(target.peer_id), T)
        assert set(target.listen_addrs()) <= set(addrs)


async def test_find_node_converges_with_small_k() -> None:
    # k=4 in 40 nodes: tables hold a fraction of the network, so lookups take hops
    async with network(40, k=4) as hosts:
        hops = []
        for i in range(8):
            key = os.urandom(32)
            searcher = hosts[(i * 5) % len(hosts)]
            res = await asyncio.wait_for(dht(searcher).find_closest_peers(key), T)
            others = [h for h in hosts if h is not searcher]
            assert res.peers[0] == true_closest(others, key, 1)[0]
            assert len(set(res.peers) & set(true_closest(others, key, 4))) >= 3
            hops.append(res.hops)
        assert max(hops) >= 1  # someone had to be asked through someone else


async def test_put_get_pk_record_rejections_and_providers() -> None:
    async with network(30) as hosts:
        a, b, c = hosts[4], hosts[11], hosts[25]
        key = b"/pk/" + a.peer_id.to_bytes()
        value = a.private_key.public_key.to_protobuf()
        stored = await asyncio.wait_for(dht(a).put_value(key, value), T)
        assert stored >= 15
        # the k closest to the key hold it
        holders = [h for h in hosts if dht(h).records.get(key, dht(h).clock()) is not None]
        assert len(holders) >= 15
        assert await asyncio.wait_for(dht(b).get_value(key), T) == value
        # quorum: several copies, one best
        assert await asyncio.wait_for(dht(c).get_value(key, quorum=5), T) == value

        # invalid records are refused locally before any traffic
        other = await PrivateKey.generate(KeyType.Ed25519)
        with pytest.raises(RecordValidationError):
            await dht(a).put_value(key, other.public_key.to_protobuf())
        with pytest.raises(RecordValidationError):
            await dht(a).put_value(b"/unknown/x", b"v")
        with pytest.raises(RecordValidationError):
            await dht(a).get_value(b"no-namespace")

        # a remote PUT of an invalid record: stream reset, nothing stored, node serves on
        bad_key = b"/pk/" + b.peer_id.to_bytes()
        msg = MessagePB(type=MessageType.PUT_VALUE, key=bad_key, record=RecordPB(key=bad_key, value=value))
        with pytest.raises(Exception) as info:
            await dht(a)._request(c.peer_id, msg, True)
        assert "closed" in str(info.value) or isinstance(info.value, StreamResetError)
        assert dht(c).records.get(bad_key, dht(c).clock()) is None
        ok = await dht(a)._request(c.peer_id, MessagePB(type=MessageType.FIND_NODE, key=b"x"), True)
        assert ok is not None and len(ok.closer_peers) == 20

        # an invalid record held by a peer is ignored by getters
        victim = true_closest(hosts, bad_key, 1)[0]
        vh = next(h for h in hosts if h.peer_id == victim)
        dht(vh).records.put(bad_key, value, dht(vh).clock())  # bypasses validation
        getter = next(h for h in hosts if h is not vh)
        with pytest.raises(NotFoundError):
            await asyncio.wait_for(dht(getter).get_value(bad_key), T)

        # provider records (same network: building one costs seconds)
        a, b = hosts[2], hosts[21]
        cid = CID.v1(RAW, multihash.sha256(b"hello providers"))
        told = await asyncio.wait_for(dht(a).provide(cid), T)
        assert told >= 15
        provs = await asyncio.wait_for(dht(b).find_providers(cid), T)
        assert [p.peer_id for p in provs] == [a.peer_id]
        assert set(a.listen_addrs()) <= set(provs[0].addrs)
        # nobody provides this one
        none = await asyncio.wait_for(dht(b).find_providers(multihash.sha256(b"nobody")), T)
        assert none == []


async def test_client_mode_nodes_stay_out_of_tables() -> None:
    async with network(30, clients=3) as hosts:
        servers, clients = hosts[:30], hosts[30:]
        client_ids = {c.peer_id for c in clients}
        for c in clients:
            assert protocol_id() not in c.protocols()
            assert len(dht(c).routing_table) >= 15
            # clients still look up and find things
            res = await asyncio.wait_for(dht(c).find_closest_peers(os.urandom(8)), T)
            assert len(res.peers) == 20 and not client_ids & set(res.peers)
        for s in servers:
            assert not client_ids & set(dht(s).routing_table.peers())
        # a client can store and read records through the servers
        c = clients[0]
        key = b"/pk/" + c.peer_id.to_bytes()
        assert await asyncio.wait_for(dht(c).put_value(key, c.private_key.public_key.to_protobuf()), T) >= 15
        assert await asyncio.wait_for(dht(clients[1]).get_value(key), T) == c.private_key.public_key.to_protobuf()
        # switching to server mode advertises the protocol (identify-push)
        dht(c).set_mode("server")
        assert protocol_id() in c.protocols()


async def test_bad_messages_reset_the_stream_and_the_node_serves_on() -> None:
    a, b = await _node(), await _node()
    try:
        await a.dial(b.addrs()[0])
        proto = protocol_id()
        bad_inputs = [
            b"\xff\xff\xff\xff\x0f",  # an absurd length prefix (over the limit)
            encode_lp(b"\x0a\xff"),  # truncated protobuf
            encode_lp(MessagePB(type=42, key=b"k").encode()),  # unknown type
            encode_lp(MessagePB(type=MessageType.GET_VALUE).encode()),  # no key
            encode_lp(MessagePB(type=MessageType.PUT_VALUE, key=b"/pk/x", record=RecordPB(key=b"/pk/y", value=b"")).encode()),
        ]
        for raw in bad_inputs:
            s = await a.new_stream(b.peer_id, [proto])
            await s.write(raw)
            with pytest.raises(StreamResetError):
                await asyncio.wait_for(s.read_lp(1 << 20), T)
        assert dht(b).stats["errors_in"] == len(bad_inputs) - 1  # the first never parsed a length
        # several requests on one stream, then a clean close
        s = await a.new_stream(b.peer_id, [proto])
        for _ in range(3):
            await s.write(encode_lp(MessagePB(type=MessageType.FIND_NODE, key=a.peer_id.to_bytes()).encode()))
            resp = decode_message(await asyncio.wait_for(s.read_lp(1 << 20), T) or b"")
            assert resp.msg_type == MessageType.FIND_NODE
            # FIND_NODE for the asker itself names nobody it does not know: b knows only a
            assert all(p.id != a.peer_id.to_bytes() for p in resp.closer_peers)
        await s.close()
        # a PING gets a PING back; a type-0 (PUT_VALUE) message with no type field decodes
        assert decode_message(b"").msg_type == MessageType.PUT_VALUE
        pong = await dht(a)._request(b.peer_id, MessagePB(type=MessageType.PING), True)
        assert pong is not None and pong.msg_type == MessageType.PING
    finally:
        await asyncio.gather(a.stop(), b.stop())


async def test_custom_prefix_networks_do_not_mix() -> None:
    a, b = await _node(prefix="/ipfs/lan"), await _node()
    try:
        assert "/ipfs/lan/kad/1.0.0" in a.protocols()
        await dht(a).bootstrap([b.addrs()[0]])
        assert len(dht(a).routing_table) == 0 and len(dht(b).routing_table) == 0
    finally:
        await asyncio.gather(a.stop(), b.stop())


def test_bounded_stores_and_expiry() -> None:
    from pywasm.dht import ProviderStore, RecordStore

    rs = RecordStore(max_records=3, max_value_size=8, ttl=10.0)
    for i in range(5):
        rs.put(b"/pk/%d" % i, b"v", now=0.0)
    assert len(rs) == 3 and rs.get(b"/pk/0", 0.0) is None and rs.get(b"/pk/4", 0.0) is not None
    with pytest.raises(RecordValidationError):
        rs.put(b"/pk/x", b"123456789", now=0.0)
    assert rs.get(b"/pk/4", 10.0) is None and rs.expire(10.0) == 2 and len(rs) == 0

    ps = ProviderStore(max_keys=2, max_per_key=2, ttl=5.0)
    peers = [PeerId.from_bytes(multihash.sha256(bytes([i]))) for i in range(4)]
    for p in peers:
        ps.add(b"k1", p, (), now=0.0)
    assert [p for p, _ in ps.get(b"k1", 0.0)] == [peers[3], peers[2]]  # newest kept, first
    ps.add(b"k2", peers[0], (), 0.0)
    ps.add(b"k3", peers[0], (), 1.0)
    assert ps.key_count == 2 and ps.get(b"k1", 1.0) == []  # oldest key evicted
    assert ps.get(b"k2", 5.0) == [] and len(ps.get(b"k3", 5.0)) == 1


def test_routing_table_buckets_and_replacements() -> None:
    from pywasm.dht import RoutingTable
    from pywasm.dht.keyspace import common_prefix_len

    local = PeerId.from_bytes(multihash.sha256(b"local"))
    rt = RoutingTable(local, k=2)
    lp = peer_position(local)
    # peers in bucket 0 (first bit differs)
    far = [p for p in (PeerId.from_bytes(multihash.sha256(b"p%d" % i)) for i in range(64)) if common_prefix_len(lp, peer_position(p)) == 0]
    assert rt.add(far[0], 1.0) is None and rt.add(far[1], 2.0) is None
    # full: the newcomer waits, the least recently seen is named for a check
    assert rt.add(far[2], 3.0) == far[0]
    assert far[2] not in rt and len(rt) == 2
    rt.touch(far[0], 4.0)  # it answered: now far[1] is the oldest
    assert rt.add(far[3], 5.0) == far[1]
    assert rt.remove(far[1])  # it failed: the newest replacement moves in
    assert far[3] in rt and far[1] not in rt and len(rt) == 2
    assert rt.add(local, 6.0) is None and local not in rt
    target = peer_position(far[0])
    assert rt.closest(target, 1) == [far[0]]
    assert rt.stale_buckets(10.0, 5.0, 15) == [0, 1]
    rt.mark_refreshed(0, 10.0)
    assert rt.stale_buckets(12.0, 5.0, 15) == [1]


def test_lookup_state_machine_counts_hops() -> None:
    from pywasm.dht import Lookup

    ids = [PeerId.from_bytes(multihash.sha256(b"n%d" % i)) for i in range(12)]
    target = key_position(b"target")
    by_dist = sorted(ids, key=lambda p: peer_position(p) ^ target)
    # a chain: a seed knows the 2nd closest, which knows the closest; the other seed fails
    lk = Lookup(target, [by_dist[5], by_dist[6]], k=2, alpha=3)
    assert lk.next_queries() == [by_dist[5], by_dist[6]]
    lk.on_success(by_dist[5], [by_dist[1], by_dist[7]])
    lk.on_failure(by_dist[6])
    # only the k closest live candidates are asked: by_dist[7] is not among them
    assert lk.next_queries() == [by_dist[1]]
    lk.on_success(by_dist[1], [by_dist[0]])
    assert lk.next_queries() == [by_dist[0]]
    assert not lk.finished
    lk.on_success(by_dist[0], [])
    assert lk.finished
    res = lk.result(0.0)
    assert res.peers == [by_dist[0], by_dist[1]] and res.hops == 2 and res.queries == 4 and res.failures == 1
