"""A tiny strict DER reader/writer for the key formats libp2p uses.

Pure Python because inside Pyodide there is no ``cryptography``: key files and keys sent
by peers are parsed here, and the crypto backend only ever sees raw scalars, points and
(for RSA) PKCS#1 / SubjectPublicKeyInfo DER.

Covered structures:

* SubjectPublicKeyInfo for RSA (``rsaEncryption``) and EC (``id-ecPublicKey`` + curve).
* PKCS#1 ``RSAPrivateKey`` (two-prime, version 0) and ``RSAPublicKey``.
* SEC1 / RFC 5915 ``ECPrivateKey`` (what go-libp2p's ``x509.MarshalECPrivateKey`` and
  js-libp2p emit), also accepted wrapped in PKCS#8 ``PrivateKeyInfo``.
* ECDSA signatures ``SEQUENCE { r INTEGER, s INTEGER }``.

Only DER is accepted (definite, minimal lengths; minimal integers); anything else raises
:class:`~pywasm.errors.InvalidKeyError`.
"""

from __future__ import annotations

from ..errors import InvalidKeyError

TAG_INTEGER = 0x02
TAG_BIT_STRING = 0x03
TAG_OCTET_STRING = 0x04
TAG_NULL = 0x05
TAG_OID = 0x06
TAG_SEQUENCE = 0x30
TAG_CTX0 = 0xA0  # [0] EXPLICIT, constructed
TAG_CTX1 = 0xA1  # [1] EXPLICIT, constructed

#: Bound on any DER input we parse (an 8192-bit RSA PKCS#1 key is under 5 KiB).
MAX_DER_SIZE = 16 * 1024


def oid(dotted: str) -> bytes:
    """The DER content bytes of an OBJECT IDENTIFIER given in dotted form."""
    arcs = [int(a) for a in dotted.split(".")]
    first = arcs[0] * 40 + arcs[1]
    out = bytearray()
    for arc in [first, *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append((arc & 0x7F) | 0x80)
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


OID_RSA_ENCRYPTION = oid("1.2.840.113549.1.1.1")
OID_EC_PUBLIC_KEY = oid("1.2.840.10045.2.1")
OID_P256 = oid("1.2.840.10045.3.1.7")
OID_P384 = oid("1.3.132.0.34")
OID_P521 = oid("1.3.132.0.35")
OID_SECP256K1 = oid("1.3.132.0.10")


# --- reading ----------------------------------------------------------------------


def read_tlv(data: bytes, pos: int = 0, end: int | None = None) -> tuple[int, int, int]:
    """Read one element at ``pos``: ``(tag, content_start, content_end)``."""
    if end is None:
        end = len(data)
    if pos + 2 > end:
        raise InvalidKeyError("malformed DER: truncated element")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise InvalidKeyError("malformed DER: multi-byte tags are not supported")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0:
            raise InvalidKeyError("malformed DER: indefinite length")
        if n > 4 or pos + n > end:
            raise InvalidKeyError("malformed DER: bad length")
        length = int.from_bytes(data[pos : pos + n], "big")
        if data[pos] == 0 or length < 0x80:
            raise InvalidKeyError("malformed DER: length is not minimally encoded")
        pos += n
    if length > end - pos:
        raise InvalidKeyError("malformed DER: truncated content")
    return tag, pos, pos + length


def read_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """All elements between ``start`` and ``end`` (the content of a constructed element)."""
    out = []
    pos = start
    while pos < end:
        tag, s, e = read_tlv(data, pos, end)
        out.append((tag, s, e))
        pos = e
    return out


def parse_top(data: bytes, tag: int = TAG_SEQUENCE) -> list[tuple[int, int, int]]:
    """Parse ``data`` as exactly one constructed element of ``tag``; return its children."""
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidKeyError("DER input must be bytes")
    if len(data) > MAX_DER_SIZE:
        raise InvalidKeyError("DER input too large")
    t, s, e = read_tlv(data, 0)
    if t != tag:
        raise InvalidKeyError(f"malformed DER: expected tag 0x{tag:02x}, got 0x{t:02x}")
    if e != len(data):
        raise InvalidKeyError("malformed DER: trailing bytes")
    return read_children(data, s, e)


def decode_integer(content: bytes, *, non_negative: bool = True) -> int:
    if not content:
        raise InvalidKeyError("malformed DER: empty INTEGER")
    if len(content) > 1 and (
        (content[0] == 0 and content[1] < 0x80) or (content[0] == 0xFF and content[1] >= 0x80)
    ):
        raise InvalidKeyError("malformed DER: INTEGER is not minimally encoded")
    value = int.from_bytes(content, "big", signed=True)
    if non_negative and value < 0:
        raise InvalidKeyError("malformed DER: negative INTEGER")
    return value


def _expect(data: bytes, el: tuple[int, int, int], tag: int) -> bytes:
    if el[0] != tag:
        raise InvalidKeyError(f"malformed DER: expected tag 0x{tag:02x}, got 0x{el[0]:02x}")
    return bytes(data[el[1] : el[2]])


def _bit_string(content: bytes) -> bytes:
    if not content or content[0] != 0:
        raise InvalidKeyError("malformed DER: BIT STRING with unused bits")
    return content[1:]


# --- writing ----------------------------------------------------------------------


def encode_tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    ln = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(ln))) + ln + content


