"""Multiaddr text/binary codec and API.

Valid/invalid vectors come from go-multiaddr's multiaddr_test.go (TestConstructFails,
the ``good`` list, TestStringToBytes, TestRoundTrip, TestDecapsulate ...), plus the
libp2p transports we speak (webtransport, webrtc-direct, memory, http-path).
"""

from __future__ import annotations

import copy
import pickle

import pytest

from pywasm.errors import DecodeError, MultiaddrError
from pywasm.multiformats.multiaddr import (
    PROTOCOLS_BY_CODE,
    PROTOCOLS_BY_NAME,
    Multiaddr,
    is_valid,
    protocol_by_code,
    protocol_by_name,
)

PEER = "12D3KooWGQmdpzHXCqLno4mMxWXKNFQHASBeF99gTm2JR8Vu5Bdc"
PEER_QM = "QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC"
WEBTRANSPORT = (
    "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport"
    "/certhash/uEiAkH5a4DPGKUuOBjYw0CgwjvcJCJMD2K_1aluKR_tpevQ/p2p/" + PEER
)
GARLIC64 = (
    "jT~IyXaoauTni6N4517EG8mrFUKpy0IlgZh-EY9csMAk82Odatmzr~YTZy8Hv7u~wvkg75EFNOyqb~nAPg-khyp2TS~ObU"
    "z8WlqYAM2VlEzJ7wJB91P-cUlKF18zSzVoJFmsrcQHZCirSbWoOknS6iNmsGRh5KVZsBEfp1Dg3gwTipTRIx7Vl5Vy~1OS"
    "KQVjYiGZS9q8RL0MF~7xFiKxZDLbPxk0AK9TzGGqm~wMTI2HS0Gm4Ycy8LYPVmLvGonIBYndg2bJC7WLuF6tVjVquiokSV"
    "DKFwq70BCUU5AU-EvdOD5KEOAM7mPfw-gJUG4tm1TtvcobrObqoRnmhXPTBTN5H7qDD12AvlwFGnfAlBXjuP4xOUAISL5S"
    "RLiulrsMSiT4GcugSI80mF6sdB0zWRgL1yyvoVWeTBn1TqjO27alr95DGTluuSqrNAxgpQzCKEWAyzrQkBfo2avGAmmz2"
    "NaHaAvYbOg0QSJz1PLjv2jdPW~ofiQmrGWM1cd~1cCqAAAA"
)

