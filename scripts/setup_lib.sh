# Stamp, log and apt helpers shared by scripts/setup*.sh (sourced, not run). The caller
# sets CACHE and STAMPS and defines say() and die() before sourcing this file.

# sha256 over strings and file contents: stamp_key "literal" @file ...
stamp_key() {
  local a
  for a in "$@"; do
    if [[ "$a" == @* ]]; then
      if [[ -f "${a#@}" ]]; then cat "${a#@}"; else printf 'missing:%s' "${a#@}"; fi
    else
      printf '%s\n' "$a"
    fi
  done | sha256sum | cut -d' ' -f1
}

stamp_ok() {  # stamp_ok NAME KEY: true when the step already ran with this key
  [[ -z "${PYWASM_SETUP_FORCE:-}" && -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]
}

stamp_set() { printf '%s\n' "$2" > "$STAMPS/$1"; }

# logged NAME CMD...: run quietly into .cache/logs/NAME.log; show its tail on failure
logged() {
  local name="$1"; shift
  mkdir -p "$CACHE/logs"
  if ! "$@" > "$CACHE/logs/$name.log" 2>&1; then
    tail -n 40 "$CACHE/logs/$name.log" >&2
    die "$name failed: $* (full log: .cache/logs/$name.log)"
  fi
}

# apt_install NAME [APT-GET FLAGS] PACKAGE...: as root, install from Debian's apt. The
# package lists are refreshed once per machine (the apt-update stamp, shared by every
# setup script), and once more if the install fails on stale lists. Needs say().
apt_install() {
  local name="$1"; shift
  command -v apt-get >/dev/null || die "$name: packages missing and no apt-get (Debian expected)"
  export DEBIAN_FRONTEND=noninteractive
  if [[ -z "${PYWASM_SETUP_FORCE:-}" && -f "$STAMPS/apt-update" ]]; then
    say "$name: apt lists already updated (stamp apt-update)"
  else
    say "$name: apt-get update"
    logged apt-update apt-get update
    stamp_set apt-update "$(date -u +%F)"
  fi
  say "$name: apt-get install -y $*"
  mkdir -p "$CACHE/logs"
  if ! apt-get install -y "$@" > "$CACHE/logs/apt-$name.log" 2>&1; then
    say "$name: install failed; apt-get update and retry"
    logged apt-update apt-get update
    stamp_set apt-update "$(date -u +%F)"
    logged "apt-$name" apt-get install -y "$@"
  fi
}

# apt_ensure NAME PRESENT_FN WHAT NEEDED_BY PACKAGE...: nothing to do when PRESENT_FN (a
# command) succeeds. Otherwise, as root, apt_install the packages (--no-install-recommends)
# and require PRESENT_FN afterwards; not root, a warning naming NEEDED_BY (what fails until
# root installs them, since only some tests need them) and the command to run.
apt_ensure() {
  local name="$1" present="$2" what="$3" needed_by="$4"; shift 4
  if "$present"; then
    say "$what: present"
    return
  fi
  if [[ "$(id -u)" != 0 ]]; then
    say "WARNING: $what missing and not root: $needed_by will fail until root runs:"
    say "  apt-get update && apt-get install -y --no-install-recommends $*"
    return
  fi
  apt_install "$name" --no-install-recommends "$@"
  "$present" || die "apt finished but $what still missing"
}
