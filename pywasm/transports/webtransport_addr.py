"""WebTransport addresses and the certhash rules of the libp2p WebTransport spec.

Pure (no sockets, no aioquic): the browser dialer, the native dialer and the relay's
listener share it, and it runs in Pyodide.

* ``/ip4|ip6|dns*/<host>/udp/<port>/quic-v1/webtransport[/certhash/<mb>]*[/p2p/<id>]``
  -> :class:`WebTransportAddr` (:func:`parse_webtransport`).
* A certhash is the multibase (base64url, ``u`` prefix) multihash (sha2-256) of the
  server certificate's DER (:func:`certhash_of`).
* The session URL is ``https://<host>:<port>/.well-known/libp2p-webtransport?type=noise``.
* On Noise message 2, before sending message 3, the dialer checks that every certhash it
  was given is in the server's ``webtransport_certhashes`` extension
  (:func:`check_certhashes`): a browser cannot tell which of the accepted certificates
  the server used, so all of them must be vouched for.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..errors import HandshakeError, MultihashError, TransportError
from ..multiformats import multihash
from ..multiformats.multiaddr import Multiaddr
from .addrs import FAMILY_ANY, FAMILY_IP4, FAMILY_IP6, format_hostport

#: The HTTP endpoint and handshake type every libp2p WebTransport server answers.
WELL_KNOWN_PATH = "/.well-known/libp2p-webtransport"
HANDSHAKE_QUERY = "type=noise"
SESSION_PATH = f"{WELL_KNOWN_PATH}?{HANDSHAKE_QUERY}"
#: What the host reports as the security/muxer of a WebTransport connection.
SECURITY_PROTOCOL = "/noise"
MUXER_PROTOCOL = "webtransport"
#: Browsers accept self-signed certificates by hash only when they are valid at most 14 days.
MAX_CERT_VALIDITY = 14 * 24 * 3600.0

if TYPE_CHECKING:
    from ..identity import PeerId, PrivateKey, PublicKey
    from ..protocols.noise.payload import RemoteIdentity

_HOSTS = {"ip4": FAMILY_IP4, "ip6": FAMILY_IP6, "dns": FAMILY_ANY, "dns4": FAMILY_IP4, "dns6": FAMILY_IP6}


class WebTransportError(TransportError):
    """A WebTransport session could not be opened or was refused."""


class CerthashMismatchError(HandshakeError):
    """The server's Noise ``webtransport_certhashes`` extension does not vouch for every
    certificate hash the dialer accepted (a possible man in the middle, or a stale address)."""


@dataclass(frozen=True)
class WebTransportAddr:
    host: str
    port: int
    family: str
    is_dns: bool
    # multihash bytes, in address order
    certhashes: tuple[bytes, ...]
    peer_id: str | None

    @property
    def url(self) -> str:
        return f"https://{format_hostport(self.host, self.port)}{SESSION_PATH}"

    @property
    def authority(self) -> str:
        return format_hostport(self.host, self.port)

    def sha256_digests(self) -> list[bytes]:
        """The sha-256 digests for ``serverCertificateHashes`` (the only algorithm browsers take)."""
        out = []
        for mh in self.certhashes:
            code, digest = multihash.decode(mh)
            if code == multihash.SHA2_256:
                out.append(digest)
        return out


@dataclass
class WebTransportConnection:
    """An authenticated WebTransport session, as the host adopts it
    (:class:`~pywasm.interfaces.UpgradedConnection`): Noise ran on the first stream, the
    session's native streams are the connection's streams."""

    local_peer: "PeerId"
    remote_peer: "PeerId"
    remote_public_key: "PublicKey"
    local_addr: "Multiaddr | None"
    remote_addr: "Multiaddr"
    muxed: Any
    security_protocol: str = SECURITY_PROTOCOL
    muxer_protocol: str = MUXER_PROTOCOL


def parse_webtransport(addr: Multiaddr) -> WebTransportAddr | None:
    """A WebTransport multiaddr -> :class:`WebTransportAddr`; None for anything else."""
    comps = addr.components()
    peer_id = None
    if comps and comps[-1][0] in ("p2p", "ipfs"):
        peer_id = comps[-1][1]
        comps = comps[:-1]
    if len(comps) < 4:
        return None
    (hproto, host), (uproto, port), (qproto, _), (wproto, _) = comps[:4]
    family = _HOSTS.get(hproto)
    if family is None or uproto != "udp" or qproto != "quic-v1" or wproto != "webtransport":
        return None
    if host is None or port is None:
        return None
    hashes = []
    for name, _ in comps[4:]:
        if name != "certhash":
            return None
    for raw in _raw_certhashes(addr):
        hashes.append(raw)
    return WebTransportAddr(
        host=host, port=int(port), family=family, is_dns=hproto not in ("ip4", "ip6"),
        certhashes=tuple(hashes), peer_id=peer_id,
    )


def _raw_certhashes(addr: Multiaddr) -> list[bytes]:
    # components() gives multibase text; decode each back to the multihash bytes
    from ..multiformats import multibase

    return [multibase.decode(v) for name, v in addr.components() if name == "certhash" and v]


def certhash_of(cert_der: bytes) -> bytes:
    """The sha2-256 multihash of a certificate's DER encoding."""
    return multihash.encode(multihash.SHA2_256, hashlib.sha256(cert_der).digest())