GOOD = [
    "/ip4/1.2.3.4",
    "/ip4/0.0.0.0",
    "/ip4/192.0.2.0/ipcidr/24",
    "/ip6/::1",
    "/ip6/2601:9:4f81:9700:803e:ca65:66e8:c21",
    "/ip6/2601:9:4f81:9700:803e:ca65:66e8:c21/udp/1234/quic",
    "/ip6/2601:9:4f81:9700:803e:ca65:66e8:c21/udp/1234/quic-v1",
    "/ip6/2001:db8::/ipcidr/32",
    "/ip6zone/x/ip6/fe80::1",
    "/ip6zone/x%y/ip6/fe80::1",
    "/ip6zone/x%y/ip6/::",
    "/ip6zone/x/ip6/fe80::1/udp/1234/quic",
    "/ip6zone/x/ip6/fe80::1/udp/1234/quic-v1",
    "/onion/timaq4ygg2iegci7:1234",
    "/onion/timaq4ygg2iegci7:80/http",
    "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:1234",
    "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:80/http",
    "/garlic64/" + GARLIC64,
    "/garlic64/" + GARLIC64 + "/http",
    "/garlic64/" + GARLIC64 + "/udp/8080",
    "/garlic64/" + GARLIC64 + "/tcp/8080",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuq",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuqzwas",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuqzwassw",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuq/http",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuq/tcp/8080",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuq/udp/8080",
    "/udp/0",
    "/tcp/0",
    "/sctp/0",
    "/udp/1234",
    "/tcp/1234",
    "/sctp/1234",
    "/udp/65535",
    "/tcp/65535",
    "/ipfs/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC",
    "/ipfs/k2k4r8oqamigqdo6o7hsbfwd45y70oyynp98usk7zmyfrzpqxh1pohl7",
    "/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC",
    "/p2p/k2k4r8oqamigqdo6o7hsbfwd45y70oyynp98usk7zmyfrzpqxh1pohl7",
    "/p2p/bafzbeigvf25ytwc3akrijfecaotc74udrhcxzh2cx3we5qqnw5vgrei4bm",
    "/p2p/12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV",
    "/p2p/k51qzi5uqu5dhb6l8spkdx7yxafegfkee5by8h7lmjh2ehc2sgg34z7c15vzqs",
    "/p2p/bafzaajaiaejcalj543iwv2d7pkjt7ykvefrkfu7qjfi6sduakhso4lay6abn2d5u",
    "/udp/1234/sctp/1234",
    "/udp/1234/udt",
    "/udp/1234/utp",
    "/tcp/1234/http",
    "/tcp/1234/tls/http",
    "/tcp/1234/https",
    "/ipfs/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC/tcp/1234",
    "/ipfs/k2k4r8oqamigqdo6o7hsbfwd45y70oyynp98usk7zmyfrzpqxh1pohl7/tcp/1234",
    "/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC/tcp/1234",
    "/p2p/k2k4r8oqamigqdo6o7hsbfwd45y70oyynp98usk7zmyfrzpqxh1pohl7/tcp/1234",
    "/ip4/127.0.0.1/udp/1234",
    "/ip4/127.0.0.1/udp/0",
    "/ip4/127.0.0.1/tcp/1234",
    "/ip4/127.0.0.1/tcp/1234/",
    "/ip4/127.0.0.1/udp/1234/quic",
    "/ip4/127.0.0.1/udp/1234/quic-v1",
    "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport",
    "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/b2uaraocy6yrdblb4sfptaddgimjmmpy",
    "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/b2uaraocy6yrdblb4sfptaddgimjmmpy"
    "/certhash/zQmbWTwYGcmdyK9CYfNBcfs9nhZs17a6FQ4Y8oea278xx41",
    "/ip4/127.0.0.1/ipfs/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC",
    "/ip4/127.0.0.1/ipfs/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC/tcp/1234",
    "/ip4/127.0.0.1/ipfs/k2k4r8oqamigqdo6o7hsbfwd45y70oyynp98usk7zmyfrzpqxh1pohl7",
    "/ip4/127.0.0.1/ipfs/k2k4r8oqamigqdo6o7hsbfwd45y70oyynp98usk7zmyfrzpqxh1pohl7/tcp/1234",
    "/ip4/127.0.0.1/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC",
    "/ip4/127.0.0.1/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC/tcp/1234",
    "/ip4/127.0.0.1/p2p/k2k4r8oqamigqdo6o7hsbfwd45y70oyynp98usk7zmyfrzpqxh1pohl7",
    "/ip4/127.0.0.1/p2p/k2k4r8oqamigqdo6o7hsbfwd45y70oyynp98usk7zmyfrzpqxh1pohl7/tcp/1234",
    "/unix/a/b/c/d/e",
    "/unix/stdio",
    "/ip4/1.2.3.4/tcp/80/unix/a/b/c/d/e/f",
    "/ip4/127.0.0.1/ipfs/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC/tcp/1234/unix/stdio",
    "/ip4/127.0.0.1/p2p/k2k4r8oqamigqdo6o7hsbfwd45y70oyynp98usk7zmyfrzpqxh1pohl7/tcp/1234/unix/stdio",
    "/ip4/127.0.0.1/tcp/9090/http/p2p-webrtc-direct",
    "/ip4/127.0.0.1/tcp/127/ws",
    "/ip4/127.0.0.1/tcp/127/tls",
    "/ip4/127.0.0.1/tcp/127/tls/ws",
    "/ip4/127.0.0.1/tcp/127/noise",
    "/ip4/127.0.0.1/tcp/127/wss",
    "/ip4/127.0.0.1/tcp/127/webrtc-direct",
    "/ip4/127.0.0.1/tcp/127/webrtc",
    "/http-path/tmp%2Fbar",
    "/http-path/tmp%2Fbar%2Fbaz",
    "/http-path/foo",
    "/ip4/127.0.0.1/tcp/0/p2p/12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV/http-path/foo",
    "/ip4/127.0.0.1/tcp/443/tls/sni/example.com/http/http-path/foo",
    "/memory/4",
    # libp2p transports and circuit addresses
    WEBTRANSPORT,
    "/ip4/1.2.3.4/udp/4001/webrtc-direct/certhash/uEiAkH5a4DPGKUuOBjYw0CgwjvcJCJMD2K_1aluKR_tpevQ/p2p/" + PEER,
    "/dns4/relay.example/tcp/443/wss/p2p/" + PEER + "/p2p-circuit/webrtc/p2p/" + PEER_QM,
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dns/example.com/tcp/1/p2p-websocket-star",
    "/dns6/example.com/tcp/1/ws/p2p-webrtc-star",
    "/ip4/1.2.3.4/tcp/1/ws/p2p-stardust",
    "/ip4/1.2.3.4/dccp/1",
    "/memory/18446744073709551615",
    "/ip4/1.2.3.4/tcp/1/plaintextv2",
]

