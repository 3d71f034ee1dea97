// Summarises scripts/metrics-rss-daemon.sh's probe lines (docs/METRICS.md):
//   node scripts/metrics-rss-summary.js OUT.jsonl
// Per note (variant): the median of each part over its runs, and the difference from `off` as the
// median of per-round differences (round k's variant minus round k's `off`: the runs were
// alternated, so each difference compares daemons started a minute apart on the same machine),
// with its range. Deterministic parts (modules, external bytes, old-space objects) show the cost
// itself; Rss and Anonymous add the run-to-run noise of the allocators.
'use strict';
const fs = require('fs');
const lines = fs
  .readFileSync(process.argv[2], 'utf8')
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line));
const parts = {
  rss: (l) => l.rssKiB,
  anon: (l) => l.anonKiB,
  file: (l) => l.fileKiB,
  brk: (l) => l.kinds.brk,
  heapCommitted: (l) => l.heapTotalKiB,
  newSpace: (l) => l.spaces.new_space.committedKiB,
  oldUsed: (l) => l.spaces.old_space.usedKiB,
  codeUsed: (l) => l.spaces.code_space.usedKiB + l.spaces.code_large_object_space.usedKiB,
  external: (l) => l.externalKiB,
};
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const mib = (kib) => (kib / 1024).toFixed(2);
const byNote = new Map();
for (const line of lines) byNote.set(line.note, [...(byNote.get(line.note) ?? []), line]);
const off = byNote.get('off') ?? [];
console.log(`MiB; ${off.length} runs of off. median (Δ vs off: median of per-round differences [min, max])`);
for (const [note, runs] of byNote) {
  const cells = Object.entries(parts).map(([name, get]) => {
    const value = mib(median(runs.map(get)));
    if (note === 'off') return `${name} ${value}`;
    const diffs = runs.slice(0, off.length).map((run, k) => get(run) - get(off[k]));
    return `${name} ${value} (${diffs.length ? `${mib(median(diffs))} [${mib(Math.min(...diffs))}, ${mib(Math.max(...diffs))}]` : '-'})`;
  });
  console.log(`${note} ×${runs.length}: ${cells.join(', ')}`);
  const extra = runs[0].modules.filter((m) => !(off[0]?.modules ?? []).includes(m));
  if (note !== 'off' && extra.length) console.log(`  modules beyond off: ${extra.join(' ')}`);
}
