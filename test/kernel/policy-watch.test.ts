/**
 * offloadd --watch-policy against a directory laid out like kubelet's ConfigMap volume: the policy
 * reloads by itself when kubelet swaps the `..data` symbolic link, a bad policy is rejected and the
 * running one stays in force, and the daemon survives the directory vanishing and coming back.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MAX_POLICY_BYTES, MAX_POLICY_RULES } from '../../src/policy/limits';
import { ConfigMapDir } from '../helpers/configmap';
import { type DaemonProcess, eachTestInItsOwnNetns, type Netns, REPO_ROOT, waitFor } from '../helpers/netns';

const OFFLOADCTL = path.join(REPO_ROOT, 'bin', 'offloadctl');

const policy = (extra = ''): string => `
mode: enforce
rules:
  - name: managed-veths
    match: { name: "m*", kind: veth }
    features: { gro: off, gso: off }
${extra}`;
const WITH_N = policy(`  - name: n-veths\n    match: { name: "n*", kind: veth }\n    features: { gso: off }\n`);
const INVALID = policy(`  - name: broken\n    match: { name: "x*" }\n    features: { grow: off }\n`);

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

function runningSha256(daemon: DaemonProcess): string {
  const result = spawnSync(process.execPath, [OFFLOADCTL, 'status', '--json', '--socket', daemon.socketPath], {
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
  return (JSON.parse(result.stdout) as { policy: { sha256: string } }).policy.sha256;
}

/** Waits for the n-th line matching `pattern` (1-based): each reload logs one. */
function nthLine(daemon: DaemonProcess, pattern: RegExp, n: number): Promise<string> {
  return waitFor(
    () => daemon.linesMatching(pattern)[n - 1],
    `line ${n} matching ${pattern}:\n${daemon.lines.slice(-15).join('\n')}`,
  );
}

const LOADED = /Policy reloaded from .* sha256 /;
const REJECTED = /Policy rejected, keeping the running one: .*grow/;

