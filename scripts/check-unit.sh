#!/usr/bin/env bash
# Static checks of offloadd's systemd integration, for CI (milliseconds; no systemd running needed):
#   1. `systemd-analyze verify` of systemd/offloadd.service prints nothing (it only warns, exit 0,
#      on unknown keys and bad values, so any output is a failure);
#   2. `systemd-analyze security` rates its exposure at most $MAX_EXPOSURE (default 2.0);
#   3. MemoryDenyWriteExecute=yes only with node's --jitless in ExecStart= (the JIT would abort);
#   4. systemd/offloadd.catalog parses with journalctl's own catalog code and has an entry, with
#      Subject/Defined-By/Support/Documentation, for exactly the ids in src/observe/message-ids.ts.
# The unit is checked inside a throw-away root (the host's unit directory bind-mounted read-only,
# stand-ins for /usr/bin/node, /opt/offloadd/bin/offloadd and /bin/kill), so the result does not
# depend on where CI installed Node or on what the host has in /etc/systemd. Everything runs in a
# private mount namespace with a tmpfs on /run/systemd: systemd-analyze writes there.
# Needs: systemd (systemd-analyze, journalctl), util-linux (unshare, mount). Runs as root, or as
# any user where unprivileged user namespaces are allowed.
#
# Usage: scripts/check-unit.sh [UNIT_FILE [CATALOG_FILE]]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UNIT=${1:-$REPO/systemd/offloadd.service}
CATALOG=${2:-$REPO/systemd/offloadd.catalog}
MESSAGE_IDS=$REPO/src/observe/message-ids.ts
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}

fail() {
  echo "check-unit: FAIL: $*" >&2
  exit 1
}

for tool in systemd-analyze journalctl unshare mount; do
  command -v "$tool" >/dev/null || fail "$tool not found (apt-get install systemd util-linux mount)"
done
[ -f "$UNIT" ] || fail "no unit file at $UNIT"
[ -f "$CATALOG" ] || fail "no catalog at $CATALOG"

# Re-run inside a private mount namespace (as root, or mapped to root in a user namespace).
if [ "${OFFLOADD_CHECK_UNIT_INSIDE:-}" != 1 ]; then
  export OFFLOADD_CHECK_UNIT_INSIDE=1
  if [ "$(id -u)" = 0 ]; then
    exec unshare --mount --propagation private -- "$BASH" "${BASH_SOURCE[0]}" "$UNIT" "$CATALOG"
  fi
  unshare --user --map-root-user --mount true 2>/dev/null \
    || fail "cannot create a private mount namespace: run as root (or allow unprivileged user namespaces)"
  exec unshare --user --map-root-user --mount --propagation private -- "$BASH" "${BASH_SOURCE[0]}" "$UNIT" "$CATALOG"
fi

export SYSTEMD_COLORS=0 SYSTEMD_PAGER= SYSTEMD_LOG_COLOR=0 LC_ALL=C.UTF-8
[ -d /run/systemd ] || mkdir -p /run/systemd
mount -t tmpfs -o mode=755 tmpfs /run/systemd

ROOT=$(mktemp -d "${TMPDIR:-/tmp}/offloadd-check-unit.XXXXXX")
cleanup() {
  # Unmount first: never remove files through a bind mount of the host's unit directory.
  umount "$ROOT/usr/lib/systemd/system" 2>/dev/null || true
  if ! mountpoint -q "$ROOT/usr/lib/systemd/system" 2>/dev/null; then rm -rf "$ROOT"; fi
}
trap cleanup EXIT

# --- the throw-away root -------------------------------------------------------------------------
UNIT_NAME=$(basename "$UNIT")
mkdir -p "$ROOT/etc/systemd/system" "$ROOT/usr/lib/systemd/system" "$ROOT/usr/bin" "$ROOT/bin" \
  "$ROOT/opt/offloadd/bin" "$ROOT/usr/lib/systemd/catalog"
cp "$UNIT" "$ROOT/etc/systemd/system/$UNIT_NAME"
for exe in usr/bin/node opt/offloadd/bin/offloadd bin/kill; do
  printf '#!/bin/sh\nexit 0\n' >"$ROOT/$exe"
  chmod 755 "$ROOT/$exe"
done
SYSTEM_UNITS=
for dir in /usr/lib/systemd/system /lib/systemd/system; do
  if [ -f "$dir/sysinit.target" ]; then SYSTEM_UNITS=$dir; break; fi
done
[ -n "$SYSTEM_UNITS" ] || fail "the host's systemd unit directory (with sysinit.target) was not found"
mount --bind "$SYSTEM_UNITS" "$ROOT/usr/lib/systemd/system"
mount -o remount,bind,ro "$ROOT/usr/lib/systemd/system"

