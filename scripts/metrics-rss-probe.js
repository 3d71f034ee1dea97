// Preloaded into a daemon (node -r scripts/metrics-rss-probe.js) to see where its resident memory
// lives: on SIGUSR2 it appends one JSON line to $RSS_PROBE_OUT with /proc/self/smaps_rollup (Rss,
// Anonymous, file-backed), thread count, V8's heap spaces, memoryUsage() (external, arrayBuffers)
// and the modules loaded (process.moduleLoadList, require.cache), so two daemons (metrics off and
// on) can be compared part by part (docs/METRICS.md). The line's note is $RSS_PROBE_OUT.note's
// content at that moment (the runner writes it before signalling). Measurement only; never shipped.
'use strict';
const fs = require('fs');
const v8 = require('v8');
const out = process.env.RSS_PROBE_OUT;
process.on('SIGUSR2', () => {
  const rollup = {};
  for (const line of fs.readFileSync('/proc/self/smaps_rollup', 'utf8').split('\n')) {
    const m = /^(\w+):\s+(\d+) kB/.exec(line);
    if (m) rollup[m[1]] = Number(m[2]);
  }
  // Resident KiB by kind of mapping: brk heap (malloc), other anonymous (V8 heap, malloc arenas
  // and large blocks, thread stacks), file-backed (node's code, libraries), and the largest anonymous ones.
  const kinds = { brk: 0, anonMmap: 0, file: 0, other: 0 };
  const anonMaps = [];
  let current = null;
  for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      const name = head[4];
      const kind = name === '[heap]' ? 'brk' : name === '' ? 'anonMmap' : name.startsWith('/') ? 'file' : 'other';
      current = { kind, sizeKiB: (parseInt(head[2], 16) - parseInt(head[1], 16)) / 1024, perms: head[3], rssKiB: 0 };
      if (kind === 'anonMmap') anonMaps.push(current);
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && current) {
      current.rssKiB = Number(rss[1]);
      kinds[current.kind] += current.rssKiB;
    }
  }
  anonMaps.sort((x, y) => y.rssKiB - x.rssKiB);
  const threads = Number(/Threads:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]);
  const spaces = {};
  for (const s of v8.getHeapSpaceStatistics())
    spaces[s.space_name] = {
      committedKiB: Math.round(s.physical_space_size / 1024),
      usedKiB: Math.round(s.space_used_size / 1024),
    };
  const mu = process.memoryUsage();
  const line = {
    note: fs.existsSync(`${out}.note`) ? fs.readFileSync(`${out}.note`, 'utf8').trim() : '',
    rssKiB: rollup.Rss,
    anonKiB: rollup.Anonymous,
    fileKiB: rollup.Rss - rollup.Anonymous,
    kinds,
    anonMapCount: anonMaps.length,
    topAnonMaps: anonMaps.slice(0, 12),
    threads,
    heapTotalKiB: Math.round(mu.heapTotal / 1024),
    heapUsedKiB: Math.round(mu.heapUsed / 1024),
    externalKiB: Math.round(mu.external / 1024),
    arrayBuffersKiB: Math.round(mu.arrayBuffers / 1024),
    mallocedKiB: Math.round(v8.getHeapStatistics().malloced_memory / 1024),
    spaces,
    modules: process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice(13)),
    files: Object.keys(require.cache).map((f) => f.replace(/^.*\/(dist|node_modules)\//, '$1/')),
  };
  fs.appendFileSync(out, `${JSON.stringify(line)}\n`);
});
