#!/bin/bash
# Idle RSS of offloadd with 1,000 managed veth ends (500 veth pairs in a scratch namespace made
# afresh for every run, so every daemon corrects 1,000 features at start as a real one would),
# one daemon per VARIANT, in the order given (alternate them: docs/METRICS.md):
#   scripts/metrics-rss-daemon.sh REPO OUT VARIANT...
# VARIANT: off | listen | textfile | both (listen + textfile; probed again with nothing done, then
# after one scrape, then after 100 more, in the same process). The daemon preloads scripts/metrics-rss-probe.js; it
# is probed (SIGUSR2) SETTLE_S seconds after its API answers, and the probe's JSON lines
# (smaps_rollup, V8 heap spaces, modules) are appended to OUT with the note "VARIANT" (and
# "both+probe", "both+scrape1", "both+scrape101"). A one-line summary per probe goes to stdout.
# NODE_FLAGS= adds node options. Needs root, ip, curl; deletes what it made.
set -euo pipefail
REPO=$(cd "$1" && pwd); OUT=$2; shift 2
SETTLE_S=${SETTLE_S:-14}
touch "$OUT"
URL=http://127.0.0.1:9747/metrics
probe() { # note
  local before; before=$(wc -l <"$OUT")
  echo "$1" >"$OUT.note"; kill -USR2 "$pid"
  until [ "$(wc -l <"$OUT")" -gt "$before" ]; do sleep 0.1; done
  tail -n 1 "$OUT" | node -e 'const l=JSON.parse(require("fs").readFileSync(0,"utf8")); const n=l.note;
    console.log(`${n.padEnd(15)} rss ${(l.rssKiB/1024).toFixed(1)} anon ${(l.anonKiB/1024).toFixed(1)} file ${(l.fileKiB/1024).toFixed(1)} heap ${(l.heapTotalKiB/1024).toFixed(1)} ext ${(l.externalKiB/1024).toFixed(2)} threads ${l.threads} modules ${l.modules.length}`)' || true
}
for variant in "$@"; do
  NS=offloadd-rss-$$; D=$(mktemp -d); pid=
  trap 'kill $pid 2>/dev/null; ip netns del $NS 2>/dev/null; rm -rf $D' EXIT
  ip netns add $NS; ip -n $NS link set lo up
  for i in $(seq 1 500); do echo "link add m${i}a type veth peer name m${i}b"; done | ip -n $NS -batch -
  printf 'rules:\n  - name: bench-gso-off\n    match: { name: "m*" }\n    features: { gso: off }\n' > $D/p.yaml
  args=()
  case $variant in
    listen) args=(--metrics-listen 127.0.0.1:9747);;
    textfile) args=(--metrics-textfile $D/o.prom);;
    both) args=(--metrics-listen 127.0.0.1:9747 --metrics-textfile $D/o.prom);;
    off) ;;
    *) echo "unknown variant $variant" >&2; exit 2;;
  esac
  RSS_PROBE_OUT=$OUT ip netns exec $NS node ${NODE_FLAGS:-} -r "$REPO/scripts/metrics-rss-probe.js" \
    "$REPO/bin/offloadd" --policy $D/p.yaml --state-dir $D/s --socket $D/s.sock --log-target console --log-level warning "${args[@]}" >$D/log 2>&1 &
  pid=$!
  until [ -S $D/s.sock ]; do sleep 0.1; done
  sleep "$SETTLE_S"
  probe "$variant"
  if [ "$variant" = both ]; then
    # A probe allocates too (it reads /proc/self/smaps, ~150 kB): this one, without a scrape,
    # tells the probe's own share from the scrapes'.
    sleep 5; probe both+probe
    ip netns exec $NS curl -s -o /dev/null $URL
    sleep 5; probe both+scrape1
    ip netns exec $NS curl -s --rate 10/s $(for k in $(seq 100); do echo "-o /dev/null $URL"; done)
    sleep 8; probe both+scrape101
  fi
  kill $pid; wait $pid || true
  ip netns del $NS; rm -rf $D "$OUT.note"
done