BAD = [
    "/ip4",
    "/ip4/::1",
    "/ip4/fdpsofodsajfdoisa",
    "/ip4/::/ipcidr/256",
    "/ip6/::/ipcidr/1026",
    "/ip6",
    "/ip6zone",
    "/ip6zone/",
    "/ip6zone//ip6/fe80::1",
    "/udp",
    "/tcp",
    "/sctp",
    "/udp/65536",
    "/tcp/65536",
    "/quic/65536",
    "/quic-v1/65536",
    "/onion/9imaq4ygg2iegci7:80",
    "/onion/aaimaq4ygg2iegci7:80",
    "/onion/timaq4ygg2iegci7:0",
    "/onion/timaq4ygg2iegci7:-1",
    "/onion/timaq4ygg2iegci7",
    "/onion/timaq4ygg2iegci@:666",
    "/onion3/9ww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:80",
    "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd7:80",
    "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:0",
    "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:-1",
    "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd",
    "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyy@:666",
    "/garlic64/" + GARLIC64 + "7:80",
    "/garlic64/" + GARLIC64 + ":0",
    "/garlic64/" + GARLIC64 + "@:666",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzu",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzu77",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzu:80",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuq:-1",
    "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzu@",
    "/udp/1234/sctp",
    "/udp/1234/udt/1234",
    "/udp/1234/utp/1234",
    "/ip4/127.0.0.1/udp/jfodsajfidosajfoidsa",
    "/ip4/127.0.0.1/udp",
    "/ip4/127.0.0.1/tcp/jfodsajfidosajfoidsa",
    "/ip4/127.0.0.1/tcp",
    "/ip4/127.0.0.1/quic/1234",
    "/ip4/127.0.0.1/quic-v1/1234",
    "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash",
    "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/b2uaraocy6yrdblb4sfptaddgimjmmp",
    "/ip4/127.0.0.1/ipfs",
    "/ip4/127.0.0.1/ipfs/tcp",
    "/ip4/127.0.0.1/p2p",
    "/ip4/127.0.0.1/p2p/tcp",
    "/unix",
    "/ip4/1.2.3.4/tcp/80/unix",
    "/ip4/1.2.3.4/tcp/-1",
    "/ip4/127.0.0.1/tcp/9090/http/p2p-webcrt-direct",
    "/memory/92233720368547758081",
    "/",
    "",
    "/p2p/QmxoHT6iViN5xAjoz1VZ553cL31U9F94ht3QvWR1FrEbZY",  # sha2-256 digest longer than 32
    # go TestInvalidP2PAddrString
    "/p2p/k2k4r8oqamigqdo6o7hsbfwd45y70oyynp98usk7zmyfrzpqxh1pohl-",
    "/p2p/?unknownmultibase",
    "/p2p/k2jmtxwoe2phm1hbqp0e7nufqf6umvuu2e9qd7ana7h411a0haqj6i2z",  # not libp2p-key
    "/http-path/thisIsMissingAfullByte%f",
    # ours
    "ip4/1.2.3.4",  # must start with "/"
    "//ip4/1.2.3.4",
    "/ip4//tcp/1",
    "/ip4/1.2.3.4//tcp/1",
    "/ip4/01.2.3.4",
    "/ip4/1.2.3",
    "/ip6/fe80::1%eth0",
    "/ip6/1.2.3.4",
    "/tcp/+1",
    "/tcp/ 1",
    "/tcp/1_0",
    "/tcp/\u0661",  # Arabic-Indic digit one
    "/tcp/0x10",
    "/udp/99999999999999999999999999",
    "/dns4",
    "/dns4/",
    "/memory/-1",
    "/ipcidr/256",
    "/certhash/uAAAA",  # base64url of bytes that are no multihash
    "/certhash/not-multibase",
    "/p2p/" + PEER[:-1],
    "/p2p/zQmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC",  # multibase CIDv0 is not allowed
    "/http-path/%zz",
    "/http-path/%",
    "/dns4/\ud800",  # lone surrogate cannot be UTF-8
    "/webtransport/foo",
    "/ip4/1.2.3.4/tcp/1/quic-v2",
]


