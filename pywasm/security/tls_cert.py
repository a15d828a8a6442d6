"""libp2p TLS certificates (libp2p/specs tls/tls.md): make ours, verify a peer's.

Native only: it uses ``cryptography`` and is never imported on the browser path. Both
``/tls/1.0.0`` over TCP and QUIC use it.

A certificate is self-signed with a fresh ECDSA P-256 key unrelated to the host key.
The host key proves itself through the libp2p Public Key Extension
(OID 1.3.6.1.4.1.53594.1.1)::

    SignedKey ::= SEQUENCE { publicKey OCTET STRING, signature OCTET STRING }

``publicKey`` is the libp2p ``PublicKey`` protobuf of the host key and ``signature`` is
the host key's signature over ``b"libp2p-tls-handshake:" + SubjectPublicKeyInfo DER`` of
the certificate key.

Choices:

* The libp2p extension is the certificate's only extension: js-libp2p reads only the
  first extension, so anything before it breaks interop. We accept it in any position.
* It is not marked critical (the spec allows either; go-libp2p leaves it non-critical,
  and a non-critical extension can never make a generic X.509 verifier reject us).
* Validity starts one hour in the past (tolerates a peer whose clock lags, as go and js
  do) and lasts ``valid_for`` (default one year; the key is ephemeral and never stored,
  so a long period costs nothing, but callers that must stay short, e.g. WebTransport
  certhashes (< 14 days), pass their own).
"""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from ..errors import HandshakeError, InvalidKeyError
from ..identity import der
from ..identity.keys import PrivateKey, PublicKey

#: The libp2p Public Key Extension OID (allocated by IANA to libp2p).
LIBP2P_EXTENSION_OID = x509.ObjectIdentifier("1.3.6.1.4.1.53594.1.1")
#: Prefix of the message the host key signs.
SIGNATURE_PREFIX = b"libp2p-tls-handshake:"
#: The ALPN token of the libp2p TLS handshake (muxer ids may come before it).
ALPN_LIBP2P = "libp2p"
#: How far NotBefore is back-dated, for peers whose clocks lag ours.
BACKDATE = datetime.timedelta(hours=1)
DEFAULT_VALIDITY = datetime.timedelta(days=365)
#: Bound on a peer certificate (ours are ~450 bytes; an RSA host key adds ~300).
MAX_CERTIFICATE_SIZE = 16 * 1024

# Critical extensions whose meaning we know and which cannot make a self-signed leaf
# certificate unusable for us: a peer may mark these critical without being rejected.
_UNDERSTOOD_CRITICAL = frozenset(
    {
        LIBP2P_EXTENSION_OID,
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    }
)


class TLSCertificateError(HandshakeError):
    """A peer's libp2p TLS certificate is malformed or does not authenticate a host key."""


