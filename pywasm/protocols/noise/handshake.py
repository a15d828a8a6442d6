"""Noise_XX_25519_ChaChaPoly_SHA256 (Noise Protocol Framework, revision 34).

CipherState, SymmetricState and HandshakeState as the Noise spec defines them (sections
5.1-5.3), restricted to the one pattern and cipher suite libp2p uses. Hashing and HKDF
are ``hashlib``/``hmac``; X25519 and ChaCha20-Poly1305 go through the async
:class:`~pywasm.crypto.backend.CryptoBackend`, which is why the message methods are
coroutines. There is no I/O here: callers frame and move the bytes.

Errors: anything wrong with a received message (too short, failed authentication, a
low-order public key) raises :class:`~pywasm.errors.NoiseError`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Sequence

from ...crypto.backend import CryptoBackend, get_backend
from ...errors import NoiseError, PywasmError

PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_SHA256"
DHLEN = 32
HASHLEN = 32
TAGLEN = 16
# Noise messages (handshake and transport) are at most 65535 bytes (spec section 3).
MAX_MESSAGE_LEN = 65535
# Nonce 2**64-1 is reserved by the spec; refusing it also ends a connection before a
# nonce could ever repeat.
MAX_NONCE = (1 << 64) - 1

# XX: -> e ; <- e, ee, s, es ; -> s, se   (spec section 7.5)
XX_PATTERN: tuple[tuple[str, ...], ...] = (
    ("e",),
    ("e", "ee", "s", "es"),
    ("s", "se"),
)


def _hkdf(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """HKDF with two outputs, as the Noise spec (section 4.3) defines it over HMAC-SHA256."""
    temp = hmac.digest(chaining_key, ikm, "sha256")
    out1 = hmac.digest(temp, b"\x01", "sha256")
    out2 = hmac.digest(temp, out1 + b"\x02", "sha256")
    return out1, out2


class CipherState:
    """A key and a nonce counter (spec section 5.1)."""

    __slots__ = ("k", "n", "_backend")

    def __init__(self, backend: CryptoBackend, key: bytes | None = None) -> None:
        self._backend = backend
        self.k: bytes | None = key
        self.n = 0

    def initialize_key(self, key: bytes | None) -> None:
        self.k = key
        self.n = 0

    def has_key(self) -> bool:
        return self.k is not None

    def _next_nonce(self) -> int:
        n = self.n
        if n >= MAX_NONCE:
            raise NoiseError("Noise nonce space exhausted; the connection must end")
        self.n = n + 1
        return n

    async def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        if self.k is None:
            return bytes(plaintext)
        n = self._next_nonce()
        return await self._backend.aead_seal(self.k, n, ad, plaintext)

    async def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        if self.k is None:
            return bytes(ciphertext)
        if len(ciphertext) < TAGLEN:
            raise NoiseError("Noise ciphertext shorter than its authentication tag")
        # The spec increments the nonce only on success; a failure ends the session
        # anyway, but keep the state exact.
        n = self.n
        if n >= MAX_NONCE:
            raise NoiseError("Noise nonce space exhausted; the connection must end")
        try:
            plaintext = await self._backend.aead_open(self.k, n, ad, ciphertext)
        except PywasmError as exc:
            raise NoiseError("Noise message failed authentication") from exc
        self.n = n + 1
        return plaintext


class SymmetricState:
    """Chaining key, handshake hash and the handshake CipherState (spec section 5.2)."""

    __slots__ = ("ck", "h", "cipher", "_backend")

    def __init__(self, backend: CryptoBackend, protocol_name: bytes = PROTOCOL_NAME) -> None:
        self._backend = backend
        if len(protocol_name) <= HASHLEN:
            h = protocol_name + b"\x00" * (HASHLEN - len(protocol_name))
        else:
            h = hashlib.sha256(protocol_name).digest()
        self.h = h
        self.ck = h
        self.cipher = CipherState(backend)

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = _hkdf(self.ck, ikm)
        self.cipher.initialize_key(temp_k)

    def mix_hash(self, data: bytes) -> None:
        self.h = hashlib.sha256(self.h + data).digest()

    async def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = await self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    async def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = await self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        k1, k2 = _hkdf(self.ck, b"")
        return CipherState(self._backend, k1), CipherState(self._backend, k2)


class HandshakeState:
    """The XX handshake for one party (spec section 5.3).

    ``static_private``/``static_public`` are this party's X25519 static key pair. Ephemeral
    keys are generated from ``os.urandom`` unless ``ephemeral_private`` is given (a hook
    for test vectors only: never reuse an ephemeral key).

    Use :meth:`write_message` and :meth:`read_message` alternately in XX order; after
    the third message :attr:`complete` is true and :meth:`split` returns
    ``(send, receive)`` cipher states for this party.
    """

    def __init__(
        self,
        initiator: bool,
        static_private: bytes,
        static_public: bytes,
        *,
        prologue: bytes = b"",
        backend: CryptoBackend | None = None,
        ephemeral_private: bytes | None = None,
        pattern: Sequence[Sequence[str]] = XX_PATTERN,
    ) -> None:
        if len(static_private) != DHLEN or len(static_public) != DHLEN:
            raise NoiseError("X25519 static keys must be 32 bytes")
        self._backend = backend if backend is not None else get_backend()
        self.initiator = initiator
        self._s_priv = bytes(static_private)
        self._s_pub = bytes(static_public)
        self._e_priv: bytes | None = ephemeral_private
        self._e_pub: bytes | None = None
        self.remote_static: bytes | None = None
        self.remote_ephemeral: bytes | None = None
        self._pattern = pattern
        self._index = 0
        self._ss = SymmetricState(self._backend)
        self._ss.mix_hash(prologue)
        self._result: tuple[CipherState, CipherState] | None = None

    # -- state --------------------------------------------------------------------
    @property
    def complete(self) -> bool:
        return self._index >= len(self._pattern)

    @property
    def handshake_hash(self) -> bytes:
        """``h``: after completion, a unique id of this session (channel binding)."""
        return self._ss.h

    @property
    def message_index(self) -> int:
        return self._index

    def _our_turn(self) -> bool:
        # Even-numbered messages are the initiator's.
        return (self._index % 2 == 0) == self.initiator

    async def _dh(self, private: bytes | None, public: bytes | None) -> bytes:
        if private is None or public is None:
            raise NoiseError("Noise handshake is missing a key for a DH token")
        try:
            return await self._backend.x25519(private, public)
        except PywasmError as exc:
            raise NoiseError(f"X25519 with the remote key failed: {exc}") from exc

    async def _mix_dh(self, token: str) -> None:
        # Per the spec, token "es" is DH(e_initiator, s_responder) on both sides, etc.
        if token == "ee":
            dh = await self._dh(self._e_priv, self.remote_ephemeral)
        elif token == "ss":
            dh = await self._dh(self._s_priv, self.remote_static)
        elif token == "es":
            if self.initiator:
                dh = await self._dh(self._e_priv, self.remote_static)
            else:
                dh = await self._dh(self._s_priv, self.remote_ephemeral)
        elif token == "se":
            if self.initiator:
                dh = await self._dh(self._s_priv, self.remote_ephemeral)
            else:
                dh = await self._dh(self._e_priv, self.remote_static)
        else:  # pragma: no cover - the pattern table is ours
            raise NoiseError(f"unknown Noise token {token!r}")
        self._ss.mix_key(dh)

    # -- messages -------------------------------------------------------------------
    async def write_message(self, payload: bytes = b"") -> bytes:
        """Produce the next handshake message carrying ``payload``."""
        if self.complete:
            raise NoiseError("Noise handshake already complete")
        if not self._our_turn():
            raise NoiseError("not our turn to write a Noise handshake message")
        out: list[bytes] = []
        for token in self._pattern[self._index]:
            if token == "e":
                if self._e_priv is None:
                    self._e_priv = os.urandom(DHLEN)
                self._e_pub = await self._backend.x25519_public(self._e_priv)
                out.append(self._e_pub)
                self._ss.mix_hash(self._e_pub)
            elif token == "s":
                out.append(await self._ss.encrypt_and_hash(self._s_pub))
            else:
                await self._mix_dh(token)
        out.append(await self._ss.encrypt_and_hash(bytes(payload)))
        message = b"".join(out)
        if len(message) > MAX_MESSAGE_LEN:
            raise NoiseError(f"Noise handshake message of {len(message)} bytes is too long")
        self._advance()
        return message

    async def read_message(self, message: bytes | bytearray | memoryview) -> bytes:
        """Consume the remote's next handshake message and return its payload."""
        if self.complete:
            raise NoiseError("Noise handshake already complete")
        if self._our_turn():
            raise NoiseError("not our turn to read a Noise handshake message")
        msg = bytes(message)
        if len(msg) > MAX_MESSAGE_LEN:
            raise NoiseError(f"Noise handshake message of {len(msg)} bytes is too long")
        pos = 0
        for token in self._pattern[self._index]:
            if token == "e":
                if len(msg) - pos < DHLEN:
                    raise NoiseError("Noise handshake message too short for an ephemeral key")
                self.remote_ephemeral = msg[pos : pos + DHLEN]
                pos += DHLEN
                self._ss.mix_hash(self.remote_ephemeral)
            elif token == "s":
                size = DHLEN + (TAGLEN if self._ss.cipher.has_key() else 0)
                if len(msg) - pos < size:
                    raise NoiseError("Noise handshake message too short for a static key")
                self.remote_static = await self._ss.decrypt_and_hash(msg[pos : pos + size])
                pos += size
            else:
                await self._mix_dh(token)
        payload = await self._ss.decrypt_and_hash(msg[pos:])
        self._advance()
        return payload

    def _advance(self) -> None:
        self._index += 1
        if self.complete:
            c1, c2 = self._ss.split()
            self._result = (c1, c2) if self.initiator else (c2, c1)
            # Forget the ephemeral secret as soon as it is no longer needed.
            self._e_priv = None

    def split(self) -> tuple[CipherState, CipherState]:
        """``(send, receive)`` cipher states for this party once the handshake is done."""
        if self._result is None:
            raise NoiseError("Noise handshake not complete")
        return self._result


async def generate_keypair(backend: CryptoBackend | None = None) -> tuple[bytes, bytes]:
    """A fresh X25519 key pair ``(private, public)``."""
    backend = backend if backend is not None else get_backend()
    private = os.urandom(DHLEN)
    return private, await backend.x25519_public(private)


__all__ = [
    "PROTOCOL_NAME",
    "MAX_MESSAGE_LEN",
    "TAGLEN",
    "DHLEN",
    "XX_PATTERN",
    "CipherState",
    "SymmetricState",
    "HandshakeState",
    "generate_keypair",
]
