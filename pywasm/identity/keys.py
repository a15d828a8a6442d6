"""libp2p keys: the ``PublicKey`` / ``PrivateKey`` protobufs and their Data formats.

See the libp2p peer-ids spec. Per key type, ``Data`` holds:

=========  ==============================================  ==================================
type       public                                          private
=========  ==============================================  ==================================
RSA        SubjectPublicKeyInfo DER                        PKCS#1 RSAPrivateKey DER
Ed25519    32-byte key                                     seed || public (64 bytes; the
                                                           legacy 96-byte seed||pub||pub too)
Secp256k1  33-byte compressed point                        32-byte scalar
ECDSA      SubjectPublicKeyInfo DER (P-256)                SEC1 ECPrivateKey DER (PKCS#8
                                                           accepted on input)
=========  ==============================================  ==================================

Public keys are normalised on parse to the form go-libp2p re-marshals them to (compressed
secp256k1 points, canonical SPKI DER), because peer ids are computed from the
re-encoded key. Signatures: Ed25519 raw; Secp256k1 and ECDSA DER over SHA-256 (we emit
low-S for secp256k1, as Bitcoin-style verifiers require); RSA PKCS#1 v1.5 with SHA-256.

Parsing is pure Python (DER, point validation); the crypto backend does the rest.
"""

from __future__ import annotations

import enum
import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import pb
from ..crypto.backend import get_backend
from ..errors import InvalidKeyError, ProtobufError, PywasmError
from . import der

if TYPE_CHECKING:
    from .peer_id import PeerId

#: RSA modulus bounds, as go-libp2p enforces them.
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
DEFAULT_RSA_BITS = 2048
#: Bound on an encoded key protobuf (an 8192-bit PKCS#1 private key is ~4.7 KiB).
MAX_KEY_PROTOBUF_SIZE = 16 * 1024


class KeyType(enum.IntEnum):
    RSA = 0
    Ed25519 = 1
    Secp256k1 = 2
    ECDSA = 3


@dataclass
class _KeyPB(pb.Message):
    # PublicKey and PrivateKey share this shape.
    type: int = pb.field(1, "enum", required=True)
    data: bytes = pb.field(2, "bytes", required=True)


# --- elliptic curve helpers (parsing/validation only; no secret-dependent math) ----------


@dataclass(frozen=True)
class _Curve:
    name: str  # backend curve name
    p: int
    a: int
    b: int
    n: int
    oid: bytes


_P256 = _Curve(
    "p256",
    p=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
    a=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFC,
    b=0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
    n=0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    oid=der.OID_P256,
)
_SECP256K1 = _Curve(
    "secp256k1",
    p=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F,
    a=0,
    b=7,
    n=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
    oid=der.OID_SECP256K1,
)


