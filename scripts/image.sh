#!/usr/bin/env bash
# npm run image: the OCI image, built with buildah from scratch (no base image, no registry) out of
# the same installed tree as the packages (scripts/stage.sh) plus the shared libraries the bundled
# Node and the addon need, taken from this machine (glibc, libstdc++, libgcc_s, and the dynamic
# loader; the arm64 ones from Debian's cross libraries). For each architecture:
#   localhost/offloadd:<version>-<arch>   in buildah's local storage (and <version> for x64)
#   packages/offloadd-<version>-oci-<arch>.tar   an OCI archive naming localhost/offloadd:<version>,
#                                                for `ctr -n k8s.io images import` on a node
#   scripts/image.sh [x64] [arm64]        (default: both)
# Needs: npm ci and npm run prebuilds done; buildah, readelf (binutils), strip for each arch.
#
# The entrypoint /usr/sbin/offloadd (and /usr/bin/offloadctl) is a script the kernel starts with
# the bundled node itself (#!/usr/lib/offloadd/node/bin/node): a scratch image has no /bin/sh, and
# shipping one only to exec node would add a shell to the attack surface for nothing. node is then
# PID 1 and gets the runtime's SIGTERM directly. /etc/offloadd (the policy, e.g. a ConfigMap),
# /var/lib/offloadd (the ledger) and /run/offloadd (the API socket) are empty mount points; the
# root file system may be mounted read-only.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
OUT="$REPO/packages"
die() { echo "image: $*" >&2; exit 2; }

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x64 arm64)

# shellcheck source=scripts/stage.sh
. scripts/stage.sh
# shellcheck source=scripts/sign-release.sh
. scripts/sign-release.sh
require_release_tree "${arches[@]}"
for tool in buildah readelf; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install buildah binutils"
done

version="$(node -p "require('./package.json').version")"
description="$(node -p "require('./package.json').description")"
license="$(node -p "require('./package.json').license")"
revision="$(git rev-parse HEAD)"
epoch="$(git log -1 --format=%ct)"

BUILD="$(mktemp -d "${TMPDIR:-/tmp}/offloadd-image.XXXXXX")"
container=
cleanup() {
  [ -z "$container" ] || buildah rm "$container" >/dev/null 2>&1 || true
  rm -rf "$BUILD"
  release_key_cleanup
}
trap cleanup EXIT
mkdir -p "$OUT"
# The key npm run package signed with (its throw-away key too): SHA256SUMS lists the images as well.
release_key_init "$OUT"

# The GNU triplet (Debian's multiarch directory) and where this machine keeps that arch's libraries.
triplet_of() { case "$1" in x64) echo x86_64-linux-gnu ;; arm64) echo aarch64-linux-gnu ;; esac; }
library_dirs_of() {
  case "$1" in
    x64) echo /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu ;;
    arm64) echo /usr/aarch64-linux-gnu/lib ;;
  esac
}

