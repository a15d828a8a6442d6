"""libp2p identities: keys (:mod:`.keys`), peer ids (:mod:`.peer_id`), key files (:mod:`.keyfile`)."""

from __future__ import annotations

from . import keyfile
from .keyfile import load as load_key_file
from .keyfile import load_or_create
from .keyfile import save as save_key_file
from .keys import KeyType, PrivateKey, PublicKey
from .peer_id import PeerId

__all__ = [
    "KeyType",
    "PeerId",
    "PrivateKey",
    "PublicKey",
    "keyfile",
    "load_key_file",
    "load_or_create",
    "save_key_file",
]
