"""The relay's WebTransport certificates: made with ``cryptography``, rotated by
:class:`pywasm.transports.cert_rotation.CertRotation`, persisted in the data directory.

``DIR/webtransport-certs.json`` holds the kept certificates (DER, PKCS#8 key PEM, serving
window). It is written atomically (temporary file, fsync, ``os.replace``) with mode 0600,
so a crash never leaves a half-written file and the key is readable by the owner only.
An unreadable or foreign file is not overwritten silently: it is moved aside to
``*.bad-<time>`` and a fresh chain starts (logged), because refusing to start would make a
corrupt file take the whole relay down.
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from pathlib import Path
from typing import Callable

from pywasm.errors import ConfigError, DecodeError
from pywasm.fileio import write_private_atomic
from pywasm.transports.cert_rotation import DEFAULT_PERIOD, DEFAULT_SKEW, CertRecord, CertRotation

CERT_FILE_NAME = "webtransport-certs.json"
FILE_MODE = 0o600

log = logging.getLogger("pywasm_relay.certs")


def make_ecdsa_cert(not_before: float, not_after: float) -> tuple[bytes, bytes]:
    """A self-signed ECDSA P-256 certificate (browsers refuse RSA for hash-verified ones).

    ``not_after - not_before`` must stay under 14 days (the caller's schedule ensures it).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "libp2p-webtransport")])
    utc = datetime.timezone.utc
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime.fromtimestamp(int(not_before), utc))
        .not_valid_after(datetime.datetime.fromtimestamp(int(not_after), utc))
        # Chromium's hash-pinned verifier (quiche CertificateView) rejects a certificate
        # without any extension ("certificate unknown"): one harmless extension is enough
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return der, pem


class CertStore:
    """Rotation state bound to a file and a clock (``clock()`` -> seconds since the epoch)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        make_cert: Callable[[float, float], tuple[bytes, bytes]] = make_ecdsa_cert,
        period: float = DEFAULT_PERIOD,
        skew: float = DEFAULT_SKEW,
    ) -> None:
        self.path = Path(data_dir) / CERT_FILE_NAME
        self.clock = clock
        self.rotation = self._load(make_cert, period, skew)
        self.refresh()

    def _load(self, make_cert: Callable[[float, float], tuple[bytes, bytes]], period: float,
              skew: float) -> CertRotation:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return CertRotation(make_cert, period=period, skew=skew)
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            return CertRotation.from_json(text, make_cert, period=period, skew=skew)
        except DecodeError as exc:
            aside = self.path.with_name(f"{self.path.name}.bad-{int(time.time())}")
            log.warning("%s is unusable (%s): moved to %s, starting a new certificate chain", self.path, exc, aside)
            os.replace(self.path, aside)
            return CertRotation(make_cert, period=period, skew=skew)

    def refresh(self) -> bool:
        """Apply the schedule now; persist when it changed. True when it changed."""
        changed = self.rotation.refresh(self.clock())
        if changed:
            try:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                write_private_atomic(self.path, self.rotation.to_json().encode(), FILE_MODE)
            except OSError as exc:
                raise ConfigError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        return changed

    @property
    def serving(self) -> CertRecord:
        return self.rotation.serving(self.clock())

    def advertised(self) -> list[bytes]:
        return self.rotation.advertised(self.clock())

    def noise_certhashes(self) -> list[bytes]:
        return self.rotation.noise_certhashes()

    def seconds_to_next_change(self) -> float:
        now = self.clock()
        return max(0.0, self.rotation.next_change(now) - now)


__all__ = ["CERT_FILE_NAME", "CertStore", "make_ecdsa_cert"]
