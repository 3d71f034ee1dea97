// Bytes the daemon allocates per drift check and per interface of its start-up pass, and where
// (V8's sampling heap profiler inside the real daemon, counting what the scavenger and the
// mark-compactor have already collected too). Needs root and a build (npm run build):
//   node scripts/allocation-per-check.js [--runs 3] [--drifts 300] [--interfaces 20,220]
//        [--interval 256] [--top 25] [--attribution off|on] [--repo DIR]
// Each run makes its own namespace (offloadd-t-<random>, deleted whatever happens) with
// `--interfaces` veths (each run does one start-up per size), starts `offloadd --policy (gso off
// on up*) --log-target console --log-level info` in it with this file preloaded (`node -r`), waits
// for every initial record, then drifts the interfaces round robin with `ethtool -K upN gso on`,
// each one waited for in the ledger. Start-up per interface = the difference between the two
// sizes' bytes to READY over the difference in interfaces; per drift = the drift window's bytes
// over the drifts. Also CPU (user+sys) per drift and scavenges per drift, with the profiler on
// (it perturbs CPU: compare CPU only between runs of this script).
//
// Preloaded into the daemon (OFFLOADD_ALLOC_PROFILE set), this file samples from the start and,
// on each SIGUSR2, writes the window's profile (sites, bytes, CPU, GCs) to
// OFFLOADD_ALLOC_PROFILE.N.json and starts the next window.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

if (process.env.OFFLOADD_ALLOC_PROFILE && require.main !== module) probe();
else if (require.main === module)
  main().catch((error) => {
    process.stderr.write(`${error.stack ?? error}\n`);
    process.exitCode = 1;
  });

/** Inside the daemon: sample allocations, write one window per SIGUSR2. */
function probe() {
  const inspector = require('node:inspector');
  const { PerformanceObserver } = require('node:perf_hooks');
  const base = process.env.OFFLOADD_ALLOC_PROFILE;
  const samplingInterval = Number(process.env.OFFLOADD_ALLOC_INTERVAL ?? 256);
  const session = new inspector.Session();
  session.connect();
  const gcs = { minor: 0, major: 0 };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      // NODE_PERFORMANCE_GC_MINOR = 1 (scavenge), everything else counts as major.
      if (entry.detail?.kind === 1) gcs.minor++;
      else gcs.major++;
    }
  }).observe({ entryTypes: ['gc'] });
  const start = () =>
    session.post('HeapProfiler.startSampling', {
      samplingInterval,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  let window = 0;
  let cpu = process.cpuUsage();
  let gcAtStart = { ...gcs };
  session.post('HeapProfiler.enable', () => start());
  process.on('SIGUSR2', () => {
    session.post('HeapProfiler.stopSampling', (error, result) => {
      const used = process.cpuUsage(cpu);
      const out = {
        cpuUs: used.user + used.system,
        minorGcs: gcs.minor - gcAtStart.minor,
        majorGcs: gcs.major - gcAtStart.major,
        profile: error ? null : result.profile,
      };
      fs.writeFileSync(`${base}.${window++}.json`, JSON.stringify(out));
      cpu = process.cpuUsage();
      gcAtStart = { ...gcs };
      start();
    });
  });
}

function options() {
  const defaults = {
    runs: 3,
    drifts: 300,
    interfaces: '20,220',
    interval: 256,
    top: 25,
    attribution: 'off',
    repo: '.',
  };
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i += 2) {
    const key = args[i].replace(/^--/, '');
    if (!(key in defaults) || args[i + 1] === undefined) throw new Error(`unknown or incomplete option ${args[i]}`);
    defaults[key] = typeof defaults[key] === 'number' ? Number(args[i + 1]) : args[i + 1];
  }
  const sizes = defaults.interfaces.split(',').map(Number);
  if (sizes.length !== 2 || !(sizes[0] < sizes[1])) throw new Error('--interfaces wants two sizes, small,large');
  return { ...defaults, sizes, repo: path.resolve(defaults.repo) };
}

