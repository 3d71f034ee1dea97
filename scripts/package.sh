#!/usr/bin/env bash
# npm run package: builds, for amd64 (x64) and arm64, from a clean, built checkout,
#   packages/offloadd_<version>_<arch>.deb           Debian 12/13, Ubuntu 24.04, Proxmox VE 8/9
#   packages/offloadd-<version>-linux-<arch>.tar.gz   the same tree for /usr/local (Harvester...)
#   packages/apt/                                     a signed apt repository of the .debs
#   packages/SHA256SUMS, SHA256SUMS.asc               every artifact's checksum, signed
# Both carry the Node runtime (.node-version) and the prebuilt addon; the JavaScript is bundled
# (scripts/bundle.js), so nothing is read from a source tree or node_modules at run time.
#   scripts/package.sh [x64] [arm64]        (default: both)
# Needs: npm ci and npm run prebuilds done; debhelper, lintian, mandoc, apt-utils, gnupg; strip for each arch.
# The release key: scripts/sign-release.sh and docs/RELEASING.md (without one, a throw-away key).
# Reproducible: every timestamp is the commit's (SOURCE_DATE_EPOCH), archives are sorted with
# fixed owners, gzip stores no name or time; test/packages/reproducible.test.ts checks it.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
OUT="$REPO/packages"
die() { echo "package: $*" >&2; exit 2; }

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x64 arm64)

# shellcheck source=scripts/stage.sh
. scripts/stage.sh
# shellcheck source=scripts/sign-release.sh
. scripts/sign-release.sh
require_release_tree "${arches[@]}"
for tool in dpkg-buildpackage dh lintian mandoc apt-ftparchive gpg; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install debhelper lintian mandoc apt-utils gnupg"
done

version="$(node -p "require('./package.json').version")"
commit="$(git rev-parse HEAD)"
# Every timestamp in the artifacts is the commit's: dpkg-deb and debhelper clamp file times to it
# (the changelog's date, below, is the same), tar and the image take it explicitly.
SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)"
export SOURCE_DATE_EPOCH
# The build's environment must not leak into the artifacts.
export LC_ALL=C TZ=UTC
umask 022
mandoc -Tlint -Wwarning man/*.[158] || die "the man pages are not clean under mandoc -Tlint (see above)"

BUILD="$(mktemp -d "${TMPDIR:-/tmp}/offloadd-package.XXXXXX")"
trap 'rm -rf "$BUILD"; release_key_cleanup' EXIT
mkdir -p "$OUT"
# A new build, a new throw-away key (a release key given by the operator is used as it is).
rm -rf "$OUT/.build-key"
release_key_init "$OUT"

for arch in "${arches[@]}"; do
  debarch="$arch"; [ "$arch" = x64 ] && debarch=amd64

  # .deb: dpkg-buildpackage over debian/ and the staged tree.
  src="$BUILD/deb-$arch/offloadd-$version"
  mkdir -p "$src"
  cp -a debian "$src/"
  stage /usr "$arch" "$src/stage"
  mv "$src/stage/usr/lib/systemd/system/offloadd.service" "$src/debian/offloadd.service"
  install -D -m 0644 policy/default.yaml "$src/stage/etc/offloadd/policy.yaml"
  # debian/changelog from CHANGELOG.md, dated with the commit (dpkg's SOURCE_DATE_EPOCH).
  node scripts/debian-changelog.js "$version" "$(sed -n 's/^Maintainer: //p' debian/control)" \
    "$SOURCE_DATE_EPOCH" "${commit:0:12}" > "$src/debian/changelog" || die "cannot write debian/changelog from CHANGELOG.md"
  (cd "$src" && dpkg-buildpackage -b -us -uc -d --host-arch="$debarch" >"$BUILD/dpkg-buildpackage-$arch.log" 2>&1) ||
    { tail -n 40 "$BUILD/dpkg-buildpackage-$arch.log" >&2; die "dpkg-buildpackage failed for $debarch"; }
  deb="offloadd_${version}_$debarch.deb"
  mv "$BUILD/deb-$arch/$deb" "$OUT/$deb"
  # OFFLOADD_NO_LINTIAN=1: a second build of a commit whose first build lintian checked (the
  # reproducibility test; the .debs must be the same bytes).
  if [ -z "${OFFLOADD_NO_LINTIAN:-}" ]; then
    lintian --fail-on error,warning --tag-display-limit 0 "$OUT/$deb" | tee "$OUT/$deb.lintian" ||
      die "lintian finds problems in $deb (above; also in packages/$deb.lintian)"
  fi

  # Tarball: the same tree for /usr/local; the policy is the operator's to put in /etc.
  name="offloadd-$version-linux-$arch"
  stage /usr/local "$arch" "$BUILD/tar-$arch"
  mv "$BUILD/tar-$arch/usr/local" "$BUILD/tar-$arch/$name"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
    -C "$BUILD/tar-$arch" -cf - "$name" | gzip -n > "$OUT/$name.tar.gz"
done

apt_repository "$OUT" "$version" "$SOURCE_DATE_EPOCH"
checksums "$OUT" "$version"
ls -l "$OUT" "$OUT/apt"
