"""AutoNAT v2 client and server over the memory transport (Pyodide-safe).

Memory addresses carry no IP, so the server always charges dial data here (it cannot
prove the address is the requester's own); the same-IP path without dial data runs over
TCP in tests/native/test_autonat_v2_tcp.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pywasm.errors import StreamResetError
from pywasm.host import Host
from pywasm.identity import KeyType, PrivateKey
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.protocols.autonat_v2_pb import (
    DIAL_BACK,
    DIAL_REQUEST,
    DialBack,
    DialRequest,
    DialResponse,
    DialStatus,
    Message,
    ResponseStatus,
    needs_dial_data,
    select_address,
)
from pywasm.services.autonat_v2 import AutoNATError, AutoNATv2Service, Reachability
from pywasm.services.identify import IdentifyService
from pywasm.streams import encode_lp
from pywasm.transports.memory import MemoryTransport

T = 20.0


async def _host(svc: AutoNATv2Service | None = None) -> Host:
    key = await PrivateKey.generate(KeyType.Ed25519)
    services: list[Any] = [IdentifyService()]
    if svc is not None:
        services.append(svc)
    return await Host.create(key=key, listen=["/memory/0"], transports=[MemoryTransport()], services=services)


async def _pair(**server_opts: Any) -> tuple[Host, Host]:
    server_opts.setdefault("allow_private", True)
    server = await _host(AutoNATv2Service(client=False, **server_opts))
    client = await _host(AutoNATv2Service(server=False))
    return server, client


def _svc(h: Host) -> AutoNATv2Service:
    svc = h.services["autonat"]
    assert isinstance(svc, AutoNATv2Service)
    return svc


async def _stop(*hosts: Host) -> None:
    for h in hosts:
        await h.stop()


async def test_reachable_address_is_dialed_back_after_dial_data() -> None:
    server, client = await _pair()
    try:
        res = await asyncio.wait_for(_svc(client).check(server.addrs()[0], client.listen_addrs()), T)
        assert res.reachability == Reachability.REACHABLE, res
        assert res.response_status == ResponseStatus.OK and res.dial_status == DialStatus.OK
        assert res.addr == client.listen_addrs()[0] and res.addr_idx == 0
        assert res.dial_back_received
        # no IP to compare with: the server charged dial data within the spec's range
        assert 30_000 <= res.dial_data_sent <= 100_000 + 4096
        assert _svc(server).stats["dial_data_requests"] == 1
        assert _svc(client).reachability(client.listen_addrs()[0]) == Reachability.REACHABLE
        # the dial back used its own connection, closed afterwards: one left to the server
        await asyncio.sleep(0.05)
        assert len(client.connections_to(server.peer_id)) == 1
    finally:
        await _stop(server, client)


async def test_unreachable_address_gives_dial_error() -> None:
    server, client = await _pair()
    try:
        nowhere = Multiaddr("/memory/12345678901")
        res = await asyncio.wait_for(_svc(client).check(server.addrs()[0], [nowhere]), T)
        assert res.reachability == Reachability.UNREACHABLE
        assert res.dial_status == DialStatus.E_DIAL_ERROR and res.addr == nowhere
        assert not res.dial_back_received
        assert _svc(client).reachability(nowhere) == Reachability.UNREACHABLE
    finally:
        await _stop(server, client)


async def test_server_dials_first_address_it_can_and_only_that() -> None:
    server, client = await _pair()
    try:
        addrs = [
            Multiaddr("/ip4/1.2.3.4/udp/4001/quic-v1"),  # no QUIC transport on the server
            Multiaddr(f"/memory/1/p2p/{client.peer_id}/p2p-circuit"),  # relayed: never
            client.listen_addrs()[0],
            Multiaddr("/memory/999"),
        ]
        res = await asyncio.wait_for(_svc(client).check(server.addrs()[0], addrs), T)
        assert res.addr_idx == 2 and res.reachability == Reachability.REACHABLE
    finally:
        await _stop(server, client)


async def test_private_addresses_are_refused_by_default() -> None:
    server, client = await _pair(allow_private=False)
    try:
        res = await asyncio.wait_for(
            _svc(client).check(server.addrs()[0], [*client.listen_addrs(), "/ip4/127.0.0.1/tcp/1", "/ip4/10.0.0.1/tcp/1"]), T
        )
        assert res.response_status == ResponseStatus.E_DIAL_REFUSED
        assert res.reachability == Reachability.UNKNOWN and res.addr is None
    finally:
        await _stop(server, client)


async def test_rate_limit_per_peer_rejects() -> None:
    server, client = await _pair(peer_requests=1)
    try:
        first = await asyncio.wait_for(_svc(client).check(server.addrs()[0], client.listen_addrs()), T)
        assert first.reachability == Reachability.REACHABLE
        second = await asyncio.wait_for(_svc(client).check(server.addrs()[0], client.listen_addrs()), T)
        assert second.response_status == ResponseStatus.E_REQUEST_REJECTED
        assert _svc(server).stats["rejected"] == 1
    finally:
        await _stop(server, client)


async def test_client_refuses_to_pay_too_much_and_server_keeps_serving() -> None:
    server, client = await _pair(dial_data_range=(150_000, 150_000))
    try:
        with pytest.raises(AutoNATError, match="150000 bytes"):
            await asyncio.wait_for(_svc(client).check(server.addrs()[0], client.listen_addrs()), T)
        _svc(client).max_dial_data = 200_000
        res = await asyncio.wait_for(_svc(client).check(server.addrs()[0], client.listen_addrs()), T)
        assert res.reachability == Reachability.REACHABLE and res.dial_data_sent >= 150_000
    finally:
        await _stop(server, client)


async def test_malformed_request_resets_stream_and_server_keeps_serving() -> None:
    server, client = await _pair()
    try:
        for junk in (
            encode_lp(b"\xff\xff\xff"),  # not protobuf
            encode_lp(Message(dial_response=DialResponse(status=200)).encode()),  # wrong message
            encode_lp(b""),  # no field set
            b"\x80\x80\x80\x80\x01",  # length prefix over the limit
        ):
            stream = await asyncio.wait_for(client.new_stream(server.addrs()[0], [DIAL_REQUEST]), T)
            await stream.write(junk)
            with pytest.raises(StreamResetError):
                while await asyncio.wait_for(stream.read(), T):
                    pass
        assert _svc(server).stats["malformed"] == 4
        # a dial-data phase that gets something else is malformed too
        stream = await asyncio.wait_for(client.new_stream(server.addrs()[0], [DIAL_REQUEST]), T)
        req = Message(dial_request=DialRequest(addrs=[client.listen_addrs()[0].to_bytes()], nonce=7))
        await stream.write(encode_lp(req.encode()))
        assert (await asyncio.wait_for(stream.read_lp(8192), T)) is not None  # DialDataRequest
        await stream.write(encode_lp(req.encode()))
        with pytest.raises(StreamResetError):
            await asyncio.wait_for(stream.read_lp(8192), T)
        res = await asyncio.wait_for(_svc(client).check(server.addrs()[0], client.listen_addrs()), T)
        assert res.reachability == Reachability.REACHABLE
    finally:
        await _stop(server, client)


async def test_client_distrusts_ok_without_dial_back_and_rejects_bad_answers() -> None:
    """A lying server (says OK without dialing) and a broken one (unknown status)."""
    answers: list[Message] = []

    async def fake_server(stream: Any, conn: Any) -> None:
        await stream.read_lp(8192)
        await stream.write(encode_lp(answers.pop(0).encode()))
        await stream.close()

    fake = await _host()
    fake.set_stream_handler(DIAL_REQUEST, fake_server)
    client = await _host(AutoNATv2Service(server=False))
    try:
        answers.append(Message(dial_response=DialResponse(status=200, addr_idx=None, dial_status=200)))
        res = await asyncio.wait_for(_svc(client).check(fake.addrs()[0], client.listen_addrs()), T)
        assert res.reachability == Reachability.UNKNOWN and "never arrived" in res.detail
        answers.append(Message(dial_response=DialResponse(status=7)))
        with pytest.raises(AutoNATError, match="unknown status 7"):
            await asyncio.wait_for(_svc(client).check(fake.addrs()[0], client.listen_addrs()), T)
        answers.append(Message(dial_response=DialResponse(status=200, addr_idx=5, dial_status=200)))
        with pytest.raises(AutoNATError, match="address #5"):
            await asyncio.wait_for(_svc(client).check(fake.addrs()[0], client.listen_addrs()), T)
        # an unknown nonce on dial-back: the client resets, answers nothing
        stream = await asyncio.wait_for(fake.new_stream(client.addrs()[0], [DIAL_BACK]), T)
        await stream.write(encode_lp(DialBack(nonce=42).encode()))
        with pytest.raises(StreamResetError):
            await asyncio.wait_for(stream.read_lp(8192), T)
    finally:
        await _stop(fake, client)


async def test_concurrent_dial_backs_are_bounded() -> None:
    server = await _host(AutoNATv2Service(client=False, allow_private=True, max_concurrent_dials=1))
    clients = [await _host(AutoNATv2Service(server=False)) for _ in range(3)]
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(_svc(c).check(server.addrs()[0], c.listen_addrs()) for c in clients)), T
        )
        statuses = sorted(r.response_status for r in results)
        assert statuses.count(ResponseStatus.OK) >= 1
        assert ResponseStatus.E_REQUEST_REJECTED in statuses
    finally:
        await _stop(server, *clients)


def test_address_rules() -> None:
    ma = Multiaddr
    assert not needs_dial_data(ma("/ip4/1.2.3.4/tcp/1"), ma("/ip4/1.2.3.4/tcp/999"))
    assert needs_dial_data(ma("/ip4/1.2.3.5/tcp/1"), ma("/ip4/1.2.3.4/tcp/999"))
    assert not needs_dial_data(ma("/ip4/1.2.3.4/tcp/1"), ma("/ip6/::ffff:1.2.3.4/tcp/9"))
    assert needs_dial_data(ma("/dns4/example.com/tcp/1"), ma("/ip4/1.2.3.4/tcp/9"))
    assert needs_dial_data(ma("/memory/5"), ma("/memory/6"))
    yes = lambda a: True  # noqa: E731
    raw = [b"\x00garbage", ma("/ip4/192.168.1.1/tcp/1").to_bytes(), ma("/ip4/8.8.8.8/tcp/1/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf").to_bytes()]
    assert select_address(raw, yes, allow_private=False, max_addrs=16) == (2, ma("/ip4/8.8.8.8/tcp/1"))
    assert select_address(raw, yes, allow_private=True, max_addrs=16) == (1, ma("/ip4/192.168.1.1/tcp/1"))
    assert select_address(raw, yes, allow_private=False, max_addrs=2) is None
    assert select_address(raw, lambda a: False, allow_private=True, max_addrs=16) is None


def test_invalid_config() -> None:
    with pytest.raises(ValueError):
        AutoNATv2Service(server=False, client=False)
    with pytest.raises(ValueError):
        AutoNATv2Service(dial_data_range=(10, 5))
    assert AutoNATv2Service(server=False).protocols == (DIAL_BACK,)
    assert AutoNATv2Service(client=False).protocols == (DIAL_REQUEST,)