describe('offloadd --watch-policy (ConfigMap-style reload, real kernel, own namespace)', function () {
  let ns: Netns;
  eachTestInItsOwnNetns((created) => (ns = created));

  it('loads a valid update kubelet swaps in, rejects an invalid one keeping the running policy, loads the next', async () => {
    const volume = ConfigMapDir.create(path.join(ns.tmp, 'offloadd-config'), policy());
    ns.addVeth('m0');
    const daemon = ns.startDaemon(['--policy', volume.policyPath, '--watch-policy']);
    await daemon.ready();
    assert.equal(runningSha256(daemon), sha256(policy()));

    // The same content again: the directory changes, the policy does not; nothing reloads.
    volume.swap(policy());
    await daemon.waitForLine(/content did not; nothing to reload/);

    volume.swap(WITH_N);
    const loaded = await nthLine(daemon, LOADED, 1);
    assert.match(loaded, new RegExp(`sha256 ${sha256(WITH_N).slice(0, 12)}`));
    assert.equal(runningSha256(daemon), sha256(WITH_N));
    ns.addVeth('n0'); // gso is on by default on a veth: the new rule turns it off
    await waitFor(() => ns.features('n0')['generic-segmentation-offload'] === false, 'n0 gso off by the new rule');

    volume.swap(INVALID);
    await daemon.waitForLine(REJECTED);
    assert.equal(runningSha256(daemon), sha256(WITH_N), 'the running policy stays');
    ns.setFeatures('m0', 'gro', 'on');
    await waitFor(() => ns.features('m0')['generic-receive-offload'] === false, 'm0 still enforced');

    const next = policy(`  - name: o-veths\n    match: { name: "o*", kind: veth }\n    features: { gro: off }\n`);
    volume.swap(next);
    await nthLine(daemon, LOADED, 2);
    assert.equal(runningSha256(daemon), sha256(next));
    assert.equal(daemon.linesMatching(LOADED).length, 2, 'one reload per real change');
    assert.equal(await daemon.stop(), 0);
  });

  it('a large valid policy freezes the event loop: the largest policy the limits allow is loaded and drift corrected after it, one rule more is rejected and the running one stays (issue 20 #9)', async () => {
    /** policy() and `count - 1` more rules, each matching names no interface here has. */
    const withRules = (count: number): string =>
      policy(
        Array.from(
          { length: count - 1 },
          (_, i) => `  - {name: f${i}, match: {name: f${i}x}, features: {gro: off}}\n`,
        ).join(''),
      );
    const largest = withRules(MAX_POLICY_RULES);
    const over = withRules(MAX_POLICY_RULES + 1);
    assert.ok(Buffer.byteLength(over) <= MAX_POLICY_BYTES, 'only the rule limit is crossed');
    const volume = ConfigMapDir.create(path.join(ns.tmp, 'offloadd-config'), policy());
    ns.addVeth('m0');
    const daemon = ns.startDaemon(['--policy', volume.policyPath, '--watch-policy']);
    await daemon.ready();

    volume.swap(largest);
    await nthLine(daemon, LOADED, 1);
    assert.equal(runningSha256(daemon), sha256(largest));
    ns.setFeatures('m0', 'gro', 'on');
    await waitFor(
      () => ns.features('m0')['generic-receive-offload'] === false,
      'm0 corrected under the largest policy',
    );

    volume.swap(over);
    await daemon.waitForLine(
      new RegExp(`Policy rejected, keeping the running one: .*more than the ${MAX_POLICY_RULES} allowed`),
    );
    assert.equal(runningSha256(daemon), sha256(largest), 'the running policy stays');
    ns.setFeatures('m0', 'gro', 'on');
    await waitFor(() => ns.features('m0')['generic-receive-offload'] === false, 'm0 still corrected');
    assert.equal(await daemon.stop(), 0);
  });

  it('keeps the running policy while the directory is gone, and loads it when it is back', async () => {
    const volume = ConfigMapDir.create(path.join(ns.tmp, 'mounted', 'offloadd-config'), policy());
    const daemon = ns.startDaemon(['--policy', volume.policyPath, '--watch-policy']);
    await daemon.ready();

    fs.rmSync(volume.dir, { recursive: true });
    await daemon.waitForLine(/is missing; keeping the running policy/);
    assert.equal(runningSha256(daemon), sha256(policy()));

    ConfigMapDir.create(volume.dir, WITH_N);
    await nthLine(daemon, LOADED, 1);
    assert.equal(runningSha256(daemon), sha256(WITH_N));

    // Watched again after coming back: an update is seen.
    volume.swap(policy());
    await nthLine(daemon, LOADED, 2);
    assert.equal(runningSha256(daemon), sha256(policy()));
    assert.equal(await daemon.stop(), 0);
  });

  it('reloads a plain file rewritten in place or renamed over, and the target of a link edited in another directory', async () => {
    const file = ns.file('etc/policy.yaml', policy());
    const elsewhere = ns.file('checkout/policy.yaml', policy());
    const link = path.join(ns.tmp, 'etc', 'linked.yaml');
    fs.symlinkSync(elsewhere, link);
    const plain = ns.startDaemon(['--policy', file, '--watch-policy']);
    const linked = ns.startDaemon(['--policy', link, '--watch-policy']);
    await Promise.all([plain.ready(), linked.ready()]);

    fs.writeFileSync(file, WITH_N); // in place, as an editor or a template module without backup does
    await nthLine(plain, LOADED, 1);
    assert.equal(runningSha256(plain), sha256(WITH_N));
    const temporary = path.join(ns.tmp, 'etc', '.policy.yaml.tmp');
    fs.writeFileSync(temporary, policy());
    fs.renameSync(temporary, file); // as configuration tools replace files atomically
    await nthLine(plain, LOADED, 2);
    assert.equal(runningSha256(plain), sha256(policy()));

    fs.writeFileSync(elsewhere, WITH_N);
    await nthLine(linked, LOADED, 1);
    assert.equal(runningSha256(linked), sha256(WITH_N));
    assert.equal(await plain.stop(), 0);
    assert.equal(await linked.stop(), 0);
  });

  it('refuses --watch-policy without --policy, and with --once (usage, exit 2)', () => {
    for (const args of [['--watch-policy'], ['--watch-policy', '--once', '--policy', ns.file('p.yaml', policy())]]) {
      const result = ns.runOffloadd(args);
      assert.equal(result.status, 2, JSON.stringify(result));
      assert.match(result.stderr, /--watch-policy/);
    }
  });
});

/**
 * PolicyWatch on its own, in a child process (so an inotify limit can be set for it alone, in its
 * own user namespace), reporting each hook call as a line: `report <level> <message>` or `reload`.
 */
class WatchProcess {
  readonly lines: string[] = [];
  private readonly child;

