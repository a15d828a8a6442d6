"""gossipsub over the memory transport with many hosts (runs in Pyodide too).

Heartbeats are run by hand on one fake clock (tests/unit/_gossip_net.py), so mesh upkeep,
gossip, backoff and score decay happen exactly when a test says.
"""

from __future__ import annotations

import asyncio
import os
import random

from pywasm.errors import ConfigError
from pywasm.identity import KeyType, PrivateKey
from pywasm.protocols.pubsub_pb import RPC, ControlGraft, ControlIHave, ControlMessage, MessagePB
from pywasm.pubsub import (
    Floodsub,
    GossipsubConfig,
    MeshsubV11,
    MeshsubV12,
    PubsubError,
    ScoreParams,
    ScoreThresholds,
    TopicScoreParams,
    ValidationResult,
    content_msg_id,
)
from pywasm.pubsub.message import sign_message
from pywasm.streams import encode_lp
from tests.unit._gossip_net import TIMEOUT, GossipNet, line, random_graph, wait_for

T = "universal-connectivity"


async def bounded(aw, timeout: float = TIMEOUT):  # type: ignore[no-untyped-def]
    return await asyncio.wait_for(aw, timeout)


async def subscribe_all(net: GossipNet, topic: str = T) -> list:  # type: ignore[type-arg]
    return [await net.ps(h).subscribe(topic) for h in net.hosts]


async def join_all(net: GossipNet, topic: str = T) -> list:  # type: ignore[type-arg]
    """Everyone subscribes, subscriptions travel, one heartbeat builds the meshes."""
    subs = await subscribe_all(net, topic)
    await net.settle()
    await net.heartbeat()
    return subs


def mesh_of(net: GossipNet, i: int, topic: str = T) -> set[int]:
    return {net.index(p) for p in net.ps(i).mesh(topic)}


# ------------------------------------------------------------------ mesh and delivery
async def test_mesh_forms_within_bounds_and_is_symmetric() -> None:
    net = GossipNet(seed=7)
    try:
        await net.add(16)
        edges = random_graph(16, 10, net.rng)
        await net.connect_edges(edges)
        await subscribe_all(net)
        await net.settle()
        await net.heartbeat(rounds=4)
        cfg = GossipsubConfig()
        for i in range(16):
            degree = sum(1 for e in edges if i in e)
            mesh = mesh_of(net, i)
            assert len(mesh) <= cfg.D_hi, (i, mesh)
            assert len(mesh) >= min(cfg.D_lo, degree), (i, mesh, degree)
            for j in mesh:  # GRAFT/PRUNE keep both ends in agreement
                assert i in mesh_of(net, j), (i, j)
    finally:
        await net.close()


async def test_publish_reaches_every_node_of_a_line_once() -> None:
    net = GossipNet(seed=3)
    try:
        await net.add(12)
        await net.connect_edges(line(12))
        subs = await subscribe_all(net)
        await net.settle()
        await net.heartbeat(rounds=2)
        data = os.urandom(200)
        msg_id = await net.ps(0).publish(T, data)
        for i in range(1, 12):
            got = await bounded(subs[i].get())
            assert got.data == data and got.msg_id == msg_id and got.author == net.hosts[0].peer_id
        await net.settle()
        assert len(subs[0]) == 0  # no echo to the publisher (emit_self=False)
        assert all(len(s) == 0 for s in subs)
        assert sum(net.ps(h).stats["duplicates"] for h in net.hosts) == 0  # a line has no second path
    finally:
        await net.close()