def webtransport_multiaddr(base: Multiaddr | str, certhashes: Iterable[bytes]) -> Multiaddr:
    """``base`` (``.../udp/<port>/quic-v1/webtransport``) plus one ``/certhash`` per hash."""
    from ..multiformats import multibase

    ma = Multiaddr(str(base))
    for h in certhashes:
        ma = ma.encapsulate(f"/certhash/{multibase.encode('base64url', h)}")
    return ma


def check_certhashes(expected: Sequence[bytes], offered: Sequence[bytes]) -> None:
    """Spec rule for the dialer: every certhash it accepted must be in the server's list.

    Raises :class:`CerthashMismatchError` naming the first missing hash.
    """
    if not expected:
        raise CerthashMismatchError("the address carries no /certhash: nothing to verify the server against")
    have = {bytes(h) for h in offered}
    for h in expected:
        if bytes(h) not in have:
            from ..multiformats import multibase

            raise CerthashMismatchError(
                f"the server's Noise handshake does not vouch for certhash {multibase.encode('base64url', h)} "
                f"(it offered {len(have)}): a stale address or a man in the middle"
            )


async def secure_dialed_session(
    session: Any, private_key: "PrivateKey", wa: WebTransportAddr, remote_addr: Multiaddr,
    local_addr: Multiaddr | None = None,
) -> WebTransportConnection:
    """The dialer's half of the spec once the session is up, for the browser and the native
    dialer alike: Noise on the first bidirectional stream (checking the ``/p2p`` id), with
    every certhash of the address vouched for by the server's extension.

    The certhash check runs when Noise message 2 arrives, before message 3 carries our
    identity: a server that does not vouch for the certificate we accepted (a possible man
    in the middle) learns nothing about us, and the dial fails with
    :class:`CerthashMismatchError`."""
    from ..identity import PeerId
    from ..security.noise import NoiseSecurity

    def vouched(remote: "RemoteIdentity") -> None:
        check_certhashes(wa.certhashes, remote.webtransport_certhashes)

    stream = await session.open_stream()
    expected = PeerId.from_string(wa.peer_id) if wa.peer_id else None
    secure = await NoiseSecurity(private_key).secure_outbound(stream, expected, check_remote=vouched)
    await stream.close()
    return WebTransportConnection(
        local_peer=secure.local_peer, remote_peer=secure.remote_peer,
        remote_public_key=secure.remote_public_key, local_addr=local_addr,
        remote_addr=remote_addr, muxed=session,
    )


def validate_certhashes(hashes: Sequence[bytes]) -> None:
    """Dial-time check: at least one sha2-256 certhash (browsers cannot use anything else)."""
    for h in hashes:
        try:
            multihash.decode(h)
        except MultihashError as exc:
            raise WebTransportError(f"invalid certhash: {exc}") from None
    if not any(multihash.decode(h)[0] == multihash.SHA2_256 for h in hashes):
        raise WebTransportError("a WebTransport address needs at least one sha2-256 /certhash")


__all__ = [
    "WELL_KNOWN_PATH",
    "SESSION_PATH",
    "SECURITY_PROTOCOL",
    "MUXER_PROTOCOL",
    "MAX_CERT_VALIDITY",
    "WebTransportError",
    "CerthashMismatchError",
    "WebTransportAddr",
    "WebTransportConnection",
    "parse_webtransport",
    "certhash_of",
    "webtransport_multiaddr",
    "check_certhashes",
    "secure_dialed_session",
    "validate_certhashes",
]