def _uncompressed_point(curve: _Curve, point: bytes) -> bytes:
    """Validate a SEC1 point (33 or 65 bytes) on ``curve``; return it uncompressed."""
    p = curve.p
    if len(point) == 65 and point[0] == 4:
        x = int.from_bytes(point[1:33], "big")
        y = int.from_bytes(point[33:], "big")
        if x >= p or y >= p or (y * y - (x * x * x + curve.a * x + curve.b)) % p:
            raise InvalidKeyError(f"point is not on {curve.name}")
        return bytes(point)
    if len(point) == 33 and point[0] in (2, 3):
        x = int.from_bytes(point[1:], "big")
        if x >= p:
            raise InvalidKeyError(f"point is not on {curve.name}")
        rhs = (x * x * x + curve.a * x + curve.b) % p
        # Both curves have p % 4 == 3, so a square root is rhs^((p+1)/4).
        y = pow(rhs, (p + 1) // 4, p)
        if y * y % p != rhs:
            raise InvalidKeyError(f"point is not on {curve.name}")
        if y & 1 != point[0] & 1:
            y = p - y
        return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")
    raise InvalidKeyError(f"invalid {curve.name} point encoding ({len(point)} bytes)")


def _compress(point65: bytes) -> bytes:
    return bytes((2 | (point65[64] & 1),)) + point65[1:33]


def _scalar(curve: _Curve, raw: bytes) -> bytes:
    if len(raw) > 32:
        raise InvalidKeyError(f"{curve.name} private key longer than 32 bytes")
    d = int.from_bytes(raw, "big")
    if not 1 <= d < curve.n:
        raise InvalidKeyError(f"{curve.name} private key out of range")
    return d.to_bytes(32, "big")


def _random_scalar(curve: _Curve) -> bytes:
    while True:  # rejection sampling: uniform in [1, n-1]
        raw = secrets.token_bytes(32)
        d = int.from_bytes(raw, "big")
        if 1 <= d < curve.n:
            return raw


def _ecdsa_sig_ok(sig: bytes, n: int) -> bool:
    try:
        r, s = der.parse_ecdsa_signature(sig)
    except PywasmError:
        return False
    return 1 <= r < n and 1 <= s < n


def _low_s(sig: bytes, n: int) -> bytes:
    r, s = der.parse_ecdsa_signature(sig)
    if s > n // 2:
        return der.encode_ecdsa_signature(r, n - s)
    return sig


def _check_rsa(n: int, e: int) -> None:
    bits = n.bit_length()
    if bits < MIN_RSA_BITS:
        raise InvalidKeyError(f"RSA key of {bits} bits is below the {MIN_RSA_BITS}-bit minimum")
    if bits > MAX_RSA_BITS:
        raise InvalidKeyError(f"RSA key of {bits} bits is above the {MAX_RSA_BITS}-bit maximum")
    if e < 3 or not e & 1 or not n & 1:
        raise InvalidKeyError("invalid RSA public exponent or modulus")


def _as_bytes(data: object, what: str) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise InvalidKeyError(f"{what} must be bytes, not {type(data).__name__}")


def _key_type(value: object) -> KeyType:
    try:
        return KeyType(value)
    except ValueError:
        raise InvalidKeyError(f"unsupported key type {value!r}") from None


def _decode_pb(data: object, what: str) -> tuple[KeyType, bytes]:
    raw = _as_bytes(data, what)
    try:
        msg = _KeyPB.decode(raw, max_size=MAX_KEY_PROTOBUF_SIZE)
    except ProtobufError as e:
        raise InvalidKeyError(f"malformed {what} protobuf: {e}") from None
    return _key_type(msg.type), msg.data


# --- public keys --------------------------------------------------------------------------


class PublicKey:
    """A libp2p public key. Build with :meth:`from_protobuf` or :meth:`from_data`."""

    __slots__ = ("key_type", "data", "_point", "_curve")

    key_type: KeyType
    data: bytes

    def __init__(self, key_type: KeyType, data: bytes, *, _point: bytes = b"", _curve: str = "") -> None:
        # Internal: callers use from_data / from_protobuf, which validate.
        self.key_type = key_type
        self.data = data
        self._point = _point
        self._curve = _curve

    @classmethod
    def from_data(cls, key_type: KeyType | int, data: bytes) -> PublicKey:
        """Validate libp2p ``Data`` bytes for ``key_type``; :class:`InvalidKeyError` if bad."""
        kt = _key_type(key_type)
        data = _as_bytes(data, "public key data")
        if kt == KeyType.Ed25519:
            if len(data) != 32:
                raise InvalidKeyError(f"Ed25519 public key must be 32 bytes, got {len(data)}")
            return cls(kt, data)
        if kt == KeyType.Secp256k1:
            point = _uncompressed_point(_SECP256K1, data)
            return cls(kt, _compress(point), _point=point, _curve="secp256k1")
        if kt == KeyType.ECDSA:
            curve_oid, raw_point = der.parse_ec_public(data)
            if curve_oid != der.OID_P256:
                raise InvalidKeyError("unsupported ECDSA curve (only P-256 is supported)")
            point = _uncompressed_point(_P256, raw_point)
            return cls(kt, der.encode_ec_public(der.OID_P256, point), _point=point, _curve="p256")
        n, e = der.parse_rsa_public(data)
        _check_rsa(n, e)
        return cls(kt, der.encode_rsa_public(n, e))

    @classmethod
    def from_protobuf(cls, data: bytes) -> PublicKey:
        kt, raw = _decode_pb(data, "public key")
        return cls.from_data(kt, raw)

    def to_protobuf(self) -> bytes:
        return _KeyPB(int(self.key_type), self.data).encode()

    async def verify(self, message: bytes, signature: bytes) -> bool:
        """True iff ``signature`` is a valid signature of ``message`` by this key."""
        if not isinstance(signature, (bytes, bytearray, memoryview)):
            return False
        signature = bytes(signature)
        message = bytes(message)
        backend = get_backend()
        kt = self.key_type
        if kt == KeyType.Ed25519:
            if len(signature) != 64:
                return False
            return await backend.ed25519_verify(self.data, message, signature)
        if kt == KeyType.Secp256k1 or kt == KeyType.ECDSA:
            curve = _SECP256K1 if kt == KeyType.Secp256k1 else _P256
            if not _ecdsa_sig_ok(signature, curve.n):
                return False
            return await backend.ecdsa_verify(curve.name, self._point, message, signature)  # type: ignore[arg-type]
        if len(signature) > MAX_RSA_BITS // 8:
            return False
        return await backend.rsa_verify(self.data, message, signature)

    def to_peer_id(self) -> PeerId:
        from .peer_id import PeerId

        return PeerId.from_public_key(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self.key_type == other.key_type and self.data == other.data

    def __hash__(self) -> int:
        return hash((self.key_type, self.data))

    def __repr__(self) -> str:
        return f"PublicKey({self.key_type.name}, {self.data.hex()[:32]}...)"


# --- private keys ---------------------------------------------------------------------------


class PrivateKey:
    """A libp2p private key. Build with :meth:`generate`, :meth:`from_protobuf` or
    :meth:`from_data` (all async: deriving the public key may use the crypto backend)."""

    __slots__ = ("key_type", "public_key", "_secret", "_data")

    key_type: KeyType
    public_key: PublicKey

    def __init__(self, key_type: KeyType, public_key: PublicKey, secret: bytes, data: bytes) -> None:
        # Internal. ``secret`` is what the backend signs with (seed / scalar / PKCS#1 DER);
        # ``data`` is the libp2p Data encoding.
        self.key_type = key_type
        self.public_key = public_key
        self._secret = secret
        self._data = data

    # -- construction --
    @classmethod
    async def generate(cls, key_type: KeyType | int = KeyType.Ed25519, bits: int = DEFAULT_RSA_BITS) -> PrivateKey:
        kt = _key_type(key_type)
        backend = get_backend()
        if kt == KeyType.Ed25519:
            return await cls._from_ed25519_seed(secrets.token_bytes(32))
        if kt == KeyType.Secp256k1 or kt == KeyType.ECDSA:
            curve = _SECP256K1 if kt == KeyType.Secp256k1 else _P256
            return await cls._from_scalar(kt, curve, _random_scalar(curve), None)
        if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
            raise InvalidKeyError(f"RSA key size must be in [{MIN_RSA_BITS}, {MAX_RSA_BITS}], got {bits}")
        private_der, _public = await backend.rsa_generate(bits)
        return cls._from_rsa(private_der)

    @classmethod
    async def from_protobuf(cls, data: bytes) -> PrivateKey:
        kt, raw = _decode_pb(data, "private key")
        return await cls.from_data(kt, raw)

    @classmethod
    async def from_data(cls, key_type: KeyType | int, data: bytes) -> PrivateKey:
        """Validate libp2p private ``Data`` bytes for ``key_type``."""
        kt = _key_type(key_type)
        data = _as_bytes(data, "private key data")
        if kt == KeyType.Ed25519:
            if len(data) == 96:
                if not hmac.compare_digest(data[32:64], data[64:]):
                    raise InvalidKeyError("legacy 96-byte Ed25519 private key has mismatched public halves")
                data = data[:64]
            if len(data) != 64:
                raise InvalidKeyError(f"Ed25519 private key must be 64 bytes, got {len(data)}")
            key = await cls._from_ed25519_seed(data[:32])
            if not hmac.compare_digest(key.public_key.data, data[32:]):
                raise InvalidKeyError("Ed25519 private key does not match its embedded public key")
            return key
        if kt == KeyType.Secp256k1:
            if len(data) != 32:
                raise InvalidKeyError(f"Secp256k1 private key must be 32 bytes, got {len(data)}")
            return await cls._from_scalar(kt, _SECP256K1, _scalar(_SECP256K1, data), None)
        if kt == KeyType.ECDSA:
            curve_oid, raw_scalar, embedded = der.parse_ec_private(data)
            if curve_oid != der.OID_P256:
                raise InvalidKeyError("unsupported or missing ECDSA curve (only P-256 is supported)")
            return await cls._from_scalar(kt, _P256, _scalar(_P256, raw_scalar), embedded)
        return cls._from_rsa(data)

    @classmethod
    async def _from_ed25519_seed(cls, seed: bytes) -> PrivateKey:
        public = await get_backend().ed25519_public(seed)
        return cls(KeyType.Ed25519, PublicKey(KeyType.Ed25519, public), seed, seed + public)

    @classmethod
    async def _from_scalar(cls, kt: KeyType, curve: _Curve, scalar: bytes, embedded: bytes | None) -> PrivateKey:
        point = await get_backend().ecdsa_public(curve.name, scalar)  # type: ignore[arg-type]
        point = _uncompressed_point(curve, point)
        if embedded is not None and _uncompressed_point(curve, embedded) != point:
            raise InvalidKeyError("EC private key does not match its embedded public key")
        if kt == KeyType.Secp256k1:
            public = PublicKey(kt, _compress(point), _point=point, _curve=curve.name)
            data = scalar
        else:
            public = PublicKey(kt, der.encode_ec_public(curve.oid, point), _point=point, _curve=curve.name)
            data = der.encode_ec_private(curve.oid, scalar, point)
        return cls(kt, public, scalar, data)

    @classmethod
    def _from_rsa(cls, pkcs1: bytes) -> PrivateKey:
        n, e, d, p, q, _dp, _dq, _qinv = der.parse_rsa_private(pkcs1)
        _check_rsa(n, e)
        if p * q != n or not 1 < d < n:
            raise InvalidKeyError("inconsistent RSA private key")
        public = PublicKey(KeyType.RSA, der.encode_rsa_public(n, e))
        return cls(KeyType.RSA, public, pkcs1, pkcs1)

    # -- use --
    def to_protobuf(self) -> bytes:
        return _KeyPB(int(self.key_type), self._data).encode()

    async def sign(self, message: bytes) -> bytes:
        message = bytes(message)
        backend = get_backend()
        kt = self.key_type
        if kt == KeyType.Ed25519:
            return await backend.ed25519_sign(self._secret, message)
        if kt == KeyType.Secp256k1:
            sig = await backend.ecdsa_sign("secp256k1", self._secret, message)
            return _low_s(sig, _SECP256K1.n)
        if kt == KeyType.ECDSA:
            return await backend.ecdsa_sign("p256", self._secret, message)
        return await backend.rsa_sign(self._secret, message)

    def to_peer_id(self) -> PeerId:
        return self.public_key.to_peer_id()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivateKey):
            return NotImplemented
        return self.key_type == other.key_type and hmac.compare_digest(self._data, other._data)

    def __hash__(self) -> int:
        return hash((self.key_type, self.public_key.data))

    def __repr__(self) -> str:
        # Never show the secret.
        return f"PrivateKey({self.key_type.name}, public={self.public_key.data.hex()[:32]}...)"
