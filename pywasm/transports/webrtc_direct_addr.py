"""WebRTC-direct addresses, fingerprints, ICE credentials and the Noise prologue.

Shared by the browser dialer (Pyodide) and the native listener (pywasm-relay, aiortc);
pure Python. Rules from libp2p/specs webrtc/webrtc-direct.md:

* address: ``/ip4|ip6/<ip>/udp/<port>/webrtc-direct/certhash/<multibase multihash>[/p2p/<id>]``;
  sha-256 must be supported (the only one we accept), base64url is what we emit.
* the client picks one random string prefixed ``libp2p+webrtc+v1/`` and uses it as ufrag
  *and* password on both sides, so the server learns its own credentials from the STUN
  USERNAME (``<server ufrag>:<client ufrag>``).
* Noise prologue: ``b"libp2p-webrtc-noise:" + client fingerprint + server fingerprint``,
  each a multihash; the server is the Noise initiator.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from ..errors import DialError, PywasmError
from ..multiformats import multibase, multihash
from ..multiformats.multiaddr import Multiaddr

UFRAG_PREFIX = "libp2p+webrtc+v1/"
NOISE_PROLOGUE_PREFIX = b"libp2p-webrtc-noise:"
SHA2_256 = 0x12
# RFC 8445 ice-chars, 22..256 long (the password rule; the ufrag is also the password)
_ICE_CREDENTIAL = re.compile(r"^[A-Za-z0-9+/]{22,256}$")
_UFRAG_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#: Security and muxer names the host reports for WebRTC connections (as js-libp2p does).
SECURITY_PROTOCOL = "/noise"
MUXER_PROTOCOL = "/webrtc"


@dataclass(frozen=True)
class WebRTCDirectAddr:
    family: str  # "ip4" | "ip6"
    host: str
    port: int
    certhashes: tuple[bytes, ...]  # multihash bytes, in address order
    peer_id: str | None

    @property
    def server_fingerprint(self) -> bytes:
        """The first sha-256 certhash as a multihash (what the prologue needs)."""
        for mh in self.certhashes:
            code, digest = multihash.decode(mh)
            if code == SHA2_256 and len(digest) == 32:
                return mh
        raise DialError("the address has no sha-256 certhash")


def parse_webrtc_direct(addr: Multiaddr) -> WebRTCDirectAddr | None:
    """Parse a webrtc-direct address; None if ``addr`` is not one."""
    comps = addr.components()
    peer: str | None = None
    if comps and comps[-1][0] in ("p2p", "ipfs"):
        peer = comps[-1][1]
        comps = comps[:-1]
    if len(comps) < 4:
        return None
    (fam, host), (udp, port), (proto, _) = comps[0], comps[1], comps[2]
    if fam not in ("ip4", "ip6") or udp != "udp" or proto != "webrtc-direct" or host is None or port is None:
        return None
    hashes: list[bytes] = []
    for name, value in comps[3:]:
        if name != "certhash" or value is None:
            return None
        try:
            hashes.append(multibase.decode(value))
        except PywasmError:
            return None
    if not hashes:
        return None
    return WebRTCDirectAddr(fam, host, int(port), tuple(hashes), peer)


def certhash_text(der_certificate: bytes) -> str:
    """The ``/certhash/`` value for a DER certificate: base64url of its sha-256 multihash."""
    return multibase.encode("base64url", multihash.sha256(der_certificate))


def listen_multiaddr(family: str, host: str, port: int, der_certificate: bytes) -> Multiaddr:
    return Multiaddr(f"/{family}/{host}/udp/{port}/webrtc-direct/certhash/{certhash_text(der_certificate)}")


def fingerprint_to_multihash(sdp_fingerprint: str) -> bytes:
    """``"AB:CD:..."`` (SDP ``a=fingerprint`` value, sha-256) -> multihash bytes."""
    text = sdp_fingerprint.strip()
    if " " in text:  # "sha-256 AB:CD..."
        algo, _, text = text.partition(" ")
        if algo.lower() != "sha-256":
            raise DialError(f"unsupported fingerprint algorithm {algo!r}: only sha-256")
    try:
        digest = bytes.fromhex(text.replace(":", ""))
    except ValueError:
        raise DialError(f"invalid fingerprint {sdp_fingerprint[:120]!r}") from None
    if len(digest) != 32:
        raise DialError(f"fingerprint of {len(digest)} bytes is not sha-256")
    return multihash.encode(SHA2_256, digest)


def multihash_to_fingerprint(mh: bytes) -> str:
    """sha-256 multihash -> ``"AB:CD:..."`` for an SDP ``a=fingerprint:sha-256`` line."""
    code, digest = multihash.decode(mh)
    if code != SHA2_256 or len(digest) != 32:
        raise DialError("only sha-256 certhashes are supported")
    return ":".join(f"{b:02X}" for b in digest)


def fingerprint_of_der(der_certificate: bytes) -> bytes:
    """sha-256 multihash of a DER certificate (what its SDP fingerprint encodes)."""
    return multihash.encode(SHA2_256, hashlib.sha256(der_certificate).digest())


def noise_prologue(client_fingerprint: bytes, server_fingerprint: bytes) -> bytes:
    """Prologue for the Noise handshake; both arguments are multihash bytes."""
    return NOISE_PROLOGUE_PREFIX + bytes(client_fingerprint) + bytes(server_fingerprint)


def random_ufrag(length: int = 32) -> str:
    return UFRAG_PREFIX + "".join(secrets.choice(_UFRAG_ALPHABET) for _ in range(length))


def is_valid_ufrag(ufrag: str) -> bool:
    """A libp2p webrtc-direct ufrag: our prefix, and usable as an ICE password."""
    return ufrag.startswith(UFRAG_PREFIX) and bool(_ICE_CREDENTIAL.match(ufrag))


def ufrag_from_stun_username(username: str) -> str | None:
    """The ufrag from a STUN USERNAME ``<server ufrag>:<client ufrag>``, if both are the
    same valid libp2p ufrag (the spec has the client use one string for both)."""
    local, colon, remote = username.partition(":")
    if colon != ":" or local != remote or not is_valid_ufrag(local):
        return None
    return local


__all__ = [
    "UFRAG_PREFIX",
    "SECURITY_PROTOCOL",
    "MUXER_PROTOCOL",
    "WebRTCDirectAddr",
    "parse_webrtc_direct",
    "certhash_text",
    "listen_multiaddr",
    "fingerprint_to_multihash",
    "multihash_to_fingerprint",
    "fingerprint_of_der",
    "noise_prologue",
    "random_ufrag",
    "is_valid_ufrag",
    "ufrag_from_stun_username",
]
