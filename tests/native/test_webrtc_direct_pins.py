"""Pins the aiortc/aioice internals the webrtc-direct listener relies on
(pywasm_relay.webrtc_direct.AIORTC_INTERNALS). If an upgrade moves one, this fails
and says which, before any handshake quietly breaks."""

from __future__ import annotations

import asyncio
import inspect
from importlib.metadata import version

import aiortc
from aioice import ice

from pywasm_relay.webrtc_direct import AIORTC_INTERNALS

PINNED = {"aiortc": "1.16.0", "aioice": "0.13.0"}


def test_versions_are_the_pinned_ones() -> None:
    for dist, want in PINNED.items():
        got = version(dist)
        assert got == want, (
            f"{dist} is {got}, webrtc-direct was verified on {want}: re-check {AIORTC_INTERNALS} "
            "in relay-server/pywasm_relay/webrtc_direct.py, then update PINNED"
        )


async def test_aioice_connection_private_state() -> None:
    conn = aiortc.RTCIceGatherer(iceServers=[], local_username="libp2p+webrtc+v1/" + "a" * 32,
                                 local_password="libp2p+webrtc+v1/" + "a" * 32)._connection
    assert isinstance(conn, ice.Connection), "RTCIceGatherer._connection is no longer an aioice Connection"
    for name, kind in (("_protocols", list), ("_local_candidates", list), ("_local_candidates_end", bool)):
        assert isinstance(getattr(conn, name, None), kind), f"aioice Connection.{name} changed"
    # our ufrag (with '+' and '/') is accepted as local username and password
    assert conn.local_username == conn.local_password == "libp2p+webrtc+v1/" + "a" * 32
    # connect() checks gathering through _local_candidates_end
    assert "_local_candidates_end" in inspect.getsource(ice.Connection.connect)
    # data from a protocol reaches the connection through data_received / request_received
    src = inspect.getsource(ice.StunProtocol.datagram_received)
    assert "receiver.data_received" in src and "receiver.request_received" in src
    proto = ice.StunProtocol(conn)
    assert hasattr(proto, "receiver") and "local_candidate" in ice.StunProtocol.__annotations__
    await asyncio.sleep(0)


def test_dtls_private_hooks() -> None:
    t = aiortc.RTCDtlsTransport
    assert callable(getattr(t, "_set_role", None)), "RTCDtlsTransport._set_role is gone"
    params = list(inspect.signature(t._validate_peer_identity).parameters)
    assert params == ["self", "remoteParameters"], f"_validate_peer_identity signature changed: {params}"
    src = inspect.getsource(t.start)
    assert "self._validate_peer_identity(remoteParameters)" in src and 'self._role == "auto"' in src
    assert "self._ssl" in inspect.getsource(t._validate_peer_identity)
    # SCTP's client/server split follows the DTLS role we set
    assert "transport._role" in inspect.getsource(aiortc.RTCSctpTransport.is_server.fget)  # type: ignore[attr-defined]
