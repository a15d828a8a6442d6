"""The crypto backend interface.

Everything heavy (AEAD, Diffie-Hellman, signatures) goes through one
:class:`CryptoBackend`, so the same protocol code runs natively on OpenSSL
(``cryptography``) and inside Pyodide on WebCrypto (and @noble where WebCrypto lacks a
primitive). WebCrypto is promise-based, so every method that may cross into JS is
``async``; natively they complete without suspending. Hashes are plain ``hashlib``,
which works everywhere.

Key material crosses this interface in the raw forms libp2p itself uses:

* Ed25519: 32-byte seed (private), 32-byte public key.
* X25519: 32-byte private scalar, 32-byte public key.
* ECDSA (``curve`` is ``"p256"`` or ``"secp256k1"``): 32-byte big-endian private scalar;
  public point in SEC1 form (65-byte uncompressed or 33-byte compressed accepted,
  65-byte uncompressed returned); signatures are DER over SHA-256 of the message.
* RSA: PKCS#1 DER private key, SubjectPublicKeyInfo DER public key, PKCS#1 v1.5
  signatures with SHA-256.
* ChaCha20-Poly1305 (IETF, 12-byte nonce): 32-byte key; ``nonce`` is the Noise counter,
  laid out as 4 zero bytes then the 64-bit little-endian counter.
"""

from __future__ import annotations

import abc
import inspect
import sys
from typing import Literal, NamedTuple, Sequence

Curve = Literal["p256", "secp256k1"]


def noise_nonce(counter: int) -> bytes:
    """The 12-byte ChaCha20-Poly1305 nonce Noise uses for ``counter``."""
    return b"\x00\x00\x00\x00" + counter.to_bytes(8, "little")


class FramedOpen(NamedTuple):
    """What :meth:`CryptoBackend.aead_open_framed` returns."""

    #: the opened frames' plaintexts, concatenated
    plaintext: bytes
    #: how many frames were opened (the receive counter advances by this many)
    frames: int
    #: the trailing partial frame, opaque: pass it back as ``rest`` with the next data
    rest: object
    #: the data source ended (``data`` was None or empty); nothing was opened
    ended: bool
    #: -1, or the length of a frame too short to hold its tag: the frames before it are in
    #: ``plaintext``, the bytes from it on are dropped (the connection must end)
    malformed: int


_TAG_LEN = 16