@dataclass(frozen=True)
class LibP2PCertificate:
    """Our certificate and its (ephemeral, unencrypted) key, in the forms TLS stacks want."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    der: bytes
    pem: bytes
    key_pem: bytes

    @property
    def not_after(self) -> datetime.datetime:
        return self.certificate.not_valid_after_utc


def _signed_key(public_key_pb: bytes, signature: bytes) -> bytes:
    return der.encode_sequence(der.encode_octet_string(public_key_pb), der.encode_octet_string(signature))


async def generate_certificate(
    host_key: PrivateKey, *, valid_for: datetime.timedelta | None = None
) -> LibP2PCertificate:
    """A fresh self-signed certificate whose only extension proves ``host_key``."""
    if valid_for is None:
        valid_for = DEFAULT_VALIDITY
    if valid_for <= datetime.timedelta(0):
        raise ValueError("valid_for must be positive")
    cert_key = ec.generate_private_key(ec.SECP256R1())
    spki = cert_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signature = await host_key.sign(SIGNATURE_PREFIX + spki)
    extension = _signed_key(host_key.public_key.to_protobuf(), signature)

    # 63 random bits keep the serial a positive INTEGER of at most 8 bytes
    serial = secrets.randbits(63) or 1
    # The subject carries nothing identifying (the peer id is in the extension); a
    # serialNumber attribute keeps it non-empty, as go-libp2p does.
    name = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, str(serial))])
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(cert_key.public_key())
        .serial_number(serial)
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + valid_for)
        .add_extension(x509.UnrecognizedExtension(LIBP2P_EXTENSION_OID, extension), critical=False)
        .sign(cert_key, hashes.SHA256())
    )
    return LibP2PCertificate(
        certificate=certificate,
        private_key=cert_key,
        der=certificate.public_bytes(serialization.Encoding.DER),
        pem=certificate.public_bytes(serialization.Encoding.PEM),
        key_pem=cert_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


# --- verification -----------------------------------------------------------------------


def _tbs_fields(cert_der: bytes) -> tuple[bytes, list[tuple[int, int, int]], bytes]:
    """Strictly frame the outer DER; return ``(tbs, tbs children, raw SPKI DER)``.

    Done by hand so trailing bytes (e.g. a second certificate) are rejected and the SPKI
    the host key signed is checked byte for byte as sent, not as re-encoded.
    """
    cert_children = der.parse_top(cert_der)
    if len(cert_children) != 3:
        raise TLSCertificateError("malformed certificate: expected tbsCertificate, algorithm, signature")
    tag, start, end = cert_children[0]
    if tag != der.TAG_SEQUENCE:
        raise TLSCertificateError("malformed certificate: tbsCertificate is not a SEQUENCE")
    tbs = cert_der[start:end]
    children = der.read_children(cert_der, start, end)
    # version [0] is present in every v3 certificate; SPKI is the 7th field then.
    offset = 1 if children and children[0][0] == der.TAG_CTX0 else 0
    if len(children) < offset + 6:
        raise TLSCertificateError("malformed certificate: tbsCertificate is too short")
    t, _s, e = children[offset + 5]
    if t != der.TAG_SEQUENCE:
        raise TLSCertificateError("malformed certificate: subjectPublicKeyInfo is not a SEQUENCE")
    # the SPKI element (tag and length included) starts where the subject ends
    spki_start = children[offset + 4][2]
    return bytes(tbs), children, bytes(cert_der[spki_start:e])


def _check_self_signature(cert: x509.Certificate) -> None:
    key = cert.public_key()
    tbs = cert.tbs_certificate_bytes
    sig = cert.signature
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            hash_alg = cert.signature_hash_algorithm
            if hash_alg is None:
                raise TLSCertificateError("certificate signature has no hash algorithm")
            key.verify(sig, tbs, ec.ECDSA(hash_alg))
        elif isinstance(key, rsa.RSAPublicKey):
            hash_alg = cert.signature_hash_algorithm
            pad = cert.signature_algorithm_parameters
            if hash_alg is None or not isinstance(pad, (padding.PKCS1v15, padding.PSS)):
                raise TLSCertificateError("unsupported RSA certificate signature")
            key.verify(sig, tbs, pad, hash_alg)
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(sig, tbs)
        else:
            raise TLSCertificateError(f"unsupported certificate key type {type(key).__name__}")
    except InvalidSignature:
        raise TLSCertificateError("certificate self-signature does not verify") from None
    except (UnsupportedAlgorithm, ValueError, TypeError) as e:
        raise TLSCertificateError(f"certificate self-signature cannot be checked: {e}") from None


def _parse_signed_key(value: bytes) -> tuple[bytes, bytes]:
    try:
        children = der.parse_top(value)
        if len(children) != 2 or any(t != der.TAG_OCTET_STRING for t, _, _ in children):
            raise TLSCertificateError("libp2p extension is not SEQUENCE { OCTET STRING, OCTET STRING }")
    except InvalidKeyError as e:
        raise TLSCertificateError(f"libp2p extension is malformed: {e}") from None
    (_, ks, ke), (_, ss, se) = children
    return bytes(value[ks:ke]), bytes(value[ss:se])


async def verify_certificate(der_bytes: bytes, *, now: datetime.datetime | None = None) -> PublicKey:
    """Check a peer's libp2p certificate; return the host public key it authenticates.

    Raises :class:`TLSCertificateError` (one line saying why) on any failure.
    """
    if not isinstance(der_bytes, (bytes, bytearray, memoryview)):
        raise TLSCertificateError("certificate must be DER bytes")
    der_bytes = bytes(der_bytes)
    if len(der_bytes) > MAX_CERTIFICATE_SIZE:
        raise TLSCertificateError(f"certificate of {len(der_bytes)} bytes exceeds {MAX_CERTIFICATE_SIZE}")
    try:
        _tbs, tbs_children, spki = _tbs_fields(der_bytes)
    except InvalidKeyError as e:
        raise TLSCertificateError(f"malformed certificate DER: {e}") from None
    # issuerUniqueID [1] / subjectUniqueID [2] are banned by the spec.
    if any(t in (0x81, 0xA1, 0x82, 0xA2) for t, _, _ in tbs_children):
        raise TLSCertificateError("certificate carries a deprecated issuer/subject unique id")
    try:
        cert = x509.load_der_x509_certificate(der_bytes)
    except ValueError as e:
        raise TLSCertificateError(f"malformed certificate: {e}") from None
    if cert.version != x509.Version.v3:
        raise TLSCertificateError("certificate is not X.509 v3")

    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=datetime.timezone.utc)
    if now < cert.not_valid_before_utc:
        raise TLSCertificateError(f"certificate not valid before {cert.not_valid_before_utc.isoformat()}")
    if now > cert.not_valid_after_utc:
        raise TLSCertificateError(f"certificate expired at {cert.not_valid_after_utc.isoformat()}")

    try:
        extensions = list(cert.extensions)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as e:
        raise TLSCertificateError(f"malformed certificate extensions: {e}") from None
    signed_key: bytes | None = None
    for ext in extensions:
        if ext.oid == LIBP2P_EXTENSION_OID:
            value = ext.value
            if not isinstance(value, x509.UnrecognizedExtension):  # pragma: no cover - defensive
                raise TLSCertificateError("libp2p extension has an unexpected form")
            signed_key = value.value
        elif ext.critical and ext.oid not in _UNDERSTOOD_CRITICAL:
            raise TLSCertificateError(f"certificate has an unknown critical extension {ext.oid.dotted_string}")
    if signed_key is None:
        raise TLSCertificateError("no libp2p public key extension")

    _check_self_signature(cert)

    key_pb, signature = _parse_signed_key(signed_key)
    try:
        host_key = PublicKey.from_protobuf(key_pb)
    except InvalidKeyError as e:
        raise TLSCertificateError(f"libp2p extension carries an invalid host key: {e}") from None
    if not await host_key.verify(SIGNATURE_PREFIX + spki, signature):
        raise TLSCertificateError("host key signature does not verify")
    return host_key


async def verify_certificate_chain(chain: list[bytes] | tuple[bytes, ...]) -> PublicKey:
    """:func:`verify_certificate` for a TLS peer chain, which must hold exactly one certificate."""
    if len(chain) != 1:
        raise TLSCertificateError(f"expected exactly one certificate, got {len(chain)}")
    return await verify_certificate(chain[0])


__all__ = [
    "ALPN_LIBP2P",
    "LIBP2P_EXTENSION_OID",
    "LibP2PCertificate",
    "TLSCertificateError",
    "generate_certificate",
    "verify_certificate",
    "verify_certificate_chain",
]