@pytest.mark.parametrize("text", GOOD)
def test_valid_text(text: str) -> None:
    ma = Multiaddr(text)
    assert is_valid(text)
    # Canonical text and binary both parse back to the same address.
    assert Multiaddr(str(ma)) == ma
    assert Multiaddr(ma.to_bytes()) == ma
    assert str(Multiaddr(ma.to_bytes())) == str(ma)


@pytest.mark.parametrize("text", BAD)
def test_invalid_text(text: str) -> None:
    with pytest.raises(MultiaddrError):
        Multiaddr(text)
    assert not is_valid(text)


# (text, hex) pairs: go TestStringToBytes, the spec feature file, and our own.
BINARY = [
    ("/ip4/127.0.0.1/tcp/4001", "047f000001060fa1"),
    ("/ip4/192.0.2.42/tcp/443", "04c000022a0601bb"),
    ("/ip4/127.0.0.1/udp/1234", "047f000001910204d2"),
    ("/ip4/127.0.0.1/tcp/4321", "047f0000010610e1"),
    ("/ip4/127.0.0.1/udp/1234/ip4/127.0.0.1/tcp/4321", "047f000001910204d2047f0000010610e1"),
    ("/onion/aaimaq4ygg2iegci:80", "bc030010c0439831b48218480050"),
    (
        "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:1234",
        "bd03adadec040be047f9658668b11a504f3155001f231a37f54c4476c07fb4cc139ed7e30304d2",
    ),
    (
        "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuq",
        "bf0320efbcd45d0c5dc79781ac6f20ea5055a036afb48d45a52e7d68ec7d4338919e69",
    ),
    ("/ip6zone/eth0/ip6/::1", "2a04657468302900000000000000000000000000000001"),
    ("/memory/1234", "890600000000000004d2"),
    ("/dns4/example.com/tcp/443/wss", "360b6578616d706c652e636f6d0601bbde03"),
    ("/unix/tmp/p2p.sock", "90030d2f746d702f7032702e736f636b"),
    ("/http-path/a%20b%2Fc", "e103056120622f63"),
    ("/ip6/::1/tcp/1/p2p-circuit", "2900000000000000000000000000000001060001a202"),
    ("/ip4/1.2.3.4/tcp/1/tls/sni/x.org/ws", "0401020304060001c003c10305782e6f7267dd03"),
    (
        WEBTRANSPORT,
        "047f000001910204d2cd03d103d203221220241f96b80cf18a52e3818d8c340a0c23bdc24224c0f62bfd5a96e291"
        "feda5ebda5032600240801122061f6673b0194f76fb30f2dca4d31309431a70563227082e5b756e6d9ffae5bd3",
    ),
]