# add_libraries ARCH ROOT ELF...: copies into ROOT every shared library the ELF files need
# (DT_NEEDED, transitively) into /usr/lib/<triplet>, where the loader looks without an
# ld.so.cache, and the loader at the path the ELF files name (PT_INTERP). readelf, not ldd: it
# reads a foreign architecture's files too.
add_libraries() {
  local arch="$1" root="$2"; shift 2
  local triplet libdir queue=("$@") seen=" " file name dir found interp
  triplet="$(triplet_of "$arch")"
  libdir="$root/usr/lib/$triplet"
  install -d "$libdir"
  while [ ${#queue[@]} -gt 0 ]; do
    file="${queue[0]}"; queue=("${queue[@]:1}")
    for name in $(readelf -d "$file" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
      case "$seen" in *" $name "*) continue ;; esac
      seen+="$name "
      found=
      for dir in $(library_dirs_of "$arch"); do
        [ -e "$dir/$name" ] && { found="$dir/$name"; break; }
      done
      [ -n "$found" ] || die "$file needs $name, which is not in $(library_dirs_of "$arch") (for arm64: apt-get install g++-aarch64-linux-gnu)"
      install -m 0755 "$(readlink -f "$found")" "$libdir/$name"
      queue+=("$found")
    done
  done
  interp="$(readelf -l "$1" | sed -n 's/.*Requesting program interpreter: \(.*\)\]$/\1/p')"
  [ -n "$interp" ] || die "cannot find the program interpreter of $1"
  [ -e "$libdir/$(basename "$interp")" ] || die "$1's loader $interp is not among the libraries it needs"
  # The loader's path as named (/lib64/... or /lib/...), through the merged-/usr links below.
  local loader="$root/usr${interp#/usr}"
  install -d "$(dirname "$loader")"
  ln -sfr "$libdir/$(basename "$interp")" "$loader"
}

for arch in "${arches[@]}"; do
  ociarch="$arch"; [ "$arch" = x64 ] && ociarch=amd64
  root="$BUILD/root-$arch"

  stage /usr "$arch" "$root" node
  # Merged /usr, as on Debian 12: /lib and /lib64 lead to /usr.
  ln -s usr/lib "$root/lib"
  install -d "$root/usr/lib64" && ln -s usr/lib64 "$root/lib64"
  add_libraries "$arch" "$root" "$root/usr/lib/offloadd/node/bin/node" "$root/usr/lib/offloadd/offloadd.node"
  # Mount points (a read-only root cannot create them), and /tmp for anything that wants one.
  install -d -m 0755 "$root/etc/offloadd" "$root/var/lib/offloadd" "$root/run/offloadd" "$root/proc" "$root/sys" "$root/dev"
  install -d -m 1777 "$root/tmp"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -C "$root" -cf "$BUILD/root-$arch.tar" .

  container="$(buildah from --quiet --arch "$ociarch" scratch)"
  buildah add --quiet "$container" "$BUILD/root-$arch.tar" / >/dev/null
  buildah config \
    --arch "$ociarch" --os linux \
    --entrypoint '["/usr/sbin/offloadd"]' --cmd '' \
    --env PATH=/usr/sbin:/usr/bin \
    --env container=oci \
    --user 0:0 --workingdir / --stop-signal SIGTERM \
    --volume /etc/offloadd --volume /var/lib/offloadd --volume /run/offloadd \
    --label org.opencontainers.image.title=offloadd \
    --label "org.opencontainers.image.description=$description" \
    --label "org.opencontainers.image.version=$version" \
    --label "org.opencontainers.image.revision=$revision" \
    --label "org.opencontainers.image.created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)" \
    --label "org.opencontainers.image.licenses=$license" \
    --label org.opencontainers.image.base.name=scratch \
    "$container"
  names=("localhost/offloadd:$version-$arch")
  [ "$arch" = x64 ] && names+=("localhost/offloadd:$version")
  buildah commit --quiet --rm --format oci --timestamp "$epoch" "$container" "${names[0]}" >/dev/null
  container=
  for name in "${names[@]:1}"; do buildah tag "${names[0]}" "$name"; done
  archive="$OUT/offloadd-$version-oci-$arch.tar"
  rm -f "$archive"
  buildah push --quiet "${names[0]}" "oci-archive:$archive:localhost/offloadd:$version"
  # buildah writes the archive's own tar entries with the current time: the same layout again,
  # with the commit's time and fixed owners, so that two builds give the same archive, not only
  # the same blobs.
  layout="$BUILD/oci-layout-$arch"
  mkdir "$layout" && tar -xf "$archive" -C "$layout"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -C "$layout" -cf "$archive" blobs index.json oci-layout
  rm -rf "$layout"
  echo "image: ${names[*]}: $(du -sb "$root" | cut -f1) bytes unpacked; $archive: $(stat -c %s "$archive") bytes"
done
checksums "$OUT" "$version"
