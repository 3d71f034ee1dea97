#!/usr/bin/env bash
# Stops, disables and removes the offloadd service. Keeps the policy (/etc/offloadd) and the
# drift history (/var/lib/offloadd) unless --purge is given.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "uninstall-service: needs root; run: sudo npm run uninstall-service" >&2; exit 2; }
PURGE=no
case "${1:-}" in
  --purge) PURGE=yes ;;
  "") ;;
  *) echo "usage: uninstall-service.sh [--purge]" >&2; exit 2 ;;
esac
if [ -d /run/systemd/system ]; then
  systemctl disable --now offloadd.service 2>/dev/null || true
fi
rm -f /etc/systemd/system/offloadd.service /usr/local/lib/systemd/catalog/offloadd.catalog \
      /usr/local/bin/offloadctl /usr/local/sbin/offloadd
rm -rf /opt/offloadd
[ -d /run/systemd/system ] && systemctl daemon-reload
journalctl --update-catalog 2>/dev/null || true
if [ "$PURGE" = yes ]; then
  rm -rf /etc/offloadd /var/lib/offloadd
  echo "uninstall-service: removed, including the policy and the drift history"
else
  echo "uninstall-service: removed; kept /etc/offloadd (policy) and /var/lib/offloadd (drift history); --purge removes them"
fi