def encode_integer(value: int) -> bytes:
    length = value.bit_length() // 8 + 1  # room for the sign bit
    return encode_tlv(TAG_INTEGER, value.to_bytes(length, "big", signed=True))


def encode_sequence(*parts: bytes) -> bytes:
    return encode_tlv(TAG_SEQUENCE, b"".join(parts))


def encode_oid(content: bytes) -> bytes:
    return encode_tlv(TAG_OID, content)


def encode_bit_string(data: bytes) -> bytes:
    return encode_tlv(TAG_BIT_STRING, b"\x00" + data)


def encode_octet_string(data: bytes) -> bytes:
    return encode_tlv(TAG_OCTET_STRING, data)


NULL = b"\x05\x00"


# --- SubjectPublicKeyInfo -----------------------------------------------------------


def parse_spki(data: bytes) -> tuple[bytes, bytes | None, bytes]:
    """``(algorithm OID, parameter OID or None, subjectPublicKey bytes)``."""
    children = parse_top(data)
    if len(children) != 2:
        raise InvalidKeyError("malformed SubjectPublicKeyInfo")
    alg = children[0]
    if alg[0] != TAG_SEQUENCE:
        raise InvalidKeyError("malformed SubjectPublicKeyInfo algorithm")
    alg_children = read_children(data, alg[1], alg[2])
    if not 1 <= len(alg_children) <= 2:
        raise InvalidKeyError("malformed SubjectPublicKeyInfo algorithm")
    alg_oid = _expect(data, alg_children[0], TAG_OID)
    param: bytes | None = None
    if len(alg_children) == 2:
        tag, s, e = alg_children[1]
        if tag == TAG_OID:
            param = bytes(data[s:e])
        elif tag != TAG_NULL or e != s:
            raise InvalidKeyError("unsupported SubjectPublicKeyInfo parameters")
    key = _bit_string(_expect(data, children[1], TAG_BIT_STRING))
    return alg_oid, param, key


def _two_integers(data: bytes, what: str) -> tuple[int, int]:
    """``SEQUENCE { INTEGER, INTEGER }`` (RSAPublicKey, ECDSA-Sig-Value); ``what`` names it."""
    children = parse_top(data)
    if len(children) != 2:
        raise InvalidKeyError(f"malformed {what}")
    first = decode_integer(_expect(data, children[0], TAG_INTEGER))
    second = decode_integer(_expect(data, children[1], TAG_INTEGER))
    return first, second


def parse_rsa_public(data: bytes) -> tuple[int, int]:
    """``(n, e)`` from an RSA SubjectPublicKeyInfo."""
    alg, param, key = parse_spki(data)
    if alg != OID_RSA_ENCRYPTION or param is not None:
        raise InvalidKeyError("not an RSA public key")
    return _two_integers(key, "RSAPublicKey")


def encode_rsa_public(n: int, e: int) -> bytes:
    """RSA SubjectPublicKeyInfo DER for modulus ``n`` and exponent ``e``."""
    rsa_key = encode_sequence(encode_integer(n), encode_integer(e))
    return encode_sequence(
        encode_sequence(encode_oid(OID_RSA_ENCRYPTION), NULL), encode_bit_string(rsa_key)
    )


