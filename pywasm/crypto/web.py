"""The Pyodide crypto backend: primitives run in JS (browser/src/crypto.mjs).

The bootstrap registers that ES module with ``pyodide.registerJsModule("pywasm_crypto_js",
module)``; this backend imports it lazily, so importing this file never fails natively.

Any JS function may return a value or a Promise (WebCrypto is promise-based; under Node
the module answers synchronously, which lets the test suite run on a synchronous loop).
We await only what is awaitable. Bytes go in as ``Uint8Array`` copies (``to_js``) and come
back through ``.to_bytes()``.

JS errors arrive as ``JsException``: the module names its own errors ``InvalidKeyError``
or ``CryptoError``; anything else is a :class:`~pywasm.errors.CryptoError`. A bad AEAD tag
is a return value (``undefined``), turned into :class:`~pywasm.errors.DecryptError` here.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from typing import Any, Sequence

from ..errors import CryptoError, DecryptError, InvalidKeyError
from .backend import CryptoBackend, Curve, FramedOpen, noise_nonce

#: Name under which the bootstrap registers browser/src/crypto.mjs.
JS_MODULE_NAME = "pywasm_crypto_js"
#: Bound on cached key conversions (two AEAD keys per live Noise session).
KEY_CACHE_SIZE = 1024

_MAX_COUNTER = (1 << 64) - 1
# A Noise frame is at most 65535 bytes: 2-byte length limit minus the 16-byte tag.
_MAX_FRAME_PLAINTEXT = 65535 - 16
_ERRORS: dict[str, type[CryptoError] | type[InvalidKeyError]] = {
    "InvalidKeyError": InvalidKeyError,
    "CryptoError": CryptoError,
}


def _check_counters(first: int, count: int) -> None:
    if first < 0 or first + max(count, 1) - 1 > _MAX_COUNTER:
        raise CryptoError(f"AEAD counter out of range: {first}")


def _js_error(exc: BaseException) -> Exception:
    name = str(getattr(exc, "name", "") or "")
    message = str(getattr(exc, "message", "") or exc)
    cls = _ERRORS.get(name, CryptoError)
    return cls(message if cls is not CryptoError or name == "CryptoError" else f"{name}: {message}")


class WebCryptoBackend(CryptoBackend):
    """Crypto through the JS module ``pywasm_crypto_js`` (Pyodide only)."""

    name = "web"

    def __init__(self, js_module: Any = None) -> None:
        from pyodide.ffi import JsException, to_js  # only exists inside Pyodide

        if js_module is None:
            try:
                import pywasm_crypto_js as js_module  # type: ignore[import-not-found,no-redef]
            except ImportError:
                raise CryptoError(
                    "the JS crypto module is not registered: the bootstrap must call "
                    f'pyodide.registerJsModule("{JS_MODULE_NAME}", module) before using pywasm'
                ) from None
        self._js = js_module
        self._to_js = to_js
        self._JsException = JsException
        #: "node" (node:crypto) or "noble" (@noble + WebCrypto): shown in reports.
        self.impl = str(getattr(js_module, "impl", "?"))
        self._empty = to_js(b"")
        self._keys: OrderedDict[bytes, Any] = OrderedDict()

    # --- plumbing ------------------------------------------------------------------------
    def _u8(self, data: bytes | bytearray | memoryview) -> Any:
        return self._to_js(data) if len(data) else self._empty

    def _key(self, key: bytes) -> Any:
        # A Noise session seals every frame with the same key: convert it once.
        if type(key) is not bytes:
            key = bytes(key)
        cache = self._keys
        js = cache.get(key)
        if js is None:
            js = self._to_js(key)
            cache[key] = js
            if len(cache) > KEY_CACHE_SIZE:
                cache.popitem(last=False)
        return js

    async def _call(self, fn: str, *args: Any) -> Any:
        try:
            result = getattr(self._js, fn)(*args)
            if hasattr(result, "then"):  # a Promise (JsProxy of a thenable)
                result = await result
        except self._JsException as exc:
            raise _js_error(exc) from None
        return result

    @staticmethod
    def _bytes(result: Any) -> bytes:
        return bytes(result.to_bytes())

    @staticmethod
    def _missing(result: Any) -> bool:
        # undefined -> None; null -> jsnull (guard against a module that returns null)
        return result is None or not hasattr(result, "to_bytes")

    # --- ChaCha20-Poly1305 -----------------------------------------------------------------
    async def aead_seal(self, key: bytes, counter: int, ad: bytes, plaintext: bytes) -> bytes:
        _check_counters(counter, 1)
        r = await self._call(
            "aeadSeal", self._key(key), self._to_js(noise_nonce(counter)), self._u8(ad), self._u8(plaintext)
        )
        return self._bytes(r)

    async def aead_open(self, key: bytes, counter: int, ad: bytes, ciphertext: bytes) -> bytes:
        _check_counters(counter, 1)
        r = await self._call(
            "aeadOpen", self._key(key), self._to_js(noise_nonce(counter)), self._u8(ad), self._u8(ciphertext)
        )
        if self._missing(r):
            raise DecryptError("ChaCha20-Poly1305 authentication failed")
        return self._bytes(r)

    # The batch versions cross the FFI once: frames go over concatenated, with their
    # lengths packed as uint32s, and come back concatenated.
    async def aead_seal_many(
        self, key: bytes, first_counter: int, ad: bytes, plaintexts: Sequence[bytes]
    ) -> list[bytes]:
        if not plaintexts:
            return []
        _check_counters(first_counter, len(plaintexts))
        lens = [len(p) for p in plaintexts]
        r = await self._call(
            "aeadSealMany",
            self._key(key),
            self._to_js(noise_nonce(first_counter)),
            self._u8(ad),
            self._u8(b"".join(plaintexts)),
            self._to_js(struct.pack(f"<{len(lens)}I", *lens)),
        )
        buf = memoryview(r.to_bytes())
        out: list[bytes] = []
        pos = 0
        for n in lens:
            end = pos + n + 16
            out.append(bytes(buf[pos:end]))
            pos = end
        return out

    def _framed_args(
        self, key: bytes, first_counter: int, ad: bytes, plaintexts: Sequence[bytes]
    ) -> tuple[tuple[Any, ...], int]:
        _check_counters(first_counter, len(plaintexts))
        lens = [len(p) for p in plaintexts]
        if max(lens) > _MAX_FRAME_PLAINTEXT:
            raise CryptoError(f"Noise frame of {max(lens)} plaintext bytes exceeds {_MAX_FRAME_PLAINTEXT}")
        data = plaintexts[0] if len(plaintexts) == 1 else b"".join(plaintexts)
        args = (
            self._key(key),
            self._to_js(noise_nonce(first_counter)),
            self._u8(ad),
            self._u8(data),
            self._to_js(struct.pack(f"<{len(lens)}I", *lens)),
        )
        return args, sum(lens) + (2 + 16) * len(lens)

    async def aead_seal_framed(
        self, key: bytes, first_counter: int, ad: bytes, plaintexts: Sequence[bytes]
    ) -> bytes | bytearray:
        # Framed in JS: one buffer comes back, no per-frame slicing and re-joining here.
        if not plaintexts:
            return b""
        args, _ = self._framed_args(key, first_counter, ad, plaintexts)
        return self._bytes(await self._call("aeadSealFramed", *args))

    can_defer_seal = True

    def aead_seal_framed_deferred(
        self, key: bytes, first_counter: int, ad: bytes, plaintexts: Sequence[bytes]
    ) -> tuple[Any, int] | None:
        """``(JS box {pending: Promise or Uint8Array of the framed bytes}, its length)``.

        Not awaited: the box goes to the WebSocket shim's ``sendLater`` as it is.

        The plaintext is copied into JS before this returns, so the caller may reuse its
        buffers at once. A failure after that (it cannot come from the inputs, which are
        checked here) rejects the Promise; the WebSocket shim then fails the connection.
        """
        if not plaintexts:
            return None
        args, size = self._framed_args(key, first_counter, ad, plaintexts)
        try:
            return self._js.aeadSealFramedLater(*args), size
        except self._JsException as exc:
            raise _js_error(exc) from None

    async def aead_open_many(
        self, key: bytes, first_counter: int, ad: bytes, ciphertexts: Sequence[bytes]
    ) -> list[bytes]:
        if not ciphertexts:
            return []
        _check_counters(first_counter, len(ciphertexts))
        lens = [len(c) for c in ciphertexts]
        if min(lens) < 16:
            raise DecryptError("ChaCha20-Poly1305 authentication failed")
        r = await self._call(
            "aeadOpenMany",
            self._key(key),
            self._to_js(noise_nonce(first_counter)),
            self._u8(ad),
            self._u8(b"".join(ciphertexts)),
            self._to_js(struct.pack(f"<{len(lens)}I", *lens)),
        )
        if self._missing(r):
            raise DecryptError("ChaCha20-Poly1305 authentication failed")
        buf = memoryview(r.to_bytes())
        out: list[bytes] = []
        pos = 0
        for n in lens:
            end = pos + n - 16
            out.append(bytes(buf[pos:end]))
            pos = end
        return out

    can_open_framed = True

    async def aead_open_framed(
        self, key: bytes, first_counter: int, ad: bytes, rest: object, data: object
    ) -> FramedOpen:
        """Framing and decryption in JS (``aeadOpenFramed``); ``data`` may be a WebSocket
        shim read boxed as ``{pending}`` (``readLater``: a Uint8Array, null, or a Promise of
        either, which JS awaits itself), so one Python await covers a burst of received
        messages. The box matters: a Promise returned to Python becomes a Python Future,
        and handing that back to JS would pass a proxy destroyed when the call returns."""
        _check_counters(first_counter, 1)
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = self._u8(data) if len(data) else None
        r = await self._call(
            "aeadOpenFramed", self._key(key), self._to_js(noise_nonce(first_counter)), self._u8(ad), rest, data
        )
        frames = int(r.frames)
        if frames:
            plain = r.plain
            if self._missing(plain):
                raise DecryptError("ChaCha20-Poly1305 authentication failed")
            text = plain.to_bytes()
        else:
            text = b""
        return FramedOpen(text, frames, r.rest, bool(r.ended), int(r.malformed))

    # --- X25519 --------------------------------------------------------------------------------
    async def x25519_public(self, private: bytes) -> bytes:
        return self._bytes(await self._call("x25519Public", self._u8(private)))

    async def x25519(self, private: bytes, peer_public: bytes) -> bytes:
        return self._bytes(await self._call("x25519Shared", self._u8(private), self._u8(peer_public)))

    # --- Ed25519 ---------------------------------------------------------------------------------
    async def ed25519_public(self, seed: bytes) -> bytes:
        return self._bytes(await self._call("ed25519Public", self._u8(seed)))

    async def ed25519_sign(self, seed: bytes, message: bytes) -> bytes:
        return self._bytes(await self._call("ed25519Sign", self._u8(seed), self._u8(message)))

    async def ed25519_verify(self, public: bytes, message: bytes, signature: bytes) -> bool:
        return bool(
            await self._call("ed25519Verify", self._u8(public), self._u8(message), self._u8(signature))
        )

    # --- ECDSA ---------------------------------------------------------------------------------------
    async def ecdsa_public(self, curve: Curve, private: bytes) -> bytes:
        return self._bytes(await self._call("ecdsaPublic", str(curve), self._u8(private)))

    async def ecdsa_sign(self, curve: Curve, private: bytes, message: bytes) -> bytes:
        return self._bytes(await self._call("ecdsaSign", str(curve), self._u8(private), self._u8(message)))

    async def ecdsa_verify(self, curve: Curve, public: bytes, message: bytes, signature: bytes) -> bool:
        if len(public) not in (33, 65):
            raise InvalidKeyError(f"{curve} public key must be 33 or 65 bytes, got {len(public)}")
        return bool(
            await self._call(
                "ecdsaVerify", str(curve), self._u8(public), self._u8(message), self._u8(signature)
            )
        )

    # --- RSA --------------------------------------------------------------------------------------------
    async def rsa_verify(self, public_spki: bytes, message: bytes, signature: bytes) -> bool:
        return bool(
            await self._call("rsaVerify", self._u8(public_spki), self._u8(message), self._u8(signature))
        )

    async def rsa_sign(self, private_pkcs1: bytes, message: bytes) -> bytes:
        return self._bytes(await self._call("rsaSign", self._u8(private_pkcs1), self._u8(message)))

    async def rsa_generate(self, bits: int) -> tuple[bytes, bytes]:
        if bits < 1024 or bits > 16384:
            raise InvalidKeyError(f"unsupported RSA key size {bits}")
        pair = await self._call("rsaGenerate", int(bits))
        return self._bytes(pair[0]), self._bytes(pair[1])

    async def rsa_public_from_private(self, private_pkcs1: bytes) -> bytes:
        return self._bytes(await self._call("rsaPublicFromPrivate", self._u8(private_pkcs1)))


__all__ = ["WebCryptoBackend", "JS_MODULE_NAME", "KEY_CACHE_SIZE"]
