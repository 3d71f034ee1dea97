#!/bin/bash
# Idle RSS of offloadd with 1,000 managed veth ends (500 veth pairs in a scratch namespace),
# one daemon per VARIANT, VmRSS sampled 12 to 20 s after the API answers (docs/METRICS.md):
#   scripts/metrics-rss-daemon.sh REPO VARIANT...
# VARIANT: off | listen | listen+scrape | textfile | both+scrape (listen + textfile + one scrape).
# NODE_FLAGS= adds node options. Needs root, ip, curl; deletes what it made.
set -euo pipefail
REPO=$1; shift
for variant in "$@"; do
  NS=offloadd-rss-$$; D=$(mktemp -d); pid=
  trap 'kill $pid 2>/dev/null; ip netns del $NS 2>/dev/null; rm -rf $D' EXIT
  ip netns add $NS; ip -n $NS link set lo up
  for i in $(seq 1 500); do echo "link add m${i}a type veth peer name m${i}b"; done | ip -n $NS -batch -
  printf 'rules:\n  - name: bench-gso-off\n    match: { name: "m*" }\n    features: { gso: off }\n' > $D/p.yaml
  args=()
  case $variant in
    listen*) args=(--metrics-listen 127.0.0.1:9747);;
    textfile) args=(--metrics-textfile $D/o.prom);;
    both*) args=(--metrics-listen 127.0.0.1:9747 --metrics-textfile $D/o.prom);;
  esac
  ip netns exec $NS node ${NODE_FLAGS:-} $REPO/bin/offloadd --policy $D/p.yaml --state-dir $D/s --socket $D/s.sock --log-target console --log-level warning "${args[@]}" >$D/log 2>&1 &
  pid=$!
  until [ -S $D/s.sock ]; do sleep 0.1; done
  case $variant in *scrape) ip netns exec $NS curl -s -o /dev/null http://127.0.0.1:9747/metrics;; esac
  sleep 12
  samples=""
  for k in 1 2 3 4 5; do samples="$samples $(awk '/VmRSS/{print $2}' /proc/$pid/status)"; sleep 2; done
  echo "$variant $samples" | awk '{s=0; for(i=2;i<=NF;i++) s+=$i; printf "%s mean %.1f MiB (KiB samples:", $1, s/(NF-1)/1024; for(i=2;i<=NF;i++) printf " %s", $i; print ")"}'
  kill $pid; wait $pid || true
  ip netns del $NS; rm -rf $D
done