def parse_rsa_private(data: bytes) -> tuple[int, ...]:
    """``(n, e, d, p, q, dp, dq, qinv)`` from a two-prime PKCS#1 RSAPrivateKey."""
    children = parse_top(data)
    if len(children) != 9:
        raise InvalidKeyError("malformed or multi-prime PKCS#1 RSA private key")
    ints = tuple(decode_integer(_expect(data, c, TAG_INTEGER)) for c in children)
    if ints[0] != 0:
        raise InvalidKeyError("unsupported PKCS#1 RSA private key version")
    return ints[1:]


def parse_ec_public(data: bytes) -> tuple[bytes, bytes]:
    """``(curve OID, SEC1 point)`` from an EC SubjectPublicKeyInfo."""
    alg, param, point = parse_spki(data)
    if alg != OID_EC_PUBLIC_KEY or param is None:
        raise InvalidKeyError("not an EC public key with a named curve")
    return param, point


def encode_ec_public(curve_oid: bytes, point: bytes) -> bytes:
    return encode_sequence(
        encode_sequence(encode_oid(OID_EC_PUBLIC_KEY), encode_oid(curve_oid)),
        encode_bit_string(point),
    )


# --- EC private keys ------------------------------------------------------------------


def _parse_sec1(data: bytes) -> tuple[bytes | None, bytes, bytes | None]:
    children = parse_top(data)
    if len(children) < 2:
        raise InvalidKeyError("malformed EC private key")
    if decode_integer(_expect(data, children[0], TAG_INTEGER)) != 1:
        raise InvalidKeyError("unsupported EC private key version")
    scalar = _expect(data, children[1], TAG_OCTET_STRING)
    curve: bytes | None = None
    point: bytes | None = None
    last = 0
    for tag, s, e in children[2:]:
        inner = read_children(data, s, e)
        if len(inner) != 1:
            raise InvalidKeyError("malformed EC private key")
        if tag == TAG_CTX0 and last < 1:
            curve = _expect(data, inner[0], TAG_OID)
            last = 1
        elif tag == TAG_CTX1 and last < 2:
            point = _bit_string(_expect(data, inner[0], TAG_BIT_STRING))
            last = 2
        else:
            raise InvalidKeyError("malformed EC private key")
    return curve, scalar, point


def parse_ec_private(data: bytes) -> tuple[bytes | None, bytes, bytes | None]:
    """``(curve OID or None, private scalar bytes, public point or None)``.

    Accepts SEC1 ``ECPrivateKey`` and PKCS#8 ``PrivateKeyInfo`` wrapping one.
    """
    children = parse_top(data)
    if len(children) == 3 and children[1][0] == TAG_SEQUENCE:
        # PKCS#8: version 0, AlgorithmIdentifier, OCTET STRING(ECPrivateKey).
        if decode_integer(_expect(data, children[0], TAG_INTEGER)) != 0:
            raise InvalidKeyError("unsupported PKCS#8 version")
        alg = read_children(data, children[1][1], children[1][2])
        if len(alg) != 2 or _expect(data, alg[0], TAG_OID) != OID_EC_PUBLIC_KEY:
            raise InvalidKeyError("PKCS#8 key is not an EC key")
        outer_curve = _expect(data, alg[1], TAG_OID)
        curve, scalar, point = _parse_sec1(_expect(data, children[2], TAG_OCTET_STRING))
        if curve is not None and curve != outer_curve:
            raise InvalidKeyError("PKCS#8 EC key names two different curves")
        return outer_curve, scalar, point
    return _parse_sec1(data)


def encode_ec_private(curve_oid: bytes, scalar: bytes, point: bytes) -> bytes:
    """SEC1 ECPrivateKey with the curve and public key, as go-libp2p writes it."""
    return encode_sequence(
        encode_integer(1),
        encode_octet_string(scalar),
        encode_tlv(TAG_CTX0, encode_oid(curve_oid)),
        encode_tlv(TAG_CTX1, encode_bit_string(point)),
    )


# --- ECDSA signatures -------------------------------------------------------------------


def parse_ecdsa_signature(sig: bytes) -> tuple[int, int]:
    return _two_integers(sig, "ECDSA signature")


def encode_ecdsa_signature(r: int, s: int) -> bytes:
    return encode_sequence(encode_integer(r), encode_integer(s))
