#!/usr/bin/env bash
# Assembles the browser demo site into .cache/site/ (layout: docs/browser-plan.md), served
# by `pywasm-relay`. Idempotent and cached: a stamp keyed on every input; a warm run only
# hashes the inputs.
#
#   bash scripts/build_site.sh
#   PYWASM_SETUP_FORCE=1 bash scripts/build_site.sh     # ignore the stamps
#
# .cache/site/
#   index.html, pyscript.html, ...   copied from web/ (if it exists yet)
#   pywasm.mjs (+ other bundles)     browser/dist/ after `npm run build` (if it exists yet)
#   pyodide/                         the npm pyodide runtime, the pywasm wheel (and micropip
#                                    when obtainable), pyodide-lock.json patched so
#                                    loadPackage("pywasm") and micropip resolve locally
#   pyscript/                        @pyscript/core dist (if it is in node_modules)
#
# The site is assembled in a scratch directory and swapped in, so a running relay never
# serves a half-built tree. Network: PyPI only, for the micropip wheel, once.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache"
STAMPS="$CACHE/stamps"
SITE="$CACHE/site"
WHEELS="$CACHE/pyodide-wheels"
EXTRA_WHEELS="$CACHE/site-wheels"
PYTHON="$ROOT/.venv/bin/python"
PIP="$ROOT/.venv/bin/pip"
PYODIDE_DIR="$ROOT/node_modules/pyodide"
PYSCRIPT_DIR="$ROOT/node_modules/@pyscript/core/dist"
# micropip lets PyScript `packages` and micropip.install resolve from the local lock file.
MICROPIP_REQ="micropip==0.11.1"
PIP_FLAGS=(--disable-pip-version-check --no-input -q)