@pytest.mark.parametrize("text,hexed", BINARY)
def test_binary_vectors(text: str, hexed: str) -> None:
    assert Multiaddr(text).to_bytes().hex() == hexed
    assert str(Multiaddr(bytes.fromhex(hexed))) == text


@pytest.mark.parametrize(
    "text",
    [
        "/unix/a/b/c/d",
        "/ip6/::ffff:127.0.0.1/tcp/111",
        "/ip4/127.0.0.1/tcp/123",
        "/ip4/127.0.0.1/tcp/123/tls",
        "/ip4/127.0.0.1/udp/123",
        "/ip4/127.0.0.1/udp/123/ip6/::",
        "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g",
        "/p2p/QmbHVEEepCi7rn7VL7Exxpd2Ci9NNB6ifvqwhsrbRMgQFP",
        "/p2p/QmbHVEEepCi7rn7VL7Exxpd2Ci9NNB6ifvqwhsrbRMgQFP/unix/a/b/c",
        "/http-path/tmp%2Fbar",
        WEBTRANSPORT,
    ],
)
def test_text_round_trip_is_identity(text: str) -> None:
    assert str(Multiaddr(text)) == text


@pytest.mark.parametrize(
    "text,canonical",
    [
        ("/ipfs/QmbHVEEepCi7rn7VL7Exxpd2Ci9NNB6ifvqwhsrbRMgQFP", "/p2p/QmbHVEEepCi7rn7VL7Exxpd2Ci9NNB6ifvqwhsrbRMgQFP"),
        (
            "/p2p/k51qzi5uqu5dhb6l8spkdx7yxafegfkee5by8h7lmjh2ehc2sgg34z7c15vzqs",
            "/p2p/12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV",
        ),
        (
            "/p2p/bafzbeigvf25ytwc3akrijfecaotc74udrhcxzh2cx3we5qqnw5vgrei4bm",
            "/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC",
        ),
        ("/ip4/127.0.0.1/tcp/1234/", "/ip4/127.0.0.1/tcp/1234"),
        ("/ip4/127.0.0.1/tcp/01234", "/ip4/127.0.0.1/tcp/1234"),
        ("/ip6/0:0:0:0:0:0:0:1", "/ip6/::1"),
        ("/ip6/2001:DB8::1", "/ip6/2001:db8::1"),
        ("/unix/a/b///", "/unix/a/b"),
        ("/http-path/a b", "/http-path/a%20b"),
        ("/http-path/%2f", "/http-path/%2F"),
        ("/onion/TIMAQ4YGG2IEGCI7:1234", "/onion/timaq4ygg2iegci7:1234"),
        (
            "/certhash/b2uaraocy6yrdblb4sfptaddgimjmmpy",
            "/certhash/u1QEQOFj2IjCsPJFfMAxmQxLGPw",
        ),
    ],
)
def test_canonical_text(text: str, canonical: str) -> None:
    ma = Multiaddr(text)
    assert str(ma) == canonical
    assert ma == Multiaddr(canonical)