  constructor(policyPath: string, options: { userns?: boolean } = {}) {
    const script = `
      const { PolicyWatch } = require(${JSON.stringify(path.join(REPO_ROOT, 'dist', 'src', 'policy', 'watch.js'))});
      const { policyFileChecksum } = require(${JSON.stringify(path.join(REPO_ROOT, 'dist', 'src', 'policy', 'policy-file.js'))});
      let running = policyFileChecksum(process.argv[1]);
      const watch = new PolicyWatch(process.argv[1], {
        runningChecksum: () => running,
        reload: () => { running = policyFileChecksum(process.argv[1]); console.log('reload'); },
        report: (level, message) => console.log('report ' + level + ' ' + message),
      });
      process.stdin.on('data', (data) => {
        // "limit N": this user namespace's inotify watch limit
        const [, limit] = /limit (\\d+)/.exec(String(data)) ?? [];
        if (limit !== undefined) require('fs').writeFileSync('/proc/sys/user/max_inotify_watches', limit);
      });
      watch.start();`;
    const prefix = options.userns
      ? [
          'unshare',
          '--user',
          '--map-root-user',
          'sh',
          '-c',
          'echo 0 > /proc/sys/user/max_inotify_watches && exec "$@"',
          'sh',
        ]
      : [];
    const [command, ...args] = [...prefix, process.execPath, '-e', script, policyPath];
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    let buffered = '';
    this.child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      this.lines.push(...parts);
    });
  }

  send(text: string): void {
    this.child.stdin.write(`${text}\n`);
  }

  count(pattern: RegExp): number {
    return this.lines.filter((line) => pattern.test(line)).length;
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }
}

describe('policy watch under pressure (PolicyWatch in a child process)', function () {
  let dir: string;
  let watcher: WatchProcess | null = null;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'offloadd-watch-'));
  });
  afterEach(() => {
    watcher?.stop();
    watcher = null;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('--watch-policy recovers from a watch it could not arm: polls meanwhile, then watches again (issue 20 #13)', async function () {
    this.timeout(60000);
    const file = path.join(dir, 'policy.yaml');
    fs.writeFileSync(file, policy());
    watcher = new WatchProcess(file, { userns: true });
    const current = watcher;
    await waitFor(() => current.count(/^report info Polling .* since no watch could be armed/) === 1, 'polling said');
    assert.equal(current.count(/^report warning Cannot watch .* polling the policy instead/), 1);
    fs.writeFileSync(file, WITH_N);
    await waitFor(() => current.count(/^reload$/) === 1, 'a change found by polling', 20000);
    current.send('limit 1000');
    await waitFor(
      () => current.count(/^report info Watching .* again; polling stopped/) === 1,
      'watching again',
      20000,
    );
    fs.writeFileSync(file, policy());
    await waitFor(() => current.count(/^reload$/) === 2, 'a change found by the watch again', 20000);
    assert.equal(current.count(/Cannot watch/), 1, `said once: ${current.lines.join('\n')}`);
  });

  it('--watch-policy reloads within its maximum wait while an unrelated file is written every 20 ms (issue 20 #13)', async function () {
    this.timeout(60000);
    const file = path.join(dir, 'policy.yaml');
    fs.writeFileSync(file, policy());
    watcher = new WatchProcess(file);
    const current = watcher;
    await waitFor(() => current.count(/^report info Watching/) === 1, 'watching');
    let writes = 0;
    const noise = setInterval(() => fs.writeFileSync(path.join(dir, 'unrelated'), String(writes++)), 20);
    try {
      await new Promise((resolve) => setTimeout(resolve, 200)); // the noise is flowing (not a wait for the result)
      fs.writeFileSync(file, WITH_N);
      await waitFor(() => current.count(/^reload$/) === 1, 'the reload, with the noise still going', 10000);
    } finally {
      clearInterval(noise);
    }
  });

  it('says a missing policy directory once, however busy its parent', async function () {
    this.timeout(60000);
    const sub = path.join(dir, 'config');
    fs.mkdirSync(sub);
    const file = path.join(sub, 'policy.yaml');
    fs.writeFileSync(file, policy());
    watcher = new WatchProcess(file);
    const current = watcher;
    await waitFor(() => current.count(/^report info Watching/) === 1, 'watching');
    fs.rmSync(sub, { recursive: true });
    await waitFor(
      () => current.count(/is missing; keeping the running policy, watching/) >= 1,
      'the missing directory said',
    );
    for (let i = 0; i < 20; i++) {
      fs.writeFileSync(path.join(dir, `noise-${i}`), 'x');
      await waitFor(() => current.count(/is missing/) >= 1, 'settled');
    }
    fs.mkdirSync(sub);
    fs.writeFileSync(file, WITH_N);
    await waitFor(() => current.count(/^reload$/) === 1, 'reloaded when it is back', 20000);
    assert.equal(current.count(/is missing; keeping the running policy, watching/), 1, current.lines.join('\n'));
  });
});
