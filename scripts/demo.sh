#!/usr/bin/env bash
# A throwaway network namespace in which a veth poses as a Broadcom BCM57508 port (PCI 14e4:1750,
# driver bnxt_en, through a fake sysfs tree), and offloadd runs on the shipped default policy:
# GRO/GSO go off when the "NIC" appears, and again after someone turns GRO back on.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: needs root (CAP_NET_ADMIN); run: sudo npm run demo" >&2; exit 2; }
[ -f build/Release/offloadd.node ] && [ -f dist/src/cli/offloadd.js ] || { echo "demo: run 'npm ci' first" >&2; exit 2; }

NS="offloadd-demo-$$"
WORK="$(mktemp -d /tmp/offloadd-demo.XXXXXX)"
DAEMON_PID=""
cleanup() {
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { ip netns exec "$NS" ethtool -k "$1" | grep -E '^(generic-receive-offload|generic-segmentation-offload):'; }

# sysfs layout: class/net/IF/device -> the PCI device dir with vendor/device ids and a driver link
DEV="$WORK/sys/devices/pci0000:00/0000:3b:00.0"
mkdir -p "$DEV" "$WORK/sys/bus/pci/drivers/bnxt_en" "$WORK/sys/class/net/ens1f0np0"
echo 0x14e4 > "$DEV/vendor"; echo 0x1750 > "$DEV/device"
echo 0x14e4 > "$DEV/subsystem_vendor"; echo 0x5208 > "$DEV/subsystem_device"
ln -s ../../../bus/pci/drivers/bnxt_en "$DEV/driver"
ln -s ../../../devices/pci0000:00/0000:3b:00.0 "$WORK/sys/class/net/ens1f0np0/device"

ip netns add "$NS"
step "Starting offloadd in namespace $NS on the shipped default policy (policy/default.yaml)"
ip netns exec "$NS" node bin/offloadd --sysfs-root "$WORK/sys" --state-dir "$WORK/state" \
  --log-target console --policy policy/default.yaml &
DAEMON_PID=$!
sleep 1

step "Hot-plugging ens1f0np0 (a veth posing as BCM57508 14e4:1750, bnxt_en) with GRO on"
ip -n "$NS" link add ens1f0np0 type veth peer name peer0
ip netns exec "$NS" ethtool -K ens1f0np0 gro on 2>/dev/null || true
sleep 0.5
show ens1f0np0

step "Someone turns GRO back on (ethtool -K ens1f0np0 gro on)"
ip netns exec "$NS" ethtool -K ens1f0np0 gro on
sleep 0.5
show ens1f0np0

step "The drift ledger ($WORK/state/ledger.jsonl)"
cat "$WORK/state/ledger.jsonl"
step "Done; cleaning up"
