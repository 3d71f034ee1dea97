# Sourced by scripts/package.sh and scripts/image.sh: what every shipped artifact is made of.
#   require_release_tree ARCH...    refuses a dirty or unbuilt checkout (exit 2 through die)
#   stage PREFIX ARCH DIR [LAUNCHER] the installed tree under PREFIX (/usr or /usr/local), rooted at DIR
# The caller is at the repository's root and defines die MESSAGE.

# Artifacts are built from a commit, so that a version always names the same contents; with the
# JavaScript bundled and the addon prebuilt for each architecture.
require_release_tree() {
  [ -z "$(git status --porcelain --untracked-files=normal)" ] ||
    die "the working tree has uncommitted changes (git status); commit or stash them first: packages are built from a commit"
  [ -x node_modules/.bin/esbuild ] || die "the tree is not built: run 'npm ci' first"
  local arch addon newer
  for arch in "$@"; do
    case "$arch" in x64|arm64) ;; *) die "architecture must be x64 or arm64, not '$arch'" ;; esac
    addon="prebuilds/linux-$arch/offloadd.node"
    [ -f "$addon" ] || die "the $arch addon is not built ($addon): run 'npm run prebuilds' first"
    newer="$(find native binding.gyp -newer "$addon" -print -quit)"
    [ -z "$newer" ] || die "$addon is older than $newer: run 'npm run prebuilds' again"
  done
}

# The node options the daemon runs with, everywhere it is shipped (these launchers, the image's
# entrypoint, which is the node-style launcher, and systemd/offloadd.service's ExecStart= for a
# checkout). --jitless: V8 interprets only, never compiles machine code; the daemon's work is
# kernel round trips, not JavaScript, and its idle RSS drops by ~10 MiB (the optimizing
# compilers' code pages and their output), for ~1.4x the start-up's JavaScript time. Measured
# against the other options in docs/BENCHMARKS.md "Idle memory" (npm run bench -- --packaged
# --only memory). One option, so that it fits a #! line (the kernel passes one argument there).
DAEMON_NODE_FLAGS=--jitless

# launcher STYLE NAME LIBDIR: the program users run (offloadd in sbin, offloadctl in bin).
#   sh    a /bin/sh script that execs the bundled node, as any program on a Debian host;
#   node  a script the kernel starts with the bundled node itself (#! names it), for a root file
#         system without a shell (the OCI image): no /bin/sh to ship, and node is the process
#         that gets the container's signals.
# offloadd runs with DAEMON_NODE_FLAGS; offloadctl, a short-lived client, with none.
launcher() {
  local style="$1" name="$2" libdir="$3" flags=""
  [ "$name" = offloadd ] && flags=" $DAEMON_NODE_FLAGS"
  case "$style" in
    sh) printf '#!/bin/sh\n# %s, run by the Node runtime bundled with it.\nexec %s/node/bin/node%s %s/%s.js "$@"\n' \
      "$name" "$libdir" "$flags" "$libdir" "$name" ;;
    node) printf '#!%s/node/bin/node%s\n// %s, run by the Node runtime bundled with it (no shell needed).\nrequire(%s);\n' \
      "$libdir" "$flags" "$name" "'$libdir/$name.js'" ;;
    *) die "launcher style must be sh or node, not '$style'" ;;
  esac
}

stage() {
  local prefix="$1" arch="$2" dir="$3" style="${4:-sh}"
  local libdir="$prefix/lib/offloadd" runtime strip=strip
  [ "$arch" = arm64 ] && strip=aarch64-linux-gnu-strip
  command -v "$strip" >/dev/null || die "$strip is missing (apt-get install binutils / g++-aarch64-linux-gnu)"
  runtime="$(scripts/node-runtime.sh "$arch")"
  install -d "$dir$libdir/node/bin" "$dir$prefix/sbin" "$dir$prefix/bin" \
    "$dir$prefix/lib/systemd/system" "$dir$prefix/lib/systemd/catalog" \
    "$dir$prefix/share/bash-completion/completions" "$dir$prefix/share/man/man1" \
    "$dir$prefix/share/man/man5" "$dir$prefix/share/man/man8" "$dir$prefix/share/doc/offloadd/examples"
  node scripts/bundle.js "$dir$libdir" "$libdir"
  install -m 0644 "prebuilds/linux-$arch/offloadd.node" "$dir$libdir/offloadd.node"
  install -m 0644 policy/default.yaml "$dir$libdir/default-policy.yaml"
  install -m 0755 "$runtime/bin/node" "$dir$libdir/node/bin/node"
  "$strip" --strip-all "$dir$libdir/node/bin/node"
  install -m 0644 "$runtime/LICENSE" "$dir$libdir/node/LICENSE"
  for program in offloadd:sbin offloadctl:bin; do
    local name="${program%%:*}" bin="${program##*:}"
    launcher "$style" "$name" "$libdir" > "$dir$prefix/$bin/$name"
    chmod 0755 "$dir$prefix/$bin/$name"
  done
  unit_for_prefix "$prefix" > "$dir$prefix/lib/systemd/system/offloadd.service"
  sed "s#/opt/offloadd/policy/default.yaml#$libdir/default-policy.yaml#g" systemd/offloadd.catalog \
    > "$dir$prefix/lib/systemd/catalog/offloadd.catalog"
  install -m 0644 completion/offloadctl.bash "$dir$prefix/share/bash-completion/completions/offloadctl"
  install -m 0644 man/offloadctl.1 "$dir$prefix/share/man/man1/"
  install -m 0644 man/offloadd.policy.5 "$dir$prefix/share/man/man5/"
  install -m 0644 man/offloadd.8 "$dir$prefix/share/man/man8/"
  # The drop-in that lets the sandboxed unit serve metrics, for this prefix's launcher.
  sed "s#^ExecStart=/usr/sbin/offloadd#ExecStart=$prefix/sbin/offloadd#" systemd/offloadd.service.d/metrics.conf.example \
    > "$dir$prefix/share/doc/offloadd/examples/metrics.conf"
  sed -i "s#/usr/lib/offloadd/#$libdir/#g; s#/usr/sbin/offloadd#$prefix/sbin/offloadd#g; s#/usr/share/doc/offloadd/#$prefix/share/doc/offloadd/#g" "$dir$prefix"/share/man/man*/*
}

# systemd/offloadd.service runs a checkout at /opt/offloadd with the host's node: point it at
# the installed launcher and the man pages instead.
unit_for_prefix() {
  local prefix="$1" unit
  local execstart="/usr/bin/node $DAEMON_NODE_FLAGS /opt/offloadd/bin/offloadd"
  grep -q "^ExecStart=$execstart$" systemd/offloadd.service ||
    die "systemd/offloadd.service must run ExecStart=$execstart (DAEMON_NODE_FLAGS, the launchers' options)"
  unit="$(sed -e "s#$execstart#$prefix/sbin/offloadd#g" \
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
