#!/usr/bin/env bash
# The relay's optional aiopquic WebTransport backend (pywasm-relay --webtransport-backend
# aiopquic, relay-server/pywasm_relay/webtransport_pquic.py). aiopquic (picoquic underneath)
# ships wheels for CPython >= 3.12 only, while the project's core targets 3.11, so the
# backend gets a venv of its own. Idempotent and stamped like scripts/setup.sh (helpers
# from scripts/setup_lib.sh):
#
#   bash scripts/setup_pquic.sh                  # create/refresh .cache/venv-relay-pquic
#   PY312=/path/to/python3.12 bash scripts/setup_pquic.sh
#   PYWASM_SETUP_FORCE=1 bash scripts/setup_pquic.sh
#
# Sections:
#   pquic_python  finds a CPython >= 3.12: $PY312, else /root/.pyenv/versions/3.1[2-9]*,
#                 else python3.12 / python3.13 on PATH. None: a loud warning, and setup
#                 goes on (the backend is optional; its tests fail and say why).
#   pquic_venv    .cache/venv-relay-pquic: the project (editable, with the test extra) plus
#                 aiopquic==0.6.1; stamped on the interpreter, pyproject.toml and the pin.
#
# Network: only PyPI (pip) is used here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
STAMPS="$CACHE/stamps"
VENV="$CACHE/venv-relay-pquic"
AIOPQUIC_REQ="aiopquic==0.6.1"

mkdir -p "$STAMPS" "$CACHE/logs"
cd "$ROOT"

say() { printf '[setup-pquic] %s\n' "$*"; }
die() { printf '[setup-pquic] ERROR: %s\n' "$*" >&2; exit 1; }

# stamp_key, stamp_ok, stamp_set, logged
source "$ROOT/scripts/setup_lib.sh"

is_py312() {  # is_py312 EXE: a CPython >= 3.12 that runs
  [[ -n "$1" ]] && "$1" -c 'import sys, platform; sys.exit(not (sys.version_info >= (3, 12) and platform.python_implementation() == "CPython"))' 2>/dev/null
}

pquic_python() {
  local c
  if [[ -n "${PY312:-}" ]]; then
    is_py312 "$PY312" || die "PY312=$PY312 is not a runnable CPython >= 3.12"
    PY="$PY312"; return
  fi
  for c in /root/.pyenv/versions/3.1[2-9]*/bin/python3 "$(command -v python3.12 || true)" "$(command -v python3.13 || true)"; do
    if is_py312 "$c"; then PY="$c"; return; fi
  done
  # The backend is optional: the relay and everything else work without it, so this is a
  # loud warning rather than a failed setup. Its tests then fail, each saying this.
  printf '[setup-pquic] WARNING: no CPython >= 3.12 found (aiopquic has no wheels for older Pythons): the aiopquic WebTransport backend and its tests are unavailable; install one (e.g. pyenv install 3.12) or set PY312=/path/to/python3.12\n' >&2
  exit 0
}

pquic_venv() {
  local key
  key=$(stamp_key "v1" "$("$PY" -c 'import sys; print(sys.version)')" "$PY" "$AIOPQUIC_REQ" @pyproject.toml)
  if stamp_ok pquic-venv "$key" && "$VENV/bin/python" -c 'import aiopquic, aioquic, pywasm_relay' 2>/dev/null; then
    say "venv-relay-pquic: up to date (stamp pquic-venv)"
    return
  fi
  say "venv-relay-pquic: $("$PY" --version) from $PY"
  [[ -x "$VENV/bin/python" ]] || logged pquic-venv-create "$PY" -m venv "$VENV"
  logged pquic-pip "$VENV/bin/pip" install --disable-pip-version-check -q -e ".[test]" "$AIOPQUIC_REQ"
  "$VENV/bin/python" -c 'import aiopquic, aioquic, pywasm_relay.webtransport_pquic' \
    || die "venv-relay-pquic built but the aiopquic backend does not import"
  stamp_set pquic-venv "$key"
}

PY=""
pquic_python
pquic_venv
say "done: $VENV/bin/pywasm-relay --webtransport-backend aiopquic"