async def test_random_topology_20_nodes_duplicates_bounded() -> None:
    net = GossipNet(seed=11)
    try:
        await net.add(20)
        await net.connect_edges(random_graph(20, 6, net.rng))
        subs = await subscribe_all(net)
        await net.settle()
        await net.heartbeat(rounds=3)
        sent = {}
        for src in (0, 5, 13):
            for k in range(5):
                data = b"%d-%d" % (src, k)
                sent[await net.ps(src).publish(T, data)] = data
        for i, sub in enumerate(subs):
            expect = {mid for mid, d in sent.items() if not d.startswith(b"%d-" % i)}
            got = set()
            while len(got) < len(expect):
                msg = await bounded(sub.get())
                assert msg.msg_id not in got, "a duplicate reached the application"
                got.add(msg.msg_id)
            assert got == expect
        await net.settle()
        delivered = sum(net.ps(h).stats["delivered"] for h in net.hosts)
        dups = sum(net.ps(h).stats["duplicates"] for h in net.hosts)
        assert delivered == 15 * 19
        # each node receives a message at most once per mesh neighbour (plus flood publish)
        assert dups / delivered < GossipsubConfig().D_hi, (dups, delivered)
    finally:
        await net.close()


async def test_fanout_publish_without_subscribing() -> None:
    net = GossipNet()
    try:
        await net.add(4)
        await net.connect_edges([(0, 1), (0, 2), (0, 3)])
        subs = [await net.ps(i).subscribe(T) for i in (1, 2, 3)]
        await net.settle()
        cfg_no_flood = net.ps(0).config
        cfg_no_flood.flood_publish = False
        await net.ps(0).publish(T, b"fan")
        for sub in subs:
            assert (await bounded(sub.get())).data == b"fan"
        assert len(net.ps(0).router.fanout[T]) == 3
        net.clock.now += cfg_no_flood.fanout_ttl + 1
        net.ps(0).heartbeat()
        assert T not in net.ps(0).router.fanout  # expired after fanout_ttl
    finally:
        await net.close()


# ------------------------------------------------------------------ gossip
async def test_ihave_iwant_recovers_a_message_after_a_mesh_link_drops() -> None:
    cfg = GossipsubConfig(flood_publish=False)
    net = GossipNet(seed=5)
    try:
        a, b = await net.add(2, cfg)
        await net.connect_edges([(0, 1)])
        sub_a, sub_b = await subscribe_all(net)
        await net.settle()
        await net.heartbeat()
        assert mesh_of(net, 0) == {1} and mesh_of(net, 1) == {0}
        # the mesh link drops (both sides prune and back off): only gossip remains
        for x, y in ((a, b), (b, a)):
            r = net.ps(x).router
            r.mesh[T].discard(y.peer_id)
            r._add_backoff(T, y.peer_id, 60)
        data = os.urandom(300)
        msg_id = await net.ps(a).publish(T, data)
        await net.settle()
        assert len(sub_b) == 0  # not in a's mesh: nothing pushed
        await net.heartbeat()  # a gossips IHAVE to b, b asks IWANT, a answers
        got = await bounded(sub_b.get())
        assert got.data == data and got.msg_id == msg_id
        assert net.ps(a).stats["ihave_sent"] >= 1 and net.ps(b).stats["iwant_sent"] == 1
        assert mesh_of(net, 0) == set()  # backoff kept it out of the mesh
        # no broken promise: b got what it asked for
        net.clock.now += 10
        net.ps(b).heartbeat()
        assert net.ps(b).score(a.peer_id) >= 0
    finally:
        await net.close()


async def test_broken_iwant_promise_is_penalized() -> None:
    net = GossipNet()
    try:
        a, b = await net.add(2)
        await net.connect_edges([(0, 1)])
        await join_all(net)
        await net.settle()
        # a advertises an id it never delivers
        net.ps(a)._enqueue(b.peer_id, RPC(control=ControlMessage(ihave=[ControlIHave(T, [b"ghost"])])))
        await net.settle()
        assert net.ps(b).stats["iwant_sent"] == 1
        net.clock.now += GossipsubConfig().iwant_followup_time + 1
        net.ps(b).heartbeat()
        assert net.ps(b).score(a.peer_id) < 0
    finally:
        await net.close()


