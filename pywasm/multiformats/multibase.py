"""Multibase: self-describing base encodings (https://github.com/multiformats/multibase).

A multibase string is one prefix character naming the base, then the payload in that
base. libp2p meets base58btc (peer ids), base32 and base36 (CIDv1 peer ids), base64url
(certhash) and base16; the rest of the registered "final" bases are cheap to carry too.

Two families of bases live here:

* bit-packing bases (RFC 4648 style: base2, base8, base16, base32*, base64*): each
  character holds a fixed number of bits; the fast ones go through :mod:`base64`.
* radix bases (base10, base36, base58*): the input is one big integer, and each leading
  zero byte is written as one "zero" character so leading zeros survive the round trip.

Every malformed input raises :class:`MultibaseError`; nothing else escapes ``decode``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Callable, Union

from ..errors import MultibaseError

BytesLike = Union[bytes, bytearray, memoryview]

# Radix decoding is quadratic in the input length; peers can send us such strings, so
# cap them far above any real peer id / CID / key (a 4 KiB RSA key is ~700 base58 chars).
MAX_RADIX_DECODE_LEN = 8192

_B32_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_HEX = "0123456789ABCDEFGHIJKLMNOPQRSTUV"
_B32_Z = "ybndrfg8ejkmcpqxot1uwisza345h769"
_B58_BTC = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_FLICKR = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_B64_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _short(text: str, limit: int = 40) -> str:
    """Error messages quote the input, but never a megabyte of it."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


# --- bit-packing bases ---------------------------------------------------------------
def _check_bit_layout(name: str, text: str, bits: int, block: int, padded: bool) -> str:
    """Validate padding and length; return the text without its padding.

    ``block`` is the number of characters in one padded group (8 for base32, 4 for
    base64). A length is impossible when the leftover bits would fill a whole character.
    """
    stripped = text.rstrip("=")
    npad = len(text) - len(stripped)
    if padded:
        if npad != (-len(stripped)) % block:
            raise MultibaseError(f"{name}: bad padding in {_short(text)}")
    elif npad:
        raise MultibaseError(f"{name}: unexpected padding in {_short(text)}")
    if (len(stripped) * bits) % 8 >= bits:
        raise MultibaseError(f"{name}: impossible length {len(stripped)}")
    return stripped


class _Base32:
    """base32 in one of three alphabets, optional padding, output in one case."""

    def __init__(self, name: str, alphabet: str, padded: bool, upper: bool, fold_case: bool) -> None:
        self.name = name
        self.padded = padded
        self.upper = upper
        self.fold_case = fold_case
        target = alphabet.upper() if upper else alphabet.lower()
        if alphabet == _B32_Z:
            target = alphabet  # z-base-32 is defined in lower case only
        # Encode with the stdlib (standard alphabet), then translate to ours.
        self._to_target = str.maketrans(_B32_STD, target)
        source = alphabet.upper() if fold_case else alphabet
        self._to_std = str.maketrans(source, _B32_STD)
        self._chars = frozenset(source)

    def encode(self, data: BytesLike) -> str:
        out = base64.b32encode(bytes(data)).decode("ascii").translate(self._to_target)
        return out if self.padded else out.rstrip("=")

    def decode(self, text: str) -> bytes:
        body = _check_bit_layout(self.name, text, 5, 8, self.padded)
        if self.fold_case:
            # ASCII first: str.upper() maps some non-ASCII letters onto ASCII ones.
            if not body.isascii():
                raise MultibaseError(f"{self.name}: invalid character in {_short(text)}")
            body = body.upper()
        if not self._chars.issuperset(body):
            raise MultibaseError(f"{self.name}: invalid character in {_short(text)}")
        std = body.translate(self._to_std)
        std += "=" * ((-len(std)) % 8)
        try:
            return base64.b32decode(std)
        except (binascii.Error, ValueError) as exc:  # pragma: no cover - guarded above
            raise MultibaseError(f"{self.name}: {exc}") from exc


class _Base64:
    def __init__(self, name: str, alphabet: str, padded: bool) -> None:
        self.name = name
        self.padded = padded
        self.url = alphabet == _B64_URL
        self._chars = frozenset(alphabet)

    def encode(self, data: BytesLike) -> str:
        raw = bytes(data)
        out = (base64.urlsafe_b64encode(raw) if self.url else base64.b64encode(raw)).decode("ascii")
        return out if self.padded else out.rstrip("=")

    def decode(self, text: str) -> bytes:
        body = _check_bit_layout(self.name, text, 6, 4, self.padded)
        if not self._chars.issuperset(body):
            raise MultibaseError(f"{self.name}: invalid character in {_short(text)}")
        body += "=" * ((-len(body)) % 4)
        try:
            if self.url:
                return base64.urlsafe_b64decode(body)
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:  # pragma: no cover - guarded above
            raise MultibaseError(f"{self.name}: {exc}") from exc


