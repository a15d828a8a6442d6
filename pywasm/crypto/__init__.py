"""Crypto backends: see :mod:`pywasm.crypto.backend`."""

from .backend import CryptoBackend, get_backend, noise_nonce, set_backend

__all__ = ["CryptoBackend", "get_backend", "set_backend", "noise_nonce"]