# ------------------------------------------------------------------ PRUNE, PX, backoff
async def test_prune_with_px_and_backoff() -> None:
    cfg = GossipsubConfig(D=2, D_lo=2, D_hi=3, D_score=1, D_out=1,
                          thresholds=ScoreThresholds(accept_px_threshold=0.0))
    net = GossipNet(seed=2)
    try:
        hosts = await net.add(6, cfg, identify=True)
        hub = hosts[0]
        await net.connect_edges([(0, i) for i in range(1, 6)])
        await wait_for(lambda: all(hub.peerstore.signed_record(h.peer_id) for h in hosts[1:]), TIMEOUT,
                       "identify: signed peer records of the leaves at the hub")
        # the leaves do not know each other: PX carries the signed peer records that
        # identify gave the hub, and the leaves dial the addresses in them
        for x in hosts[1:]:
            for y in hosts[1:]:
                assert x is y or not x.peerstore.addrs(y.peer_id)
        await net.ps(hub).subscribe(T)
        await net.settle()
        for h in hosts[1:]:  # every leaf joins and grafts the hub
            await net.ps(h).subscribe(T)
        await net.settle()
        assert len(mesh_of(net, 0)) == 5  # hub accepted grafts up to D_hi, outbound exempt
        net.clock.now += 1
        net.ps(hub).heartbeat()  # over D_hi: prune down to D, with PX
        await net.settle()
        kept = mesh_of(net, 0)
        assert len(kept) == cfg.D
        pruned = [i for i in range(1, 6) if i not in kept]
        for i in pruned:
            assert 0 not in mesh_of(net, i)
            assert net.ps(i).router._in_backoff(T, hub.peer_id)
        # PX: pruned leaves dialled the leaves the hub told them about
        await wait_for(lambda: all(any(hosts[i].is_connected(hosts[j].peer_id) for j in range(1, 6) if j != i)
                                   for i in pruned), TIMEOUT, "PX connections")
        # backoff respected: heartbeats do not re-graft the hub
        await net.heartbeat(rounds=3)
        for i in pruned:
            assert 0 not in mesh_of(net, i)
        # a GRAFT during the backoff is refused and penalized
        leaf = hosts[pruned[0]]
        before = net.ps(hub).stats["prune_sent"]
        net.ps(leaf)._enqueue(hub.peer_id, RPC(control=ControlMessage(graft=[ControlGraft(T)])))
        await net.settle()
        assert leaf.peer_id not in net.ps(hub).router.mesh[T]
        assert net.ps(hub).stats["prune_sent"] == before + 1
        assert net.ps(hub).score(leaf.peer_id) < 0
    finally:
        await net.close()


async def test_unsubscribe_prunes_with_unsubscribe_backoff() -> None:
    net = GossipNet()
    try:
        a, b = await net.add(2)
        await net.connect_edges([(0, 1)])
        sub_a, _ = await join_all(net)
        await net.settle()
        assert mesh_of(net, 1) == {0}
        sub_a.cancel()
        await net.settle()
        assert mesh_of(net, 1) == set()
        assert a.peer_id not in net.ps(b).peers(T)
        expiry = net.ps(b).router.backoff[T][a.peer_id]
        assert abs(expiry - net.clock.now - GossipsubConfig().unsubscribe_backoff) < 1e-6
    finally:
        await net.close()


