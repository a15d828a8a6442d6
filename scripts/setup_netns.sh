#!/usr/bin/env bash
# Tools for the NAT hole-punching interop tests (tests/interop/test_nat_holepunch.py):
# they build real NATs out of network namespaces, veth pairs and nftables masquerade.
# Idempotent and stamped like scripts/setup.sh (helpers from scripts/setup_lib.sh):
#
#   bash scripts/setup_netns.sh                  # install what is missing
#   PYWASM_SETUP_FORCE=1 bash scripts/setup_netns.sh
#
# Sections:
#   netns_packages  Debian nftables (the routers' masquerade and stateful filter) and
#                   iproute2 (ip netns/link/addr/route) via apt, as root; util-linux's
#                   unshare/nsenter come with the base system. Not root: a warning, since
#                   only the NAT tests need them (and they need root anyway).
#   netns_probe     checks once per kernel that a namespace with a veth pair and an nft
#                   nat table can be built here (stamped; a failure is reported, not fatal:
#                   the tests then fail with the same message).
#
# Network: only Debian apt is used here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
STAMPS="$CACHE/stamps"
APT_PACKAGES=(nftables iproute2)

mkdir -p "$STAMPS" "$CACHE/logs"
cd "$ROOT"

T0=$(date +%s)
say() { printf '[setup-netns] %s\n' "$*"; }
die() { printf '[setup-netns] ERROR: %s\n' "$*" >&2; exit 1; }

# stamp_key, stamp_ok, stamp_set, logged, apt_ensure
source "$ROOT/scripts/setup_lib.sh"

tools_present() {
  command -v nft >/dev/null && command -v ip >/dev/null && command -v unshare >/dev/null \
    && command -v nsenter >/dev/null
}

netns_packages() {
  apt_ensure netns tools_present "nftables, iproute2, unshare, nsenter" \
    "the NAT hole-punching tests" "${APT_PACKAGES[@]}"
}

netns_probe() {
  local key
  [[ "$(id -u)" == 0 ]] || { say "netns probe: not root, skipped"; return; }
  tools_present || { say "netns probe: tools missing, skipped"; return; }
  key=$(stamp_key "v1" "$(uname -r)" "$(nft --version 2>&1)")
  if stamp_ok netns-probe "$key"; then
    say "netns probe: ok (stamp)"
    return
  fi
  # a throwaway namespace: it disappears with the unshare'd shell
  if unshare -n bash -c 'ip link add pwa type veth peer name pwb \
      && nft add table ip nat \
      && nft add chain ip nat post "{ type nat hook postrouting priority 100; }" \
      && nft add rule ip nat post oifname pwa masquerade' > "$CACHE/logs/netns-probe.log" 2>&1; then
    say "netns probe: namespaces, veth and nftables masquerade work"
    stamp_set netns-probe "$key"
  else
    tail -n 20 "$CACHE/logs/netns-probe.log" >&2
    say "WARNING: this kernel/container cannot build the NAT topology (see .cache/logs/netns-probe.log)"
  fi
}

main() {
  netns_packages
  netns_probe
  say "done in $(( $(date +%s) - T0 ))s"
}

main "$@"; exit $?
