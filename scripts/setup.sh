#!/usr/bin/env bash
# Sets up a fresh Debian 12/13 (or Ubuntu 24.04) machine for offloadd's development, so that
# `npm test` passes next: the apt packages the tests and the addon need, the pinned Node runtime
# with its npm (scripts/node-runtime.sh, version in .node-version), and `npm ci` under it (which
# builds the addon against that runtime's headers, and the TypeScript). Safe to run again.
# Run as root (other users: sudo scripts/setup.sh). CI (.ci/run) starts with it, so the machine
# CI tests on and a contributor's cannot drift apart.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "setup: needs root (apt-get, and the tests need it too); run: sudo scripts/setup.sh" >&2; exit 2; }
export DEBIAN_FRONTEND=noninteractive

# What each is for:
#   ethtool: an independent observer in tests; iproute2: namespaces and links; util-linux:
#     setpriv, unshare, nsenter; procps: pgrep and kill; socat, python3: stand-in sockets;
#   systemd, systemd-container: a real journald and a real systemd as PID 1 (systemd-nspawn)
#     for the service tests; debootstrap: the minimal Debian roots those tests and the package
#     tests boot (never the host's own tree); debian-archive-keyring: debootstrap checks those
#     roots' signatures with it (Debian has it already; Ubuntu's debootstrap only suggests it);
#   python3, make, g++: node-gyp builds the addon; curl, ca-certificates: fetching the runtime
#     where there is no npm yet; file: checks of built binaries;
#   debhelper, lintian, mandoc, man-db: build and check the .deb and the man pages;
#   g++-aarch64-linux-gnu, qemu-user-static: cross-build the arm64 addon and load it;
#   clang-format: npm run lint checks native/; prometheus (server and promtool): scrape a test
#     daemon and check metrics and alert rules; buildah: the OCI image from scratch;
#   faketime: steps the wall clock of one test daemon (clock-step tests, the torture's phase);
#   apt-utils (apt-ftparchive), gnupg: the signed apt repository npm run package makes.
APT_PACKAGES=(
  ethtool iproute2 util-linux procps socat python3 systemd systemd-container debootstrap debian-archive-keyring
  make g++ curl ca-certificates file
  debhelper lintian mandoc man-db g++-aarch64-linux-gnu qemu-user-static
  clang-format prometheus buildah faketime apt-utils gnupg
)
echo "setup: apt packages (${#APT_PACKAGES[@]})"
apt-get update -qq
# Packages install services (prometheus); tests start their own, in their own namespaces, so
# none is started here: invoke-rc.d asks policy-rc.d, and 101 means "not now".
own_policy_rc=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
  own_policy_rc=1
fi
trap '[ -z "$own_policy_rc" ] || rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
[ -z "$own_policy_rc" ] || rm -f /usr/sbin/policy-rc.d
own_policy_rc=

# The pinned runtime, with npm, in a cache directory of its own; nothing else on the machine
# changes, except on a machine with no npm at all: there its node, npm and npx are linked into
# /usr/local/bin, so that the `npm test` that follows has an npm to start from.
runtime="$(scripts/node-runtime.sh)"
echo "setup: node $("$runtime/bin/node" --version) and npm $("$runtime/bin/node" "$runtime/bin/npm" --version) in $runtime"
if ! command -v npm >/dev/null 2>&1; then
  for program in node npm npx; do
    [ -e "/usr/local/bin/$program" ] || ln -s "$runtime/bin/$program" "/usr/local/bin/$program"
  done
  echo "setup: no npm was installed: linked the pinned node, npm and npx into /usr/local/bin"
fi

# npm ci under the pinned runtime: the addon builds against its headers (npm_config_nodedir),
# so nothing is downloaded from nodejs.org.
PATH="$runtime/bin:$PATH" npm_config_nodedir="$runtime" npm ci --no-audit --no-fund
echo "setup: done. Next: npm test (as root: the tests make network namespaces and containers)"