# ------------------------------------------------------------------ IDONTWANT (v1.2)
async def test_idontwant_suppresses_sending_large_messages() -> None:
    net = GossipNet(seed=4)
    try:
        a, b, c = await net.add(3)
        await net.connect_edges([(0, 1), (0, 2), (1, 2)])
        subs = await join_all(net)
        await net.settle()
        assert mesh_of(net, 1) == {0, 2}
        assert net.ps(b).protocol_of(c.peer_id) == MeshsubV12
        gate = asyncio.Event()

        async def slow(msg) -> ValidationResult:  # type: ignore[no-untyped-def]
            await gate.wait()
            return ValidationResult.ACCEPT

        net.ps(b).set_validator(T, slow)
        big = os.urandom(4096)
        await net.ps(a).publish(T, big)
        # c validates at once and forwards... except to b, who said IDONTWANT first
        assert (await bounded(subs[2].get())).data == big
        await wait_for(lambda: net.ps(c).stats["idontwant_sent"] == 1 and net.ps(b).stats["idontwant_sent"] == 1,
                       TIMEOUT, "IDONTWANT both ways")
        await net.settle()
        gate.set()
        assert (await bounded(subs[1].get())).data == big
        await net.settle()
        # b (still validating when c's IDONTWANT came) did not forward to c: c saw no duplicate
        assert net.ps(b).stats["skipped_idontwant"] == 1
        assert net.ps(c).stats["duplicates"] == 0
        # a small message triggers no IDONTWANT
        net.ps(b).set_validator(T, None)
        await net.ps(a).publish(T, b"small")
        await bounded(subs[1].get())
        await bounded(subs[2].get())
        await net.settle()
        assert net.ps(b).stats["idontwant_sent"] == 1 and net.ps(c).stats["idontwant_sent"] == 1
    finally:
        await net.close()


# ------------------------------------------------------------------ scoring and validation
async def test_invalid_messages_are_penalized_and_the_sender_graylisted() -> None:
    net = GossipNet()
    try:
        a, b, c = await net.add(3)
        await net.connect_edges([(0, 1), (1, 2)])
        subs = await join_all(net)
        await net.settle()
        net.ps(b).set_validator(T, lambda m: m.data != b"bad")
        await net.ps(a).publish(T, b"good")
        assert (await bounded(subs[1].get())).data == b"good"
        assert (await bounded(subs[2].get())).data == b"good"
        await net.ps(a).publish(T, b"bad")
        await net.settle()
        assert len(subs[1]) == 0 and len(subs[2]) == 0  # rejected: not delivered, not forwarded
        score = net.ps(b).score(a.peer_id)
        assert score < GossipsubConfig().thresholds.graylist_threshold, score
        await net.ps(a).publish(T, b"good again")  # graylisted: b ignores a's RPCs
        await net.settle()
        assert len(subs[1]) == 0 and net.ps(b).stats["graylisted_rpcs"] >= 1
        await net.heartbeat()  # the penalty decays (P4 decay 0.3) but stays negative
        assert net.ps(b).score(a.peer_id) < 0
        assert 0 not in mesh_of(net, 1)  # negative score: pruned
        # c's view of b is unharmed: b forwarded only valid messages
        assert net.ps(c).score(b.peer_id) >= 0
    finally:
        await net.close()


async def test_strict_sign_rejects_unsigned_and_forged_messages() -> None:
    # a mild P4 weight: four invalid messages push the score below zero but not below the
    # graylist, so the stream can show it still carries the valid fifth message
    mild = GossipsubConfig(score=ScoreParams(default_topic=TopicScoreParams(invalid_message_deliveries_weight=-1.0)))
    net = GossipNet()
    try:
        victim = (await net.add(1, mild))[0]
        attacker = (await net.add(1))[0]
        sub = await net.ps(victim).subscribe(T)
        await net.connect_edges([(0, 1)])
        await net.settle()
        key = await PrivateKey.generate(KeyType.Ed25519)
        from pywasm.identity import PeerId

        other = PeerId.from_public_key(key.public_key)
        seq = (1).to_bytes(8, "big")
        unsigned = MessagePB(from_peer=attacker.peer_id.to_bytes(), data=b"unsigned", seqno=seq, topic=T)
        # same id as `unsigned`: a rejected forgery must not make the genuine copy a "duplicate"
        forged = await sign_message(attacker.private_key, attacker.peer_id, T, b"original", seq)
        forged.data = b"altered"
        impostor = await sign_message(attacker.private_key, attacker.peer_id, T, b"impostor", seq)
        impostor.from_peer = other.to_bytes()  # claims another author, attacker's signature
        short_seq = await sign_message(attacker.private_key, attacker.peer_id, T, b"short", b"\x01")
        good = await sign_message(attacker.private_key, attacker.peer_id, T, b"good", (2).to_bytes(8, "big"))
        for msg in (unsigned, forged, impostor, short_seq, good):
            net.ps(attacker)._enqueue(victim.peer_id, RPC(publish=[msg]))
        got = await bounded(sub.get())
        assert got.data == b"good"  # the stream survived; only the bad ones were dropped
        assert len(sub) == 0
        assert net.ps(victim).stats["rejected"] == 4
        genuine = await sign_message(attacker.private_key, attacker.peer_id, T, b"genuine", seq)
        net.ps(attacker)._enqueue(victim.peer_id, RPC(publish=[genuine]))
        assert (await bounded(sub.get())).data == b"genuine"
        assert net.ps(victim).score(attacker.peer_id) < 0
    finally:
        await net.close()


