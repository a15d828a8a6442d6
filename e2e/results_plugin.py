"""Machine-readable results of an e2e run: .cache/e2e-results.json (or $PYWASM_E2E_RESULTS).

One entry per test and browser: test id, browser, feature (the row of the README's browser
matrix), the APIs the feature needs, and the outcome:

* ``passed`` / ``failed`` / ``error`` (setup or teardown failed);
* ``unsupported``: the browser lacks an API the feature needs, as measured by the probe in
  that browser (the reason is kept: e.g. "WebKitGTK 2.50.6: typeof RTCPeerConnection ===
  'undefined'"); the test did not run;
* ``skipped``: any other skip (there should be none).

A test that drives several browsers itself (not parametrized; ``browser_feature(...,
browsers=("chromium", "firefox"))``, e.g. a Chromium page talking to a Firefox page) runs
once and gets one entry per browser it drives (id ``<nodeid>[<browser>]``), all with the
one outcome, plus ``"browsers"``: the browsers of that test (other columns show n/a).

Plus, per browser, its version and the capability probe (e2e/browsers.py PROBE_JS).
scripts/browser_matrix.py renders the file as the README's feature-by-browser table.

A run updates the file: its tests' entries replace those of the same test id, others
are kept (so running one browser or one module alone does not erase the rest; each entry
carries the time it ran). PYWASM_E2E_RESULTS_FRESH=1 starts from an empty file.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import pytest

from e2e import browsers

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PATH = ROOT / ".cache" / "e2e-results.json"
UNSUPPORTED = "unsupported: "
SCHEMA = 1


def results_path() -> Path:
    return Path(os.environ.get("PYWASM_E2E_RESULTS") or DEFAULT_PATH)


def feature_of(item: pytest.Item) -> tuple[str, tuple[str, ...]]:
    """(feature label, APIs it needs) from the closest browser_feature marker, else the module."""
    m = item.get_closest_marker("browser_feature")
    if m is not None:
        label = str(m.args[0]) if m.args else browsers.feature_from_module(Path(str(item.fspath)).stem)
        return label, browsers.needs_for(label, m.kwargs.get("needs", ()))
    label = browsers.feature_from_module(Path(str(item.fspath)).stem)
    return label, browsers.needs_for(label)


def in_matrix(item: pytest.Item) -> bool:
    """False for harness self-tests (``browser_feature(..., matrix=False)``): not a product row."""
    m = item.get_closest_marker("browser_feature")
    return bool(m.kwargs.get("matrix", True)) if m is not None else True


def browser_of(item: pytest.Item) -> str | None:
    cs = getattr(item, "callspec", None)
    return cs.params.get("browser_name") if cs is not None else None


def multi_browsers(item: pytest.Item) -> tuple[str, ...]:
    """The browsers a non-parametrized test drives itself (``browser_feature(browsers=...)``)."""
    m = item.get_closest_marker("browser_feature")
    return tuple(m.kwargs.get("browsers", ())) if m is not None and browser_of(item) is None else ()


def _skip_reason(report: pytest.TestReport) -> str:
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        return str(lr[2]).removeprefix("Skipped: ")
    return str(lr)


class ResultsRecorder:
    """pytest plugin: collects one row per e2e test and writes the JSON at session end."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.row_ids: dict[str, list[str]] = {}  # nodeid -> its rows (several for a multi-browser test)
        self.browser_meta: dict[str, dict[str, Any]] = {}
        self.t0 = time.monotonic()
        self.browser_wall: dict[str, float] = {}

    def record_browser(self, name: str, version: str, caps: dict[str, Any]) -> None:
        self.browser_meta[name] = {"label": browsers.LABELS.get(name, name), "version": version, "caps": caps}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self._started = time.monotonic()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        name = browser_of(item)
        feature, needs = feature_of(item)
        several = multi_browsers(item)
        ids: list[str] = []
        for b in several or (name,):
            rid = f"{item.nodeid}[{b}]" if several else item.nodeid
            ids.append(rid)
            self.rows[rid] = {
                "id": rid,
                "test": item.nodeid.replace(f"[{b}]", "").replace(f"[{b}-", "[").replace(f"-{b}]", "]")
                if b else item.nodeid,
                "browser": b,
                "feature": feature,
                "needs": list(needs),
                "matrix": in_matrix(item),
                "outcome": "passed",
                "reason": "",
                "duration_s": 0.0,
                "at": _now(),
                **({"browsers": list(several)} if several else {}),
            }
        self.row_ids[item.nodeid] = ids

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for rid in self.row_ids.get(report.nodeid, ()):
            self._log_row(self.rows[rid], report)

    def _log_row(self, row: dict[str, Any], report: pytest.TestReport) -> None:
        row["duration_s"] = round(row["duration_s"] + report.duration, 3)
        if report.skipped:
            reason = _skip_reason(report)
            if reason.startswith(UNSUPPORTED):
                row["outcome"], row["reason"] = "unsupported", reason[len(UNSUPPORTED):]
            else:
                row["outcome"], row["reason"] = "skipped", reason
        elif report.failed:
            if row["outcome"] in ("passed", "unsupported", "skipped"):
                row["outcome"] = "failed" if report.when == "call" else "error"
                row["reason"] = _first_line(report)
        if row["browser"]:
            self.browser_wall[row["browser"]] = self.browser_wall.get(row["browser"], 0.0) + report.duration

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.rows:
            return
        path = results_path()
        rows = dict(self.rows)
        meta = dict(self.browser_meta)
        if not os.environ.get("PYWASM_E2E_RESULTS_FRESH") and path.exists():
            try:
                old = json.loads(path.read_text())
                if old.get("schema") == SCHEMA:
                    merged = {r["id"]: r for r in old.get("results", [])}
                    merged.update(rows)  # this run's entries win; order: first seen
                    rows = merged
                    for k, v in old.get("browsers", {}).items():
                        meta.setdefault(k, v)
            except (OSError, ValueError, KeyError, TypeError):
                pass  # an unreadable old file is replaced
        doc = {
            "schema": SCHEMA,
            "generated": _now(),
            "host": f"{platform.machine()}, {os.cpu_count()} cores",
            "last_run": {
                "wall_s": round(time.monotonic() - self.t0, 1),
                "test_s_by_browser": {k: round(v, 1) for k, v in self.browser_wall.items()},
                "tests": len(self.rows),
            },
            "browsers": meta,
            "results": list(rows.values()),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(path)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _first_line(report: pytest.TestReport) -> str:
    """One line saying why: the assertion's first line, or for a Python traceback from the
    page (Pyodide) its last "...Error: ..." line rather than "Traceback (most recent ...)"."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = str(crash.message) if crash is not None and crash.message else str(report.longrepr or "")
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    if not lines:
        return ""
    line = lines[0]
    if "Traceback (most recent call last)" in line:
        errs = [l for l in lines[1:] if "Error" in l.split(":", 1)[0] or l.startswith(("E ", "pywasm."))]
        line = errs[-1] if errs else lines[-1]
    return line[:300]