@pytest.mark.parametrize(
    "hexed",
    [
        "",
        "04",  # ip4 without its 4 bytes
        "047f0000",  # ip4 one byte short
        "0601",  # tcp port one byte short
        "ff",  # truncated code varint
        "8000",  # non-minimal code varint
        "ffffffffffffffffff01",  # code varint too long
        "00",  # protocol 0 does not exist
        "e803",  # protocol 488 does not exist
        "3500",  # dns with zero-length name
        "3505",  # dns length beyond the data
        "3501ff",  # dns name not UTF-8
        "35012f",  # dns name "/"
        "2a00",  # empty ip6zone
        "2b",  # ipcidr without byte
        "9003012f",  # unix path "/" (too short)
        "9003026162",  # unix path without leading "/"
        "9003032f612f",  # unix path ending in "/"
        "9003022f61047f000001",  # a component after a path component
        "a503221221c05877cbae039d70a5e600ea02c6f9f2942439285c9e344e26f8d280c850fad6",  # go: bad p2p
        "a503050004010203",  # p2p multihash length mismatch
        "a50304110201" + "02",  # p2p with sha1: not a peer id multihash
        "a503020000",  # p2p identity multihash with empty digest
        "d20302ffff",  # certhash not a multihash
        "e10300",  # empty http-path
        "bc03" + "00" * 10 + "0000",  # onion with port 0
        "8906000000",  # memory truncated
        "3580808080808080808001",  # length varint too long
    ],
)
def test_invalid_bytes(hexed: str) -> None:
    data = bytes.fromhex(hexed)
    with pytest.raises(MultiaddrError):
        Multiaddr(data)
    assert not is_valid(data)


def test_multiaddr_error_is_decode_error() -> None:
    assert issubclass(MultiaddrError, DecodeError)


def test_accepts_bytearray_memoryview_and_multiaddr() -> None:
    ma = Multiaddr("/ip4/127.0.0.1/tcp/4001")
    assert Multiaddr(bytearray(ma.to_bytes())) == ma
    assert Multiaddr(memoryview(ma.to_bytes())) == ma
    assert Multiaddr(ma) == ma
    assert bytes(ma) == ma.to_bytes()


def test_wrong_type() -> None:
    with pytest.raises(TypeError):
        Multiaddr(1234)  # type: ignore[arg-type]
    assert not is_valid(1234)  # type: ignore[arg-type]


def test_components_and_protocols() -> None:
    ma = Multiaddr(WEBTRANSPORT)
    assert ma.protocols() == ["ip4", "udp", "quic-v1", "webtransport", "certhash", "p2p"]
    assert ma.components() == [
        ("ip4", "127.0.0.1"),
        ("udp", "1234"),
        ("quic-v1", None),
        ("webtransport", None),
        ("certhash", "uEiAkH5a4DPGKUuOBjYw0CgwjvcJCJMD2K_1aluKR_tpevQ"),
        ("p2p", PEER),
    ]
    assert list(ma) == ma.components()
    assert len(ma) == 6
    assert ma.protocol_codes() == [4, 273, 461, 465, 466, 421]


def test_value_for() -> None:
    # go TestGetValue
    ma = Multiaddr(
        "/ip4/127.0.0.1/utp/tcp/5555/udp/1234/tls/utp/ipfs/QmbHVEEepCi7rn7VL7Exxpd2Ci9NNB6ifvqwhsrbRMgQFP"
    )
    assert ma.value_for("ip4") == "127.0.0.1"
    assert ma.value_for("utp") == ""
    assert ma.value_for("tls") == ""
    assert ma.value_for("tcp") == "5555"
    assert ma.value_for("udp") == "1234"
    assert ma.value_for("ipfs") == "QmbHVEEepCi7rn7VL7Exxpd2Ci9NNB6ifvqwhsrbRMgQFP"
    assert ma.value_for("p2p") == "QmbHVEEepCi7rn7VL7Exxpd2Ci9NNB6ifvqwhsrbRMgQFP"
    assert ma.value_for("ip6") is None
    assert Multiaddr("/ip4/0.0.0.0/unix/a/b/c/d").value_for("unix") == "/a/b/c/d"
    assert Multiaddr("/ip4/1.1.1.1/ip4/2.2.2.2").value_for("ip4") == "1.1.1.1"
    # go TestHTTPPath: the value is the escaped text, the raw value the bytes.
    hp = Multiaddr("/http-path/tmp%2Fbar/p2p-circuit")
    assert hp.value_for("http-path") == "tmp%2Fbar"
    assert hp.raw_value_for("http-path") == b"tmp/bar"
    assert ma.has_protocol("tls") and not ma.has_protocol("ws")
    with pytest.raises(MultiaddrError):
        ma.value_for("no-such-protocol")