async def test_custom_message_id_function() -> None:
    cfg = GossipsubConfig(msg_id_fn=content_msg_id)
    net = GossipNet()
    try:
        await net.add(2, cfg)
        await net.connect_edges([(0, 1)])
        subs = await join_all(net)
        await net.settle()
        mid = await net.ps(0).publish(T, b"same")
        assert (await bounded(subs[1].get())).msg_id == mid == content_msg_id(type("M", (), {"data": b"same"})())  # type: ignore[arg-type]
        try:
            await net.ps(0).publish(T, b"same")
        except PubsubError:
            pass
        else:
            raise AssertionError("a second message with the same content id must be refused")
    finally:
        await net.close()
    try:
        GossipsubConfig(signature_policy="strict_no_sign")
    except ConfigError:
        pass
    else:
        raise AssertionError("strict_no_sign without a content msg-id function must be refused")


async def test_strict_no_sign_network() -> None:
    cfg = GossipsubConfig(signature_policy="strict_no_sign", msg_id_fn=content_msg_id)
    net = GossipNet()
    try:
        await net.add(3, cfg)
        await net.connect_edges(line(3))
        subs = await join_all(net)
        await net.settle()
        await net.ps(0).publish(T, b"anon")
        got = await bounded(subs[2].get())
        assert got.data == b"anon" and got.from_peer is None and got.signature is None
    finally:
        await net.close()


# ------------------------------------------------------------------ floodsub
async def test_floodsub_peer_in_the_middle() -> None:
    net = GossipNet()
    try:
        g1 = (await net.add(1))[0]
        f = (await net.add(1, GossipsubConfig(protocols=(Floodsub,))))[0]
        g2 = (await net.add(1))[0]
        await net.connect_edges([(0, 1), (1, 2)])
        subs = await subscribe_all(net)
        await net.settle()
        assert net.ps(g1).protocol_of(f.peer_id) == Floodsub
        assert net.ps(f).protocol_of(g1.peer_id) == Floodsub
        assert mesh_of(net, 0) == set()
        await net.ps(g1).publish(T, b"through floodsub")
        assert (await bounded(subs[1].get())).data == b"through floodsub"
        assert (await bounded(subs[2].get())).data == b"through floodsub"
        await net.ps(g2).publish(T, b"back")
        assert (await bounded(subs[0].get())).data == b"back"
        assert (await bounded(subs[1].get())).data == b"back"
        net.ps(g1).config.flood_publish = False  # floodsub peers get messages even so
        await net.ps(g1).publish(T, b"no flood")
        assert (await bounded(subs[1].get())).data == b"no flood"
    finally:
        await net.close()


async def test_meshsub_v11_peer_gets_no_idontwant() -> None:
    net = GossipNet()
    try:
        a = (await net.add(1))[0]
        old = (await net.add(1, GossipsubConfig(protocols=(MeshsubV11,))))[0]
        c = (await net.add(1))[0]
        await net.connect_edges([(0, 1), (0, 2), (1, 2)])
        subs = await join_all(net)
        await net.settle()
        assert net.ps(a).protocol_of(old.peer_id) == MeshsubV11
        await net.ps(c).publish(T, os.urandom(2048))
        await bounded(subs[0].get())
        await bounded(subs[1].get())
        await net.settle()
        # a sent IDONTWANT only to /meshsub/1.2.0 mesh peers (c is the sender: none)
        assert net.ps(a).stats["idontwant_sent"] == 0
    finally:
        await net.close()


