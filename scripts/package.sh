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

# Packages are built from a commit, so that a version always names the same contents.
[ -z "$(git status --porcelain --untracked-files=normal)" ] ||
  die "the working tree has uncommitted changes (git status); commit or stash them first: packages are built from a commit"
[ -x node_modules/.bin/esbuild ] || die "the tree is not built: run 'npm ci' first"
for arch in "${arches[@]}"; do
  case "$arch" in x64|arm64) ;; *) die "architecture must be x64 or arm64, not '$arch'" ;; esac
  addon="prebuilds/linux-$arch/offloadd.node"
  [ -f "$addon" ] || die "the $arch addon is not built ($addon): run 'npm run prebuilds' first"
  newer="$(find native binding.gyp -newer "$addon" -print -quit)"
  [ -z "$newer" ] || die "$addon is older than $newer: run 'npm run prebuilds' again"
done
for tool in dpkg-buildpackage dh lintian mandoc; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install debhelper lintian mandoc"
done

version="$(node -p "require('./package.json').version")"
mandoc -Tlint -Wwarning man/*.[158] || die "the man pages are not clean under mandoc -Tlint (see above)"

BUILD="$(mktemp -d "${TMPDIR:-/tmp}/offloadd-package.XXXXXX")"
trap 'rm -rf "$BUILD"' EXIT
mkdir -p "$OUT"

# stage PREFIX ARCH DIR: the installed tree under PREFIX (/usr or /usr/local), rooted at DIR.
stage() {
  local prefix="$1" arch="$2" dir="$3"
  local libdir="$prefix/lib/offloadd" runtime strip=strip
  [ "$arch" = arm64 ] && strip=aarch64-linux-gnu-strip
  command -v "$strip" >/dev/null || die "$strip is missing (apt-get install binutils / g++-aarch64-linux-gnu)"
  runtime="$(scripts/node-runtime.sh "$arch")"
  install -d "$dir$libdir/node/bin" "$dir$prefix/sbin" "$dir$prefix/bin" \
    "$dir$prefix/lib/systemd/system" "$dir$prefix/lib/systemd/catalog" \
    "$dir$prefix/share/bash-completion/completions" "$dir$prefix/share/man/man1" \
    "$dir$prefix/share/man/man5" "$dir$prefix/share/man/man8"
  node scripts/bundle.js "$dir$libdir" "$libdir"
  install -m 0644 "prebuilds/linux-$arch/offloadd.node" "$dir$libdir/offloadd.node"
  install -m 0644 policy/default.yaml "$dir$libdir/default-policy.yaml"
  install -m 0755 "$runtime/bin/node" "$dir$libdir/node/bin/node"
  "$strip" --strip-all "$dir$libdir/node/bin/node"
  install -m 0644 "$runtime/LICENSE" "$dir$libdir/node/LICENSE"
  for program in offloadd:sbin offloadctl:bin; do
    local name="${program%%:*}" bin="${program##*:}"
    printf '#!/bin/sh\n# %s, run by the Node runtime bundled with it.\nexec %s/node/bin/node %s/%s.js "$@"\n' \
      "$name" "$libdir" "$libdir" "$name" > "$dir$prefix/$bin/$name"
    chmod 0755 "$dir$prefix/$bin/$name"
  done
  unit_for_prefix "$prefix" > "$dir$prefix/lib/systemd/system/offloadd.service"
  sed "s#/opt/offloadd/policy/default.yaml#$libdir/default-policy.yaml#g" systemd/offloadd.catalog \
    > "$dir$prefix/lib/systemd/catalog/offloadd.catalog"
  install -m 0644 completion/offloadctl.bash "$dir$prefix/share/bash-completion/completions/offloadctl"
  install -m 0644 man/offloadctl.1 "$dir$prefix/share/man/man1/"
  install -m 0644 man/offloadd.policy.5 "$dir$prefix/share/man/man5/"
  install -m 0644 man/offloadd.8 "$dir$prefix/share/man/man8/"
  sed -i "s#/usr/lib/offloadd/#$libdir/#g; s#/usr/sbin/offloadd#$prefix/sbin/offloadd#g" "$dir$prefix"/share/man/man*/*
}

# systemd/offloadd.service runs a checkout at /opt/offloadd with the host's node: point it at
# the installed wrapper and the man pages instead.
unit_for_prefix() {
  local prefix="$1" unit
  unit="$(sed -e "s#/usr/bin/node /opt/offloadd/bin/offloadd#$prefix/sbin/offloadd#g" \
    -e "s#^Documentation=.*#Documentation=man:offloadd(8) man:offloadd.policy(5) man:offloadctl(1)#" \
    -e "/^# interface, and records drift. Install as/,/^# \/usr\/lib\/systemd\/system\/) with the package tree/c\\
# interface, and records drift. Installed with offloadd under $prefix." \
    systemd/offloadd.service)"
  if grep -v '^#' <<<"$unit" | grep -q /opt/offloadd; then
    die "systemd/offloadd.service names /opt/offloadd in a line this script does not rewrite: update unit_for_prefix"
  fi
  grep -q "^ExecStart=$prefix/sbin/offloadd$" <<<"$unit" || die "cannot find ExecStart= in systemd/offloadd.service to rewrite"
  printf '%s\n' "$unit"
}

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
