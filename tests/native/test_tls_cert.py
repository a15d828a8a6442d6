"""libp2p TLS certificates (pywasm.security.tls_cert): ours, the spec's vectors, and bad ones."""

from __future__ import annotations

import datetime

import pytest

pytest.importorskip("cryptography")

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from pywasm.errors import HandshakeError  # noqa: E402
from pywasm.identity import KeyType, PeerId, PrivateKey  # noqa: E402
from pywasm.identity import der  # noqa: E402
from pywasm.security.tls_cert import (  # noqa: E402
    LIBP2P_EXTENSION_OID,
    SIGNATURE_PREFIX,
    LibP2PCertificate,
    TLSCertificateError,
    generate_certificate,
    verify_certificate,
    verify_certificate_chain,
)

UTC = datetime.timezone.utc

# libp2p/specs tls/tls.md "Test vectors" (hex DER) and the peer ids they authenticate.
SPEC_ED25519 = bytes.fromhex(
    "308201ae30820156a0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a1309"
    "6c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f34303936"
    "303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301"
    "313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132"
    "721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37"
    "e381569ea37c307a3078060a2b0601040183a25a0101046a3068042408011220a77f1d92fedb59dddaea5a1c"
    "4abd1ac2fbde7d7b879ed364501809923d7c11b90440d90d2769db992d5e6195dbb08e706b6651e024fda6cf"
    "b8846694a435519941cac215a8207792e42849cccc6cd8136c6e4bde92a58c5e08cfd4206eb5fe0bf909300a"
    "06082a8648ce3d0403020346003043021f50f6b6c52711a881778718238f650c9fb48943ae6ee6d28427dc60"
    "71ae55e702203625f116a7a454db9c56986c82a25682f7248ea1cb764d322ea983ed36a31b77"
)
SPEC_ECDSA = bytes.fromhex(
    "308201f63082019da0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a1309"
    "6c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f34303936"
    "303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301"
    "313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132"
    "721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37"
    "e381569ea381c23081bf3081bc060a2b0601040183a25a01010481ad3081aa045f0803125b3059301306072a"
    "8648ce3d020106082a8648ce3d03010703420004bf30511f909414ebdd3242178fd290f093a551cf75c97315"
    "5de0bb5a96fedf6cb5d52da7563e794b512f66e60c7f55ba8a3acf3dd72a801980d205e8a1ad29f204473045"
    "0220064ea8124774caf8f50e57f436aa62350ce652418c019df5d98a3ac666c9386a022100aa59d704a931b5"
    "f72fb9222cb6cc51f954d04a4e2e5450f8805fe8918f71eaae300a06082a8648ce3d04030203470030440220"
    "799395b0b6c1e940a7e4484705f610ab51ed376f19ff9d7c16757cfbf61b8d4302206205c03fbb0f95205c77"
    "9be86581d3e31c01871ad5d1f3435bcf375cb0e5088a"
)
SPEC_SECP256K1 = bytes.fromhex(
    "308201ba3082015fa0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a1309"
    "6c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f34303936"
    "303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301"
    "313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132"
    "721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37"
    "e381569ea38184308181307f060a2b0601040183a25a01010471306f0425080212210206dc6968726765b820"
    "f050263ececf7f71e4955892776c0970542efd689d2382044630440220145e15a991961f0d08cd15425bb95e"
    "c93f6ffa03c5a385eedc34ecf464c7a8ab022026b3109b8a3f40ef833169777eb2aa337cfb6282f188de0666"
    "d1bcec2a4690dd300a06082a8648ce3d0403020349003046022100e1a217eeef9ec9204b3f774a08b7084964"
    "6b6a1e6b8b27f93dc00ed58545d9fe022100b00dafa549d0f03547878338c7b15e7502888f6d45db387e5ae6"
    "b5d46899cef0"
)
# the host key signature does not match the certificate key
SPEC_INVALID = bytes.fromhex(
    "308201f73082019da0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a1309"
    "6c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f34303936"
    "303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301"
    "313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132"
    "721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37"
    "e381569ea381c23081bf3081bc060a2b0601040183a25a01010481ad3081aa045f0803125b3059301306072a"
    "8648ce3d020106082a8648ce3d03010703420004bf30511f909414ebdd3242178fd290f093a551cf75c97315"
    "5de0bb5a96fedf6cb5d52da7563e794b512f66e60c7f55ba8a3acf3dd72a801980d205e8a1ad29f204473045"
    "022100bb6e03577b7cc7a3cd1558df0da2b117dfdcc0399bc2504ebe7de6f65cade72802206de96e2a5be9b6"
    "202adba24ee0362e490641ac45c240db71fe955f2c5cf8df6e300a06082a8648ce3d04030203480030450221"
    "00e847f267f43717358f850355bdcabbefb2cfbf8a3c043b203a14788a092fe8db022027c1d04a2d41fd6b57"
    "a7e8b3989e470325de4406e52e084e34a3fd56eef0d0df"
)


