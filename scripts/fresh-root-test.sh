#!/usr/bin/env bash
# The README's quick start on a fresh machine, without one: a throw-away copy of a minimal Debian
# root, a fresh `git clone` of a branch in it, and systemd-nspawn running the quick start there:
#   scripts/setup.sh && npm test
# The copy is made from the suite's cached root ($OFFLOADD_CACHE/debian-SUITE-ARCH-root, which
# `npm test` builds; it is never modified), or debootstrapped anew with --debootstrap (minbase
# only: setup.sh must install everything else). The container shares the host's network (the
# registries and the Debian mirror) and its certificate authorities, has every capability, no
# syscall filter and a writable /proc/sys, so the tests make their own network namespaces, BPF
# programs and containers inside it. Its PID 1 is not systemd, as on the machines CI runs on. It
# has a PID namespace of its own: attribution records pids as seen there, so its suites run too.
# Run as root (other users: sudo).
#   scripts/fresh-root-test.sh [--branch NAME] [--suite SUITE] [--debootstrap [--mirror URL]]
#                              [--from DIR] [--keep] [--in DIR] [-- COMMAND...]
#   --branch NAME   the branch to clone (default: the current one) from this repository
#   --suite SUITE   the Debian suite of the root (default bookworm)
#   --debootstrap   a new minbase root instead of a copy of the cached one
#   --mirror URL    the mirror for --debootstrap (default: the host's Debian mirror)
#   --from DIR      a copy of another root (e.g. another distribution's; never modified)
#   --keep          keep the root afterwards (it is printed); default: remove it
#   --in DIR        run in a root kept before (no copy, no clone)
#   COMMAND         what to run in the clone (default: scripts/setup.sh && npm test)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
[ "$(id -u)" = 0 ] || { echo "fresh-root-test: needs root (systemd-nspawn); run: sudo $0" >&2; exit 2; }
branch="$(git -C "$here" rev-parse --abbrev-ref HEAD)"
suite=bookworm mirror="" debootstrap="" from="" keep="" root=""
command_line='scripts/setup.sh && npm test'
while [ $# -gt 0 ]; do
  case "$1" in
    --branch) branch="$2"; shift 2 ;;
    --suite) suite="$2"; shift 2 ;;
    --debootstrap) debootstrap=1; shift ;;
    --mirror) mirror="$2"; shift 2 ;;
    --from) from="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    --in) root="$(cd "$2" && pwd)"; keep=1; shift 2 ;;
    --) shift; command_line="$*"; break ;;
    *) echo "fresh-root-test: unknown argument '$1' (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
done
case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
cache="${OFFLOADD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/offloadd}"
# The host's Debian mirror, as test/helpers/debian-root.ts finds it.
host_mirror() {
  local file
  for file in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
    [ -f "$file" ] || continue
    sed -nE 's#^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)([^[:space:]]+/debian)/?([[:space:]].*)?$#\3#p' "$file"
  done | head -n 1
}

# Whatever happens, nothing of ours stays mounted or in a cgroup; the root goes unless --keep.
name="offloadd-fresh-$$"
cgroups=()
for hierarchy in /sys/fs/cgroup /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
  [ -f "$hierarchy/cgroup.procs" ] && cgroups+=("$hierarchy/$name")
done
cleanup() {
  for dir in "${cgroups[@]}"; do
    [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  [ -n "$root" ] || return 0
  if [ -z "$keep" ]; then rm -rf "$root" "$root.debootstrap.log"; else echo "fresh-root-test: root kept in $root"; fi
}
trap cleanup EXIT

if [ -z "$root" ]; then
  root="$(mktemp -d /var/tmp/offloadd-fresh-root.XXXXXX)"
  if [ -n "$debootstrap" ]; then
    mirror="${mirror:-$(host_mirror)}"
    mirror="${mirror:-http://deb.debian.org/debian}"
    echo "fresh-root-test: debootstrap --variant=minbase $suite from $mirror into $root"
    debootstrap --variant=minbase "--arch=$arch" "$suite" "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
      { tail -n 20 "$root.debootstrap.log" >&2; echo "fresh-root-test: debootstrap failed" >&2; exit 1; }
    rm -f "$root.debootstrap.log"
  else
    if [ -z "$from" ]; then
      from="$cache/debian-$suite-$arch-root"
      [ -f "$from/.offloadd-root-complete" ] ||
        { echo "fresh-root-test: no cached root $from (npm test builds it; or pass --debootstrap)" >&2; exit 1; }
    fi
    [ -x "$from/bin/sh" ] || { echo "fresh-root-test: $from is not a root file system" >&2; exit 1; }
    echo "fresh-root-test: copy of $from into $root"
    cp -a "$from/." "$root/"
    rm -f "$root/.offloadd-root-complete"
  fi
  # It becomes /: a mode of 0700 (mktemp's, or the cached root's) would lock out every user but
  # root, apt's _apt among them.
  chmod 0755 "$root"
  # The host's own certificate authorities (a network behind a TLS-inspecting proxy needs them
  # for the npm registry); ca-certificates, which setup.sh installs, adds them to the bundle.
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  fi
  echo "fresh-root-test: git clone --branch $branch into $root/root/offloadd"
  git clone --quiet --no-local --branch "$branch" "$here" "$root/root/offloadd"
fi

# The environment's pointers to the certificate bundle (Node reads only NODE_EXTRA_CA_CERTS).
ca_env=()
for variable in NODE_EXTRA_CA_CERTS SSL_CERT_FILE CURL_CA_BUNDLE; do
  [ -n "${!variable:-}" ] && ca_env+=("--setenv=$variable=${!variable}")
done
echo "fresh-root-test: in $root (as root, in /root/offloadd): $command_line"
started=$(date +%s)
set +e
(
  for dir in "${cgroups[@]}"; do mkdir -p "$dir" && echo "$BASHPID" >"$dir/cgroup.procs" || exit 1; done
  # API_VFS_WRITABLE: a writable /proc/sys and /sys, as on a machine (a test sets a sysctl in its
  # own user namespace).
  export SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 SYSTEMD_SECCOMP=0 SYSTEMD_NSPAWN_API_VFS_WRITABLE=1
  # A tmpfs on /run/systemd: nspawn leaves nothing in the host's /run. --keep-unit --register=no:
  # no systemd on the host to register with. tracefs and bpffs: the attribution tests' BPF.
  exec unshare --mount --propagation private sh -c '
    mount -t tmpfs -o mode=755 tmpfs /run/systemd || exit 1
    mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || exit 1
    exec systemd-nspawn "$@"
  ' unshare-sh --register=no --keep-unit --console=pipe --link-journal=no --as-pid2 \
    -D "$root" -M "$name" --capability=all --bind=/sys/fs/bpf --bind=/sys/kernel/tracing \
    --setenv=HOME=/root "${ca_env[@]}" --chdir=/root/offloadd -- bash -c "$command_line"
) </dev/null
status=$?
set -e
echo "fresh-root-test: exit $status after $(($(date +%s) - started)) s"
exit "$status"