def test_encapsulate() -> None:
    ma = Multiaddr("/ip4/127.0.0.1/udp/1234")
    both = ma.encapsulate(Multiaddr("/udp/5678"))
    assert str(both) == "/ip4/127.0.0.1/udp/1234/udp/5678"
    assert str(ma.encapsulate("/quic-v1")) == "/ip4/127.0.0.1/udp/1234/quic-v1"
    assert ma.encapsulate(Multiaddr("/udp/5678").to_bytes()) == both
    assert both.to_bytes() == ma.to_bytes() + Multiaddr("/udp/5678").to_bytes()
    with pytest.raises(MultiaddrError):
        Multiaddr("/unix/a/b").encapsulate("/tcp/1")


@pytest.mark.parametrize(
    "left,right,expected",
    [
        # go TestDecapsulate ("" = everything removed)
        ("/ip4/1.2.3.4/tcp/1234", "/ip4/1.2.3.4", ""),
        ("/ip4/1.2.3.4", "/ip4/1.2.3.4/tcp/1234", "/ip4/1.2.3.4"),
        ("/ip4/1.2.3.5/tcp/1234", "/ip4/5.3.2.1", "/ip4/1.2.3.5/tcp/1234"),
        ("/ip4/1.2.3.5/udp/1234/quic-v1", "/udp/1234", "/ip4/1.2.3.5"),
        ("/ip4/1.2.3.6/udp/1234/quic-v1", "/udp/1234/quic-v1", "/ip4/1.2.3.6"),
        ("/ip4/1.2.3.7/tcp/1234", "/ws", "/ip4/1.2.3.7/tcp/1234"),
        ("/dnsaddr/wss.com/tcp/4001", "/ws", "/dnsaddr/wss.com/tcp/4001"),
        ("/dnsaddr/wss.com/tcp/4001/ws", "/wss", "/dnsaddr/wss.com/tcp/4001/ws"),
        ("/dnsaddr/wss.com/ws", "/wss", "/dnsaddr/wss.com/ws"),
        ("/dnsaddr/wss.com/ws", "/dnsaddr/wss.com", ""),
        ("/dnsaddr/wss.com/tcp/4001/wss", "/wss", "/dnsaddr/wss.com/tcp/4001"),
        ("/ip4/1.2.3.4/udp/1/ip4/1.2.3.4/udp/1", "/udp/1", "/ip4/1.2.3.4/udp/1/ip4/1.2.3.4"),
        # by protocol name: last occurrence
        ("/ip4/1.2.3.4/tcp/1/ws", "tcp", "/ip4/1.2.3.4"),
        ("/ip4/1.2.3.4/udp/1/ip4/5.6.7.8/udp/2", "ip4", "/ip4/1.2.3.4/udp/1"),
        ("/ip4/1.2.3.4/tcp/1", "ws", "/ip4/1.2.3.4/tcp/1"),
        ("/ip4/1.2.3.4/tcp/1/p2p/" + PEER, "ipfs", "/ip4/1.2.3.4/tcp/1"),
    ],
)
def test_decapsulate(left: str, right: str, expected: str) -> None:
    result = Multiaddr(left).decapsulate(right if not right.startswith("/") else Multiaddr(right))
    assert str(result) == expected
    if right.startswith("/"):
        assert Multiaddr(left).decapsulate(right) == result  # text form works too
    if expected:
        assert result == Multiaddr(expected)
    else:
        assert not result and len(result) == 0 and result.to_bytes() == b""


def test_decapsulate_unknown_name() -> None:
    with pytest.raises(MultiaddrError):
        Multiaddr("/ip4/1.2.3.4").decapsulate("nope")


def test_decapsulate_code() -> None:
    ma = Multiaddr("/ip4/1.2.3.4/tcp/1/p2p/" + PEER)
    assert str(ma.decapsulate_code(421)) == "/ip4/1.2.3.4/tcp/1"