say() { printf '[site] %s\n' "$*"; }
die() { printf '[site] ERROR: %s\n' "$*" >&2; exit 1; }
stamp_ok() { [[ -z "${PYWASM_SETUP_FORCE:-}" && -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_set() { printf '%s\n' "$2" > "$STAMPS/$1"; }

# tree_hash DIR...: sha256 over the relative names and contents of every file (missing -> marker)
tree_hash() {
  local d
  for d in "$@"; do
    if [[ -d "$d" ]]; then
      (cd "$d" && find . -type f -not -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
    else
      printf 'missing:%s\n' "$d"
    fi
  done | sha256sum | cut -d' ' -f1
}

[[ -x "$PYTHON" ]] || die ".venv not found: run bash scripts/setup.sh first"
[[ -f "$PYODIDE_DIR/pyodide-lock.json" ]] || die "node_modules/pyodide missing: run bash scripts/setup.sh first"
mkdir -p "$STAMPS" "$CACHE/logs"
cd "$ROOT"
T0=$(date +%s)

# 1. the pywasm wheel: built (and cached) by pyodide_wheels.sh, the same wheel the Pyodide
#    test suite installs
say "pywasm wheel (scripts/pyodide_wheels.sh)"
bash "$ROOT/scripts/pyodide_wheels.sh" | sed 's/^/[site]   /'
shopt -s nullglob
wheels=("$WHEELS"/pywasm-*.whl)
shopt -u nullglob
(( ${#wheels[@]} == 1 )) || die "expected exactly one pywasm wheel in .cache/pyodide-wheels, found ${#wheels[@]}"
WHEEL="${wheels[0]}"
if unzip -Z1 "$WHEEL" 2>/dev/null | grep -q '^pywasm_relay/'; then
  die "$(basename "$WHEEL") contains the native relay package; it must not"
fi

# 2. micropip (optional: only a note when PyPI is unreachable)
mkdir -p "$EXTRA_WHEELS"
mp_name=${MICROPIP_REQ%%==*}; mp_ver=${MICROPIP_REQ##*==}
if ! compgen -G "$EXTRA_WHEELS/${mp_name}-${mp_ver}-*.whl" >/dev/null; then
  say "micropip wheel: downloading $MICROPIP_REQ"
  if ! "$PIP" download "${PIP_FLAGS[@]}" --no-deps --only-binary=:all: --platform any \
      --python-version 3.14 --implementation py -d "$EXTRA_WHEELS" "$MICROPIP_REQ" \
      > "$CACHE/logs/site-micropip.log" 2>&1; then
    say "note: could not download $MICROPIP_REQ (see .cache/logs/site-micropip.log); site without micropip"
  fi
fi

# 3. the browser bundle (browser/build.mjs belongs to the page side; we only run it)
if [[ -f browser/build.mjs ]]; then
  bkey=$( { echo v1; node --version; cat package.json package-lock.json 2>/dev/null; tree_hash browser/src; sha256sum browser/build.mjs; } | sha256sum | cut -d' ' -f1)
  if stamp_ok site-bundle "$bkey" && [[ -d browser/dist ]]; then
    say "bundle: up to date"
  else
    say "bundle: npm run build"
    if ! npm run build --silent > "$CACHE/logs/site-bundle.log" 2>&1; then
      tail -n 30 "$CACHE/logs/site-bundle.log" >&2
      die "npm run build failed (log: .cache/logs/site-bundle.log)"
    fi
    stamp_set site-bundle "$bkey"
  fi
else
  say "note: browser/build.mjs not found yet; site without a bundle"
fi
[[ -f browser/dist/pywasm.mjs ]] || say "note: browser/dist/pywasm.mjs not built yet; site without /pywasm.mjs"
[[ -d web ]] && compgen -G "web/*" >/dev/null || say "note: web/ is empty or missing; site without pages"
[[ -d "$PYSCRIPT_DIR" ]] || say "note: @pyscript/core not in node_modules; site without /pyscript/"

# 4. assemble, unless every input is unchanged
key=$( { echo v1; sha256sum "${BASH_SOURCE[0]}" "$ROOT/scripts/make_snapshot.mjs";
         tree_hash "$PYODIDE_DIR" "$EXTRA_WHEELS" web browser/dist "$PYSCRIPT_DIR";
         sha256sum "$WHEEL"; } | sha256sum | cut -d' ' -f1)
if stamp_ok site "$key" && [[ -f "$SITE/pyodide/pyodide-lock.json" ]]; then
  say "site: up to date ($SITE)"
  exit 0
fi
say "site: assembling $SITE"
tmp="$CACHE/site.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/pyodide"
# the runtime (no wheels ship in the npm package): modules, wasm, stdlib, maps
for f in "$PYODIDE_DIR"/*; do
  case "$(basename "$f")" in
    *.mjs|*.js|*.wasm|*.zip|*.map|*.d.ts|package.json) cp "$f" "$tmp/pyodide/" ;;
  esac
done
cp "$WHEEL" "$tmp/pyodide/"
extra=()
shopt -s nullglob
for w in "$EXTRA_WHEELS"/"${mp_name}"-"${mp_ver}"-*.whl; do cp "$w" "$tmp/pyodide/"; extra+=("$(basename "$w")"); done
shopt -u nullglob

# patch the lock file: an entry for pywasm, and micropip pointing at the local wheel
"$PYTHON" - "$PYODIDE_DIR/pyodide-lock.json" "$tmp/pyodide/pyodide-lock.json" "$tmp/pyodide" \
    "$(basename "$WHEEL")" "${extra[@]}" <<'PY'
import hashlib, json, os, sys

src, dst, folder, wheel, *extra = sys.argv[1:]
with open(src) as f:
    lock = json.load(f)

def sha256(name: str) -> str:
    with open(os.path.join(folder, name), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()

def entry(file_name: str, imports: list[str]) -> dict:
    name, version = file_name.split("-")[:2]
    return {
        "name": name, "version": version, "file_name": file_name, "install_dir": "site",
        "sha256": sha256(file_name), "package_type": "package", "imports": imports,
        "depends": [], "unvendored_tests": False, "tool": {},
    }

packages = lock["packages"]
# the pure core has no dependency inside Pyodide (cryptography/websockets are native-only)
packages["pywasm"] = entry(wheel, ["pywasm"])
for file_name in extra:
    name = file_name.split("-")[0].lower()
    base = dict(packages.get(name, {}))
    base.update({k: v for k, v in entry(file_name, base.get("imports", [name])).items()
                 if k not in ("depends",)})
    base.setdefault("depends", [])
    packages[name] = base
with open(dst, "w") as f:
    json.dump(lock, f, indent=1, sort_keys=True)
    f.write("\n")
PY

# the memory snapshot createNode() restores instead of a full boot (scripts/make_snapshot.mjs);
# rebuilt with the site, i.e. whenever the wheel, the runtime or this script changes
if node "$ROOT/scripts/make_snapshot.mjs" "$tmp/pyodide" > "$CACHE/logs/site-snapshot.log" 2>&1; then
  say "$(tail -n 1 "$CACHE/logs/site-snapshot.log")"
else
  rm -f "$tmp/pyodide/pywasm-snapshot."*
  say "note: no memory snapshot (see .cache/logs/site-snapshot.log); pages boot without it"
fi

if [[ -d browser/dist ]]; then
  find browser/dist -maxdepth 1 -type f -exec cp {} "$tmp/" \;
fi
if [[ -d web ]]; then
  cp -R web/. "$tmp/"
fi
if [[ -d "$PYSCRIPT_DIR" ]]; then
  mkdir -p "$tmp/pyscript"
  cp -R "$PYSCRIPT_DIR"/. "$tmp/pyscript/"
fi

# swap in (a relay serving the old tree keeps working until the rename)
rm -rf "$SITE.old"
[[ -d "$SITE" ]] && mv "$SITE" "$SITE.old"
mv "$tmp" "$SITE"
rm -rf "$SITE.old"
trap - EXIT
stamp_set site "$key"
say "site: $(find "$SITE" -type f | wc -l) files, $(du -sh "$SITE" | cut -f1) in $(( $(date +%s) - T0 ))s"
say "serve it: .venv/bin/pywasm-relay   (then open the printed http:// URL)"
