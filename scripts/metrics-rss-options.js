// Idle RSS of the two exposition options, each alone in a node process (docs/METRICS.md):
//   node scripts/metrics-rss-options.js MODE [N] REPO
//   base : N interface statuses shaped as the daemon keeps them, nothing else
//   hand : + offloadd's Metrics (dist/src/observe/metrics.js) over them, one render
//   prom : + a prom-client registry with the same metric set and N label sets, one render
//          (prom-client is not a dependency: npm i --no-save prom-client@15 in a scratch
//          directory and run with NODE_PATH=<scratch>/node_modules)
// Prints VmRSS (KiB) 12 s after the render (as bench/scenarios/idle.ts settles).
const fs = require('fs');
const { interfaceStatuses, metricsInputs } = require('./metrics-fixture');
const [mode, nText, repo] = process.argv.slice(2);
const N = Number(nText ?? 1000);
const statuses = interfaceStatuses(N);
const inputs = metricsInputs(statuses);
const BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1];
async function main() {
  let text = '';
  if (mode === 'hand') {
    const { Metrics } = require(`${repo}/dist/src/observe/metrics.js`);
    const metrics = new Metrics(inputs);
    text = metrics.render();
    globalThis.keep = metrics;
  } else if (mode === 'prom') {
    const client = require('prom-client');
    const registry = new client.Registry();
    const g = (name, labelNames = []) => new client.Gauge({ name, help: name, labelNames, registers: [registry] });
    const c = (name, labelNames = []) => new client.Counter({ name, help: name, labelNames, registers: [registry] });
    g('offloadd_build_info', ['version', 'nodejs_version']).set(
      { version: '0.2.0', nodejs_version: process.versions.node },
      1,
    );
    g('offloadd_feature_interface_info', ['feature_interface']).set({ feature_interface: 'ethtool-netlink' }, 1);
    g('offloadd_policy_info', ['path', 'sha256', 'mode']).set(
      { path: '/etc/offloadd/policy.yaml', sha256: 'a'.repeat(64), mode: 'enforce' },
      1,
    );
    g('offloadd_policy_rules').set(1);
    for (const n of ['managed', 'compliant', 'not_compliant']) g(`offloadd_interfaces_${n}`).set(0);
    for (const n of ['drifts', 'corrections', 'unenforceable', 'failures', 'resyncs']) c(`offloadd_${n}_total`);
    const reloads = c('offloadd_policy_reloads_total', ['result']);
    reloads.inc({ result: 'loaded' }, 0);
    reloads.inc({ result: 'rejected' }, 0);
    for (const n of [
      'offloadd_last_reconcile_timestamp_seconds',
      'offloadd_netlink_receive_buffer_bytes',
      'offloadd_ledger_writable',
      'offloadd_ledger_held_records',
    ])
      g(n).set(0);
    for (const n of ['offloadd_correction_duration_seconds', 'offloadd_exposure_window_seconds'])
      new client.Histogram({ name: n, help: n, buckets: BUCKETS, registers: [registry] });
    const labels = ['interface', 'driver', 'pci', 'rule'];
    const compliant = g('offloadd_interface_compliant', labels);
    const drifts = c('offloadd_interface_drifts_total', labels);
    const unenf = g('offloadd_interface_unenforceable_features', labels);
    for (const s of statuses) {
      const l = { interface: s.name, driver: s.facts.driver ?? '', pci: '', rule: s.rule };
      compliant.set(l, 1);
      drifts.inc(l, 0);
      unenf.set(l, 0);
    }
    // the standard process_* only (as the hand-written module exports)
    text = await registry.metrics();
    globalThis.keep = registry;
  }
  globalThis.keepStatuses = statuses;
  setTimeout(() => {
    const rss = /VmRSS:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1];
    process.stdout.write(`${mode} ${N} rssKiB=${rss} bytes=${text.length}\n`);
    process.exit(0);
  }, 12000);
}
main();
