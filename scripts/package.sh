#!/usr/bin/env bash
# npm run package: builds, for amd64 (x64) and arm64, from a clean, built checkout,
#   packages/offloadd_<version>_<arch>.deb           Debian 12/13, Ubuntu 24.04, Proxmox VE 8/9
#   packages/offloadd-<version>-linux-<arch>.tar.gz   the same tree for /usr/local (Harvester...)
# Both carry the Node runtime (.node-version) and the prebuilt addon; the JavaScript is bundled
# (scripts/bundle.js), so nothing is read from a source tree or node_modules at run time.
#   scripts/package.sh [x64] [arm64]        (default: both)
# Needs: npm ci and npm run prebuilds done; debhelper, lintian, mandoc; strip for each arch.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
OUT="$REPO/packages"
die() { echo "package: $*" >&2; exit 2; }

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x64 arm64)

# shellcheck source=scripts/stage.sh
. scripts/stage.sh
require_release_tree "${arches[@]}"
for tool in dpkg-buildpackage dh lintian mandoc; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install debhelper lintian mandoc"
done

version="$(node -p "require('./package.json').version")"
mandoc -Tlint -Wwarning man/*.[158] || die "the man pages are not clean under mandoc -Tlint (see above)"

BUILD="$(mktemp -d "${TMPDIR:-/tmp}/offloadd-package.XXXXXX")"
trap 'rm -rf "$BUILD"' EXIT
mkdir -p "$OUT"

for arch in "${arches[@]}"; do
  debarch="$arch"; [ "$arch" = x64 ] && debarch=amd64

  # .deb: dpkg-buildpackage over debian/ and the staged tree.
  src="$BUILD/deb-$arch/offloadd-$version"
  mkdir -p "$src"
  cp -a debian "$src/"
  stage /usr "$arch" "$src/stage"
  mv "$src/stage/usr/lib/systemd/system/offloadd.service" "$src/debian/offloadd.service"
  install -D -m 0644 policy/default.yaml "$src/stage/etc/offloadd/policy.yaml"
  cat > "$src/debian/changelog" <<CHANGELOG
offloadd ($version) unstable; urgency=medium

  * Release $version (built from commit $(git rev-parse --short=12 HEAD)).

 -- $(sed -n 's/^Maintainer: //p' debian/control)  $(date -R -d "@$(git log -1 --format=%ct)")
CHANGELOG
  (cd "$src" && dpkg-buildpackage -b -us -uc -d --host-arch="$debarch" >"$BUILD/dpkg-buildpackage-$arch.log" 2>&1) ||
    { tail -n 40 "$BUILD/dpkg-buildpackage-$arch.log" >&2; die "dpkg-buildpackage failed for $debarch"; }
  deb="offloadd_${version}_$debarch.deb"
  mv "$BUILD/deb-$arch/$deb" "$OUT/$deb"
  lintian --fail-on error,warning --tag-display-limit 0 "$OUT/$deb" | tee "$OUT/$deb.lintian" ||
    die "lintian finds problems in $deb (above; also in packages/$deb.lintian)"

  # Tarball: the same tree for /usr/local; the policy is the operator's to put in /etc.
  name="offloadd-$version-linux-$arch"
  stage /usr/local "$arch" "$BUILD/tar-$arch"
  mv "$BUILD/tar-$arch/usr/local" "$BUILD/tar-$arch/$name"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$(git log -1 --format=%ct)" \
    -C "$BUILD/tar-$arch" -czf "$OUT/$name.tar.gz" "$name"
done
ls -l "$OUT"
