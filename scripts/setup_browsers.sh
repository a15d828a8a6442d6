#!/usr/bin/env bash
# Browsers beyond Chromium for the cross-browser end-to-end suite (e2e/, issue 7).
# Idempotent and stamped like scripts/setup.sh (helpers from scripts/setup_lib.sh):
#
#   bash scripts/setup_browsers.sh                  # install what is missing or stale
#   PYWASM_SETUP_FORCE=1 bash scripts/setup_browsers.sh
#
# Sections:
#   browser_packages  Debian firefox-esr (driven by Playwright over WebDriver BiDi),
#                     webkit2gtk-driver (WebKitWebDriver + MiniBrowser) and xvfb (WebKitGTK
#                     has no headless mode); apt, as root. Not root: a warning, since only
#                     the Firefox/WebKit columns of e2e/ need them.
#   selenium          Python selenium (pinned) into .venv: the WebDriver client for
#                     WebKitWebDriver. Playwright cannot drive WebKitGTK; its own WebKit
#                     build (`playwright install`) is a download that fails offline.
#
# Network: only PyPI and Debian apt are used here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
STAMPS="$CACHE/stamps"
PIP_FLAGS=(--disable-pip-version-check --no-input -q)
# 4.52.0 needs a certifi newer than the package index here has; 4.51.0 installs.
SELENIUM_REQ="selenium==4.51.0"
APT_PACKAGES=(firefox-esr webkit2gtk-driver xvfb xauth)
FIREFOX_BIN=/usr/bin/firefox-esr
WEBKIT_DRIVER_BIN=/usr/bin/WebKitWebDriver

mkdir -p "$STAMPS" "$CACHE/logs"
cd "$ROOT"

T0=$(date +%s)
say() { printf '[setup-browsers] %s\n' "$*"; }
die() { printf '[setup-browsers] ERROR: %s\n' "$*" >&2; exit 1; }

# stamp_key, stamp_ok, stamp_set, logged, apt_ensure
source "$ROOT/scripts/setup_lib.sh"

browsers_present() {
  [[ -x "$FIREFOX_BIN" && -x "$WEBKIT_DRIVER_BIN" ]] && command -v xvfb-run >/dev/null && command -v Xvfb >/dev/null
}

browser_packages() {
  apt_ensure browsers browsers_present "firefox-esr, webkit2gtk-driver, xvfb" \
    "the Firefox/WebKit e2e columns" "${APT_PACKAGES[@]}"
}

selenium() {
  local key
  [[ -x .venv/bin/python ]] || die ".venv missing: run bash scripts/setup.sh first"
  # keyed on setup.sh's .venv stamp too: a rebuilt .venv reinstalls selenium
  key=$(stamp_key "v1" "$(.venv/bin/python -V 2>&1)" "$SELENIUM_REQ" @"$STAMPS/venv")
  if stamp_ok selenium "$key" && .venv/bin/python -c 'import selenium' 2>/dev/null; then
    say "selenium: up to date"
    return
  fi
  say "selenium: installing $SELENIUM_REQ into .venv"
  # e2e starts WebKitWebDriver itself and talks to it as a Remote: selenium-manager (which
  # would try to download drivers) never runs
  logged pip-selenium .venv/bin/pip install "${PIP_FLAGS[@]}" "$SELENIUM_REQ"
  .venv/bin/python -c 'import selenium.webdriver' || die "selenium does not import"
  stamp_set selenium "$key"
}

main() {
  browser_packages
  selenium
  say "done in $(( $(date +%s) - T0 ))s"
}

main "$@"; exit $?
