"""WebTransport certhash rules and the certificate rotation schedule (pure, Pyodide-safe).

The clock is a number we move by hand: a year of rotations runs in milliseconds.
"""

from __future__ import annotations

import hashlib
import itertools

from pywasm.errors import DecodeError
from pywasm.multiformats import multihash
from pywasm.multiformats.multiaddr import Multiaddr
from pywasm.transports.cert_rotation import DEFAULT_PERIOD, DEFAULT_SKEW, CertRotation
from pywasm.transports.webtransport_addr import (
    MAX_CERT_VALIDITY,
    CerthashMismatchError,
    WebTransportError,
    certhash_of,
    check_certhashes,
    parse_webtransport,
    validate_certhashes,
    webtransport_multiaddr,
)

DAY = 24 * 3600.0
T0 = 1_790_000_000.0
_serial = itertools.count()


def fake_cert(not_before: float, not_after: float) -> tuple[bytes, bytes]:
    n = next(_serial)
    return b"DER-%d-%f-%f" % (n, not_before, not_after), b"KEY-%d" % n


def test_certhash_is_sha256_multihash_of_der() -> None:
    h = certhash_of(b"certificate")
    assert multihash.decode(h) == (multihash.SHA2_256, hashlib.sha256(b"certificate").digest())


def test_multiaddr_round_trip_with_two_hashes_and_peer() -> None:
    h1, h2 = certhash_of(b"a"), certhash_of(b"b")
    ma = webtransport_multiaddr("/ip4/127.0.0.1/udp/4003/quic-v1/webtransport", [h1, h2])
    text = str(ma)
    assert text.count("/certhash/u") == 2, text
    peer = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
    wa = parse_webtransport(Multiaddr(text + "/p2p/" + peer))
    assert wa is not None
    assert wa.certhashes == (h1, h2)
    assert wa.peer_id == peer
    assert wa.url == "https://127.0.0.1:4003/.well-known/libp2p-webtransport?type=noise"
    assert wa.sha256_digests() == [hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()]


def test_parse_rejects_other_addresses() -> None:
    for text in (
        "/ip4/127.0.0.1/tcp/4001",
        "/ip4/127.0.0.1/udp/4003/quic-v1",
        "/ip4/127.0.0.1/udp/4003/quic/webtransport",
        "/ip4/127.0.0.1/udp/4003/quic-v1/webtransport/p2p-circuit",
    ):
        assert parse_webtransport(Multiaddr(text)) is None, text
    v6 = parse_webtransport(Multiaddr("/ip6/::1/udp/9/quic-v1/webtransport"))
    assert v6 is not None and v6.url.startswith("https://[::1]:9/")


def test_dialer_check_needs_every_hash() -> None:
    h1, h2, h3 = certhash_of(b"1"), certhash_of(b"2"), certhash_of(b"3")
    check_certhashes([h1, h2], [h3, h2, h1])
    try:
        check_certhashes([h1, h2], [h1])
    except CerthashMismatchError as exc:
        assert "does not vouch" in str(exc)
    else:
        raise AssertionError("a certhash missing from the server's list must fail")
    try:
        check_certhashes([], [h1])
    except CerthashMismatchError:
        pass
    else:
        raise AssertionError("an address without certhash cannot be verified")


def test_validate_needs_a_sha256_hash() -> None:
    validate_certhashes([certhash_of(b"x")])
    for bad in ([], [multihash.encode(multihash.SHA2_512, b"\0" * 64)]):
        try:
            validate_certhashes(bad)
        except WebTransportError:
            pass
        else:
            raise AssertionError(f"{bad!r} must be refused")


def test_first_boot_makes_current_and_next() -> None:
    rot = CertRotation(fake_cert)
    assert rot.refresh(T0) is True
    assert rot.refresh(T0 + 1) is False
    cur, nxt = rot.records
    assert rot.serving(T0) == cur
    assert cur.serve_from == T0 and nxt.serve_from == cur.serve_until == T0 + DEFAULT_PERIOD
    for r in rot.records:
        assert r.not_after - r.not_before < MAX_CERT_VALIDITY
        assert r.not_before == r.serve_from - DEFAULT_SKEW
    assert rot.advertised(T0) == [cur.certhash, nxt.certhash]


def test_a_year_of_rotation_keeps_every_invariant() -> None:
    rot = CertRotation(fake_cert)
    now = T0
    rot.refresh(now)
    ever_advertised: dict[bytes, float] = {}  # hash -> its not_after
    step = 3 * 3600.0
    last: list[bytes] = []
    while now < T0 + 365 * DAY:
        rot.refresh(now)
        serving = rot.serving(now)
        adv = rot.advertised(now)
        # the certificate in use is advertised, valid now, and valid a skew either side
        assert serving.certhash in adv
        assert serving.not_before <= now - DEFAULT_SKEW + 1e-6 and now + DEFAULT_SKEW <= serving.not_after + 1e-6
        # next one made ahead: always at least two hashes, never more than three kept
        assert len(adv) >= 2 and len(rot.records) <= 3
        # no hash leaves the address while its certificate is still valid
        for h in last:
            if ever_advertised[h] > now:
                assert h in adv, "an advertised hash was dropped before its certificate expired"
        # the Noise extension vouches for everything advertised, now and a period ago
        noise = set(rot.noise_certhashes())
        assert set(adv) <= noise
        for h, not_after in ever_advertised.items():
            if not_after > now:
                assert h in noise
        for r in rot.records:
            ever_advertised.setdefault(r.certhash, r.not_after)
        last = adv
        now += step
    assert len(ever_advertised) >= 30


def test_state_round_trips_and_resumes() -> None:
    rot = CertRotation(fake_cert)
    rot.refresh(T0)
    rot.refresh(T0 + DEFAULT_PERIOD + 5)  # one rotation: previous, current, next
    assert len(rot.records) == 3
    text = rot.to_json()
    back = CertRotation.from_json(text, fake_cert)
    assert back.records == rot.records
    assert back.refresh(T0 + DEFAULT_PERIOD + 10) is False, "a restart inside the window changes nothing"
    # restart after a downtime inside the next window: it takes over, a new next is made
    later = CertRotation.from_json(text, fake_cert)
    assert later.refresh(T0 + 2 * DEFAULT_PERIOD + 5) is True
    assert later.serving(T0 + 2 * DEFAULT_PERIOD + 5) == rot.records[2]
    # restart after a very long downtime: a fresh chain
    stale = CertRotation.from_json(text, fake_cert)
    stale.refresh(T0 + 100 * DAY)
    assert not set(stale.noise_certhashes()) & set(rot.noise_certhashes())


def test_bad_state_is_a_decode_error() -> None:
    for text in ("not json", "[]", '{"version": 99, "certs": []}',
                 '{"version": 1, "certs": [{"serve_from": 1}]}'):
        try:
            CertRotation.from_json(text, fake_cert)
        except DecodeError:
            pass
        else:
            raise AssertionError(f"{text!r} must be refused")


def test_validity_over_14_days_is_refused() -> None:
    from pywasm.errors import ConfigError

    try:
        CertRotation(fake_cert, period=13.5 * DAY, skew=DAY)
    except ConfigError:
        pass
    else:
        raise AssertionError("validity >= 14 days must be refused")