async def _build(
    host_key: PrivateKey,
    *,
    before: list[tuple[x509.ExtensionType, bool]] = (),  # type: ignore[assignment]
    after: list[tuple[x509.ExtensionType, bool]] = (),  # type: ignore[assignment]
    libp2p: bool = True,
    signed_spki: bytes | None = None,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> bytes:
    """A certificate built by hand, so tests can bend one rule at a time."""
    cert_key = ec.generate_private_key(ec.SECP256R1())
    spki = cert_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sig = await host_key.sign(SIGNATURE_PREFIX + (spki if signed_spki is None else signed_spki))
    value = der.encode_sequence(
        der.encode_octet_string(host_key.public_key.to_protobuf()), der.encode_octet_string(sig)
    )
    now = datetime.datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test")])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(cert_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(hours=1))
        .not_valid_after(not_after or now + datetime.timedelta(days=1))
    )
    for ext, critical in before:
        b = b.add_extension(ext, critical=critical)
    if libp2p:
        b = b.add_extension(x509.UnrecognizedExtension(LIBP2P_EXTENSION_OID, value), critical=False)
    for ext, critical in after:
        b = b.add_extension(ext, critical=critical)
    return b.sign(cert_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


async def _rejects(data: bytes, match: str, **kw: object) -> None:
    with pytest.raises(TLSCertificateError, match=match):
        await verify_certificate(data, **kw)  # type: ignore[arg-type]


# --- ours ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", list(KeyType))
async def test_round_trip_every_key_type(key_type: KeyType) -> None:
    host = await PrivateKey.generate(key_type)
    cert = await generate_certificate(host)
    assert isinstance(cert, LibP2PCertificate)
    public = await verify_certificate(cert.der)
    assert public == host.public_key
    assert PeerId.from_public_key(public) == host.to_peer_id()
    # the forms other TLS stacks load agree with each other
    assert x509.load_pem_x509_certificate(cert.pem).public_bytes(serialization.Encoding.DER) == cert.der
    loaded = serialization.load_pem_private_key(cert.key_pem, None)
    assert loaded.public_key() == cert.certificate.public_key()
    assert isinstance(cert.private_key.curve, ec.SECP256R1)


async def test_libp2p_extension_is_the_only_one() -> None:
    cert = await generate_certificate(await PrivateKey.generate())
    exts = list(cert.certificate.extensions)
    assert [e.oid for e in exts] == [LIBP2P_EXTENSION_OID]
    assert exts[0].critical is False


async def test_validity_is_backdated_and_bounded() -> None:
    before = datetime.datetime.now(UTC)
    cert = await generate_certificate(await PrivateKey.generate(), valid_for=datetime.timedelta(days=10))
    c = cert.certificate
    assert c.not_valid_before_utc <= before - datetime.timedelta(minutes=59)
    assert before + datetime.timedelta(days=9, hours=23) < c.not_valid_after_utc
    assert c.not_valid_after_utc <= before + datetime.timedelta(days=10, seconds=2)
    assert c.version == x509.Version.v3
    # fresh key and serial each time
    again = await generate_certificate(await PrivateKey.generate())
    assert again.certificate.serial_number != c.serial_number
    assert again.certificate.public_key() != c.public_key()
    with pytest.raises(ValueError):
        await generate_certificate(await PrivateKey.generate(), valid_for=datetime.timedelta(0))


# --- the spec's vectors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "cert, peer_id",
    [
        (SPEC_ED25519, "12D3KooWM6CgA9iBFZmcYAHA6A2qvbAxqfkmrYiRQuz3XEsk4Ksv"),
        (SPEC_ECDSA, "QmfXbAwNjJLXfesgztEHe8HwgVDCMMpZ9Eax1HYq6hn9uE"),
        (SPEC_SECP256K1, "16Uiu2HAkutTMoTzDw1tCvSRtu6YoixJwS46S1ZFxW8hSx9fWHiPs"),
    ],
)
async def test_spec_vectors(cert: bytes, peer_id: str) -> None:
    public = await verify_certificate(cert)
    assert str(PeerId.from_public_key(public)) == peer_id


async def test_spec_invalid_vector() -> None:
    await _rejects(SPEC_INVALID, "host key signature does not verify")


# --- accepted shapes -------------------------------------------------------------------------


