"""Errors of the Kademlia DHT (all :class:`~pywasm.errors.PywasmError`)."""

from __future__ import annotations

from ..errors import ProtocolError, PywasmError


class DHTError(PywasmError):
    """A DHT operation failed; ``str()`` says why in one line."""


class RecordValidationError(ProtocolError):
    """A record (from a user or a remote peer) failed its namespace's validator, or its
    namespace has no validator (we refuse to store what we cannot check)."""


class NotFoundError(DHTError):
    """A lookup ended without finding the peer, value or providers asked for."""


class QueryError(DHTError):
    """One request to one peer failed (dial, stream, timeout or a bad answer)."""


__all__ = ["DHTError", "RecordValidationError", "NotFoundError", "QueryError"]
