#!/usr/bin/env bash
# The part of run.sh inside the network namespace: certificate, the two echo servers and
# the page server (PIDs tracked and stopped on exit), then the Chromium driver.
set -euo pipefail
ROUNDS="$1" MIB="$2" PY_AIOPQUIC="$3" PY="$4"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d /tmp/quic-stacks.XXXXXX)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
ip link set lo up
cd "$WORK"
mkdir www && echo '<!doctype html><title>quic stacks</title>' > www/index.html
"$PY" "$HERE/mkcert.py" > /dev/null
"$PY_AIOPQUIC" "$HERE/echo_aiopquic.py" 14433 > aiopquic.log 2>&1 & PIDS+=($!)
"$PY" "$HERE/echo_aioquic.py" 14434 > aioquic.log 2>&1 & PIDS+=($!)
"$PY" -m http.server 18080 --bind 127.0.0.1 --directory www > http.log 2>&1 & PIDS+=($!)
for _ in $(seq 50); do
  grep -q listening aiopquic.log && grep -q listening aioquic.log && break
  sleep 0.1
done
"$PY" "$HERE/drive.py" 18080 "$ROUNDS" "$MIB" "aiopquic:14433:${PIDS[0]}" "aioquic:14434:${PIDS[1]}"
