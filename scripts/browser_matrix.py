#!/usr/bin/env python3
"""Render the e2e suite's results as a feature-by-browser Markdown table.

    .venv/bin/python -m pytest e2e                 # writes .cache/e2e-results.json
    python3 scripts/browser_matrix.py              # prints the table
    python3 scripts/browser_matrix.py --write      # rewrites README.md's marked block
    python3 scripts/browser_matrix.py --check      # exit 1 when README.md's block is stale
                                                   # (ignoring the line with the run's date)

The block sits between ``<!-- browser-matrix:start -->`` and ``<!-- browser-matrix:end -->``
in README.md; nothing outside the markers is touched. Every cell comes from the results
file (e2e/results_plugin.py): tests that passed, failed or could not run because the
browser lacks an API (with the reason measured in that browser, as a numbered note), and
the capability probe of each browser. Nothing here is written by hand.

Standard library only (runs with any python3).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / ".cache" / "e2e-results.json"
README = ROOT / "README.md"
START = "<!-- browser-matrix:start -->"
END = "<!-- browser-matrix:end -->"
ORDER = ("chromium", "firefox", "webkit")

# Probe rows: (caps key, label, how a missing API was detected)
PROBE_ROWS = (
    ("WebAssembly", "WebAssembly (Pyodide)", "typeof WebAssembly === 'undefined'"),
    ("WebSocket", "WebSocket", "typeof WebSocket === 'undefined'"),
    ("WebTransport", "WebTransport", "typeof WebTransport === 'undefined'"),
    ("RTCPeerConnection", "RTCPeerConnection", "typeof RTCPeerConnection === 'undefined'"),
    ("webrtcLoopback", "WebRTC data channel, two peer connections in one page", None),
    ("isSecureContext", "secure context at http://127.0.0.1 (WebCrypto, WebTransport)", "isSecureContext is false"),
    ("webcryptoChaCha20Poly1305", "WebCrypto ChaCha20-Poly1305 (else pywasm uses @noble)", None),
    ("webcryptoEd25519", "WebCrypto Ed25519", None),
    ("webcryptoX25519", "WebCrypto X25519", None),
    ("webcryptoRSA", "WebCrypto RSA (PKCS#1 v1.5)", None),
)


class Notes:
    """Numbered footnotes, one per distinct text."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def ref(self, text: str) -> str:
        text = " ".join(text.split())
        if text not in self.texts:
            self.texts.append(text)
        return f"[{self.texts.index(text) + 1}]"

    def render(self) -> list[str]:
        return [f"{i}. {t.replace('|', '/')}" for i, t in enumerate(self.texts, 1)]


def load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"{path} not found: run `.venv/bin/python -m pytest e2e` first")


def browsers_in(doc: dict[str, Any]) -> list[str]:
    seen = set(doc.get("browsers", {})) | {r["browser"] for r in doc["results"] if r.get("browser")}
    return [b for b in ORDER if b in seen] + sorted(seen - set(ORDER))


def header(doc: dict[str, Any], names: list[str]) -> str:
    cols = []
    for b in names:
        meta = doc.get("browsers", {}).get(b, {})
        cols.append(f"{meta.get('label', b)} {meta.get('version', '')}".strip())
    return "| feature | " + " | ".join(cols) + " | tests |"


def cell(rows: list[dict[str, Any]], notes: Notes) -> str:
    if not rows:
        return "not run"
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["outcome"], []).append(r)
    n = len(rows)
    parts = []
    bad = by.get("failed", []) + by.get("error", [])
    if bad:
        first = bad[0]
        parts.append(f"**FAIL** {len(bad)}/{n} " + notes.ref(f"{first['test']}: {first.get('reason') or first['outcome']}"))
    if by.get("passed"):
        parts.append("pass" if len(by["passed"]) == n else f"pass {len(by['passed'])}/{n}")
    for kind in ("unsupported", "skipped"):
        if by.get(kind):
            reasons = OrderedDict((r.get("reason") or kind, None) for r in by[kind])
            refs = " ".join(notes.ref(f"{kind}: {why}") for why in reasons)
            label = kind if len(by[kind]) == n else f"{kind} {len(by[kind])}/{n}"
            parts.append(f"{label} {refs}")
    return ", ".join(parts)