# ------------------------------------------------------------------ bad input
async def test_bad_rpc_bytes_drop_the_peer_and_the_node_keeps_serving() -> None:
    net = GossipNet()
    try:
        victim, bad, good = await net.add(3)
        await net.connect_edges([(0, 1), (0, 2)])
        subs = await join_all(net)
        await net.settle()
        # garbage in a well-framed RPC (a truncated length-delimited field)
        stream = await bad.new_stream(victim.peer_id, [MeshsubV12])
        await stream.write(encode_lp(b"\x0a\xff\x01garbage"))
        await wait_for(lambda: bad.peer_id not in net.ps(victim).router.peers, TIMEOUT, "the bad peer dropped")
        assert bad.peer_id not in net.ps(victim).mesh(T)
        assert net.ps(victim).score(bad.peer_id) < 0  # the penalty outlives the drop
        # a frame over max_message_size: dropped too
        stream2 = await bad.new_stream(victim.peer_id, [MeshsubV12])
        await wait_for(lambda: bad.peer_id in net.ps(victim).router.peers, TIMEOUT, "bad peer back")
        from pywasm.multiformats.varint import encode_varint

        await stream2.write(encode_varint(2 * 1024 * 1024) + b"x" * 100)
        await wait_for(lambda: bad.peer_id not in net.ps(victim).router.peers, TIMEOUT, "oversized frame drop")
        # the node goes on serving the honest peer both ways
        await net.ps(good).publish(T, b"still here")
        assert (await bounded(subs[0].get())).data == b"still here"
        await net.ps(victim).publish(T, b"and you")
        assert (await bounded(subs[2].get())).data == b"and you"
    finally:
        await net.close()


async def test_slow_peer_queue_is_bounded_and_penalized() -> None:
    cfg = GossipsubConfig(max_peer_queue=4)
    net = GossipNet()
    try:
        a, b = await net.add(2, cfg)
        await net.connect_edges([(0, 1)])
        await subscribe_all(net)
        await net.settle()
        link = net.ps(a)._links[b.peer_id]
        link.task.cancel()  # type: ignore[union-attr]  # the writer stalls: the queue fills
        await asyncio.sleep(0)
        for i in range(10):
            await net.ps(a).publish(T, b"%d" % i)
        assert len(link.queue) == 4
        assert net.ps(a).stats["dropped_sends"] == 6
        assert net.ps(a).score(b.peer_id) < 0
    finally:
        await net.close()


async def test_config_validation() -> None:
    for bad in (dict(D=3, D_lo=4), dict(D_hi=2), dict(mcache_gossip=9), dict(max_message_size=10),
                dict(protocols=("/x/1",))):
        try:
            GossipsubConfig(**bad)  # type: ignore[arg-type]
        except ConfigError:
            continue
        raise AssertionError(f"{bad} accepted")
    net = GossipNet()
    try:
        (h,) = await net.add(1)
        for topic in ("", "x" * 2000):
            try:
                await net.ps(h).subscribe(topic)
            except ConfigError:
                continue
            raise AssertionError("bad topic accepted")
        try:
            await net.ps(h).publish(T, b"x" * (1024 * 1024 + 1))
        except PubsubError:
            pass
        else:
            raise AssertionError("oversized publish accepted")
    finally:
        await net.close()


def test_random_graph_is_connected() -> None:
    edges = random_graph(30, 4, random.Random(1))
    seen = {0}
    frontier = [0]
    while frontier:
        n = frontier.pop()
        for x, y in edges:
            for u, v in ((x, y), (y, x)):
                if u == n and v not in seen:
                    seen.add(v)
                    frontier.append(v)
    assert seen == set(range(30))