# --- 0. one header per section (systemd merges repeated sections silently) --------------------------
repeated=$(grep -E '^[[:space:]]*\[[A-Za-z]+\][[:space:]]*$' "$UNIT" | tr -d ' \t' | sort | uniq -d)
[ -z "$repeated" ] || fail "$UNIT_NAME repeats section(s) $(echo $repeated): merge them"

# --- 1. verify ---------------------------------------------------------------------------------
status=0
output=$(systemd-analyze verify --root="$ROOT" "$UNIT_NAME" 2>&1) || status=$?
if [ "$status" != 0 ] || [ -n "$output" ]; then
  printf '%s\n' "$output" >&2
  fail "systemd-analyze verify $UNIT_NAME: exit status $status, $(printf '%s' "$output" | grep -c '') lines of output (must be 0 and none)"
fi
echo "check-unit: ok: systemd-analyze verify $UNIT_NAME prints nothing"

# --- 2. exposure ---------------------------------------------------------------------------------
status=0
report=$(systemd-analyze security --offline=true --root="$ROOT" "$UNIT_NAME" 2>&1) || status=$?
score=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p' | head -n1)
if [ "$status" != 0 ] || [ -z "$score" ]; then
  printf '%s\n' "$report" >&2
  fail "systemd-analyze security $UNIT_NAME did not report an exposure level (exit status $status)"
fi
if ! awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s + 0 <= m + 0) }'; then
  printf '%s\n' "$report" | grep '✗' >&2 || true
  fail "exposure $score is above $MAX_EXPOSURE (the ✗ lines above cost points)"
fi
echo "check-unit: ok: exposure $score (at most $MAX_EXPOSURE)"

# --- 3. Node's JIT -------------------------------------------------------------------------------
if grep -Eiq '^[[:space:]]*MemoryDenyWriteExecute[[:space:]]*=[[:space:]]*(yes|true|on|1)[[:space:]]*$' "$UNIT"; then
  if ! grep -Eq '^[[:space:]]*ExecStart=[^#]*node[[:space:]]+(--[^[:space:]]+[[:space:]]+)*--jitless[[:space:]]' "$UNIT"; then
    fail "$UNIT_NAME sets MemoryDenyWriteExecute=yes but ExecStart= runs node without --jitless: its JIT would abort"
  fi
  echo "check-unit: ok: MemoryDenyWriteExecute=yes with node --jitless"
else
  echo "check-unit: ok: MemoryDenyWriteExecute= off"
fi

# --- 4. catalog ----------------------------------------------------------------------------------
cp "$CATALOG" "$ROOT/usr/lib/systemd/catalog/offloadd.catalog"
output=$(journalctl --root="$ROOT" --update-catalog 2>&1) || fail "journalctl --update-catalog rejected $CATALOG: $output"
[ -z "$output" ] || fail "journalctl --update-catalog complained about $CATALOG: $output"
listed=$(journalctl --root="$ROOT" --list-catalog 2>&1) || fail "journalctl --list-catalog failed: $listed"
catalog_ids=$(printf '%s\n' "$listed" | awk '{ print $1 }' | sort)
wanted_ids=$(grep -oE "'[0-9a-f]{32}'" "$MESSAGE_IDS" | tr -d "'" | sort)
[ -n "$wanted_ids" ] || fail "no MESSAGE_IDs found in $MESSAGE_IDS"
missing=$(comm -23 <(printf '%s\n' "$wanted_ids") <(printf '%s\n' "$catalog_ids"))
extra=$(comm -13 <(printf '%s\n' "$wanted_ids") <(printf '%s\n' "$catalog_ids"))
[ -z "$missing" ] || fail "no catalog entry for: $(echo $missing) (from $MESSAGE_IDS)"
[ -z "$extra" ] || fail "catalog entries for ids not in $MESSAGE_IDS: $(echo $extra)"
incomplete=$(awk '
  function check() { if (id != "" && !(subject && defined && support && doc)) print id }
  /^-- [0-9a-f]+/ { check(); id = $2; subject = defined = support = doc = 0; next }
  /^Subject: ./ { subject = 1 }
  /^Defined-By: offloadd$/ { defined = 1 }
  /^Support: ./ { support = 1 }
  /^Documentation: ./ { doc = 1 }
  END { check() }' "$CATALOG")
[ -z "$incomplete" ] || fail "catalog entries without Subject:, Defined-By: offloadd, Support: or Documentation:: $(echo $incomplete)"
echo "check-unit: ok: catalog has all $(printf '%s\n' "$wanted_ids" | grep -c .) MESSAGE_IDs and parses"
