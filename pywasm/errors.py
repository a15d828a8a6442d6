"""Typed errors.

Every error pywasm raises on purpose derives from :class:`PywasmError`, so a caller
(and the fuzz tests) can tell "the peer sent garbage" or "you passed a bad argument"
apart from a bug. Network input that fails to parse raises a :class:`DecodeError`
or :class:`ProtocolError`; it closes that stream or connection, never the node.
"""

from __future__ import annotations


class PywasmError(Exception):
    """Base class of every error raised on purpose by pywasm."""


# --- malformed bytes or text -------------------------------------------------
class DecodeError(PywasmError, ValueError):
    """Input bytes or text do not parse (varint, multibase, multiaddr, protobuf ...)."""


class VarintError(DecodeError):
    """An unsigned varint is truncated, too long (> 9 bytes) or not minimally encoded."""


class MultibaseError(DecodeError):
    """Unknown multibase prefix or invalid characters for that base."""


class MultihashError(DecodeError):
    """A multihash is truncated or has a length that does not match its digest."""


class CidError(DecodeError):
    """A CID (text or binary) is malformed: bad version, codec or multihash."""


class MultiaddrError(DecodeError):
    """A multiaddr (text or binary) is malformed or names an unknown protocol."""


class ProtobufError(DecodeError):
    """A protobuf message is truncated, has a wrong wire type, or breaks a schema rule."""


class InvalidKeyError(DecodeError):
    """A key (public or private) is malformed or of an unsupported type."""


class InvalidPeerIdError(DecodeError):
    """A peer id string or multihash is not a valid libp2p peer id."""


# --- crypto -----------------------------------------------------------------
class CryptoError(PywasmError):
    """A cryptographic operation failed (not: a signature that does not verify)."""


class DecryptError(CryptoError):
    """An AEAD tag did not verify: the ciphertext was altered or the key is wrong."""


class UnsupportedError(PywasmError):
    """The operation is not available on this platform or crypto backend."""


# --- protocol violations by the remote ---------------------------------------
class ProtocolError(PywasmError):
    """The remote peer broke a protocol rule."""


class HandshakeError(ProtocolError):
    """A security or muxer handshake failed."""


class NoiseError(HandshakeError):
    """The Noise handshake or a Noise transport frame failed."""


class PeerIdMismatchError(HandshakeError):
    """The authenticated remote peer is not the peer we meant to reach."""


class NegotiationError(ProtocolError):
    """multistream-select found no protocol both sides support, or its framing broke."""


class MuxerError(ProtocolError):
    """A stream multiplexer (yamux, mplex) received an invalid frame or state."""


class LimitExceededError(ProtocolError):
    """A configured bound (message size, stream count, window, queue) would be exceeded."""


# --- lifecycle ---------------------------------------------------------------
class StreamResetError(PywasmError):
    """The stream was reset (by either side); no more data flows either way."""


class StreamClosedError(PywasmError):
    """Writing to a stream whose write side is closed, or using a closed stream."""


class ConnectionClosedError(PywasmError):
    """The underlying connection is gone."""


class LimitedConnectionError(PywasmError):
    """A stream was asked on a limited (relayed) connection by a protocol that did not
    opt in to run there; dial the peer directly or pass ``allow_limited=True``."""


class TransportError(PywasmError):
    """A transport could not dial or listen."""


class DialError(PywasmError):
    """Dialing a peer failed; ``str()`` says why in one line."""


class HandshakeTimeoutError(HandshakeError, TimeoutError):
    """A handshake (security, muxer, multistream) did not finish in time."""


class ConfigError(PywasmError, ValueError):
    """A user-supplied option, flag or file is invalid; ``str()`` says what to do."""