def feature_table(doc: dict[str, Any], names: list[str], notes: Notes) -> list[str]:
    features: OrderedDict[str, dict[str, list[dict[str, Any]]]] = OrderedDict()
    files: dict[str, set[str]] = {}
    for r in doc["results"]:
        if not r.get("browser") or r.get("matrix") is False:
            continue  # no browser (e.g. a relay-only check) or a harness self-test
        features.setdefault(r["feature"], {}).setdefault(r["browser"], []).append(r)
        files.setdefault(r["feature"], set()).add(r["test"].split("::")[0].rsplit("/", 1)[-1])
    out = [header(doc, names), "|---" * (len(names) + 2) + "|"]
    for feature, per in features.items():
        # a test between given browsers (e.g. Chromium <-> Firefox) has no cell in the others
        only = {b for rows in per.values() for r in rows for b in r.get("browsers", ())}
        cells = [cell(per.get(b, []), notes) if not only or b in only else "n/a" for b in names]
        tests = ", ".join(f"`{f}`" for f in sorted(files[feature]))
        out.append(f"| {feature.replace('|', '/')} | " + " | ".join(cells) + f" | {tests} |")
    return out


def probe_cell(caps: dict[str, Any] | None, key: str, how: str | None, notes: Notes, extra: str = "") -> str:
    if caps is None:
        return "not run"
    v = caps.get(key)
    if v is True:
        return "yes" + extra
    if v is None and key not in caps:
        # the probe skips what depends on a missing API (e.g. no crypto.subtle)
        return "no " + notes.ref("not probed: the API it depends on is missing")
    return "no " + notes.ref(str(v) if isinstance(v, str) else (how or f"{key} missing"))


def probe_table(doc: dict[str, Any], names: list[str], notes: Notes) -> list[str]:
    metas = doc.get("browsers", {})
    out = ["| browser API (probed at run time) | " + " | ".join(
        f"{metas.get(b, {}).get('label', b)}" for b in names) + " |", "|---" * (len(names) + 1) + "|"]
    for key, label, how in PROBE_ROWS:
        cells = []
        for b in names:
            caps = metas.get(b, {}).get("caps")
            extra = ""
            if key == "webrtcLoopback" and caps and caps.get(key) is True and "webrtcLoopbackMs" in caps:
                extra = f" ({caps['webrtcLoopbackMs']} ms)"
            if key == "webrtcLoopback" and caps is not None and caps.get("RTCPeerConnection") is not True:
                cells.append("no " + notes.ref(how_missing("RTCPeerConnection")))
                continue
            cells.append(probe_cell(caps, key, how, notes, extra))
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out


def how_missing(api: str) -> str:
    return next(h for k, _, h in PROBE_ROWS if k == api)


def span(doc: dict[str, Any]) -> str:
    ats = sorted(r.get("at", "") for r in doc["results"] if r.get("at"))
    if not ats:
        return doc.get("generated", "?")
    day = lambda t: t.replace("T", " ").rstrip("Z")[:16]  # noqa: E731
    return f"{day(ats[0])} UTC" if day(ats[0]) == day(ats[-1]) else f"{day(ats[0])} to {day(ats[-1])} UTC"


def render(doc: dict[str, Any]) -> str:
    names = browsers_in(doc)
    notes = Notes()
    feats = feature_table(doc, names, notes)
    probes = probe_table(doc, names, notes)
    counts: dict[str, int] = {}
    for r in doc["results"]:
        if r.get("browser"):
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    lines = [
        "### Feature by browser",
        "",
        f"Generated by `scripts/browser_matrix.py` from e2e results of {span(doc)} "
        f"({doc.get('host', '')}; {summary}), not written by hand. Each e2e test runs once per browser: "
        "Debian Chromium and Firefox ESR through Playwright (Firefox over WebDriver BiDi), Debian "
        "WebKitGTK through WebKitWebDriver. \"unsupported\" means the browser lacks an API the "
        "feature needs, as measured in that browser; the test did not run there.",
        "",
        *feats,
        "",
        *probes,
        "",
        *notes.render(),
    ]
    return "\n".join(lines).rstrip() + "\n"


def replace_block(text: str, block: str) -> str:
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise SystemExit(f"README.md needs exactly one {START} ... {END} pair")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}{END}{tail}"


def _sans_provenance(text: str) -> str:
    return "\n".join(l for l in text.splitlines() if not l.startswith("Generated by `scripts/browser_matrix.py`"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    ap.add_argument("--readme", type=Path, default=README)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--write", action="store_true", help="rewrite the marked block of the README")
    g.add_argument("--check", action="store_true", help="exit 1 when the README's block differs")
    args = ap.parse_args()
    block = render(load(args.results))
    if not (args.write or args.check):
        sys.stdout.write(block)
        return 0
    text = args.readme.read_text()
    new = replace_block(text, block)
    if args.check:
        if _sans_provenance(new) != _sans_provenance(text):
            print(f"{args.readme}: the browser matrix is stale; run scripts/browser_matrix.py --write", file=sys.stderr)
            return 1
        return 0
    if new != text:
        tmp = args.readme.with_suffix(".md.tmp")
        tmp.write_text(new)
        tmp.replace(args.readme)
        print(f"rewrote the browser matrix in {args.readme}")
    else:
        print(f"{args.readme}: browser matrix unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
