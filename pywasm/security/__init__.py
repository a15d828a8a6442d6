"""Security protocols (asyncio drivers over sans-IO cores)."""

from __future__ import annotations

from .noise import NoiseConnection, NoiseSecurity

__all__ = ["NoiseConnection", "NoiseSecurity"]
