// What Metrics reads from the daemon (MetricsInputs), for N managed interfaces shaped as the
// daemon keeps them: shared by the measurement scripts metrics-rss-options.js and
// metrics-render-cost.js (docs/METRICS.md).
'use strict';

/** N interface statuses, all compliant, one feature each. */
function interfaceStatuses(n) {
  return Array.from({ length: n }, (_, i) => ({
    ifindex: i + 10,
    name: `m${String(i).padStart(5, '0')}a`,
    rule: 'bench-gso-off',
    mode: 'enforce',
    compliant: true,
    since: new Date().toISOString(),
    lastCheck: new Date().toISOString(),
    lastDrift: null,
    driftCount: 0,
    facts: {
      ifindex: i + 10,
      name: `m${i}`,
      kind: 'veth',
      mac: '02:00:00:00:00:01',
      up: false,
      operstate: 'down',
      master: null,
      driver: 'veth',
      busInfo: null,
      pci: null,
    },
    features: [{ feature: 'tx-generic-segmentation', wanted: false, before: false, action: 'none', after: false }],
  }));
}

/** MetricsInputs over `statuses` (read at render time, as the daemon's are). */
function metricsInputs(statuses) {
  return {
    startedAt: new Date(),
    policy: { path: '/etc/offloadd/policy.yaml', checksum: 'a'.repeat(64), mode: 'enforce', rules: [{}] },
    featureInterface: 'ethtool-netlink',
    counts: () => ({ managed: statuses.length, compliant: statuses.filter((status) => status.compliant).length }),
    eventCounts: () => ({ resyncs: 0, drifts: 0, corrections: 0, unenforceable: 0, failures: 0, reloads: 0 }),
    rejectedReloads: () => 0,
    ledgerStatus: () => ({ path: '/x', writable: true, unwritableSince: null, problem: null, heldRecords: 0 }),
    statuses: () => statuses,
    receiveBufferBytes: () => 16777216,
  };
}

module.exports = { interfaceStatuses, metricsInputs };
