"""libp2p peer ids: a multihash of the protobuf-encoded public key.

Keys whose protobuf encoding is at most 42 bytes (Ed25519, Secp256k1) are inlined with
the ``identity`` multihash, so the public key can be read back out of the id; larger
keys (RSA, ECDSA) are hashed with sha2-256.

Text forms: legacy bare base58btc multihash (``12D3KooW...``, ``16Uiu2...``, ``Qm...``;
``str()`` writes this) and CIDv1 with the ``libp2p-key`` codec in any multibase
(``bafz...`` base32 written by :meth:`PeerId.to_cid_string`, ``k51...`` base36 accepted).
"""

from __future__ import annotations

from ..errors import InvalidPeerIdError, PywasmError
from ..multiformats import multibase, multihash
from ..multiformats.cid import CID, LIBP2P_KEY
from .keys import PublicKey

#: Keys whose protobuf encoding is at most this long are inlined (identity multihash).
MAX_INLINE_KEY_LENGTH = 42
#: Longest peer id text we try to parse (real ones are under 100 characters).
MAX_PEER_ID_TEXT = 256


class PeerId:
    """An immutable peer id; equality, hashing and ordering by multihash bytes."""

    __slots__ = ("_mh", "_b58")

    _mh: bytes
    _b58: str | None

    def __init__(self, mh: bytes) -> None:
        # Internal: use from_bytes / from_string / from_public_key, which validate.
        object.__setattr__(self, "_mh", mh)
        object.__setattr__(self, "_b58", None)

    # --- construction ------------------------------------------------------------
    @classmethod
    def from_public_key(cls, public_key: PublicKey) -> PeerId:
        encoded = public_key.to_protobuf()
        if len(encoded) <= MAX_INLINE_KEY_LENGTH:
            return cls(multihash.identity(encoded))
        return cls(multihash.sha256(encoded))

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> PeerId:
        """Parse the binary form (a multihash). :class:`InvalidPeerIdError` if invalid."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidPeerIdError(f"peer id bytes expected, not {type(data).__name__}")
        mh = bytes(data)
        try:
            code, digest = multihash.decode(mh)
        except PywasmError as e:
            raise InvalidPeerIdError(f"peer id is not a valid multihash: {e}") from None
        if code == multihash.SHA2_256:
            if len(digest) != 32:
                raise InvalidPeerIdError("sha2-256 peer id must have a 32-byte digest")
        elif code == multihash.IDENTITY:
            if len(digest) > MAX_INLINE_KEY_LENGTH:
                raise InvalidPeerIdError("identity peer id is longer than 42 bytes")
            try:
                PublicKey.from_protobuf(digest)
            except PywasmError as e:
                raise InvalidPeerIdError(f"identity peer id does not hold a valid public key: {e}") from None
        else:
            raise InvalidPeerIdError(f"unsupported peer id multihash code 0x{code:x}")
        return cls(mh)

    @classmethod
    def from_string(cls, text: str) -> PeerId:
        """Parse base58btc (``12D3KooW...``, ``Qm...``) or a libp2p-key CIDv1 (``bafz...``)."""
        if not isinstance(text, str):
            raise InvalidPeerIdError(f"peer id text must be str, not {type(text).__name__}")
        if not text or len(text) > MAX_PEER_ID_TEXT:
            raise InvalidPeerIdError(f"invalid peer id {text[:64]!r}: bad length")
        try:
            if text[0] == "1" or text.startswith("Qm"):
                return cls.from_bytes(multibase.b58decode(text))
            cid = CID.from_string(text)
        except PywasmError as e:
            raise InvalidPeerIdError(f"invalid peer id {text[:64]!r}: {e}") from None
        if cid.version != 1 or cid.codec != LIBP2P_KEY:
            raise InvalidPeerIdError(f"invalid peer id {text[:64]!r}: CID is not a CIDv1 libp2p-key")
        return cls.from_bytes(cid.multihash)

    # --- accessors -----------------------------------------------------------------
    def to_bytes(self) -> bytes:
        return self._mh

    def to_base58(self) -> str:
        b58 = self._b58
        if b58 is None:
            b58 = multibase.b58encode(self._mh)
            object.__setattr__(self, "_b58", b58)
        return b58

    def to_cid(self) -> CID:
        return CID.v1(LIBP2P_KEY, self._mh)

    def to_cid_string(self, base: str = "base32") -> str:
        """CIDv1 libp2p-key text, base32 (``bafz...``) by default."""
        return self.to_cid().encode(base)

    def public_key(self) -> PublicKey | None:
        """The inlined public key of an identity-multihash id, else ``None``."""
        if self._mh[0] != multihash.IDENTITY:
            return None
        _, digest = multihash.decode(self._mh)
        return PublicKey.from_protobuf(digest)

    def matches_public_key(self, public_key: PublicKey) -> bool:
        try:
            return PeerId.from_public_key(public_key) == self
        except PywasmError:
            return False

    # --- value semantics -------------------------------------------------------------
    def __str__(self) -> str:
        return self.to_base58()

    def __repr__(self) -> str:
        return f"PeerId({self.to_base58()!r})"

    def __bytes__(self) -> bytes:
        return self._mh

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PeerId):
            return NotImplemented
        return self._mh == other._mh

    def __lt__(self, other: PeerId) -> bool:
        if not isinstance(other, PeerId):
            return NotImplemented
        return self._mh < other._mh

    def __hash__(self) -> int:
        return hash(self._mh)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("PeerId is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("PeerId is immutable")

    def __reduce__(self) -> tuple[object, ...]:
        return (PeerId, (self._mh,))


__all__ = ["MAX_INLINE_KEY_LENGTH", "PeerId"]
