#!/usr/bin/env bash
# Wheels for running the pure core inside Pyodide (tests/pyodide/run.mjs), cached and
# idempotent:
#
#   bash scripts/pyodide_wheels.sh          # fetch what is missing, rebuild a stale pywasm wheel
#   PYWASM_SETUP_FORCE=1 bash scripts/pyodide_wheels.sh
#
# Into .cache/pyodide-wheels/:
#   * pytest and hypothesis with their dependencies, pure wheels for CPython 3.14 (the npm
#     pyodide package ships no wheels at all, and its CDN is unreachable);
#   * pywasm-*.whl built from this tree (the Pyodide suite installs the wheel, not a source
#     mount: that is what proves the packaged core has no native dependency).
#
# Each step is keyed by a stamp in .cache/stamps/ (sha256 of what it depends on), so a warm
# run only hashes the source tree. Network: PyPI only, and only when a pin changes.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
STAMPS="$CACHE/stamps"
OUT="$CACHE/pyodide-wheels"
PIP="${PIP:-$ROOT/.venv/bin/pip}"
PYODIDE_PY="3.14"
# Pins: what pytest 8.4 and hypothesis 6.155 need on 3.14 (hypothesis no longer needs attrs;
# pytest >= 8.4 needs pygments). Bump together; the stamp follows.
PURE_WHEELS=(
  "pytest==8.4.2"
  "pluggy==1.7.0"
  "iniconfig==2.3.1"
  "packaging==26.3"
  "pygments==2.21.0"
  "hypothesis==6.155.2"
  "sortedcontainers==2.4.0"
)
PIP_FLAGS=(--disable-pip-version-check --no-input -q)

say() { printf '[pyodide-wheels] %s\n' "$*"; }
die() { printf '[pyodide-wheels] ERROR: %s\n' "$*" >&2; exit 1; }

stamp_ok() { [[ -z "${PYWASM_SETUP_FORCE:-}" && -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_set() { printf '%s\n' "$2" > "$STAMPS/$1"; }

[[ -x "$PIP" ]] || die "$PIP not found: run scripts/setup.sh first (or set PIP=...)"
mkdir -p "$STAMPS" "$OUT"
cd "$ROOT"

pure_wheels() {
  local key have=1 req name ver
  key=$(printf '%s\n' v1 "$PYODIDE_PY" "${PURE_WHEELS[@]}" | sha256sum | cut -d' ' -f1)
  # The stamp alone is not enough: someone may have cleaned the directory.
  for req in "${PURE_WHEELS[@]}"; do
    name=${req%%==*}; ver=${req##*==}
    compgen -G "$OUT/${name}-${ver}-*.whl" >/dev/null || have=0
  done
  if (( have )) && stamp_ok pyodide-pure "$key"; then
    say "pure wheels: up to date"
    return
  fi
  say "pure wheels: downloading ${PURE_WHEELS[*]}"
  "$PIP" download "${PIP_FLAGS[@]}" --no-deps --only-binary=:all: \
    --platform any --python-version "$PYODIDE_PY" --implementation py \
    -d "$OUT" "${PURE_WHEELS[@]}"
  # Drop wheels of older pins so the runner installs exactly one version of each.
  for req in "${PURE_WHEELS[@]}"; do
    name=${req%%==*}; ver=${req##*==}
    for f in "$OUT/${name}"-*.whl; do
      [[ -e "$f" ]] || continue
      [[ "$(basename "$f")" == "${name}-${ver}-"* ]] || rm -f "$f"
    done
  done
  stamp_set pyodide-pure "$key"
}

pywasm_wheel() {
  local key
  # Keyed on everything that ends up in the wheel.
  key=$( { echo v1; cat pyproject.toml;
           find pywasm -type f \( -name '*.py' -o -name 'py.typed' \) -not -path '*/__pycache__/*' \
             -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; } | sha256sum | cut -d' ' -f1)
  if stamp_ok pyodide-pywasm "$key" && compgen -G "$OUT/pywasm-*.whl" >/dev/null; then
    say "pywasm wheel: up to date"
    return
  fi
  say "pywasm wheel: building"
  rm -f "$OUT"/pywasm-*.whl
  # Build in a scratch copy: setuptools writes build/ and *.egg-info next to the sources,
  # and other engineers work in this tree.
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  mkdir -p "$tmp/src"
  cp pyproject.toml README.md "$tmp/src/" 2>/dev/null || cp pyproject.toml "$tmp/src/"
  tar --exclude='__pycache__' -cf - pywasm | tar -xf - -C "$tmp/src"
  mkdir -p "$CACHE/logs"
  if ! "$PIP" wheel "${PIP_FLAGS[@]}" --no-deps -w "$tmp/out" "$tmp/src" > "$CACHE/logs/pyodide-wheel.log" 2>&1; then
    tail -n 30 "$CACHE/logs/pyodide-wheel.log" >&2
    die "building the pywasm wheel failed (log: .cache/logs/pyodide-wheel.log)"
  fi
  cp "$tmp"/out/pywasm-*.whl "$OUT/"
  stamp_set pyodide-pywasm "$key"
  say "pywasm wheel: $(cd "$OUT" && ls pywasm-*.whl)"
}

pure_wheels
pywasm_wheel
