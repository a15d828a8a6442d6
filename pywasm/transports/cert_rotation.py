"""Certificate rotation for a WebTransport server with self-signed certificates (pure).

The libp2p WebTransport spec recommends: at first boot make a certificate valid from now,
and a second one whose validity starts when the first ends; advertise both hashes; when
the first expires, serve the second and make a third. Browsers accept a certificate by
hash only if its validity is at most 14 days.

Our schedule (all times are seconds on an injected clock, so tests need not wait):

* certificate k *serves* during ``[start_k, start_k + period)`` with ``start_{k+1} =
  start_k + period`` (default period 12 days);
* its X.509 validity is that window widened by ``skew`` on both sides (default 1 hour):
  ``period + 2 * skew`` < 14 days, and a client whose clock is off by less than ``skew``
  still accepts it at both ends of its window;
* the store keeps at most three certificates: the previous one (its hash stays in the
  Noise extension, as the spec advises for recently expired ones), the serving one, and
  the next one (made ahead, so its hash is advertised a whole period before it serves);
* the multiaddr advertises every kept certificate that has not expired yet, so a hash
  leaves the address only once its certificate is past ``not_after``;
* after a long downtime (nothing kept is valid any more) a fresh chain starts at ``now``.

Certificates are made by an injected ``make_cert(not_before, not_after) -> (der, key_pem)``
(the relay uses ``cryptography``; tests use fakes), and the state round-trips through
JSON (:meth:`CertRotation.to_json` / :meth:`CertRotation.from_json`) for persistence.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..errors import ConfigError, DecodeError
from .webtransport_addr import MAX_CERT_VALIDITY, certhash_of

DEFAULT_PERIOD = 12 * 24 * 3600.0
DEFAULT_SKEW = 3600.0
STATE_VERSION = 1

MakeCert = Callable[[float, float], "tuple[bytes, bytes]"]


@dataclass(frozen=True)
class CertRecord:
    serve_from: float
    serve_until: float
    not_before: float
    not_after: float
    der: bytes
    key_pem: bytes

    @property
    def certhash(self) -> bytes:
        return certhash_of(self.der)

    def to_dict(self) -> dict[str, Any]:
        return {
            "serve_from": self.serve_from,
            "serve_until": self.serve_until,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "der": base64.b64encode(self.der).decode(),
            "key_pem": self.key_pem.decode(),
        }

    @classmethod
    def from_dict(cls, d: Any) -> "CertRecord":
        try:
            rec = cls(
                serve_from=float(d["serve_from"]),
                serve_until=float(d["serve_until"]),
                not_before=float(d["not_before"]),
                not_after=float(d["not_after"]),
                der=base64.b64decode(d["der"], validate=True),
                key_pem=str(d["key_pem"]).encode(),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DecodeError(f"bad certificate record: {exc}") from None
        if not (rec.not_before <= rec.serve_from < rec.serve_until <= rec.not_after):
            raise DecodeError("bad certificate record: inconsistent validity window")
        return rec


class CertRotation:
    """The kept certificates and the rules above; :meth:`refresh` applies them at ``now``."""

    def __init__(
        self,
        make_cert: MakeCert,
        *,
        period: float = DEFAULT_PERIOD,
        skew: float = DEFAULT_SKEW,
        records: Sequence[CertRecord] = (),
    ) -> None:
        if period <= 0 or skew < 0:
            raise ConfigError("certificate period must be positive and skew non-negative")
        if period + 2 * skew >= MAX_CERT_VALIDITY:
            raise ConfigError(
                f"certificate validity {period + 2 * skew:g} s must stay under 14 days ({MAX_CERT_VALIDITY:g} s): "
                "browsers refuse longer ones"
            )
        self.make_cert = make_cert
        self.period = float(period)
        self.skew = float(skew)
        self.records: list[CertRecord] = sorted(records, key=lambda r: r.serve_from)

    def _new(self, start: float) -> CertRecord:
        nb, na = start - self.skew, start + self.period + self.skew
        der, key_pem = self.make_cert(nb, na)
        return CertRecord(start, start + self.period, nb, na, bytes(der), bytes(key_pem))

    def serving_at(self, now: float) -> CertRecord | None:
        for r in self.records:
            if r.serve_from <= now < r.serve_until:
                return r
        return None

    def refresh(self, now: float) -> bool:
        """Bring the kept set up to date at ``now``; True when it changed (persist it)."""
        changed = False
        current = self.serving_at(now)
        if current is None:
            # first boot, downtime past every kept certificate, or a clock that jumped back
            # before the chain: a fresh chain from now (old addresses cannot work anyway)
            current = self._new(now)
            self.records = [current]
            changed = True
        idx = self.records.index(current)
        if idx > 1:
            # keep one previous certificate (for the Noise extension), drop older ones
            self.records = self.records[idx - 1 :]
            changed = True
        if not any(r.serve_from == current.serve_until for r in self.records):
            self.records = [r for r in self.records if r.serve_from <= current.serve_from]
            self.records.append(self._new(current.serve_until))
            changed = True
        return changed

    def next_change(self, now: float) -> float:
        """When :meth:`refresh` next has work: the end of the serving window."""
        return self.serving(now).serve_until

    def serving(self, now: float) -> CertRecord:
        cur = self.serving_at(now)
        if cur is None:
            raise ConfigError("no certificate serves now: call refresh(now) first")
        return cur

    def advertised(self, now: float) -> list[bytes]:
        """Hashes for the multiaddr: every kept certificate not yet expired, oldest first."""
        return [r.certhash for r in self.records if r.not_after > now]

    def noise_certhashes(self) -> list[bytes]:
        """Hashes for the Noise extension: every kept certificate (the previous one too)."""
        return [r.certhash for r in self.records]

    def to_json(self) -> str:
        return json.dumps({"version": STATE_VERSION, "period": self.period, "skew": self.skew,
                           "certs": [r.to_dict() for r in self.records]}, indent=1)

    @classmethod
    def from_json(cls, text: str, make_cert: MakeCert, *, period: float = DEFAULT_PERIOD,
                  skew: float = DEFAULT_SKEW) -> "CertRotation":
        """Load persisted state; :class:`DecodeError` if it is not ours. A state written with
        another period/skew is kept as is (its windows are still contiguous)."""
        try:
            d = json.loads(text)
        except ValueError as exc:
            raise DecodeError(f"certificate state is not JSON: {exc}") from None
        if not isinstance(d, dict) or d.get("version") != STATE_VERSION or not isinstance(d.get("certs"), list):
            raise DecodeError("certificate state has an unknown format")
        records = [CertRecord.from_dict(c) for c in d["certs"]][:3]
        return cls(make_cert, period=period, skew=skew, records=records)


__all__ = [
    "DEFAULT_PERIOD",
    "DEFAULT_SKEW",
    "CertRecord",
    "CertRotation",
]