def test_peer_id() -> None:
    ma = Multiaddr("/ip4/1.2.3.4/tcp/1/p2p/" + PEER)
    assert ma.peer_id() == PEER
    assert str(ma.without_peer_id()) == "/ip4/1.2.3.4/tcp/1"
    bare = Multiaddr("/ip4/1.2.3.4/tcp/1")
    assert bare.peer_id() is None
    assert bare.without_peer_id() is bare
    # CIDv1 and /ipfs input still yield base58btc
    assert Multiaddr("/ipfs/k51qzi5uqu5dhb6l8spkdx7yxafegfkee5by8h7lmjh2ehc2sgg34z7c15vzqs").peer_id() == (
        "12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV"
    )


def test_peer_id_of_circuit_address() -> None:
    ma = Multiaddr("/ip4/1.2.3.4/tcp/1/p2p/" + PEER_QM + "/p2p-circuit/p2p/" + PEER)
    assert ma.peer_id() == PEER
    assert str(ma.without_peer_id()) == "/ip4/1.2.3.4/tcp/1/p2p/" + PEER_QM + "/p2p-circuit"


def test_split() -> None:
    ma = Multiaddr("/ip4/1.2.3.4/utp/ip4/2.3.4.5/udp/2/udt")
    assert [str(c) for c in ma.split()] == ["/ip4/1.2.3.4", "/utp", "/ip4/2.3.4.5", "/udp/2", "/udt"]


def test_equality_and_hash() -> None:
    a = Multiaddr("/ip4/127.0.0.1/tcp/1234")
    b = Multiaddr("/ip4/127.0.0.1/tcp/1234/")
    c = Multiaddr("/ip4/127.0.0.1/udp/1234")
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert len({a, b, c}) == 2
    assert a != "/ip4/127.0.0.1/tcp/1234"
    # http-path compares by bytes, whatever was escaped
    assert Multiaddr("/http-path/a%2Db") == Multiaddr("/http-path/a-b")


def test_repr() -> None:
    assert repr(Multiaddr("/ip4/1.2.3.4/tcp/1")) == "Multiaddr('/ip4/1.2.3.4/tcp/1')"


def test_immutable() -> None:
    ma = Multiaddr("/ip4/1.2.3.4")
    with pytest.raises(AttributeError):
        ma._bytes = b""  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del ma._bytes


def test_pickle_and_copy() -> None:
    ma = Multiaddr(WEBTRANSPORT)
    assert pickle.loads(pickle.dumps(ma)) == ma
    assert copy.deepcopy(ma) == ma
    empty = ma.decapsulate("ip4")
    assert pickle.loads(pickle.dumps(empty)) == empty


def test_protocol_table() -> None:
    expected = {
        "ip4": 4, "tcp": 6, "udp": 273, "dccp": 33, "ip6": 41, "ip6zone": 42, "ipcidr": 43,
        "dns": 53, "dns4": 54, "dns6": 55, "dnsaddr": 56, "sctp": 132, "udt": 301, "utp": 302,
        "unix": 400, "p2p": 421, "ipfs": 421, "onion": 444, "onion3": 445, "garlic64": 446,
        "garlic32": 447, "tls": 448, "sni": 449, "noise": 454, "quic": 460, "quic-v1": 461,
        "webtransport": 465, "certhash": 466, "http": 480, "http-path": 481, "https": 443,
        "ws": 477, "wss": 478, "p2p-websocket-star": 479, "p2p-stardust": 277,
        "p2p-webrtc-star": 275, "p2p-webrtc-direct": 276, "webrtc-direct": 280, "webrtc": 281,
        "p2p-circuit": 290, "memory": 777, "plaintextv2": 7367777,
    }  # fmt: skip
    assert {name: p.code for name, p in PROTOCOLS_BY_NAME.items()} == expected
    assert protocol_by_name("ipfs") is protocol_by_code(421)
    assert PROTOCOLS_BY_CODE[421].name == "p2p"
    with pytest.raises(MultiaddrError):
        protocol_by_code(99999)