async def test_extension_not_first_is_accepted() -> None:
    # what py-libp2p emits: ordinary extensions, some critical, before the libp2p one
    host = await PrivateKey.generate(KeyType.Secp256k1)
    data = await _build(
        host,
        before=[
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.KeyUsage(True, False, False, False, False, False, False, False, False), True),
        ],
        after=[(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4.5"), b"\x05\x00"), False)],
    )
    cert = x509.load_der_x509_certificate(data)
    assert list(cert.extensions)[2].oid == LIBP2P_EXTENSION_OID
    assert await verify_certificate(data) == host.public_key


async def test_chain_of_one() -> None:
    host = await PrivateKey.generate()
    cert = await generate_certificate(host)
    assert await verify_certificate_chain([cert.der]) == host.public_key


# --- rejections --------------------------------------------------------------------------------


async def test_expired_and_not_yet_valid() -> None:
    cert = await generate_certificate(await PrivateKey.generate(), valid_for=datetime.timedelta(hours=2))
    later = datetime.datetime.now(UTC) + datetime.timedelta(hours=3)
    await _rejects(cert.der, "certificate expired at", now=later)
    earlier = datetime.datetime.now(UTC) - datetime.timedelta(hours=2)
    await _rejects(cert.der, "not valid before", now=earlier)
    now = datetime.datetime.now(UTC)
    old = await _build(
        await PrivateKey.generate(),
        not_before=now - datetime.timedelta(days=2),
        not_after=now - datetime.timedelta(days=1),
    )
    await _rejects(old, "certificate expired at")
    future = await _build(
        await PrivateKey.generate(),
        not_before=now + datetime.timedelta(days=1),
        not_after=now + datetime.timedelta(days=2),
    )
    await _rejects(future, "not valid before")


async def test_host_signature_over_another_key() -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    other_spki = other.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for kt in KeyType:
        data = await _build(await PrivateKey.generate(kt), signed_spki=other_spki)
        await _rejects(data, "host key signature does not verify")


async def test_bad_self_signature() -> None:
    cert = await generate_certificate(await PrivateKey.generate())
    # the last byte is inside the certificate's ECDSA signature
    tampered = bytearray(cert.der)
    tampered[-1] ^= 0x01
    await _rejects(bytes(tampered), "self-signature")


async def test_tampered_extension_fails() -> None:
    cert = await generate_certificate(await PrivateKey.generate())
    # flip a bit of the host public key inside the extension: either the key no longer
    # parses or nothing verifies any more
    key_pb = cert.certificate.extensions[0].value.value
    idx = cert.der.index(key_pb) + 12
    tampered = bytearray(cert.der)
    tampered[idx] ^= 0x40
    with pytest.raises(TLSCertificateError):
        await verify_certificate(bytes(tampered))


async def test_missing_extension() -> None:
    data = await _build(
        await PrivateKey.generate(),
        libp2p=False,
        before=[(x509.BasicConstraints(ca=False, path_length=None), False)],
    )
    await _rejects(data, "no libp2p public key extension")


async def test_unknown_critical_extension() -> None:
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    data = await _build(await PrivateKey.generate(), after=[(unknown, True)])
    await _rejects(data, "unknown critical extension 1.3.6.1.4.1.99999.1")
    # the same extension non-critical must be ignored
    ok = await _build(await PrivateKey.generate(), after=[(unknown, False)])
    await verify_certificate(ok)


async def test_two_certificates() -> None:
    a = await generate_certificate(await PrivateKey.generate())
    b = await generate_certificate(await PrivateKey.generate())
    await _rejects(a.der + b.der, "trailing bytes")
    with pytest.raises(TLSCertificateError, match="exactly one certificate, got 2"):
        await verify_certificate_chain([a.der, b.der])
    with pytest.raises(TLSCertificateError, match="exactly one certificate, got 0"):
        await verify_certificate_chain([])


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x00", b"\x30\x80\x00\x00", b"\x30\x03\x02\x01\x01", bytes(range(256)), b"\x30\x82\xff\xff" + b"a" * 10],
)
async def test_garbage(garbage: bytes) -> None:
    with pytest.raises(TLSCertificateError):
        await verify_certificate(garbage)


async def test_truncations_never_crash() -> None:
    cert = await generate_certificate(await PrivateKey.generate(KeyType.Secp256k1))
    for n in range(0, len(cert.der), 7):
        with pytest.raises(TLSCertificateError):
            await verify_certificate(cert.der[:n])


async def test_malformed_signed_key() -> None:
    cert_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "t")])
    for value in (b"\x04\x00", der.encode_sequence(der.encode_octet_string(b"x")), b"\x30\x03\x04\x01"):
        data = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(cert_key.public_key())
            .serial_number(1)
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.UnrecognizedExtension(LIBP2P_EXTENSION_OID, value), critical=False)
            .sign(cert_key, hashes.SHA256())
            .public_bytes(serialization.Encoding.DER)
        )
        await _rejects(data, "libp2p extension")


def test_error_is_a_handshake_error() -> None:
    assert issubclass(TLSCertificateError, HandshakeError)
