// Render cost of the exposition for N managed interfaces (docs/METRICS.md, Rendering), built in REPO:
//   node --expose-gc scripts/metrics-render-cost.js [N] [REPO]
// rebuild: a change, then a render that rebuilds the per-interface block; cached: a render with
// nothing changed. Prints p50/p99 in µs, and the ArrayBuffer memory that 10 rebuilds leave
// before a collection (blocks awaiting the GC) and after one.
'use strict';
const path = require('path');
const { performance } = require('perf_hooks');
const { interfaceStatuses, metricsInputs } = require('./metrics-fixture');
const N = Number(process.argv[2] ?? 1000);
const repo = path.resolve(process.argv[3] ?? '.');
const { Metrics } = require(`${repo}/dist/src/observe/metrics.js`);
const statuses = interfaceStatuses(N);
const inputs = metricsInputs(statuses);
const metrics = new Metrics(inputs, 0);
/** One scrape as the exporters do it: the parts, then done() where the build still has one (0.3.0). */
function scrape() {
  const exposition = metrics.renderParts();
  if (typeof exposition.done === 'function') exposition.done();
  return exposition;
}
function percentiles(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return `p50 ${(at(0.5) * 1000).toFixed(0)} µs, p99 ${(at(0.99) * 1000).toFixed(0)} µs`;
}
const ROUNDS = 500;
for (let i = 0; i < 50; i++) {
  metrics.changed();
  scrape();
} // warm-up
const rebuild = [];
for (let i = 0; i < ROUNDS; i++) {
  statuses[i % N].compliant = !statuses[i % N].compliant;
  metrics.changed();
  const start = performance.now();
  scrape();
  rebuild.push(performance.now() - start);
}
const cached = [];
for (let i = 0; i < ROUNDS; i++) {
  const start = performance.now();
  scrape();
  cached.push(performance.now() - start);
}
const mib = (bytes) => (bytes / 1048576).toFixed(2);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** After a full collection and its background sweep (which frees the backing stores). */
async function collected() {
  global.gc();
  await sleep(300);
  return process.memoryUsage().arrayBuffers;
}
(async () => {
  const base = await collected();
  for (let i = 0; i < 10; i++) {
    metrics.changed();
    scrape();
  }
  const after10 = process.memoryUsage().arrayBuffers;
  const afterGc = await collected();
  console.log(
    `N=${N} rebuild: ${percentiles(rebuild)}; cached: ${percentiles(cached)}; ` +
      `ArrayBuffers after 10 rebuilds +${mib(after10 - base)} MiB, after a GC +${mib(afterGc - base)} MiB (block ${mib(scrape().parts[1].length)} MiB)`,
  );
})();