async function main() {
  const opts = options();
  const results = [];
  for (let run = 0; run < opts.runs; run++) {
    const byCount = {};
    // Alternate the order of the sizes between runs, so that drift of the machine cancels.
    const order = run % 2 === 0 ? opts.sizes : [...opts.sizes].reverse();
    for (const count of order) byCount[count] = await oneDaemon(opts, count, count === opts.sizes[1] ? opts.drifts : 0);
    const [small, large] = opts.sizes.map((count) => byCount[count]);
    const drift = large.drift;
    const result = {
      startupBytesPerInterface: (large.startup.bytes - small.startup.bytes) / (opts.sizes[1] - opts.sizes[0]),
      startupCpuUsPerInterface: (large.startup.cpuUs - small.startup.cpuUs) / (opts.sizes[1] - opts.sizes[0]),
      bytesPerDrift: drift.bytes / opts.drifts,
      cpuUsPerDrift: drift.cpuUs / opts.drifts,
      scavengesPerDrift: drift.minorGcs / opts.drifts,
      driftSites: drift.sites,
      startupSites: diffSites(large.startup.sites, small.startup.sites),
    };
    results.push(result);
    process.stdout.write(
      `run ${run + 1}: start-up ${result.startupBytesPerInterface.toFixed(0)} B/interface ` +
        `(${result.startupCpuUsPerInterface.toFixed(1)} µs CPU), drift ${result.bytesPerDrift.toFixed(0)} B ` +
        `(${result.cpuUsPerDrift.toFixed(1)} µs CPU, ${result.scavengesPerDrift.toFixed(3)} scavenges)\n`,
    );
  }
  const median = (key) => {
    const sorted = results.map((result) => result[key]).sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  };
  process.stdout.write(
    `\nmedian of ${opts.runs}: start-up ${median('startupBytesPerInterface').toFixed(0)} B/interface ` +
      `(${median('startupCpuUsPerInterface').toFixed(1)} µs CPU), drift ${median('bytesPerDrift').toFixed(0)} B ` +
      `(${median('cpuUsPerDrift').toFixed(1)} µs CPU, ${median('scavengesPerDrift').toFixed(3)} scavenges)\n`,
  );
  const last = results[results.length - 1];
  printSites(`top allocation sites per drift (last run, bytes per drift)`, last.driftSites, opts.drifts, opts.top);
  printSites(
    `top allocation sites per start-up interface (last run, bytes per interface)`,
    last.startupSites,
    opts.sizes[1] - opts.sizes[0],
    opts.top,
  );
}

function printSites(title, sites, divisor, top) {
  process.stdout.write(`\n${title}\n  bytes   nearest own frame  <-  allocating frame\n`);
  const rows = [...sites.entries()].sort((a, b) => b[1].self - a[1].self).slice(0, top);
  for (const [site, { self }] of rows) process.stdout.write(`  ${(self / divisor).toFixed(0).padStart(6)}  ${site}\n`);
  const byOwnFrame = new Map();
  for (const [site, { self }] of sites) {
    const own = site.split('  <-  ')[0];
    byOwnFrame.set(own, (byOwnFrame.get(own) ?? 0) + self);
  }
  process.stdout.write(`  by the nearest own frame:\n`);
  const owned = [...byOwnFrame.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [own, self] of owned) process.stdout.write(`  ${(self / divisor).toFixed(0).padStart(6)}  ${own}\n`);
}

