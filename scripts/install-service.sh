#!/usr/bin/env bash
# Installs offloadd as a systemd service from a built checkout (npm ci done):
#   /opt/offloadd                     the daemon, CLI and production node_modules
#   /usr/local/bin/offloadctl         the CLI (and /usr/local/sbin/offloadd)
#   /etc/systemd/system/offloadd.service
#   /usr/local/lib/systemd/catalog/offloadd.catalog   (journalctl -x explanations)
#   /etc/offloadd/policy.yaml         the shipped default, only if there is none yet
# then enables and starts the service. Run as root (other users: sudo npm run install-service).
# PREFIX_ROOT=/some/dir installs into another root (for images); nothing is started then.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="${PREFIX_ROOT:-}"
[ "$(id -u)" = 0 ] || { echo "install-service: needs root; run: sudo npm run install-service" >&2; exit 2; }
[ -f build/Release/offloadd.node ] && [ -f dist/src/cli/offloadd.js ] || { echo "install-service: build first with 'npm ci'" >&2; exit 2; }

APP="$ROOT/opt/offloadd"
STAGE="$(mktemp -d "$ROOT/opt/.offloadd.XXXXXX" 2>/dev/null || { mkdir -p "$ROOT/opt" && mktemp -d "$ROOT/opt/.offloadd.XXXXXX"; })"
trap 'rm -rf "$STAGE"' EXIT
cp -a package.json package-lock.json README.md bin policy docs "$STAGE/"
mkdir -p "$STAGE/dist" "$STAGE/build/Release"
cp -a dist/src "$STAGE/dist/"
cp build/Release/offloadd.node "$STAGE/build/Release/"
cp -a node_modules "$STAGE/"
(cd "$STAGE" && npm prune --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
chmod -R go-w "$STAGE" && chmod 755 "$STAGE"
rm -rf "$APP.old"; [ -e "$APP" ] && mv "$APP" "$APP.old"
mv "$STAGE" "$APP"; rm -rf "$APP.old"
trap - EXIT

install -D -m 0644 systemd/offloadd.service "$ROOT/etc/systemd/system/offloadd.service"
install -D -m 0644 systemd/offloadd.catalog "$ROOT/usr/local/lib/systemd/catalog/offloadd.catalog"
install -d -m 0755 "$ROOT/usr/local/bin" "$ROOT/usr/local/sbin" "$ROOT/etc/offloadd"
ln -sfn /opt/offloadd/bin/offloadctl "$ROOT/usr/local/bin/offloadctl"
ln -sfn /opt/offloadd/bin/offloadd "$ROOT/usr/local/sbin/offloadd"
if [ -e "$ROOT/etc/offloadd/policy.yaml" ]; then
  echo "install-service: keeping the existing $ROOT/etc/offloadd/policy.yaml"
else
  install -m 0644 policy/default.yaml "$ROOT/etc/offloadd/policy.yaml"
fi

if [ -n "$ROOT" ]; then
  echo "install-service: installed into $ROOT (not started)"
  exit 0
fi
journalctl --update-catalog || echo "install-service: journalctl --update-catalog failed; journalctl -x will lack offloadd's explanations" >&2
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now offloadd.service
  systemctl --no-pager --lines=5 status offloadd.service || true
else
  echo "install-service: installed; systemd is not running here, so the service was not started"
fi