class _Base16:
    def __init__(self, name: str, upper: bool) -> None:
        self.name = name
        self.upper = upper

    def encode(self, data: BytesLike) -> str:
        out = bytes(data).hex()
        return out.upper() if self.upper else out

    def decode(self, text: str) -> bytes:
        # binascii (unlike bytes.fromhex) rejects whitespace; isascii() keeps its
        # "ASCII only" ValueError out of the picture.
        if not text.isascii():
            raise MultibaseError(f"{self.name}: invalid character in {_short(text)}")
        try:
            return binascii.unhexlify(text)
        except (binascii.Error, ValueError) as exc:
            raise MultibaseError(f"{self.name}: {exc}") from exc


class _IntBits:
    """base2 / base8: bit-packing with digits Python's int() already understands."""

    def __init__(self, name: str, bits: int) -> None:
        self.name = name
        self.bits = bits
        self.radix = 1 << bits
        self._chars = frozenset("01234567"[: self.radix])

    def encode(self, data: BytesLike) -> str:
        raw = bytes(data)
        if not raw:
            return ""
        total = len(raw) * 8
        nchars = -(-total // self.bits)
        value = int.from_bytes(raw, "big") << (nchars * self.bits - total)
        digits = format(value, "b" if self.bits == 1 else "o")
        return digits.zfill(nchars)

    def decode(self, text: str) -> bytes:
        if not text:
            return b""
        if not self._chars.issuperset(text):
            raise MultibaseError(f"{self.name}: invalid character in {_short(text)}")
        _check_bit_layout(self.name, text, self.bits, 1, False)
        total = len(text) * self.bits
        nbytes = total // 8
        value = int(text, self.radix) >> (total - nbytes * 8)
        return value.to_bytes(nbytes, "big")


# --- radix bases -------------------------------------------------------------------
class _Radix:
    def __init__(self, name: str, alphabet: str, fold_case: bool = False, upper: bool = False) -> None:
        self.name = name
        self.base = len(alphabet)
        self.alphabet = alphabet.upper() if upper else alphabet
        self.fold_case = fold_case
        self.zero = self.alphabet[0]
        self._index = {c: i for i, c in enumerate(alphabet)}
        self._chars = frozenset(alphabet)
        # int() parses bases <= 36 in C when our digits are its digits (0-9a-z).
        self._native = self.base <= 36 and alphabet == _B36[: self.base]

    def encode(self, data: BytesLike) -> str:
        raw = bytes(data)
        body = raw.lstrip(b"\x00")
        zeros = self.zero * (len(raw) - len(body))
        value = int.from_bytes(body, "big")
        alphabet, base = self.alphabet, self.base
        out: list[str] = []
        while value:
            value, rem = divmod(value, base)
            out.append(alphabet[rem])
        out.reverse()
        return zeros + "".join(out)

    def decode(self, text: str) -> bytes:
        if len(text) > MAX_RADIX_DECODE_LEN:
            raise MultibaseError(f"{self.name}: input longer than {MAX_RADIX_DECODE_LEN} characters")
        if self.fold_case:
            # ASCII first: str.lower() maps e.g. the Kelvin sign onto "k".
            if not text.isascii():
                raise MultibaseError(f"{self.name}: invalid character in {_short(text)}")
            text = text.lower()
        zero = self.alphabet[0] if not self.fold_case else self.alphabet[0].lower()
        body = text.lstrip(zero)
        nzeros = len(text) - len(body)
        if not body:
            return b"\x00" * nzeros
        if self._native:
            if not self._chars.issuperset(body):
                raise MultibaseError(f"{self.name}: invalid character in {_short(text)}")
            try:
                value = int(body, self.base)
            except ValueError:
                # Over sys.get_int_max_str_digits(): same result, the slow way.
                value = self._fold(body, text)
        else:
            value = self._fold(body, text)
        return b"\x00" * nzeros + value.to_bytes((value.bit_length() + 7) // 8, "big")

    def _fold(self, body: str, text: str) -> int:
        index = self._index
        base = self.base
        value = 0
        try:
            for ch in body:
                value = value * base + index[ch]
        except KeyError:
            raise MultibaseError(f"{self.name}: invalid character in {_short(text)}") from None
        return value


class _Identity:
    name = "identity"

    def encode(self, data: BytesLike) -> str:
        # As text, the identity base is the payload read as UTF-8 (what js-multiformats
        # does), so only UTF-8 payloads can be written this way.
        try:
            return bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MultibaseError("identity: payload is not valid UTF-8") from exc

    def decode(self, text: str) -> bytes:
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MultibaseError("identity: text is not encodable as UTF-8") from exc


_Codec = Union[_Base32, _Base64, _Base16, _IntBits, _Radix, _Identity]

# name -> (prefix, codec). Prefixes from the multibase table (multibase.csv).
_BASES: dict[str, tuple[str, _Codec]] = {
    "identity": ("\x00", _Identity()),
    "base2": ("0", _IntBits("base2", 1)),
    "base8": ("7", _IntBits("base8", 3)),
    "base10": ("9", _Radix("base10", "0123456789")),
    "base16": ("f", _Base16("base16", upper=False)),
    "base16upper": ("F", _Base16("base16upper", upper=True)),
    "base32hex": ("v", _Base32("base32hex", _B32_HEX, padded=False, upper=False, fold_case=True)),
    "base32hexupper": ("V", _Base32("base32hexupper", _B32_HEX, padded=False, upper=True, fold_case=True)),
    "base32hexpad": ("t", _Base32("base32hexpad", _B32_HEX, padded=True, upper=False, fold_case=True)),
    "base32hexpadupper": ("T", _Base32("base32hexpadupper", _B32_HEX, padded=True, upper=True, fold_case=True)),
    "base32": ("b", _Base32("base32", _B32_STD, padded=False, upper=False, fold_case=True)),
    "base32upper": ("B", _Base32("base32upper", _B32_STD, padded=False, upper=True, fold_case=True)),
    "base32pad": ("c", _Base32("base32pad", _B32_STD, padded=True, upper=False, fold_case=True)),
    "base32padupper": ("C", _Base32("base32padupper", _B32_STD, padded=True, upper=True, fold_case=True)),
    "base32z": ("h", _Base32("base32z", _B32_Z, padded=False, upper=False, fold_case=False)),
    "base36": ("k", _Radix("base36", _B36, fold_case=True)),
    "base36upper": ("K", _Radix("base36upper", _B36, fold_case=True, upper=True)),
    "base58btc": ("z", _Radix("base58btc", _B58_BTC)),
    "base58flickr": ("Z", _Radix("base58flickr", _B58_FLICKR)),
    "base64": ("m", _Base64("base64", _B64_STD, padded=False)),
    "base64pad": ("M", _Base64("base64pad", _B64_STD, padded=True)),
    "base64url": ("u", _Base64("base64url", _B64_URL, padded=False)),
    "base64urlpad": ("U", _Base64("base64urlpad", _B64_URL, padded=True)),
}
_BY_PREFIX: dict[str, tuple[str, _Codec]] = {prefix: (name, codec) for name, (prefix, codec) in _BASES.items()}

#: Names accepted by :func:`encode`.
BASE_NAMES: tuple[str, ...] = tuple(_BASES)


def prefix_of(base_name: str) -> str:
    """The multibase prefix character of ``base_name`` (e.g. ``"z"`` for base58btc)."""
    try:
        return _BASES[base_name][0]
    except KeyError:
        raise MultibaseError(f"unknown multibase {base_name!r}") from None


def encode(base_name: str, data: BytesLike) -> str:
    """Encode ``data`` as multibase text: prefix character + payload."""
    try:
        prefix, codec = _BASES[base_name]
    except KeyError:
        raise MultibaseError(f"unknown multibase {base_name!r}") from None
    return prefix + codec.encode(data)


def decode_with_base(text: str) -> tuple[str, bytes]:
    """Decode multibase text; return ``(base_name, data)``."""
    if not isinstance(text, str):
        raise MultibaseError(f"multibase input must be str, not {type(text).__name__}")
    if not text:
        raise MultibaseError("empty multibase string")
    entry = _BY_PREFIX.get(text[0])
    if entry is None:
        raise MultibaseError(f"unknown multibase prefix {text[0]!r}")
    name, codec = entry
    return name, codec.decode(text[1:])


def decode(text: str) -> bytes:
    """Decode multibase text (any supported base) to bytes."""
    return decode_with_base(text)[1]


# --- plain (prefix-less) helpers, for formats that fix the base themselves ----------
def _plain(name: str) -> tuple[Callable[[BytesLike], str], Callable[[str], bytes]]:
    codec = _BASES[name][1]

    def dec(text: str) -> bytes:
        if not isinstance(text, str):
            raise MultibaseError(f"{name} input must be str, not {type(text).__name__}")
        return codec.decode(text)

    return codec.encode, dec


b58encode, b58decode = _plain("base58btc")
b32encode, b32decode = _plain("base32")
b36encode, b36decode = _plain("base36")
b64encode, b64decode = _plain("base64")
b64urlencode, b64urldecode = _plain("base64url")
b16encode, b16decode = _plain("base16")

__all__ = [
    "BASE_NAMES",
    "MAX_RADIX_DECODE_LEN",
    "b16decode",
    "b16encode",
    "b32decode",
    "b32encode",
    "b36decode",
    "b36encode",
    "b58decode",
    "b58encode",
    "b64decode",
    "b64encode",
    "b64urldecode",
    "b64urlencode",
    "decode",
    "decode_with_base",
    "encode",
    "prefix_of",
]