/** Per allocating frame ("function file:line"), with the nearest frame of the project's own code. */
function sitesOf(profile) {
  const sites = new Map();
  let bytes = 0;
  const visit = (node, stack) => {
    const frame = node.callFrame;
    const file = frame.url.replace(/^file:\/\//, '');
    const own = /\/dist\/src\//.test(file);
    const here = `${frame.functionName || '(anonymous)'} ${path.basename(file) || '(native)'}:${frame.lineNumber + 1}`;
    const ownFrame = own ? here : stack;
    if (node.selfSize > 0) {
      bytes += node.selfSize;
      const site = `${ownFrame ?? '(no own frame)'}  <-  ${here}`;
      const entry = sites.get(site) ?? { self: 0 };
      entry.self += node.selfSize;
      sites.set(site, entry);
    }
    for (const child of node.children) visit(child, ownFrame);
  };
  visit(profile.head, null);
  return { bytes, sites };
}

function diffSites(large, small) {
  const out = new Map();
  for (const [site, { self }] of large) out.set(site, { self: self - (small.get(site)?.self ?? 0) });
  return out;
}

async function oneDaemon(opts, count, drifts) {
  const { execFileSync, spawn } = require('node:child_process');
  const { randomBytes } = require('node:crypto');
  const os = require('node:os');
  const ns = `offloadd-t-${randomBytes(4).toString('hex')}`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-t-'));
  const ip = (...args) => execFileSync('ip', ['-n', ns, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let daemon = null;
  const cleanup = () => {
    if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // not made, or already gone
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  const onSignal = () => {
    cleanup();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    execFileSync('ip', ['netns', 'add', ns]);
    const batch = [];
    for (let i = 0; i < count; i++) batch.push(`link add up${i} type veth peer name peer-up${i}`);
    execFileSync('ip', ['-n', ns, '-batch', '-'], { input: batch.join('\n') + '\n' });
    ip('link', 'set', 'lo', 'up');
    const policy = path.join(tmp, 'policy.yaml');
    fs.writeFileSync(
      policy,
      'flapping: { max_corrections: 10000, window: 60, max_backoff: 8 }\n' +
        'rules:\n  - name: vm-uplinks\n    match: { name: "up*" }\n    features: { gso: off }\n',
    );
    const stateDir = path.join(tmp, 'state');
    const profileBase = path.join(tmp, 'alloc');
    const logFd = fs.openSync(path.join(tmp, 'offloadd.log'), 'w');
    daemon = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        '-r',
        __filename,
        path.join(opts.repo, 'bin', 'offloadd'),
        '--policy',
        policy,
        '--state-dir',
        stateDir,
        '--socket',
        path.join(tmp, 'api.sock'),
        '--log-target',
        'console',
        '--log-level',
        'info',
        `--attribution=${opts.attribution}`,
      ],
      {
        stdio: ['ignore', logFd, logFd],
        env: {
          ...process.env,
          JOURNAL_STREAM: '',
          OFFLOADD_ALLOC_PROFILE: profileBase,
          OFFLOADD_ALLOC_INTERVAL: String(opts.interval),
        },
      },
    );
    fs.closeSync(logFd);
    const ledgerFile = path.join(stateDir, 'ledger.jsonl');
    const countRecords = (event) => {
      if (!fs.existsSync(ledgerFile)) return 0;
      const text = fs.readFileSync(ledgerFile, 'utf8');
      let n = 0;
      for (let at = text.indexOf(`"event":"${event}"`); at !== -1; at = text.indexOf(`"event":"${event}"`, at + 1)) n++;
      return n;
    };
    await until(() => countRecords('initial') === count && fs.existsSync(path.join(tmp, 'api.sock')), daemon, tmp);
    await settle();
    const startup = await window(daemon, profileBase, 0, tmp);
    let drift = null;
    if (drifts > 0) {
      for (let i = 1; i <= drifts; i++) {
        execFileSync('ip', ['netns', 'exec', ns, 'ethtool', '-K', `up${i % count}`, 'gso', 'on']);
        await until(() => countRecords('drift') === i, daemon, tmp);
      }
      await settle();
      drift = await window(daemon, profileBase, 1, tmp);
    }
    daemon.kill('SIGTERM');
    await new Promise((resolve) => (daemon.exitCode !== null ? resolve() : daemon.once('exit', resolve)));
    return { startup, drift };
  } finally {
    cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

/** The log line, the ledger's sync and anything else a check leaves behind have run by then. */
function settle() {
  return new Promise((resolve) => setTimeout(resolve, 300));
}

async function window(daemon, profileBase, n, tmp) {
  const file = `${profileBase}.${n}.json`;
  daemon.kill('SIGUSR2');
  await until(() => fs.existsSync(file), daemon, tmp);
  await settle(); // written in one writeFileSync; a short wait makes sure it is whole
  const out = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!out.profile) throw new Error('the daemon wrote no profile');
  const { bytes, sites } = sitesOf(out.profile);
  return { bytes, sites, cpuUs: out.cpuUs, minorGcs: out.minorGcs, majorGcs: out.majorGcs };
}

async function until(predicate, daemon, tmp, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (daemon.exitCode !== null || Date.now() > deadline) {
      const log = fs.readFileSync(path.join(tmp, 'offloadd.log'), 'utf8').split('\n').slice(-20).join('\n');
      throw new Error(`${daemon.exitCode !== null ? 'daemon exited' : 'timed out'}; its log:\n${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
