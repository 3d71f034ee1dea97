#!/usr/bin/env bash
# Builds the Node-API addon once per architecture into prebuilds/linux-<arch>/offloadd.node
# (prebuildify --napi --strip: one binary serves every Node major, so the host needs no compiler).
#   scripts/prebuilds.sh [x64] [arm64]      (default: both)
# arm64 is cross-built with Debian's g++-aarch64-linux-gnu; both builds use the headers of the
# shipped runtime (scripts/node-runtime.sh), so nothing is downloaded from nodejs.org.
set -euo pipefail
cd "$(dirname "$0")/.."
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x64 arm64)
nodedir="$(scripts/node-runtime.sh)"
# Reproducible: the checkout's and the runtime's directories must not end up in the binary
# (__FILE__ in node-addon-api's assertions, debug paths): map them to fixed names.
export CFLAGS="${CFLAGS:-} -ffile-prefix-map=$PWD=. -ffile-prefix-map=$nodedir=/nodedir"
export CXXFLAGS="${CXXFLAGS:-} -ffile-prefix-map=$PWD=. -ffile-prefix-map=$nodedir=/nodedir"
for arch in "${arches[@]}"; do
  case "$arch" in
    x64)
      env npm_config_nodedir="$nodedir" npx prebuildify --napi --strip --arch x64 ;;
    arm64)
      command -v aarch64-linux-gnu-g++ >/dev/null ||
        { echo "prebuilds: the arm64 cross-compiler is missing: apt-get install g++-aarch64-linux-gnu" >&2; exit 2; }
      env npm_config_nodedir="$nodedir" CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ \
        AR=aarch64-linux-gnu-ar PREBUILD_STRIP_BIN=aarch64-linux-gnu-strip \
        npx prebuildify --napi --strip --arch arm64 ;;
    *) echo "prebuilds: architecture must be x64 or arm64, not '$arch'" >&2; exit 2 ;;
  esac
  file "prebuilds/linux-$arch/offloadd.node"
done
# prebuildify builds in ./build: rebuild the developer's native build so that it matches this
# machine (not for a clone that only packages: OFFLOADD_PREBUILDS_ONLY=1, as the package tests set).
[ -n "${OFFLOADD_PREBUILDS_ONLY:-}" ] || npx node-gyp rebuild --nodedir="$nodedir" >/dev/null