class CryptoBackend(abc.ABC):
    """Primitives pywasm needs; see the module docstring for the key formats."""

    name: str = "abstract"

    # --- ChaCha20-Poly1305 -------------------------------------------------
    @abc.abstractmethod
    async def aead_seal(self, key: bytes, counter: int, ad: bytes, plaintext: bytes) -> bytes:
        """Encrypt and append the 16-byte tag."""

    @abc.abstractmethod
    async def aead_open(self, key: bytes, counter: int, ad: bytes, ciphertext: bytes) -> bytes:
        """Verify the tag and decrypt; :class:`~pywasm.errors.DecryptError` on failure."""

    async def aead_seal_many(
        self, key: bytes, first_counter: int, ad: bytes, plaintexts: Sequence[bytes]
    ) -> list[bytes]:
        """Seal consecutive frames (counters ``first_counter``, +1, ...) in one call.

        Backends that cross an FFI boundary override this so a burst of frames costs
        one crossing instead of one each.
        """
        return [
            await self.aead_seal(key, first_counter + i, ad, pt) for i, pt in enumerate(plaintexts)
        ]

    async def aead_seal_framed(
        self, key: bytes, first_counter: int, ad: bytes, plaintexts: Sequence[bytes]
    ) -> bytes | bytearray:
        """Seal consecutive frames laid out as Noise wire frames in one buffer.

        Each frame is a 2-byte big-endian length then the ciphertext with its tag. This is
        the send hot path: a backend that can encrypt into a preallocated buffer overrides
        it to skip one copy of every byte sent.
        """
        cts = await self.aead_seal_many(key, first_counter, ad, plaintexts)
        parts: list[bytes] = []
        for ct in cts:
            parts.append(len(ct).to_bytes(2, "big"))
            parts.append(ct)
        return b"".join(parts)

    #: True when :meth:`aead_seal_framed_deferred` returns a handle (Pyodide with a JS
    #: sink for it); the Noise connection then never awaits the sealing itself.
    can_defer_seal: bool = False

    def aead_seal_framed_deferred(
        self, key: bytes, first_counter: int, ad: bytes, plaintexts: Sequence[bytes]
    ) -> "tuple[object, int] | None":
        """Start sealing like :meth:`aead_seal_framed` without waiting for the result.

        Returns ``(handle, wire_length)``, where ``handle`` is an opaque object only a
        matching transport can consume (under Pyodide: a JS object holding the Promise of
        the framed bytes, which the WebSocket shim sends once it resolves), or None when
        this backend cannot defer (the default). Inputs are checked, and copied, before it
        returns.
        """
        return None

    async def aead_open_many(
        self, key: bytes, first_counter: int, ad: bytes, ciphertexts: Sequence[bytes]
    ) -> list[bytes]:
        """Open consecutive frames in one call; raises on the first bad tag."""
        return [
            await self.aead_open(key, first_counter + i, ad, ct) for i, ct in enumerate(ciphertexts)
        ]

    #: True when :meth:`aead_open_framed` takes a transport's deferred read as ``data``
    #: (Pyodide: a JS Promise of the next WebSocket bytes, awaited inside JS), so the
    #: Noise reader crosses into JS once per burst and ciphertext never enters Python.
    can_open_framed: bool = False

    async def aead_open_framed(
        self, key: bytes, first_counter: int, ad: bytes, rest: object, data: object
    ) -> FramedOpen:
        """Open every Noise wire frame completed by ``rest`` (the partial frame a previous
        call returned, or None) followed by ``data``.

        ``data`` is bytes, None/empty (the source ended) or an awaitable of either; a
        backend with :attr:`can_open_framed` also takes its platform's opaque read handles.
        A bad tag raises :class:`~pywasm.errors.DecryptError`. This default does the
        framing in Python (tests use it to drive the callers natively).
        """
        if inspect.isawaitable(data):
            data = await data
        held = bytes(rest) if rest else b""  # type: ignore[call-overload]
        if not data:
            return FramedOpen(b"", 0, held, True, -1)
        buf = memoryview(held + bytes(data)) if held else memoryview(bytes(data))  # type: ignore[call-overload]
        frames: list[memoryview] = []
        pos, end, malformed = 0, len(buf), -1
        while end - pos >= 2:
            n = (buf[pos] << 8) | buf[pos + 1]
            if n < _TAG_LEN:
                malformed = n
                break
            if pos + 2 + n > end:
                break
            frames.append(buf[pos + 2 : pos + 2 + n])
            pos += 2 + n
        left = b"" if malformed >= 0 else bytes(buf[pos:])
        plain = await self.aead_open_many(key, first_counter, ad, frames) if frames else []  # type: ignore[arg-type]
        return FramedOpen(b"".join(plain), len(frames), left, False, malformed)

    # --- X25519 -------------------------------------------------------------
    @abc.abstractmethod
    async def x25519_public(self, private: bytes) -> bytes: ...

    @abc.abstractmethod
    async def x25519(self, private: bytes, peer_public: bytes) -> bytes:
        """The shared secret; :class:`~pywasm.errors.CryptoError` for a low-order point."""

    # --- Ed25519 --------------------------------------------------------------
    @abc.abstractmethod
    async def ed25519_public(self, seed: bytes) -> bytes: ...

    @abc.abstractmethod
    async def ed25519_sign(self, seed: bytes, message: bytes) -> bytes: ...

    @abc.abstractmethod
    async def ed25519_verify(self, public: bytes, message: bytes, signature: bytes) -> bool: ...

    # --- ECDSA (P-256 and secp256k1), SHA-256 ---------------------------------
    @abc.abstractmethod
    async def ecdsa_public(self, curve: Curve, private: bytes) -> bytes:
        """Uncompressed SEC1 public point (65 bytes) for a 32-byte private scalar."""

    @abc.abstractmethod
    async def ecdsa_sign(self, curve: Curve, private: bytes, message: bytes) -> bytes:
        """DER-encoded signature over SHA-256(message)."""

    @abc.abstractmethod
    async def ecdsa_verify(
        self, curve: Curve, public: bytes, message: bytes, signature: bytes
    ) -> bool: ...

    # --- RSA (PKCS#1 v1.5, SHA-256) ---------------------------------------------
    @abc.abstractmethod
    async def rsa_verify(self, public_spki: bytes, message: bytes, signature: bytes) -> bool: ...

    async def rsa_sign(self, private_pkcs1: bytes, message: bytes) -> bytes:
        from ..errors import UnsupportedError

        raise UnsupportedError(f"RSA signing is not available on the {self.name} backend")

    async def rsa_generate(self, bits: int) -> tuple[bytes, bytes]:
        """``(private PKCS#1 DER, public SPKI DER)``."""
        from ..errors import UnsupportedError

        raise UnsupportedError(f"RSA key generation is not available on the {self.name} backend")

    async def rsa_public_from_private(self, private_pkcs1: bytes) -> bytes:
        """SPKI DER of the public half of a PKCS#1 private key."""
        from ..errors import UnsupportedError

        raise UnsupportedError(f"RSA private keys are not supported on the {self.name} backend")


_backend: CryptoBackend | None = None


def set_backend(backend: CryptoBackend) -> None:
    """Use ``backend`` for all crypto from now on (tests and the browser bootstrap)."""
    global _backend
    _backend = backend


def get_backend() -> CryptoBackend:
    """The active backend: native OpenSSL on CPython, JS inside Pyodide."""
    global _backend
    if _backend is None:
        if sys.platform == "emscripten":
            from .web import WebCryptoBackend

            _backend = WebCryptoBackend()
        else:
            from .native import NativeBackend

            _backend = NativeBackend()
    return _backend
