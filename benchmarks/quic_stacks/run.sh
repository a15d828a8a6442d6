#!/usr/bin/env bash
# WebTransport echo from headless Chromium to two bare echo servers, side by side in one
# run: aiopquic 0.6.1 (picoquic underneath, Python >= 3.12) and aioquic 1.7.2 with its
# defaults (the naive baseline of docs/webtransport.md). It answers one question of the
# relay's design: how much faster a QUIC stack with native per-packet work is.
#
#   bash benchmarks/quic_stacks/run.sh [ROUNDS] [MIB]       # default 5 rounds of 16 MiB
#
# Needs root, the project's .venv (Playwright, aioquic) and a CPython 3.12 (PY312,
# default pyenv's /root/.pyenv/versions/3.12.1) for aiopquic's venv (.cache/venv-aiopquic).
# aiopquic listens on every interface (it has no bind address), so the servers, the page's
# web server and Chromium all run in a network namespace of their own with only `lo`.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
ROUNDS="${1:-5}"
MIB="${2:-16}"
PY312="${PY312:-/root/.pyenv/versions/3.12.1/bin/python}"
VENV="$ROOT/.cache/venv-aiopquic"
AIOPQUIC_REQ="aiopquic==0.6.1"

die() { printf '[quic-stacks] ERROR: %s\n' "$*" >&2; exit 1; }
[[ "$(id -u)" == 0 ]] || die "needs root (a network namespace keeps aiopquic's all-interface listener on lo)"
[[ -x "$PY312" ]] || die "no Python 3.12 at $PY312 (set PY312): aiopquic needs >= 3.12"
[[ -x "$ROOT/.venv/bin/python" ]] || die ".venv missing: run bash scripts/setup.sh"
if ! "$VENV/bin/python" -c 'import aiopquic' 2>/dev/null; then
  "$PY312" -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check -q "$AIOPQUIC_REQ"
fi
exec unshare -n -- bash "$HERE/inner.sh" "$ROUNDS" "$MIB" "$VENV/bin/python" "$ROOT/.venv/bin/python"
